import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

#: the full MNIST idx files of this project's development machines and CI (absent on a reader's machine)
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Every test gets its own artefact cache and never touches the network."""
    monkeypatch.setenv("ADVDETECT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ADVDETECT_OFFLINE", "1")
    monkeypatch.delenv("ADVDETECT_PROFILE", raising=False)
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def mnist_small():
    """A stratified cut of the MNIST shipped with the package: 3,500 train / 500 validation / 1,000 test."""
    from advdetect import data

    ds = data.load("mnist")
    ds.x_train, ds.y_train = data.subset(ds.x_train, ds.y_train, 3500, seed=0)
    ds.x_val, ds.y_val = data.subset(ds.x_val, ds.y_val, 500, seed=0)
    ds.x_test, ds.y_test = data.subset(ds.x_test, ds.y_test, 1000, seed=0)
    return ds


def write_tiny_cifar(root, per_batch: int = 20, test: int = 10, seed: int = 1):
    """Five training batches and a test batch of random images in CIFAR-10's own python-batch format."""
    import numpy as np

    from advdetect import data

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(1, 6):
        data.write_cifar_batch(folder / f"data_batch_{i}", rng.integers(0, 256, (per_batch, 3, 32, 32)),
                               np.arange(per_batch) % 10)
    data.write_cifar_batch(folder / "test_batch", rng.integers(0, 256, (test, 3, 32, 32)), np.arange(test) % 10)
    return root
