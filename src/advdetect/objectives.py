"""Every attack objective of both papers, written once, over a defence's outputs; and the one criterion of
success.

**Criterion.** :class:`Criterion` says what counts as adversarial (foolbox's "criterion" object, with a reject
option): the defence misclassifies the input (``targeted=True``: classifies it as the target) and does not
reject it, i.e. its detection score does not exceed the threshold tau of the predicted class. ``tau=None``
means no rejection. The objectives below, the evaluation (:mod:`advdetect.evaluation`) and the black-box
adapters (:mod:`advdetect.blackbox`) all use it.

**Losses** (:data:`LOSSES`, all *minimised* by the engine of :mod:`advdetect.attacks`) are functions of an
:class:`~advdetect.defences.Outputs` (logits z, score s, and for GAT's defences the detectors' logits h):

===================  ==============================================  ===============================================
name                 untargeted (label y)                            targeted (target t)
===================  ==============================================  ===============================================
``margin``           z_y - max_{i!=y} z_i (CW; GAT Eq. 8; ARCLU      max_{i!=t} z_i - z_t
                     Table 1 for Vanilla, Madry, TRADES)
``cross-entropy``    -CE(z, y)                                       CE(z, t)
``nearest wrong``    -max_{i!=y} z_i (ARCLU Eq. 17 with z = minus    -z_t (A_{y=t} of ARCLU; raising logit t)
                     the distances; GAT Eq. 9 on the generative
                     classifier)
``composite``        the margin until misclassified, then            the targeted margin until classified as t,
                     s - tau_pred (GAT Eq. 12 for any defence)       then s - tau_t (multi-targeted attack)
``sum``              margin + s (ARCLU Eq. 7 for FS, LID, MAHA)      targeted margin + s
``gat detectors``    -max_{i!=y} h_i (GAT Eq. 9)                     -h_t
``gat combined``     f's margin while f predicts y, then             f's targeted margin until f predicts t, then
                     -max_{i!=y} h_i (GAT Eq. 12)                    -h_t
``gat surrogate``    max_i g_i - max_{i!=y} z_i with g = [z,         -
                     (1 - max_{j!=y} h_j) max_j z_j] (GAT Eqs.
                     10-11, Carlini & Wagner's combined loss)
===================  ==============================================  ===============================================

:func:`objective` turns a defence, a loss and a criterion into an engine objective ``(x, labels) -> (loss,
success)``; :func:`penalised` into the smallest-perturbation objective of :func:`advdetect.attacks.penalty_search`
(CW-L2; GAT's Eq. 15). :func:`raise_logit` and :func:`kl_divergence` are the two objectives that are not about a
defence: raising one logit of any model (GAT's training negatives, image synthesis) and TRADES' inner KL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .runtime import autocast, check_precision

# ------------------------------------------------------------------------------------------------ the criterion


@dataclass
class Criterion:
    """Success of an attack on a defence with a reject option.

    ``tau``: per-class thresholds ``(K,)`` on the detection score (reject an input predicted as c when its score
    exceeds ``tau[c]``), or None (no rejection). ``targeted``: success means classified as the target rather
    than misclassified."""

    tau: torch.Tensor | None = None
    targeted: bool = False

    def to(self, device) -> "Criterion":
        return Criterion(None if self.tau is None else self.tau.to(device), self.targeted)

    def threshold(self, pred: torch.Tensor) -> torch.Tensor:
        """tau of each predicted class (+inf without thresholds)."""
        if self.tau is None:
            return torch.full(pred.shape, math.inf, device=pred.device)
        return self.tau.to(pred.device)[pred]

    def accepted(self, pred: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        """Not rejected: the score does not exceed the threshold of the predicted class."""
        return score <= self.threshold(pred).to(score.dtype)

    def hit(self, pred: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        """Misclassified (targeted: classified as ``t``)."""
        if self.targeted:
            if t is None:
                raise ValueError("a targeted criterion needs the targets")
            return pred == t
        return pred != y

    def success_of(self, pred: torch.Tensor, score: torch.Tensor, y: torch.Tensor,
                   t: torch.Tensor | None = None) -> torch.Tensor:
        """The criterion on a defence's decisions (predictions and scores)."""
        return self.hit(pred, y, t) & self.accepted(pred, score)

    def success(self, logits: torch.Tensor, score: torch.Tensor, y: torch.Tensor,
                t: torch.Tensor | None = None) -> torch.Tensor:
        """The criterion on a defence's outputs."""
        return self.success_of(logits.argmax(1), score, y, t)

    def eligible(self, pred: torch.Tensor, score: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """ARCLU's attacked population: correctly classified and not rejected before the attack."""
        return (pred == y) & self.accepted(pred, score)


# ----------------------------------------------------------------------------------------------- tensor losses

def other_max(logits: torch.Tensor, exclude: torch.Tensor) -> torch.Tensor:
    """max_{i != exclude} logits_i per row."""
    masked = logits.masked_fill(F.one_hot(exclude, logits.shape[1]).bool(), float("-inf"))
    return masked.amax(1)


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Carlini-Wagner margin z_y - max_{i != y} z_i (GAT Eq. 8): negative once the input is misclassified."""
    return logits.gather(1, y[:, None]).squeeze(1) - other_max(logits, y)


def nearest_wrong(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """-max_{i != y} z_i: raise the largest wrong-class logit (ARCLU Eq. 17, GAT Eq. 9)."""
    return -other_max(logits, y)


def pick(logits: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """z_t per row."""
    return logits.gather(1, t[:, None]).squeeze(1)


_NO_DETECTORS = "this loss needs the detectors' logits: use it on a GAT defence"


def _detectors(o) -> torch.Tensor:
    h = o.detector_logits()
    if h is None:
        raise ValueError(_NO_DETECTORS)
    return h


def _detector(o, t) -> torch.Tensor:
    """h_t per row: the target's detector only, where the defence can compute it alone."""
    h = o.detector_logit(t)
    if h is None:
        raise ValueError(_NO_DETECTORS)
    return h


def _composite(o, y, c):
    m = margin(o.logits, y)
    return torch.where(m < 0, o.score - c.threshold(o.logits.argmax(1)), m)


def _composite_targeted(o, t, c):
    m = -margin(o.logits, t)
    return torch.where(m <= 0, o.score - c.threshold(t), m)


def _gat_combined(o, y, c):
    m = margin(o.logits, y)
    return torch.where(m >= 0, m, nearest_wrong(_detectors(o), y))


def _gat_combined_targeted(o, t, c):
    m = -margin(o.logits, t)
    return torch.where(m > 0, m, -_detector(o, t))


def _gat_surrogate(o, y, c):
    z, h = o.logits, _detectors(o)
    g = torch.cat([z, ((1 - other_max(h, y)) * z.amax(1))[:, None]], dim=1)
    return g.amax(1) - other_max(z, y)


def _no_targeted_form(o, t, c):
    raise ValueError("GAT's surrogate loss (Eqs. 10-11) has no targeted form")


#: name -> (untargeted loss(outputs, y, criterion), targeted loss(outputs, t, criterion))
LOSSES: dict[str, tuple[Callable, Callable]] = {
    "margin": (lambda o, y, c: margin(o.logits, y), lambda o, t, c: -margin(o.logits, t)),
    "cross-entropy": (lambda o, y, c: -F.cross_entropy(o.logits, y, reduction="none"),
                      lambda o, t, c: F.cross_entropy(o.logits, t, reduction="none")),
    "nearest wrong": (lambda o, y, c: nearest_wrong(o.logits, y), lambda o, t, c: -pick(o.logits, t)),
    "composite": (_composite, _composite_targeted),
    "sum": (lambda o, y, c: margin(o.logits, y) + o.score, lambda o, t, c: -margin(o.logits, t) + o.score),
    "gat detectors": (lambda o, y, c: nearest_wrong(_detectors(o), y), lambda o, t, c: -_detector(o, t)),
    "gat combined": (_gat_combined, _gat_combined_targeted),
    "gat surrogate": (_gat_surrogate, _no_targeted_form),
}


def loss_value(name: str, outputs, labels: torch.Tensor, criterion: Criterion, targeted: bool = False) -> torch.Tensor:
    """The loss ``name`` of :data:`LOSSES` on a defence's ``outputs`` (``labels``: true labels, or the targets
    when ``targeted``)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}: choose one of {', '.join(LOSSES)}")
    return LOSSES[name][1 if targeted else 0](outputs, labels, criterion)


# ----------------------------------------------------------------------------------------- engine objectives

def objective(defence, loss: str, criterion: Criterion | None = None, targeted: bool = False, also=(),
              precision: str = "fp32"):
    """An engine objective for ``defence``: ``objective(x, y)`` (with ``targeted``: ``(x, (y, t))``) returns
    the loss ``loss`` and the ``criterion``'s success, both from one forward pass of ``defence.outputs``. With
    ``also`` (more criteria, e.g. the thresholds of other operating points) the success is a ``(B, 1 + len(also))``
    mask, the ``criterion``'s first, so that the engine also keeps the first iterate that met each of them.

    ``precision="bf16"`` runs that forward pass under bfloat16 autocast (:func:`advdetect.runtime.autocast`; the
    loss is returned in float32), and judges success in float32 all the same: the inputs that the bfloat16 pass
    finds successful under any criterion are passed again in float32, without a gradient, and that pass decides
    - so an attack never stops on, or keeps as a success, an input that succeeds only in rounded arithmetic."""
    criterion = Criterion() if criterion is None else criterion
    also = list(also)
    check_precision(precision)
    if any(c.targeted != criterion.targeted for c in also):
        raise ValueError("the criteria of also must be targeted exactly when the criterion is")
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}: choose one of {', '.join(LOSSES)}")
    if criterion.targeted and not targeted:
        raise ValueError("a targeted criterion needs a targeted objective")

    def judged(o, y, t):
        success = criterion.success(o.logits, o.score, y, t)
        if also:
            success = torch.stack([success] + [c.success(o.logits, o.score, y, t) for c in also], 1)
        return success

    def fn(x, labels):
        y, t = labels if targeted else (labels, None)
        with autocast(x.device, precision):
            o = defence.outputs(x)
            value = loss_value(loss, o, t if targeted else y, criterion, targeted)
        success = judged(o, y, t)
        if precision == "fp32":
            return value, success
        rows = (success if success.dim() == 1 else success.any(1)).nonzero().squeeze(1)
        if len(rows):
            with torch.no_grad():
                exact = judged(defence.outputs(x.detach()[rows]), y[rows], None if t is None else t[rows])
            success = success.clone()
            success[rows] = exact
        return value.float(), success

    return fn


def penalised(defence, loss: str, criterion: Criterion | None = None, *, penalty_on: str = "loss",
              targeted: bool = False, hinge: bool = True, also=(), precision: str = "fp32"):
    """The objective of :func:`advdetect.attacks.penalty_search` (second argument ``(c, x0, labels)``):
    ``||x - x0||_2^2 + c * max(loss, 0)`` (``penalty_on="loss"``, Carlini & Wagner's L2 attack; without
    ``hinge`` the loss is not clipped) or ``loss + c * ||x - x0||_2^2`` (``"distance"``, GAT's Eq. 15), with the
    ``criterion``'s success (and the watched criteria ``also``, and the ``precision``, as :func:`objective`'s)."""
    inner = objective(defence, loss, criterion, targeted, also=also, precision=precision)

    def fn(xa, extra):
        c, x0, labels = extra
        value, success = inner(xa, labels)
        dist = (xa - x0).flatten(1).pow(2).sum(1)
        if penalty_on == "loss":
            return dist + c * (value.clamp_min(0) if hinge else value), success
        return value + c * dist, success

    return fn


def class_logits(model, x: torch.Tensor) -> torch.Tensor:
    """The per-class logits of ``model``: the logits of a defence's ``(logits, score)``, or the output of a plain
    classifier or detector bank."""
    out = model(x)
    return out[0] if isinstance(out, tuple) else out


def raise_logit(model):
    """Minimise -z_t: raise logit ``t`` (the objective's second argument, one per sample) of ``model``; a model
    with a single output (one detector) has its only logit raised and takes ``None``."""

    def fn(x, t=None):
        z = class_logits(model, x)
        if z.ndim == 1:
            return -z
        if t is None:
            if z.shape[1] != 1:
                raise ValueError("raising a logit of a model with several outputs needs the target per sample")
            return -z[:, 0]
        return -pick(z, t)

    return fn


def kl_divergence(model):
    """TRADES' inner objective: minimise -KL(p || softmax(model(x))) for the natural softmax ``p`` (the
    objective's second argument)."""

    def fn(x, p):
        return -F.kl_div(model(x).log_softmax(1), p, reduction="none").sum(1)

    return fn
