"""Datasets by name: float tensors in [0, 1], NCHW, with labels and a fixed seeded validation split.

========================  =============================================================================
``mnist``                 MNIST 60k/10k: the idx files shipped in ``advdetect/datasets/MNIST/raw/`` (md5-checked),
                          or those of a data root given or named by ``$ADVDETECT_DATA`` that has ``MNIST/raw/``;
                          50k train / 10k val
``fashion_mnist``         same format, from ``/usr/share/datasets/fashion-mnist`` (Debian package
                          ``dataset-fashion-mnist``) or ``<root>/FashionMNIST/raw``
``cifar10``               CIFAR-10 python batches in ``<root>/cifar-10-batches-py``; 45k train / 5k val
========================  =============================================================================

The synthetic sets of GAT Appendix F (1D mixture, 2D benchmark sets) are in :mod:`advdetect.synthetic`.
Nothing here imports torchvision: its CPU-less builds fail to import on a CPU-only torch.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from .errors import DataError

ENV_DATA = "ADVDETECT_DATA"

DATASETS = ("mnist", "fashion_mnist", "cifar10")

MNIST_CLASSES = tuple(str(i) for i in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

_MNIST_FILES = {
    "train_images": ("train-images-idx3-ubyte", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train_labels": ("train-labels-idx1-ubyte", "d53e105ee54ea40749a09fcbcd1e9432"),
    "test_images": ("t10k-images-idx3-ubyte", "9fb629c4189551a2d022fa330f9573f3"),
    "test_labels": ("t10k-labels-idx1-ubyte", "ec29112dd5afa0611ce80d1b7f02629c"),
}  # md5 of the .gz files as published
#: MNIST as shipped with the package (see its README: credit, licence), and the md5 of each decompressed file
SHIPPED_MNIST = Path(__file__).resolve().parent / "datasets" / "MNIST" / "raw"
_SHIPPED_MD5 = {"train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
                "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
                "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
                "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637"}
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")


@dataclass
class Dataset:
    """A labelled image dataset split three ways. Images are float32 NCHW in [0, 1]; labels int64."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple[str, ...]
    source: str
    meta: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def __repr__(self) -> str:
        return (f"Dataset({self.name}: train {len(self.y_train)}, val {len(self.y_val)}, test {len(self.y_test)}, "
                f"shape {self.shape}, from {self.source})")

    def describe(self) -> str:
        return (f"`{self.name}` ({len(self.y_train):,} train / {len(self.y_val):,} validation / "
                f"{len(self.y_test):,} test, {self.source})")


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: the argument, else ``$ADVDETECT_DATA``, else ``./data``."""
    if root is not None:
        return Path(root).expanduser()
    return Path(os.environ.get(ENV_DATA, "data")).expanduser()


def load(name: str, root: str | os.PathLike | None = None, *, val_size: int | None = None, seed: int = 0) -> Dataset:
    """Load a dataset by name (see the module docstring); nothing is downloaded."""
    if name == "mnist":
        explicit = root is not None or bool(os.environ.get(ENV_DATA))
        folder = data_root(root) / "MNIST" / "raw"
        if explicit and _find_idx_folder([folder]) is not None:
            tr_x, tr_y, te_x, te_y = _read_idx_folder(folder)
            source = f"idx files in {folder}"
        else:
            tr_x, tr_y, te_x, te_y = _shipped_mnist()
            source = "the original files shipped with advdetect"
        return _split(name, tr_x, tr_y, te_x, te_y, MNIST_CLASSES, 10_000 if val_size is None else val_size, seed,
                      source=source)
    if name == "fashion_mnist":
        root = data_root(root)
        folder = _find_idx_folder([root / "FashionMNIST" / "raw", root / "fashion-mnist", FASHION_SYSTEM_DIR])
        if folder is None:
            raise DataError(
                "Fashion-MNIST not found: install the Debian package dataset-fashion-mnist (files in "
                f"{FASHION_SYSTEM_DIR}) or put the four idx files in {root / 'FashionMNIST' / 'raw'}."
            )
        tr_x, tr_y, te_x, te_y = _read_idx_folder(folder)
        return _split(name, tr_x, tr_y, te_x, te_y, FASHION_CLASSES, 10_000 if val_size is None else val_size, seed,
                      source=f"idx files in {folder}")
    if name == "cifar10":
        root = data_root(root)
        return _cifar10(root, val_size=5_000 if val_size is None else val_size, seed=seed)
    raise DataError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")


# ----------------------------------------------------------------------------------------------------------- splits

def stratified_split(y: np.ndarray, n_holdout: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, holdout) with ``n_holdout`` items held out in proportion to the classes, seeded; both in
    shuffled order (so that any prefix of a split is a fair sample)."""
    idx = np.arange(len(y))
    if n_holdout <= 0:
        return idx, idx[:0]
    keep, hold = train_test_split(idx, test_size=n_holdout, stratify=y, random_state=seed, shuffle=True)
    return keep, hold


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) or (N, C, H, W) -> float32 NCHW in [0, 1]."""
    x = torch.from_numpy(np.array(images, dtype=np.uint8)).float().div_(255.0)
    return x.unsqueeze(1) if x.ndim == 3 else x


def _split(name, tr_x, tr_y, te_x, te_y, classes, val_size, seed, source) -> Dataset:
    keep, hold = stratified_split(tr_y, val_size, seed)
    return Dataset(
        name=name,
        x_train=_to_tensor(tr_x[keep]), y_train=torch.from_numpy(tr_y[keep].astype(np.int64)),
        x_val=_to_tensor(tr_x[hold]), y_val=torch.from_numpy(tr_y[hold].astype(np.int64)),
        x_test=_to_tensor(te_x), y_test=torch.from_numpy(te_y.astype(np.int64)),
        classes=classes, source=source, meta={"seed": seed},
    )


# -------------------------------------------------------------------------------------------------------- idx files

def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an idx file (optionally gzipped): unsigned-byte data of any rank, as in MNIST's distribution."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4:
        raise DataError(f"{path} is too short to be an idx file")
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        raise DataError(f"{path} is not an unsigned-byte idx file (magic {raw[:4].hex()})")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path} holds {data.size} values but its header announces {dims}")
    return data.reshape(dims)


def _find_file(folder: Path, stem: str) -> Path | None:
    for cand in (folder / stem, folder / f"{stem}.gz"):
        if cand.is_file():
            return cand
    return None


def _find_idx_folder(folders) -> Path | None:
    for folder in folders:
        if all(_find_file(folder, stem) for stem, _ in _MNIST_FILES.values()):
            return folder
    return None


def _read_idx_folder(folder: Path):
    arrays = {key: read_idx(_find_file(folder, stem)) for key, (stem, _) in _MNIST_FILES.items()}
    if len(arrays["train_images"]) != len(arrays["train_labels"]) or len(arrays["test_images"]) != len(
            arrays["test_labels"]):
        raise DataError(f"images and labels in {folder} differ in length")
    return arrays["train_images"], arrays["train_labels"], arrays["test_images"], arrays["test_labels"]


def _shipped_mnist():
    """The MNIST files shipped with the package, each checked against the md5 of the original file."""
    arrays = []
    for stem, md5 in _SHIPPED_MD5.items():
        path = SHIPPED_MNIST / f"{stem}.gz"
        if not path.is_file():
            raise DataError(f"{path} is missing from this installation: reinstall advdetect from its repository, or "
                            f"point {ENV_DATA} at a data root with MNIST/raw/ (the four idx files)")
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
        if hashlib.md5(raw).hexdigest() != md5:  # noqa: S324 - integrity check, not security
            raise DataError(f"{path} is damaged (md5 of its content differs from MNIST's): restore it with git")
        arrays.append(read_idx(path))
    train_x, train_y, test_x, test_y = arrays
    return train_x, train_y, test_x, test_y


# ----------------------------------------------------------------------------------------------------------- cifar10

def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as fh:
            batch = pickle.load(fh, encoding="bytes")  # noqa: S301 - CIFAR-10's own distribution format
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"{path} is not a CIFAR-10 python batch ({exc})") from exc
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if data is None or labels is None:
        raise DataError(f"{path} lacks the 'data' or 'labels' entry of a CIFAR-10 batch")
    data = np.asarray(data, dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{path}: expected data of shape (N, 3072), got {data.shape}")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def _cifar10(root: Path, val_size: int, seed: int) -> Dataset:
    folder = root / "cifar-10-batches-py"
    train_files = [folder / f"data_batch_{i}" for i in range(1, 6)]
    test_file = folder / "test_batch"
    missing = [p.name for p in [*train_files, test_file] if not p.is_file()]
    if missing:
        raise DataError(
            f"CIFAR-10 not found in {folder} (missing {', '.join(missing)}). Download and unpack "
            f"cifar-10-python.tar.gz there (or point {ENV_DATA} at a root that has cifar-10-batches-py/); "
            f"on a machine with torchvision, torchvision.datasets.CIFAR10(root, download=True) does it."
        )
    parts = [_read_cifar_batch(p) for p in train_files]
    tr_x = np.concatenate([p[0] for p in parts])
    tr_y = np.concatenate([p[1] for p in parts])
    te_x, te_y = _read_cifar_batch(test_file)
    return _split("cifar10", tr_x, tr_y, te_x, te_y, CIFAR10_CLASSES, val_size, seed,
                  source=f"python batches in {folder}")


def load_for(settings) -> Dataset:
    """The dataset of a chapter's settings: ``DATASET``, cut to ``TRAIN_SUBSET`` training images (a stratified
    subset fixed by ``SEED``) unless that is None."""
    ds = load(settings["DATASET"])
    if settings["TRAIN_SUBSET"] is not None:
        ds.x_train, ds.y_train = subset(ds.x_train, ds.y_train, settings["TRAIN_SUBSET"], seed=settings["SEED"])
    return ds


def available(name: str, root: str | os.PathLike | None = None) -> bool:
    """Whether ``load(name, root)`` would find the dataset on disk now."""
    if name == "cifar10":
        folder = data_root(root) / "cifar-10-batches-py"
        return all((folder / f).is_file() for f in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"])
    try:
        load(name, root)
    except DataError:
        return False
    return True


def random_crop_flip(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """CIFAR-10's standard augmentation on a batch ``(N, C, H, W)``: a random crop of the zero-padded image
    (``pad`` pixels each side) and a horizontal flip with probability 1/2, per image."""
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None].expand(n, x.shape[1], h, w + 2 * pad)
    out = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :].expand(n, x.shape[1], h, w)
    out = out.gather(3, cols)
    flip = torch.rand(n, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out)


def write_cifar_batch(path: str | os.PathLike, images: np.ndarray, labels) -> None:
    """Write images (N, 3, 32, 32) uint8 and labels in CIFAR-10's python-batch format (used by the tests)."""
    images = np.asarray(images, dtype=np.uint8)
    batch = {b"data": images.reshape(len(images), -1), b"labels": [int(v) for v in labels],
             b"batch_label": b"advdetect", b"filenames": [f"{i}.png".encode() for i in range(len(images))]}
    with open(path, "wb") as fh:
        pickle.dump(batch, fh)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write an unsigned-byte idx file (gzipped if the name ends in .gz); used by the tests."""
    array = np.asarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as fh:
        fh.write(header + array.tobytes())


# ------------------------------------------------------------------------------------------------------- utilities

def subset(x: torch.Tensor, y: torch.Tensor, n: int | None, seed: int = 0, stratified: bool = True):
    """A fixed seeded subset of ``n`` examples (all if ``n`` is None or too large), stratified by label."""
    if n is None or n >= len(y):
        return x, y
    if stratified:
        _, idx = stratified_split(y.numpy(), n, seed)
    else:
        idx = np.sort(np.random.default_rng(seed).choice(len(y), n, replace=False))
    idx = torch.from_numpy(idx)
    return x[idx], y[idx]

