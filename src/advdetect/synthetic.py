"""The synthetic sets of GAT Appendix F, each with its true density so that estimates can be scored.

1D (Fig 19): positives are 250 draws from N(0.4, 0.01^2) and 250 from N(0.6, 0.005^2); negatives are 500
uniform draws from [0, 0.3) U (0.7, 1], away from both modes, as in the authors' notebook (the paper's text does
not say). A discriminative detector then only learns "inside [0.3, 0.7] or not"; GAT's perturbed negatives
must reach into the modes' neighbourhood.

2D (Fig 20): four sets of 1,000 positives (class 1), named as in the authors' repository: ``ring`` (8 Gaussians
on a circle), ``grid`` (5 x 5 Gaussians), ``spirals`` (two noisy arms) and ``checkerboard`` (uniform on alternate
cells of a 4 x 4 board). As in the authors' notebooks the data occupy the centre of the unit box, [0.3, 0.7]^2,
and the attack's box is [0, 1]^2; negatives (class 0) are 1,000 uniform draws on the unit box. The first three are "points plus isotropic Gaussian
noise", whose density is the points' measure convolved with the noise (exact up to the discretisation of the
arms); the checkerboard's density is piecewise constant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .errors import DataError

BOUNDS_1D = (0.0, 1.0)
BOUNDS_2D = (0.0, 1.0)
#: the 2D structures are drawn on [-2, 2]^2 and mapped to the centre of the unit box: x -> 0.5 + SCALE_2D * x
SCALE_2D = 0.1
SETS_2D = ("ring", "grid", "spirals", "checkerboard")


@dataclass
class Synthetic:
    """Positives (class 1), negatives (class 0), the box they live in and a callable true density."""

    name: str
    positives: torch.Tensor
    negatives: torch.Tensor
    bounds: tuple[float, float]
    density: callable  # numpy (N, d) -> (N,) true density of the positives

    @property
    def x(self) -> torch.Tensor:
        return torch.cat([self.positives, self.negatives])

    @property
    def y(self) -> torch.Tensor:
        return torch.cat([torch.ones(len(self.positives)), torch.zeros(len(self.negatives))])


def _normal_pdf(x, mean, std):
    return np.exp(-0.5 * ((x - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))


def mixture_1d(seed: int = 0, n_per_mode: int = 250, n_negatives: int = 500) -> Synthetic:
    """GAT Fig 19's 1D data: the two-mode Gaussian mixture and uniform negatives on [0, 1]."""
    rng = np.random.default_rng(seed)
    pos = np.concatenate([rng.normal(0.4, 0.01, n_per_mode), rng.normal(0.6, 0.005, n_per_mode)])
    neg = rng.uniform(0.0, 0.6, n_negatives)
    neg = np.where(neg < 0.3, neg, neg + 0.4)  # uniform on [0, 0.3) U [0.7, 1)

    def density(x):
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        return 0.5 * _normal_pdf(x, 0.4, 0.01) + 0.5 * _normal_pdf(x, 0.6, 0.005)

    as_t = lambda a: torch.tensor(a, dtype=torch.float32).unsqueeze(1)  # noqa: E731
    return Synthetic("mixture_1d", as_t(pos), as_t(neg), BOUNDS_1D, density)


def _centres(name: str, t: np.ndarray) -> np.ndarray:
    """Points of the set's underlying structure for parameters ``t`` uniform in [0, 1)."""
    if name == "ring":
        a = np.floor(t * 8) * math.pi / 4
        return np.stack([1.4 * np.cos(a), 1.4 * np.sin(a)], axis=1)
    if name == "grid":
        k = np.floor(t * 25)
        return np.stack([(k % 5) * 0.75 - 1.5, (k // 5) * 0.75 - 1.5], axis=1)
    if name == "spirals":
        arm = t < 0.5
        s = np.where(arm, t * 2, t * 2 - 1)
        r = 0.2 + 1.5 * s
        a = 3.0 * math.pi * s + np.where(arm, 0.0, math.pi)
        return np.stack([r * np.cos(a), r * np.sin(a)], axis=1)
    raise DataError(f"unknown 2D set {name!r}: choose one of {', '.join(SETS_2D)}")


def _checkerboard_density(x: np.ndarray) -> np.ndarray:
    """Uniform on the 8 'black' cells of a 4 x 4 board over [-2, 2]^2 (cell side 1, total area 8)."""
    inside = (np.abs(x) <= 2.0).all(1)
    i = np.floor(x[:, 0] + 2).clip(0, 3)
    j = np.floor(x[:, 1] + 2).clip(0, 3)
    return (inside & ((i + j) % 2 == 0)) / 8.0


_NOISE = {"ring": 0.1, "grid": 0.08, "spirals": 0.07}


def two_d(name: str, seed: int = 0, n: int = 1000) -> Synthetic:
    """One of GAT Fig 20's 2D sets: ``n`` positives in the centre of the unit box and ``n`` uniform negatives."""
    if name not in SETS_2D:
        raise DataError(f"unknown 2D set {name!r}: choose one of {', '.join(SETS_2D)}")
    rng = np.random.default_rng(seed)
    neg = rng.uniform(*BOUNDS_2D, (n, 2))
    pos, raw_density = _structure(name, rng, n)

    def density(x):
        x = (np.asarray(x, dtype=np.float64).reshape(-1, 2) - 0.5) / SCALE_2D
        return raw_density(x) / SCALE_2D**2

    as_t = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    return Synthetic(name, as_t(0.5 + SCALE_2D * pos), as_t(neg), BOUNDS_2D, density)


def _structure(name: str, rng: np.random.Generator, n: int):
    """Positives on [-2, 2]^2 and their density there."""
    if name == "checkerboard":
        cells = rng.integers(0, 8, n)
        row = cells // 2
        col = 2 * (cells % 2) + (row % 2)
        pos = np.stack([col, row], axis=1) - 2 + rng.uniform(0, 1, (n, 2))
        density = _checkerboard_density
    else:
        std = _NOISE[name]
        pos = np.clip(_centres(name, rng.uniform(0, 1, n)) + rng.normal(0, std, (n, 2)), -2.0, 2.0)
        centres = _centres(name, (np.arange(4000) + 0.5) / 4000)

        def density(x):
            x = np.asarray(x, dtype=np.float64).reshape(-1, 2)
            out = np.zeros(len(x))
            for start in range(0, len(x), 2048):  # mixture of N(centre, std^2 I) over the discretised structure
                d2 = ((x[start:start + 2048, None, :] - centres[None]) ** 2).sum(-1)
                out[start:start + 2048] = np.exp(-0.5 * d2 / std**2).mean(1) / (2 * math.pi * std**2)
            return out

    return pos, density
