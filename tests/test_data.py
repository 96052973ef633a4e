import numpy as np
import pytest
import torch

from advdetect import data, synthetic
from advdetect.errors import DataError

from .conftest import SHARED_DATA, write_tiny_cifar


def test_shipped_mnist_is_a_fixed_stratified_split():
    ds = data.load("mnist")
    assert ds.x_train.shape == (50_000, 1, 28, 28) and ds.x_val.shape == (10_000, 1, 28, 28)
    assert ds.x_test.shape == (10_000, 1, 28, 28)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert float(ds.x_train.min()) >= 0.0 and float(ds.x_train.max()) <= 1.0
    # the validation split keeps the class proportions of the 60,000 training images (within one image)
    train_share = torch.bincount(torch.cat([ds.y_train, ds.y_val]), minlength=10) / 60_000
    assert (torch.bincount(ds.y_val, minlength=10) - train_share * 10_000).abs().max() <= 1
    again = data.load("mnist")
    assert torch.equal(again.x_val, ds.x_val) and torch.equal(again.y_val, ds.y_val)


def test_unknown_dataset_names_the_choices():
    with pytest.raises(DataError, match="mnist, fashion_mnist, cifar10"):
        data.load("imagenet")


def _write_tiny_mnist(folder, gz=True, n_train=60, n_test=20):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    data.write_idx(folder / f"train-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n_train, 28, 28)))
    data.write_idx(folder / f"train-labels-idx1-ubyte{suffix}", np.arange(n_train) % 10)
    data.write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n_test, 28, 28)))
    data.write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", np.arange(n_test) % 10)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_reads_idx_files_under_the_data_root(tmp_path, monkeypatch, gz):
    _write_tiny_mnist(tmp_path / "MNIST" / "raw", gz=gz)
    monkeypatch.setenv("ADVDETECT_DATA", str(tmp_path))
    ds = data.load("mnist", val_size=10)
    assert ds.x_train.shape == (50, 1, 28, 28) and ds.x_val.shape == (10, 1, 28, 28)
    assert ds.x_test.shape == (20, 1, 28, 28)
    assert torch.bincount(ds.y_val, minlength=10).tolist() == [1] * 10


def test_full_mnist_ships_with_the_package_and_is_checked(tmp_path, monkeypatch):
    monkeypatch.delenv("ADVDETECT_DATA", raising=False)
    ds = data.load("mnist", root=tmp_path)                # a root without MNIST/raw: the shipped files
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (50_000, 10_000, 10_000)
    assert "shipped" in ds.source and torch.bincount(ds.y_test).tolist()[:2] == [980, 1135]
    train_labels = torch.cat([ds.y_train, ds.y_val])
    assert torch.bincount(train_labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    damaged = tmp_path / "raw"
    damaged.mkdir()
    import shutil

    for f in data.SHIPPED_MNIST.iterdir():
        shutil.copy(f, damaged / f.name)
    _write_tiny_mnist(tmp_path / "tiny")
    shutil.copy(tmp_path / "tiny" / "t10k-labels-idx1-ubyte.gz", damaged / "t10k-labels-idx1-ubyte.gz")
    monkeypatch.setattr(data, "SHIPPED_MNIST", damaged)
    with pytest.raises(DataError, match="damaged"):
        data.load("mnist")
    (damaged / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="missing from this installation"):
        data.load("mnist")


def test_idx_reader_rejects_malformed_files(tmp_path):
    bad = tmp_path / "bad-idx"
    bad.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02")  # announces 5 values, holds 2
    with pytest.raises(DataError, match="announces"):
        data.read_idx(bad)


def test_cifar10_python_batches_load_through_the_real_reader(tmp_path):
    ds = data.load("cifar10", root=write_tiny_cifar(tmp_path), val_size=10)
    assert ds.x_train.shape == (90, 3, 32, 32) and ds.x_val.shape == (10, 3, 32, 32)
    assert ds.x_test.shape == (10, 3, 32, 32) and ds.num_classes == 10
    assert float(ds.x_test.max()) <= 1.0


def test_missing_cifar10_names_the_folder(tmp_path):
    with pytest.raises(DataError, match="cifar-10-batches-py"):
        data.load("cifar10", root=tmp_path)


def test_fashion_mnist_from_a_data_root(tmp_path):
    _write_tiny_mnist(tmp_path / "FashionMNIST" / "raw")
    ds = data.load("fashion_mnist", root=tmp_path, val_size=10)
    assert ds.classes[0] == "T-shirt/top" and ds.x_train.shape[1:] == (1, 28, 28)


@pytest.mark.skipif(not (SHARED_DATA / "MNIST" / "raw").is_dir(), reason="full MNIST not present")
def test_full_mnist_from_the_shared_data_root():
    ds = data.load("mnist", root=SHARED_DATA)
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (50_000, 10_000, 10_000)


def test_subset_is_seeded_and_stratified(mnist_small):
    x, y = data.subset(mnist_small.x_test, mnist_small.y_test, 100, seed=3)
    x2, _ = data.subset(mnist_small.x_test, mnist_small.y_test, 100, seed=3)
    share = torch.bincount(mnist_small.y_test, minlength=10) / len(mnist_small.y_test)
    assert torch.equal(x, x2) and (torch.bincount(y, minlength=10) - share * 100).abs().max() <= 1


def test_synthetic_sets_match_appendix_f():
    one = synthetic.mixture_1d(0)
    assert one.positives.shape == (500, 1) and one.negatives.shape == (500, 1)
    g = np.linspace(0, 1, 20001)
    assert abs(np.trapezoid(one.density(g), g) - 1.0) < 1e-3
    for name in synthetic.SETS_2D:
        s = synthetic.two_d(name, 0)
        assert s.positives.shape == (1000, 2) and s.negatives.shape == (1000, 2)
        assert float(s.x.min()) >= 0.0 and float(s.x.max()) <= 1.0
        assert float(s.positives.min()) >= 0.29 and float(s.positives.max()) <= 0.71
        h = 1.0 / 200
        axis = h * (np.arange(200) + 0.5)
        pts = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)
        assert abs(s.density(pts).sum() * h * h - 1.0) < 0.03, name
    with pytest.raises(DataError, match="ring"):
        synthetic.two_d("swissroll")


