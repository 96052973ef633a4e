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
from .cache import ArtefactCache
from .models import MLP
from .runtime import seed_everything
from .training import predict, train_binary


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


def fit_density(data: synthetic.Synthetic, method: str, *, hidden: int, lr: float, steps: int, batch: int | None,
                pgd_steps: int, pgd_step: float, eps: float, grid_points: int, seed: int, warmup_steps: int = 0,
                cache: ArtefactCache | None = None, device: torch.device | str = "cpu") -> DensityFit:
    """Train the App. F MLP on ``data`` with ``method`` ``"gat"`` or ``"discriminative"`` (cached) and score the
    Gibbs density of its logit against the true density on a grid. GAT's first ``warmup_steps`` steps are
    discriminative (the same steps count towards ``steps`` for both methods)."""
    if method not in ("gat", "discriminative"):
        raise ValueError(f"method must be 'gat' or 'discriminative', got {method!r}")
    cache = cache or ArtefactCache()
    dim = data.positives.shape[1]
    config = {"data": data.name, "seed": seed, "method": method, "hidden": hidden, "lr": lr, "steps": steps,
              "batch": batch, "pgd_steps": pgd_steps if method == "gat" else 0, "pgd_step": pgd_step,
              "eps": eps if method == "gat" else 0.0, "warmup": warmup_steps if method == "gat" else 0}
    seed_everything(seed)
    model = MLP(dim, (hidden,) * 5, 1).to(device)
    attack_kwargs = None
    if method == "gat":
        attack_kwargs = {"norm": "linf", "eps": eps, "steps": pgd_steps, "step_size": pgd_step, "rule": "sign",
                         "random_start": True, "bounds": data.bounds}
    history = train_binary(cache.entry("density_mlp", config), model, data.positives, data.negatives, steps=steps,
                           lr=lr, batch=batch, attack_kwargs=attack_kwargs, seed=seed,
                           warmup_steps=warmup_steps if method == "gat" else 0,
                           desc=f"{data.name} {method}")
    points, cell = grid(data.bounds, grid_points, dim)
    est = gibbs_density(model, points, cell)
    true = data.density(points)
    true = true / (true.sum() * cell)  # the truth restricted to the box, renormalised
    return DensityFit(method, model, est, metrics.total_variation(est, true, cell),
                      metrics.hellinger(est, true, cell), history)
