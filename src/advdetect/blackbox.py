"""Black-box attacks and AutoAttack as adapters of a defence, judged by the one
:class:`~advdetect.objectives.Criterion` (misclassified and not rejected at the arena's first threshold).

* :func:`nes` - score-based: the engine of :mod:`advdetect.attacks` driven by NES gradient estimates of the
  adaptive loss from queries only (Ilyas et al. 2018);
* :func:`hsj` - decision-based: foolbox's HopSkipJump (Chen et al. 2020) with the criterion as foolbox
  criterion, started at accepted benign images of other classes (:func:`starting_points`);
* :func:`autoattack` - pyautoattack (Croce & Hein's code) on the defence seen as one classifier whose true-class
  logit absorbs the reject option (:class:`CompositeClassifier`).

Each takes an :class:`~advdetect.evaluation.Arena` and returns adversarial examples (the input where an attack
failed or left its budget); the book's suite caches them. foolbox, eagerpy and pyautoattack are imported when
an attack runs, not with the package.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import math
import warnings

import torch
from torch import nn

from . import attacks
from .evaluation import Arena
from .objectives import Criterion, loss_value
from .runtime import device_of


class _NesGradient(torch.autograd.Function):
    """Forward: the loss from queries; backward: the NES estimate of its gradient (antithetic Gaussian
    samples, Ilyas et al. 2018) instead of back-propagation."""

    @staticmethod
    def forward(ctx, x, loss_fn, sigma, samples, generator):
        ctx.save_for_backward(x)
        ctx.loss_fn, ctx.sigma, ctx.samples, ctx.generator = loss_fn, sigma, samples, generator
        with torch.no_grad():
            return loss_fn(x)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        est = torch.zeros_like(x)
        with torch.no_grad():
            for _ in range(ctx.samples):
                u = torch.randn(x.shape, generator=ctx.generator).to(x.device)
                diff = ctx.loss_fn(x + ctx.sigma * u) - ctx.loss_fn(x - ctx.sigma * u)
                est += diff.view(-1, *([1] * (x.ndim - 1))) * u
        est /= 2 * ctx.sigma * ctx.samples
        return grad_out.view(-1, *([1] * (x.ndim - 1))) * est, None, None, None, None


def nes_objective(defence, criterion: Criterion, *, sigma: float, samples: int, seed: int = 0,
                  loss: str = "composite"):
    """The adaptive ``loss`` of ``defence`` as an engine objective whose gradient is estimated by NES from
    ``2 * samples`` queries of the loss (the defence's outputs: logits and score) per step - a score-based
    black-box attack that runs on the same engine as the white-box ones."""
    criterion = criterion.to(device_of(defence))
    gen = torch.Generator().manual_seed(seed)

    def fn(x, y):
        def loss_fn(xx):
            return loss_value(loss, defence.outputs(xx.clamp(0, 1)), y, criterion)

        with torch.no_grad():
            o = defence.outputs(x)
        return _NesGradient.apply(x, loss_fn, sigma, samples, gen), criterion.success(o.logits, o.score, y)

    return fn


def nes(arena: Arena, *, norm: str, eps: float, steps: int, step_size: float, sigma: float, samples: int,
        batch_size: int = 500) -> torch.Tensor:
    """NES (score-based): :func:`nes_objective` under the engine's steepest steps."""
    dev = arena.device
    obj = nes_objective(arena.defence, arena.criterion(), sigma=sigma, samples=samples, seed=arena.seed)
    res = attacks.attack(obj, arena.x.to(dev), arena.y.to(dev), norm=norm, eps=eps, steps=steps,
                         step_size=step_size, rule="steepest", early_stop=True, batch_size=batch_size)
    return res.x_adv.cpu()


class DecisionModel(torch.nn.Module):
    """The defence as foolbox sees it: the K logits and, as an extra column, the score (the criterion decides).

    With ``remember``, an input it has seen before (the same bytes) gets the outputs it got then, whatever batch
    it comes in: a CPU's convolutions round differently with the batch, and a decision-based attack that asks
    again about a point it found adversarial, within rounding of the decision boundary, must get the same
    answer (a deployed defence decides each input on its own)."""

    def __init__(self, defence, remember: bool = False):
        super().__init__()
        self.defence, self.remember = defence, remember
        self._seen: dict[bytes, torch.Tensor] = {}

    def _outputs(self, x):
        z, s = self.defence(x)
        return torch.cat([z, s[:, None]], 1)

    def forward(self, x):
        if not self.remember:
            return self._outputs(x)
        rows = x.detach().cpu().contiguous().flatten(1).numpy()
        keys = [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in rows]
        first = {k: i for i, k in reversed(list(enumerate(keys)))}   # each key's first row in this batch
        new = [first[k] for k in dict.fromkeys(keys) if k not in self._seen]
        if new:
            out = self._outputs(x[new]).detach().cpu()
            self._seen.update(zip((keys[i] for i in new), out))
        return torch.stack([self._seen[k] for k in keys]).to(x.device)


def starting_points(arena: Arena) -> torch.Tensor:
    """For each attacked sample, the nearest (L2) held-out benign image that the defence accepts and classifies
    as another class: an adversarial starting point for a decision-based attack."""
    pred, score = arena.heldout
    # strictly accepted: batching may move a score slightly
    ok = arena.criterion().accepted(pred, score + 1e-3 * float(score.std()))
    pool, pool_pred = arena.x_heldout[ok], pred[ok]
    d = torch.cdist(arena.x.flatten(1), pool.flatten(1))
    d[pool_pred[None, :] == arena.y[:, None]] = math.inf
    return pool[d.argmin(1)]


@torch.no_grad()
def usable_starts(model, adversarial, start: torch.Tensor, labels: torch.Tensor, rounds: int = 5) -> torch.Tensor:
    """Which starting points a decision-based attack can use: those that ``adversarial(labels)`` (a criterion
    called on ``(inputs, model outputs)``) accepts when the model sees exactly the batch the attack will give it,
    ``start[mask]``. A start near the decision boundary can pass in one batch and fail in a smaller one (a CPU's
    convolutions round differently with the batch size), and foolbox then refuses the whole run; so the check is
    repeated on the surviving batch until it holds for all of it. Returns the boolean mask."""
    valid = torch.as_tensor(adversarial(labels)(start, model(start))).bool().clone()
    for _ in range(rounds):
        idx = valid.nonzero().squeeze(1)
        if len(idx) == 0:
            break
        again = torch.as_tensor(adversarial(labels[idx])(start[idx], model(start[idx]))).bool()
        if bool(again.all()):
            return valid
        valid[idx[~again]] = False
    else:
        raise RuntimeError(f"no batch of starting points stayed adversarial after {rounds} checks; the model's "
                           "decisions are not reproducible on the same inputs")
    return valid


HSJ_PRECISIONS = ("float32", "float64")


def hsj(arena: Arena, *, norm: str, eps: float, steps: int, initial_evals: int = 100,
        max_evals: int = 10_000, precision: str = "float32") -> torch.Tensor:
    """HopSkipJump (foolbox 3; Chen et al. 2020), decision-based, with the arena's criterion ("misclassified and
    not rejected") as foolbox criterion, started from :func:`starting_points`. Returns the examples it reached
    when within ``eps``, else the input (a failure).

    foolbox's binary search brings each example to within about 1e-6 of the decision boundary and then asserts
    that it is still adversarial; in float32 the rounding of a defence changes with the batch (most of all GAT's
    integrated classifier, which runs each input through its predicted class's detector only, in per-class
    batches) and can flip a decision that close, which stops the run. So the defence answers as a
    :class:`DecisionModel` that remembers its decisions (``precision="float32"``: the same input, the same
    answer), or runs in float64 (a copy of it; about four times slower on a CPU)."""
    if precision not in HSJ_PRECISIONS:
        raise ValueError(f"unknown HopSkipJump precision {precision!r}: choose one of {', '.join(HSJ_PRECISIONS)}")
    import eagerpy as ep
    import foolbox as fb

    dev = arena.device
    k = arena.defence.num_classes
    criterion = arena.criterion().to(dev)
    wide = precision == "float64"
    dtype = torch.float64 if wide else torch.float32
    model = DecisionModel(copy.deepcopy(arena.defence).to(dtype) if wide else arena.defence,
                          remember=not wide).to(dev).eval()
    fmodel = fb.PyTorchModel(model, bounds=(0, 1), device=dev)
    labels = arena.y.to(dev)

    class Adversarial(fb.criteria.Criterion):
        def __init__(self, y):
            super().__init__()
            self.y = y

        def __repr__(self):
            return "misclassified and not rejected"

        def __call__(self, perturbed, outputs):
            out, restore = ep.astensor_(outputs)
            raw = out.raw
            return restore(ep.astensor(criterion.success(raw[:, :k], raw[:, k], self.y)))

    torch.manual_seed(arena.seed)
    attack = fb.attacks.HopSkipJumpAttack(steps=steps, initial_gradient_eval_steps=initial_evals,
                                          max_gradient_eval_steps=max_evals, constraint=norm)
    x0 = arena.x.to(dev, dtype)
    start = starting_points(arena).to(dev, dtype)
    valid = usable_starts(model, Adversarial, start, labels)
    x_adv = x0.clone()
    if bool(valid.any()):
        x_adv[valid] = attack.run(fmodel, x0[valid], Adversarial(labels[valid]), starting_points=start[valid])
    dist = attacks.norms(x_adv - x0, norm)
    keep = valid & (dist <= eps + 1e-6)
    return torch.where(keep[:, None, None, None], x_adv, x0).float().cpu()


# ------------------------------------------------------------------------------------ AutoAttack, independent

class CompositeClassifier(torch.nn.Module):
    """A defence with its reject option folded into the true class ``label`` (all inputs of one call share it):
    the K logits, except that logit ``label`` becomes max(z_label, max_{j != label} z_j + kappa * (s - tau_pred)).
    A rejected input (s > tau_pred) is therefore classified as ``label`` (a failure for any attack), an
    accepted one keeps the defence's prediction - so "misclassified" for this classifier is exactly
    "misclassified and not rejected" for the defence - and the function stays continuous, so gradient attacks
    see both the classifier and the detector."""

    def __init__(self, defence, criterion: Criterion, label: int, kappa: float = 1.0):
        super().__init__()
        self.defence, self.criterion, self.label, self.kappa = defence, criterion, int(label), float(kappa)

    def forward(self, x):
        z, s = self.defence(x)
        over = self.kappa * (s - self.criterion.threshold(z.argmax(1)))
        others = torch.cat([z[:, :self.label], z[:, self.label + 1:]], 1).amax(1)
        zc = torch.maximum(z[:, self.label], others + over)
        return torch.cat([z[:, :self.label], zc[:, None], z[:, self.label + 1:]], 1)


class _Collect(logging.Handler):
    def __init__(self, into: list):
        super().__init__(logging.WARNING)
        self.into = into

    def emit(self, record):
        self.into.append(record.getMessage())


@contextlib.contextmanager
def autoattack_checks(into: list):
    """While active, AutoAttack's own checks (its warnings: a randomised or gradient-masking model, Square
    finding more than the gradient attacks, ...) are appended to ``into`` instead of printed, so that a report
    can show them beside the figure they qualify."""
    log = logging.getLogger("auto-attack")
    handler, level, propagate = _Collect(into), log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.WARNING)
    log.propagate = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield into
        finally:
            log.removeHandler(handler)
            log.setLevel(level)
            log.propagate = propagate
    into.extend(str(w.message) for w in caught if "pyautoattack" in (w.filename or ""))


