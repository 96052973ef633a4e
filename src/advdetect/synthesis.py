"""What attacking a class-conditional model produces: GAT's image synthesis (Sections 3.2, 5.1-5.2, Figs 3, 5,
6, 8, 10, 13; Appendix D, Fig 18), for any model seen through its class logits.

Every model here is a :class:`advdetect.defences.Defence` whose first output holds one logit per class: the
detectors' logits of GAT's generative classifier, the class logits of Madry's robust classifier, minus the
distances to the class means of ARCLU's encoder. Raising logit k is then the same attack for all three -
:func:`raise_logit`, the engine of :mod:`advdetect.attacks` on the loss ``-z_k`` - and:

* a **targeted attack** pushes natural images of every class toward every target class (Fig 3 / 5,
  :func:`targeted_grid`);
* **class-conditional synthesis** starts from samples of a full-covariance Gaussian fitted to each class's
  training images (:class:`ClassGaussians`) and raises that class's logit within a large L2 ball (Fig 6 / 13,
  Santurkar et al. 2019's recipe, :func:`synthesize`);
* the **Gaussian-noise attack** follows one noise image along an unconstrained L2 attack and records it every
  few steps (Fig 18, :func:`noise_paths`).

"Semantic" is measured, not only shown (:class:`Judges`): the accuracy, with the target as label, of two
classifiers that were not attacked - a k-nearest-neighbour vote in pixel space over the training images and a
naturally trained CNN of another architecture - and the distance to the nearest training image of the target
class as an image-quality proxy (how far a synthesised image lies from real digits of its class).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

from . import attacks
from .metrics import proportion_ci, weighted_auc_interval
from .objectives import class_logits
from .objectives import raise_logit as raise_logit_objective
from .runtime import device_of

# ------------------------------------------------------------------------------- class-conditional Gaussians

@dataclass
class ClassGaussians:
    """One full-covariance Gaussian per class over the pixels (in [0, 1]): ``means`` (K, D), the Cholesky
    factors ``scale_tril`` (K, D, D) of the regularised covariances, and the image ``shape``."""

    means: torch.Tensor
    scale_tril: torch.Tensor
    shape: tuple
    reg: float

    @classmethod
    def fit(cls, x: torch.Tensor, y: torch.Tensor, num_classes: int, reg: float = 1e-4) -> "ClassGaussians":
        """Fit each class's mean and covariance (maximum likelihood) to the images ``x`` of label ``y`` and add
        ``reg`` times the identity to every covariance (GAT / Santurkar et al.: 1e-4), which makes it positive
        definite even where pixels never vary (MNIST's borders)."""
        if x.ndim < 2 or len(x) != len(y):
            raise ValueError(f"need images (N, ...) and labels (N,), got {tuple(x.shape)} and {tuple(y.shape)}")
        if reg <= 0:
            raise ValueError(f"the covariance regulariser must be > 0, got {reg}")
        flat = x.reshape(len(x), -1).double()
        d = flat.shape[1]
        means, trils = [], []
        for k in range(num_classes):
            xk = flat[y == k]
            if len(xk) < 2:
                raise ValueError(f"class {k} has {len(xk)} training image(s): need at least 2 to fit a Gaussian")
            mu = xk.mean(0)
            centred = xk - mu
            cov = centred.T @ centred / len(xk) + reg * torch.eye(d, dtype=torch.float64)
            means.append(mu)
            trils.append(torch.linalg.cholesky(cov))
        return cls(torch.stack(means).float(), torch.stack(trils).float(), tuple(x.shape[1:]), reg)

    @property
    def num_classes(self) -> int:
        return len(self.means)

    def covariance(self, k: int) -> torch.Tensor:
        """Class ``k``'s regularised covariance (D, D)."""
        lt = self.scale_tril[k].double()
        return (lt @ lt.T).float()

    def sample(self, classes: torch.Tensor | Sequence[int], generator: torch.Generator | None = None,
               clip: bool = True) -> torch.Tensor:
        """One sample per entry of ``classes``, as images (N, *shape), clipped to [0, 1] unless ``clip`` is
        False."""
        classes = torch.as_tensor(classes, dtype=torch.long)
        if len(classes) and (int(classes.min()) < 0 or int(classes.max()) >= self.num_classes):
            raise ValueError(f"classes must lie in 0..{self.num_classes - 1}")
        eps = torch.randn(len(classes), self.means.shape[1], generator=generator)
        z = self.means[classes].clone()
        for k in classes.unique().tolist():  # one (D, D) factor at a time: CIFAR-10's are 3072 x 3072
            sel = classes == k
            z[sel] += eps[sel] @ self.scale_tril[k].T
        z = z.reshape(len(classes), *self.shape)
        return z.clamp(0, 1) if clip else z


# ------------------------------------------------------------------------------------------ raising a logit

def raise_logit(model, x: torch.Tensor, targets: torch.Tensor, *, norm: str, eps: float, steps: int,
                step_size: float, rule: str = "steepest", snapshots=None,
                batch_size: int = 500) -> attacks.AttackResult:
    """Raise logit ``targets[i]`` of ``model`` on ``x[i]`` (minimise ``-z_t``) with the engine, from ``x``
    itself (no random start), within the ``norm`` ball of radius ``eps`` (``math.inf``: the box only).
    ``snapshots`` records the path (see :func:`advdetect.attacks.attack`). Returns the engine's result, whose
    ``x_adv`` is the iterate with the highest target logit."""
    dev = device_of(model)
    if x.ndim != 4:
        raise ValueError(f"need images (N, C, H, W), got shape {tuple(x.shape)}")
    targets = torch.as_tensor(targets, dtype=torch.long)
    if targets.shape != (len(x),):
        raise ValueError(f"need one target per image: {len(x)} images, targets of shape {tuple(targets.shape)}")

    return attacks.attack(raise_logit_objective(model), x.to(dev), targets.to(dev), norm=norm, eps=eps, steps=steps,
                          step_size=step_size, rule=rule, random_start=False, snapshots=snapshots,
                          batch_size=batch_size)


@torch.no_grad()
def target_logits(model, x: torch.Tensor, targets: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Logit ``targets[i]`` of ``model`` on ``x[i]`` (on the CPU)."""
    dev = device_of(model)
    targets = torch.as_tensor(targets, dtype=torch.long)
    out = [class_logits(model, x[i:i + batch_size].to(dev)).gather(1, targets[i:i + batch_size, None].to(dev))
           for i in range(0, len(x), batch_size)]
    return torch.cat(out).squeeze(1).float().cpu()


def one_per_class(x: torch.Tensor, y: torch.Tensor, num_classes: int, seed: int = 0) -> torch.Tensor:
    """A seeded choice of one image per class (class order)."""
    gen = np.random.default_rng(seed)
    idx = []
    for k in range(num_classes):
        pool = (y == k).nonzero().squeeze(1).numpy()
        if len(pool) == 0:
            raise ValueError(f"no image of class {k} to choose from")
        idx.append(int(gen.choice(pool)))
    return x[torch.as_tensor(idx)]


def targeted_grid(model, sources: torch.Tensor, *, eps: float, steps: int, step_size: float, rule: str,
                  norm: str = "linf") -> dict:
    """GAT Fig 3 / 5: every source image (one per class) pushed toward every target class by raising the
    target's logit. Returns ``images`` (K targets, K sources, C, H, W; the diagonal holds the source itself,
    attacked toward its own class) and ``logits`` (K, K) of the target class."""
    k = len(sources)
    x = sources.repeat(k, 1, 1, 1)                          # row t: all sources
    t = torch.arange(k).repeat_interleave(k)                 # ... toward target t
    res = raise_logit(model, x, t, norm=norm, eps=eps, steps=steps, step_size=step_size, rule=rule)
    x_adv = res.x_adv.cpu()
    return {"images": x_adv.reshape(k, k, *sources.shape[1:]), "logits": target_logits(model, x_adv, t).reshape(k, k)}


def synthesize(model, gaussians: ClassGaussians, per_class: int, *, eps: float, steps: int, step_size: float,
               seed: int = 0, noise: torch.Tensor | None = None) -> dict:
    """GAT Fig 6 / 13 (Santurkar et al. 2019's recipe): ``per_class`` clipped samples of each class's Gaussian,
    then that class's logit raised with L2 PGD (normalised steps, no random start). Pass the same ``noise``
    (from :meth:`ClassGaussians.sample`) to compare models on the same starting points. Returns ``start`` and
    ``images`` (K, per_class, C, H, W), ``classes`` (K, per_class) and the class logits before/after."""
    k = gaussians.num_classes
    classes = torch.arange(k).repeat_interleave(per_class)
    if noise is None:
        noise = gaussians.sample(classes, torch.Generator().manual_seed(seed))
    res = raise_logit(model, noise, classes, norm="l2", eps=eps, steps=steps, step_size=step_size)
    x = res.x_adv.cpu()
    shape = (k, per_class, *noise.shape[1:])
    return {"start": noise.reshape(shape), "images": x.reshape(shape), "classes": classes.reshape(k, per_class),
            "logits before": target_logits(model, noise, classes).reshape(k, per_class),
            "logits": target_logits(model, x, classes).reshape(k, per_class)}


def noise_image(shape: Sequence[int], seed: int = 0) -> torch.Tensor:
    """GAT App. D's starting point: one N(0, 1) image clipped to [0, 1], shape (1, C, H, W)."""
    return torch.randn(1, *shape, generator=torch.Generator().manual_seed(seed)).clamp(0, 1)


def attack_path(model, x: torch.Tensor, targets: torch.Tensor, *, norm: str, eps: float, steps: int,
                step_size: float, marks: Sequence[int]) -> dict:
    """One :func:`raise_logit` run recorded at the steps ``marks``: ``steps`` (S,), ``images`` (N, S, C, H, W)
    and the target's ``logits`` (N, S) at each recorded step."""
    targets = torch.as_tensor(targets, dtype=torch.long)
    marks = [int(t) for t in marks]
    res = raise_logit(model, x, targets, norm=norm, eps=eps, steps=steps, step_size=step_size, snapshots=marks)
    snaps = res.snapshots.cpu().transpose(0, 1)  # (N, S, C, H, W)
    logits = torch.stack([target_logits(model, snaps[:, s], targets) for s in range(len(marks))], 1)
    return {"steps": torch.tensor(marks), "images": snaps, "logits": logits}


def even_marks(steps: int, every: int | None = None, points: int = 5) -> list[int]:
    """Steps at which to record a path: every ``every`` steps (and the last), or ``points`` evenly spaced."""
    if every is not None:
        marks = list(range(0, steps + 1, every))
        return marks if marks[-1] == steps else marks + [steps]
    return sorted({int(round(steps * i / (points - 1))) for i in range(points)})


def noise_paths(model, noise: torch.Tensor, *, steps: int, step_size: float, every: int,
                classes: Sequence[int] | None = None) -> dict:
    """GAT Fig 18: from one noise image, an unconstrained L2 attack raising each class's logit in turn, recorded
    every ``every`` steps. Returns ``steps`` (S,), ``images`` (K, S, C, H, W), ``logits`` (K, S), ``classes``."""
    k = class_logits(model, noise[:1].to(device_of(model))).shape[1]
    classes = torch.as_tensor(list(range(k)) if classes is None else list(classes), dtype=torch.long)
    out = attack_path(model, noise.expand(len(classes), *noise.shape[1:]).clone(), classes, norm="l2",
                      eps=float("inf"), steps=steps, step_size=step_size, marks=even_marks(steps, every))
    return {**out, "classes": classes}


# ------------------------------------------------------------------------------------- measuring "semantic"

class Judges:
    """Classifiers that were not attacked, to score synthesised images against their intended class:
    a k-nearest-neighbour vote in pixel space over ``x_train`` (scikit-learn, ``k`` neighbours) and, when
    given, a naturally trained ``cnn``; plus the L2 distance of an image to the nearest training image of a
    class (per-class :class:`sklearn.neighbors.NearestNeighbors`)."""

    def __init__(self, x_train: torch.Tensor, y_train: torch.Tensor, num_classes: int, *, k: int = 5,
                 cnn: torch.nn.Module | None = None):
        flat = x_train.reshape(len(x_train), -1).numpy()
        labels = y_train.numpy()
        self.knn = KNeighborsClassifier(n_neighbors=k).fit(flat, labels)
        self.nearest = [NearestNeighbors(n_neighbors=1).fit(flat[labels == c]) for c in range(num_classes)]
        self.cnn, self.k = cnn, k

    def knn_predict(self, x: torch.Tensor) -> np.ndarray:
        return self.knn.predict(x.reshape(len(x), -1).numpy())

    @torch.no_grad()
    def cnn_predict(self, x: torch.Tensor) -> np.ndarray:
        dev = device_of(self.cnn)
        return torch.cat([self.cnn(x[i:i + 500].to(dev)).argmax(1).cpu() for i in range(0, len(x), 500)]).numpy()

    def nearest_distance(self, x: torch.Tensor, classes: torch.Tensor) -> np.ndarray:
        """L2 distance of ``x[i]`` to the nearest training image of class ``classes[i]``."""
        flat = x.reshape(len(x), -1).numpy()
        classes = np.asarray(classes)
        out = np.empty(len(x))
        for c in np.unique(classes):
            sel = classes == c
            out[sel] = self.nearest[int(c)].kneighbors(flat[sel])[0][:, 0]
        return out

    def score(self, x: torch.Tensor, classes: torch.Tensor) -> dict:
        """``kNN accuracy``, ``CNN accuracy`` (with ``classes`` as labels; each with a Wilson 95% interval) and
        the mean ``NN distance``, over ``n`` images (grids (R, C, ...) are flattened)."""
        x = x.reshape(-1, *x.shape[-3:]).cpu().float()
        classes = np.asarray(torch.as_tensor(classes).reshape(-1))
        out = {"n": len(x)}
        votes = {"kNN": self.knn_predict(x)}
        if self.cnn is not None:
            votes["CNN"] = self.cnn_predict(x)
        for name, pred in votes.items():
            hits = int((pred == classes).sum())
            lo, hi = proportion_ci(hits, len(x))
            out[f"{name} accuracy"] = hits / max(len(x), 1)
            out[f"{name} 95% CI"] = f"{lo:.2f}-{hi:.2f}"
        out["NN distance"] = float(self.nearest_distance(x, classes).mean())
        return out

    def table(self, rows: Mapping):
        """:meth:`score` of each ``name -> (images, classes)`` as one table."""
        return pd.DataFrame({name: self.score(x, c) for name, (x, c) in rows.items()}).T.infer_objects()


def logit_separation(natural: torch.Tensor, perturbed: torch.Tensor) -> float:
    """ROC AUC of a class's logit telling its natural images (positives) from images of other classes pushed
    toward it (negatives): 1 when the attack never reaches the natural logits, 0.5 when it matches them, below
    0.5 when it overshoots them (GAT Figs 8 and 10 as one number)."""
    scores = np.r_[np.asarray(natural, float), np.asarray(perturbed, float)]
    return float(roc_auc_score(np.r_[np.ones(len(natural)), np.zeros(len(perturbed))], scores))


def logit_separation_interval(natural: torch.Tensor, perturbed: torch.Tensor, *, seed: int = 0) -> tuple[float, float]:
    """A bootstrap 95% interval of :func:`logit_separation` (:func:`advdetect.metrics.weighted_auc_interval`
    with one class, the negated logit as the anomaly score)."""
    nat, per = -np.asarray(natural, float), -np.asarray(perturbed, float)
    return weighted_auc_interval(nat, np.zeros(len(nat), int), per, np.zeros(len(per), int), seed=seed)
