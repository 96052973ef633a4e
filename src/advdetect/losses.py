"""Attack objectives: per-sample losses that the engine *minimises*, built around a model.

Each factory returns ``objective(x, y)`` for :func:`advdetect.attacks.attack`; most also return the success
mask computed from the same forward pass, so that the engine keeps each sample's best iterate for free.
Adaptive attacks on detectors are more factories of the same shape (added with the chapters that need them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def other_max(logits: torch.Tensor, exclude: torch.Tensor) -> torch.Tensor:
    """max_{i != exclude} logits_i per row."""
    masked = logits.masked_fill(F.one_hot(exclude, logits.shape[1]).bool(), float("-inf"))
    return masked.amax(1)


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Carlini-Wagner margin z_y - max_{i != y} z_i (GAT Eq. 8): negative once the input is misclassified."""
    return logits.gather(1, y[:, None]).squeeze(1) - other_max(logits, y)


def untargeted_margin(model):
    """Classifier attack (GAT Eq. 8): minimise the margin of the true class; success = misclassified."""

    def objective(x, y):
        z = model(x)
        return margin(z, y), z.argmax(1) != y

    return objective


def targeted_margin(model):
    """Targeted CW loss max_{i != t} z_i - z_t; success = classified as the target ``t``."""

    def objective(x, t):
        z = model(x)
        return -margin(z, t), z.argmax(1) == t

    return objective


def untargeted_cross_entropy(model):
    """Maximise the cross-entropy of the true class (minimise its negative); success = misclassified."""

    def objective(x, y):
        z = model(x)
        return -F.cross_entropy(z, y, reduction="none"), z.argmax(1) != y

    return objective


def raise_logit(model, index: int | None = None):
    """Minimise -z_k: raise one logit (a detector's single logit when ``index`` is None and the model has one
    output; else logit ``index``, or logit ``y`` per sample when ``index`` is None and ``y`` is given)."""

    def objective(x, y=None):
        z = model(x)
        if z.ndim == 2 and z.shape[1] == 1:
            z = z[:, 0]
        elif index is not None:
            z = z[:, index]
        else:
            z = z.gather(1, y[:, None]).squeeze(1)
        return -z

    return objective


# ------------------------------------------------------------------------------------- GAT's attacks (Eqs. 8-12)
# ``bank`` is a DetectorBank (or any module returning the K detectors' logits, shape (B, K)); ``classifier`` is
# the natural softmax classifier f. Eq. 8 (the classifier attack) is :func:`untargeted_margin` of f; the
# generative classifier under cross-entropy and CW losses is :func:`untargeted_cross_entropy` /
# :func:`untargeted_margin` of the bank.

def gat_detectors_attack(bank):
    """GAT Eq. 9: minimise -max_{i != y} z(h_i(x)); success = the generative classifier's prediction != y."""

    def objective(x, y):
        h = bank(x)
        return -other_max(h, y), h.argmax(1) != y

    return objective


def gat_combined_attack(classifier, bank):
    """GAT Eq. 12: the classifier's margin while f still predicts y, then -max_{i != y} z(h_i(x));
    success = f misclassifies."""

    def objective(x, y):
        m = margin(classifier(x), y)
        return torch.where(m >= 0, m, -other_max(bank(x), y)), m < 0

    return objective


def gat_surrogate_attack(classifier, bank):
    """GAT Eqs. 10-11 (Carlini & Wagner's combined loss): a surrogate classifier g with the K logits of f and a
    (K+1)-th logit (1 - max_{j != y} z(h_j(x))) * max_j z(f(x))_j; minimise max_i z(g)_i - max_{i != y} z(f)_i.
    Success = f misclassifies."""

    def objective(x, y):
        z = classifier(x)
        extra = (1 - other_max(bank(x), y)) * z.amax(1)
        g = torch.cat([z, extra[:, None]], dim=1)
        return g.amax(1) - other_max(z, y), z.argmax(1) != y

    return objective