def autoattack_classifier(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, norm: str, eps: float,
                          version: str = "standard", seed: int = 0, batch_size: int = 500,
                          checks: list | None = None) -> torch.Tensor:
    """AutoAttack (pyautoattack) on a plain classifier's logits, as Croce & Hein evaluate robust classifiers:
    ``version="standard"`` runs APGD-CE, APGD-T (9 targets), FAB-T and Square (5,000 queries). Returns the
    adversarial examples (the natural image where no attack succeeded); AutoAttack's own checks are appended to
    ``checks`` where given (:func:`autoattack_checks`)."""
    from pyautoattack import AutoAttack

    dev = device_of(model)
    with autoattack_checks(checks if checks is not None else []):
        aa = AutoAttack(model.eval(), norm={"linf": "Linf", "l2": "L2", "l1": "L1"}[norm], eps=eps,
                        version=version, seed=seed, device=dev)
        aa.verbose = False
        adv, _ = aa.run_standard_evaluation(x.to(dev), y.to(dev), batch_size=batch_size)
    return adv.detach().cpu()


def autoattack(arena: Arena, *, norm: str, eps: float, version: str = "standard", attacks_to_run=None,
               n_iter: int = 100, n_target_classes: int = 9, batch_size: int = 500,
               checks: list | None = None) -> torch.Tensor:
    """AutoAttack (pyautoattack, Croce & Hein's code) on the defence as :class:`CompositeClassifier`, one call
    per true class. ``version="standard"`` is AutoAttack's own evaluation; ``"custom"`` runs ``attacks_to_run``
    with ``n_iter`` iterations and ``n_target_classes`` targets (a reduced budget for CPU runs). AutoAttack's own
    checks are appended to ``checks`` where given (:func:`autoattack_checks`), never printed."""
    with autoattack_checks(checks if checks is not None else []):
        return _autoattack(arena, norm=norm, eps=eps, version=version, attacks_to_run=attacks_to_run,
                           n_iter=n_iter, n_target_classes=n_target_classes, batch_size=batch_size)


