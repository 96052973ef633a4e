"""GAT as density estimation (GAT Appendix F): the Gibbs density of a detector's logit, scored against the truth.

A detector with logit z(x) defines the unnormalised density exp(z(x)) (GAT Section 3.2, E(x) = -z(x)); we
normalise it on a regular grid over the data's box and compare it with the true density of the positives by
total-variation and Hellinger distances.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from . import metrics, synthetic
from .training import predict


def grid(bounds: tuple[float, float], n: int, dim: int) -> tuple[np.ndarray, float]:
    """Cell centres of a regular grid with ``n`` points per axis over ``bounds``^dim, and the cell volume."""
    lo, hi = bounds
    h = (hi - lo) / n
    axis = lo + h * (np.arange(n) + 0.5)
    if dim == 1:
        return axis[:, None], h
    xx, yy = np.meshgrid(axis, axis, indexing="xy")
    return np.stack([xx.ravel(), yy.ravel()], axis=1), h * h


def gibbs_density(model: torch.nn.Module, points: np.ndarray, cell: float) -> np.ndarray:
    """exp(z(x)) normalised to integrate to 1 over the grid ``points`` (cell volume ``cell``)."""
    z = predict(model, torch.tensor(points, dtype=torch.float32), batch_size=8192).squeeze(1).double()
    logp = z - torch.logsumexp(z, 0) - np.log(cell)
    return logp.exp().numpy()


def sigmoid_map(model: torch.nn.Module, points: np.ndarray) -> np.ndarray:
    """The detector's sigmoid output at ``points`` (GAT Fig 20, bottom row)."""
    return torch.sigmoid(predict(model, torch.tensor(points, dtype=torch.float32), batch_size=8192)).squeeze(1).numpy()


@dataclass
class DensityFit:
    """One trained detector on one synthetic set, with its density estimate and its distance to the truth."""

    method: str
    model: torch.nn.Module
    density: np.ndarray
    tv: float
    hellinger: float
    history: list = field(repr=False)


def training_attack(data: synthetic.Synthetic, method: str, *, eps: float, pgd_steps: int,
                    pgd_step: float) -> dict | None:
    """The engine keywords of GAT's negatives on synthetic data (L-inf sign steps from a random start, within
    the data's box), or None for discriminative training."""
    if method not in ("gat", "discriminative"):
        raise ValueError(f"method must be 'gat' or 'discriminative', got {method!r}")
    if method == "discriminative":
        return None
    return {"norm": "linf", "eps": eps, "steps": pgd_steps, "step_size": pgd_step, "rule": "sign",
            "random_start": True, "bounds": data.bounds}


def score(method: str, model: torch.nn.Module, data: synthetic.Synthetic, grid_points: int,
          history: list) -> DensityFit:
    """The Gibbs density of a trained detector's logit on a grid, and its distance to the true density."""
    dim = data.positives.shape[1]
    points, cell = grid(data.bounds, grid_points, dim)
    est = gibbs_density(model, points, cell)
    true = data.density(points)
    true = true / (true.sum() * cell)  # the truth restricted to the box, renormalised
    return DensityFit(method, model, est, metrics.total_variation(est, true, cell),
                      metrics.hellinger(est, true, cell), history)