def test_random_crop_flip_moves_and_mirrors_whole_images():
    from advdetect.data import random_crop_flip

    x = torch.rand(64, 3, 8, 8)
    out = random_crop_flip(x, torch.Generator().manual_seed(0), pad=2)
    assert out.shape == x.shape
    # every output is a shifted (zero-filled) and possibly mirrored copy of its input
    for i in range(len(x)):
        found = False
        for img in (x[i], x[i].flip(2)):
            padded = torch.nn.functional.pad(img, (2, 2, 2, 2))
            for dy in range(5):
                for dx in range(5):
                    found |= torch.equal(padded[:, dy:dy + 8, dx:dx + 8], out[i])
        assert found
    flips = sum(not torch.equal(out[i], x[i]) for i in range(len(x)))
    assert flips > 32  # most images moved or flipped


def test_available_reports_cifar_without_loading_or_downloading(tmp_path):
    from advdetect import data

    from .conftest import write_tiny_cifar

    assert not data.available("cifar10", tmp_path / "none")
    assert data.available("cifar10", write_tiny_cifar(tmp_path, per_batch=4, test=4))
    assert data.available("mnist") and data.available("mnist", tmp_path / "none")


def test_load_for_applies_a_chapters_dataset_and_training_subset():
    full = data.load_for({"DATASET": "mnist", "TRAIN_SUBSET": None, "SEED": 0})
    cut = data.load_for({"DATASET": "mnist", "TRAIN_SUBSET": 700, "SEED": 0})
    assert len(full.y_train) == 50_000 and len(cut.y_train) == 700
    share = torch.bincount(full.y_train, minlength=10) / len(full.y_train)
    assert (torch.bincount(cut.y_train, minlength=10) - share * 700).abs().max() <= 1
    assert len(cut.y_test) == len(full.y_test)


def test_heldout_labels_match_the_heldout_images_of_attacked_points():
    from advdetect import data, evaluation

    ds = data.load("mnist")
    ds.x_val, ds.y_val = data.subset(ds.x_val, ds.y_val, 300, seed=0)
    ds.x_test, ds.y_test = data.subset(ds.x_test, ds.y_test, 400, seed=0)
    x, y, xh = evaluation.attacked_points(ds, 50, seed=3)
    yh = evaluation.heldout_labels(ds, 50, seed=3)
    assert len(yh) == len(xh) == 300 + 350
    lookup = {img.numpy().tobytes(): int(lab) for img, lab in zip(torch.cat([ds.x_val, ds.x_test]),
                                                                     torch.cat([ds.y_val, ds.y_test]))}
    assert all(lookup[img.numpy().tobytes()] == int(lab) for img, lab in zip(xh, yh))