def _autoattack(arena: Arena, *, norm, eps, version, attacks_to_run, n_iter, n_target_classes, batch_size):
    from pyautoattack import AutoAttack

    dev = arena.device
    criterion = arena.criterion().to(dev)
    kappa = 1.0 / arena.score_unit
    x_adv = arena.x.clone()
    for c in range(arena.defence.num_classes):
        idx = (arena.y == c).nonzero().squeeze(1)
        if len(idx) == 0:
            continue
        model = CompositeClassifier(arena.defence, criterion, c, kappa).to(dev).eval()
        kw = {"attacks": list(attacks_to_run)} if version == "custom" else {}
        aa = AutoAttack(model, norm={"linf": "Linf", "l2": "L2", "l1": "L1"}[norm], eps=eps, version=version,
                        seed=arena.seed, device=dev, **kw)
        aa.verbose = False
        if version == "custom":
            aa.apgd.n_iter = aa.apgd_targeted.n_iter = n_iter
            aa.apgd.n_restarts = 1
            aa.apgd_targeted.n_target_classes = n_target_classes
        adv, _ = aa.run_standard_evaluation(arena.x[idx].to(dev), arena.y[idx].to(dev), batch_size=batch_size)
        x_adv[idx] = adv.detach().cpu()
    return x_adv
