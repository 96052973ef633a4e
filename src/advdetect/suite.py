"""One attack suite for every defence of :mod:`advdetect.defences`: adaptive white-box attacks, the
multi-targeted attack, black-box attacks, AutoAttack as an independent check, the metrics of ARCLU's tables and
automatic sanity checks.

**Success.** Against a defence with per-class thresholds tau (at 1% false positives of held-out benign data), an
adversarial example succeeds when it is misclassified and not rejected: ``pred != y and score <= tau[pred]``.
Every attack below keeps, per sample, its best iterate by that criterion (:func:`best_of`), so combining runs
(several losses, step sizes, targets) gives the per-sample worst case - at least as strong as the paper's
worst case over whole runs.

**Adaptive losses** (:func:`adaptive_loss`, minimised; functions of the defence's logits z and score s):

``margin``         CW's logit margin z_y - max_{i!=y} z_i (targeted: max_{i!=t} z_i - z_t): ARCLU's objective for
                   Vanilla, Madry, TRADES (Table 1), GAT's classifier attack (Eq. 8);
``composite``      the margin until the input is misclassified (targeted: classified as t), then the score minus
                   the threshold of the predicted class: GAT's combined attack (Eq. 12) for any defence, and one
                   target of the multi-targeted attack;
``sum``            margin + score: ARCLU's Eq. 7 for FS, LID and MAHA (Table 1);
``nearest wrong``  -max_{i!=y} z_i (targeted: -z_t): ARCLU's Eq. 17 for ARCLU/L-Ben (z = minus the distances), GAT's
                   detectors attack (Eq. 9) for the generative classifier.

Every white-box attack runs each defence's paper objective and the composite loss, and keeps the per-sample best.

**Attacks.** ``pgd`` (the engine of :mod:`advdetect.attacks`, any norm), ``mim`` (momentum, decay 0.9), ``fgsm``,
``cw`` (CW-L2: Adam on ||delta||^2 + c * max(loss, 0) with a binary search on c, success within the L2 budget),
``multi-targeted`` (Tramer et al. 2020: for every target class the composite targeted loss, best over
targets), ``transfer`` (PGD on a surrogate classifier, evaluated on the defence), ``nes`` (the engine driven by
NES gradient estimates from loss queries only), ``hsj`` (foolbox's HopSkipJump from decisions only, started at
accepted benign images of other classes) and ``autoattack`` (pyautoattack on the defence seen as a composite
classifier, :class:`CompositeClassifier`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from . import attacks
from .cache import fingerprint
from .losses import margin, other_max
from .metrics import attack_success_ratio, eroc, proportion_ci, thresholds_at_fpr
from .runtime import device_of

LOSSES = ("margin", "composite", "sum", "nearest wrong")
METHODS = ("pgd", "mim", "fgsm", "cw", "multi-targeted", "transfer", "nes", "hsj", "autoattack")
BLACK_BOX = ("transfer", "nes", "hsj")


# ------------------------------------------------------------------------------------------------------ losses

def adaptive_loss(name: str, z: torch.Tensor, s: torch.Tensor, y: torch.Tensor, tau: torch.Tensor,
                  t: torch.Tensor | None = None) -> torch.Tensor:
    """The adaptive loss ``name`` (see the module docstring) of logits ``z``, scores ``s``, labels ``y``,
    per-class thresholds ``tau`` and, for a targeted attack, targets ``t``."""
    if name not in LOSSES:
        raise ValueError(f"unknown adaptive loss {name!r}: choose one of {', '.join(LOSSES)}")
    if t is None:
        m = margin(z, y)
        if name == "margin":
            return m
        if name == "composite":
            return torch.where(m >= 0, m, s - tau[z.argmax(1)])
        if name == "sum":
            return m + s
        return -other_max(z, y)
    mt = -margin(z, t)
    if name == "margin":
        return mt
    if name == "composite":
        return torch.where(mt > 0, mt, s - tau[t])
    if name == "sum":
        return mt + s
    return -z.gather(1, t[:, None]).squeeze(1)


def succeeded(z: torch.Tensor, s: torch.Tensor, y: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """Misclassified and not rejected."""
    pred = z.argmax(1)
    return (pred != y) & (s <= tau[pred])


def objective(defence, loss: str, tau: torch.Tensor, targeted: bool):
    """An engine objective for ``defence``: ``objective(x, y)`` (or ``(x, (y, t))`` when ``targeted``) returns
    the adaptive loss and the success mask of the same forward pass."""
    tau = tau.to(device_of(defence))

    def fn(x, labels):
        y, t = labels if targeted else (labels, None)
        z, s = defence(x)
        return adaptive_loss(loss, z, s, y, tau, t), succeeded(z, s, y, tau)

    return fn


def losses_for(defence) -> list[str]:
    """The losses every white-box attack runs against ``defence``: its paper objective and the composite."""
    return list(dict.fromkeys([defence.paper_objective, "composite"]))


# ------------------------------------------------------------------------------------------------- the arena

@dataclass
class Arena:
    """One defence and what every attack on it shares: the attacked points ``(x, y)``, the held-out benign
    inputs that set the thresholds, their decisions, the thresholds at each FPR ``ps`` (in %), the random
    targets of targeted attacks, and the cache for adversarial examples."""

    defence: Any
    x: torch.Tensor
    y: torch.Tensor
    x_heldout: torch.Tensor
    cache: Any
    ps: tuple = (1, 2, 5, 10)
    seed: int = 0
    heldout: tuple = field(init=False)
    clean: tuple = field(init=False)
    tau: dict = field(init=False)
    targets: torch.Tensor = field(init=False)

    def __post_init__(self):
        k = self.defence.num_classes
        self.heldout = self.defence.decide(self.x_heldout)
        self.clean = self.defence.decide(self.x)
        self.tau = {p: torch.as_tensor(thresholds_at_fpr(self.heldout[1], self.heldout[0], p / 100, k),
                                       dtype=torch.float32) for p in self.ps}
        gen = torch.Generator().manual_seed(self.seed)
        self.targets = (self.y + 1 + torch.randint(0, k - 1, self.y.shape, generator=gen)) % k

    @property
    def device(self):
        return device_of(self.defence)

    @property
    def key(self) -> dict:
        return {"defence": self.defence.config, "x": fingerprint(self.x), "y": int(self.y.sum()),
                "heldout": fingerprint(self.x_heldout), "seed": self.seed}

    def accuracy(self) -> float:
        return float((self.clean[0] == self.y).float().mean())

    def evaluate(self, x_adv: torch.Tensor) -> dict:
        """ASR-p for every p (with the counts behind it), EROC over the misclassified adversarial examples
        against the held-out benign inputs, and the per-sample success at p = 1."""
        pred, score = self.defence.decide(x_adv)
        out: dict[str, Any] = {"counts": {}}
        for p in self.ps:
            out[f"ASR-{p:g}"], succ, n = attack_success_ratio(self.y, self.clean[0], self.clean[1], pred, score,
                                                              self.tau[p])
            out["counts"][p] = (succ, n)
        fooled = pred != self.y
        out["EROC"] = (eroc(self.heldout[1], self.heldout[0], score[fooled], pred[fooled]) if fooled.any()
                       else float("nan"))
        tau = self.tau[self.ps[0]]
        eligible = (self.clean[0] == self.y) & (self.clean[1] <= tau[self.clean[0]])
        out["success"] = eligible & fooled & (score <= tau[pred])
        out["pred"], out["score"] = pred, score
        return out


def best_of(arena: Arena, candidates: list[torch.Tensor]) -> torch.Tensor:
    """Per sample, the candidate adversarial example that succeeds (misclassified, not rejected at the first
    threshold) with the largest room under the threshold; among failures, a misclassified one closest to it."""
    tau = arena.tau[arena.ps[0]]
    best, best_key = None, None
    for xa in candidates:
        pred, score = arena.defence.decide(xa)
        room = tau[pred] - score  # >= 0: not rejected
        key = torch.where(pred != arena.y, torch.where(room >= 0, 1e6 + room, room), torch.full_like(room, -1e9))
        if best is None:
            best, best_key = xa.clone(), key
        else:
            better = key > best_key
            best[better] = xa[better]
            best_key = torch.where(better, key, best_key)
    return best


# ------------------------------------------------------------------------------------------ white-box attacks

def _run_cached(arena: Arena, run: Mapping, compute) -> dict:
    config = {**arena.key, "run": dict(run)}
    return arena.cache.memo("suite_attack", config, compute)


def pgd_run(arena: Arena, *, loss: str, norm: str, eps: float, steps: int, step_size: float, targeted: bool,
            rule: str = "steepest", random_start: bool = False, restarts: int = 1, trace: bool = False,
            target_offset: int | None = None, batch_size: int = 500) -> dict:
    """One engine run (cached): ``{"x_adv"}``, with ``trace`` also ``"trace"``: (steps, N) which samples had
    succeeded after each step. A targeted run aims at the arena's random targets, or with ``target_offset`` r
    at the classes (y + r) mod K."""
    run = {"method": "pgd", "loss": loss, "norm": norm, "eps": eps, "steps": steps, "step_size": step_size,
           "targeted": targeted, "rule": rule, "random_start": random_start, "restarts": restarts, "trace": trace}
    if target_offset is not None:
        run["target_offset"] = int(target_offset)

    def compute():
        dev = arena.device
        targets = (arena.targets if target_offset is None
                   else (arena.y + target_offset) % arena.defence.num_classes)
        labels = (arena.y.to(dev), targets.to(dev)) if targeted else arena.y.to(dev)
        res = attacks.attack(objective(arena.defence, loss, arena.tau[arena.ps[0]], targeted), arena.x.to(dev),
                             labels, norm=norm, eps=eps, steps=steps, step_size=step_size, rule=rule,
                             random_start=random_start, restarts=restarts, early_stop=not trace, trace=trace,
                             batch_size=batch_size, generator=torch.Generator().manual_seed(arena.seed))
        out = {"x_adv": res.x_adv.cpu()}
        if trace:
            out["trace"] = res.trace.cpu()
        return out

    return _run_cached(arena, run, compute)


def white_box(arena: Arena, *, method: str, norm: str, eps: float, targeted: bool = False, steps: int = 100,
              step_sizes=(0.01,), losses=None, **kwargs) -> torch.Tensor:
    """The per-sample best adversarial examples of ``method`` (``pgd``, ``mim``, ``fgsm``) over the losses
    (default :func:`losses_for`) and step sizes."""
    losses = losses_for(arena.defence) if losses is None else list(losses)
    runs = []
    for loss in losses:
        if method == "fgsm":
            runs.append(pgd_run(arena, loss=loss, norm="linf", eps=eps, steps=1, step_size=eps, targeted=targeted,
                                rule="sign")["x_adv"])
            continue
        for a in step_sizes:
            runs.append(pgd_run(arena, loss=loss, norm=norm, eps=eps, steps=steps, step_size=a, targeted=targeted,
                                rule="momentum" if method == "mim" else "steepest", **kwargs)["x_adv"])
    return best_of(arena, runs)


def multi_targeted(arena: Arena, *, norm: str, eps: float, steps: int, step_size: float,
                   random_start: bool = True) -> torch.Tensor:
    """Tramer et al. 2020's multi-targeted attack on any defence: for each of the K-1 other classes t, first
    make the defence predict t, then lower the score below tau_t (the targeted composite loss); per sample the
    best over targets. Each target's run is a cached :func:`pgd_run`."""
    runs = [pgd_run(arena, loss="composite", norm=norm, eps=eps, steps=steps, step_size=step_size, targeted=True,
                    random_start=random_start, target_offset=r)["x_adv"] for r in range(1, arena.defence.num_classes)]
    return best_of(arena, runs)


def cw_l2(arena: Arena, *, eps: float, searches: int = 5, steps: int = 100, lr: float = 0.01,
          c_init: float = 1.0, loss: str = "composite") -> torch.Tensor:
    """Carlini & Wagner's L2 attack adapted to the defence: Adam (learning rate ``lr``) on the perturbation of
    ||delta||_2^2 + c * max(loss, 0) in the box, with a binary search on c over ``searches`` rounds (start
    ``c_init``; times 10 while no round has succeeded). Keeps per sample the smallest successful perturbation
    and counts it a success only within the L2 budget ``eps``; a sample without one keeps the input (a
    failure). Cached."""
    run = {"method": "cw", "eps": eps, "searches": searches, "steps": steps, "lr": lr, "c": c_init, "loss": loss}

    def compute():
        dev = arena.device
        x, y = arena.x.to(dev), arena.y.to(dev)
        tau = arena.tau[arena.ps[0]].to(dev)

        def fn(xa, extra):
            cc, x0, yy = extra
            z, s = arena.defence(xa)
            dist = (xa - x0).flatten(1).pow(2).sum(1)
            return dist + cc * adaptive_loss(loss, z, s, yy, tau).clamp_min(0), succeeded(z, s, yy, tau)

        best_x, best_l2 = attacks.penalty_search(fn, x, y, rounds=searches, steps=steps, lr=lr, c_init=c_init,
                                                 penalty_on="loss", batch_size=500)
        keep = best_l2 <= eps + 1e-6
        return {"x_adv": torch.where(keep[:, None, None, None], best_x, x).cpu()}

    return _run_cached(arena, run, compute)["x_adv"]


# ------------------------------------------------------------------------------------------ black-box attacks

def transfer(arena: Arena, x_adv_surrogate: torch.Tensor) -> torch.Tensor:
    """Transfer attack: adversarial examples crafted on a surrogate, applied unchanged to the defence."""
    return x_adv_surrogate


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


def nes_objective(defence, tau: torch.Tensor, *, sigma: float, samples: int, seed: int = 0,
                  loss: str = "composite"):
    """The adaptive ``loss`` of ``defence`` as an engine objective whose gradient is estimated by NES from
    ``2 * samples`` queries of the loss (the defence's outputs: logits and score) per step - a score-based
    black-box attack that runs on the same engine as the white-box ones."""
    tau = tau.to(device_of(defence))
    gen = torch.Generator().manual_seed(seed)

    def fn(x, y):
        def loss_fn(xx):
            z, s = defence(xx.clamp(0, 1))
            return adaptive_loss(loss, z, s, y, tau)

        with torch.no_grad():
            z, s = defence(x)
        return _NesGradient.apply(x, loss_fn, sigma, samples, gen), succeeded(z, s, y, tau)

    return fn


def nes(arena: Arena, *, norm: str, eps: float, steps: int, step_size: float, sigma: float, samples: int,
        batch_size: int = 500) -> torch.Tensor:
    """NES (score-based): :func:`nes_objective` under the engine's steepest steps. Cached."""
    run = {"method": "nes", "norm": norm, "eps": eps, "steps": steps, "step_size": step_size, "sigma": sigma,
           "samples": samples}

    def compute():
        dev = arena.device
        obj = nes_objective(arena.defence, arena.tau[arena.ps[0]], sigma=sigma, samples=samples, seed=arena.seed)
        res = attacks.attack(obj, arena.x.to(dev), arena.y.to(dev), norm=norm, eps=eps, steps=steps,
                             step_size=step_size, rule="steepest", early_stop=True, batch_size=batch_size)
        return {"x_adv": res.x_adv.cpu()}

    return _run_cached(arena, run, compute)["x_adv"]


class DecisionModel(torch.nn.Module):
    """The defence as foolbox sees it: the K logits and, as an extra column, tau[pred] - score (>= 0: accepted)."""

    def __init__(self, defence, tau: torch.Tensor):
        super().__init__()
        self.defence = defence
        self.register_buffer("tau", tau.clone().float())

    def forward(self, x):
        z, s = self.defence(x)
        return torch.cat([z, (self.tau[z.argmax(1)] - s)[:, None]], 1)


def starting_points(arena: Arena) -> torch.Tensor:
    """For each attacked sample, the nearest (L2) held-out benign image that the defence accepts and classifies
    as another class: an adversarial starting point for a decision-based attack."""
    tau = arena.tau[arena.ps[0]]
    pred, score = arena.heldout
    ok = score < tau[pred] - 1e-3 * float(score.std())  # strictly inside: batching may move a score slightly
    pool, pool_pred = arena.x_heldout[ok], pred[ok]
    d = torch.cdist(arena.x.flatten(1), pool.flatten(1))
    d[pool_pred[None, :] == arena.y[:, None]] = math.inf
    return pool[d.argmin(1)]


def hsj(arena: Arena, *, norm: str, eps: float, steps: int, initial_evals: int = 100,
        max_evals: int = 10_000) -> torch.Tensor:
    """HopSkipJump (foolbox 3; Chen et al. 2020), decision-based, with the criterion "misclassified and not
    rejected", started from :func:`starting_points`. Returns the examples it reached when within ``eps``, else
    the input (a failure). Cached."""
    run = {"method": "hsj", "norm": norm, "eps": eps, "steps": steps, "initial": initial_evals, "max": max_evals}

    def compute():
        import eagerpy as ep
        import foolbox as fb

        dev = arena.device
        k = arena.defence.num_classes
        model = DecisionModel(arena.defence, arena.tau[arena.ps[0]]).to(dev).eval()
        fmodel = fb.PyTorchModel(model, bounds=(0, 1), device=dev)
        labels = arena.y.to(dev)

        class Accepted(fb.criteria.Criterion):
            def __init__(self, y):
                super().__init__()
                self.y = y

            def __repr__(self):
                return "misclassified and not rejected"

            def __call__(self, perturbed, outputs):
                out, restore = ep.astensor_(outputs)
                raw = out.raw
                return restore(ep.astensor((raw[:, :k].argmax(1) != self.y) & (raw[:, k] >= 0)))

        torch.manual_seed(arena.seed)
        attack = fb.attacks.HopSkipJumpAttack(steps=steps, initial_gradient_eval_steps=initial_evals,
                                              max_gradient_eval_steps=max_evals, constraint=norm)
        x0 = arena.x.to(dev)
        start = starting_points(arena).to(dev)
        with torch.no_grad():
            valid = Accepted(labels)(start, model(start))  # a start that is not adversarial cannot be used
        x_adv = x0.clone()
        if bool(valid.any()):
            x_adv[valid] = attack.run(fmodel, x0[valid], Accepted(labels[valid]), starting_points=start[valid])
        dist = attacks.norms(x_adv - x0, norm)
        keep = valid & (dist <= eps + 1e-6)
        return {"x_adv": torch.where(keep[:, None, None, None], x_adv, x0).cpu()}

    return _run_cached(arena, run, compute)["x_adv"]


# ------------------------------------------------------------------------------------ AutoAttack, independent

class CompositeClassifier(torch.nn.Module):
    """A defence with its reject option folded into the true class ``label`` (all inputs of one call share it):
    the K logits, except that logit ``label`` becomes max(z_label, max_{j != label} z_j + kappa * (s - tau_pred)).
    A rejected input (s > tau_pred) is therefore classified as ``label`` (a failure for any attack), an
    accepted one keeps the defence's prediction - so "misclassified" for this classifier is exactly
    "misclassified and not rejected" for the defence - and the function stays continuous, so gradient attacks
    see both the classifier and the detector."""

    def __init__(self, defence, tau: torch.Tensor, label: int, kappa: float = 1.0):
        super().__init__()
        self.defence, self.label, self.kappa = defence, int(label), float(kappa)
        self.register_buffer("tau", tau.clone().float())

    def forward(self, x):
        z, s = self.defence(x)
        over = self.kappa * (s - self.tau[z.argmax(1)])
        others = torch.cat([z[:, :self.label], z[:, self.label + 1:]], 1).amax(1)
        zc = torch.maximum(z[:, self.label], others + over)
        return torch.cat([z[:, :self.label], zc[:, None], z[:, self.label + 1:]], 1)


def autoattack(arena: Arena, *, norm: str, eps: float, version: str = "standard", attacks_to_run=None,
               n_iter: int = 100, n_target_classes: int = 9, batch_size: int = 500) -> torch.Tensor:
    """AutoAttack (pyautoattack, Croce & Hein's code) on the defence as :class:`CompositeClassifier`, one call
    per true class. ``version="standard"`` is AutoAttack's own evaluation; ``"custom"`` runs ``attacks_to_run``
    with ``n_iter`` iterations and ``n_target_classes`` targets (a reduced budget for CPU runs). Cached."""
    run = {"method": "autoattack", "norm": norm, "eps": eps, "version": version,
           "attacks": list(attacks_to_run) if attacks_to_run else None, "n_iter": n_iter,
           "targets": n_target_classes}

    def compute():
        import logging

        from pyautoattack import AutoAttack

        logging.getLogger("auto-attack").setLevel(logging.WARNING)
        dev = arena.device
        tau = arena.tau[arena.ps[0]]
        hz = arena.defence.decide(arena.x_heldout)[1]
        kappa = 1.0 / float(hz.std().clamp_min(1e-6))
        x_adv = arena.x.clone()
        for c in range(arena.defence.num_classes):
            idx = (arena.y == c).nonzero().squeeze(1)
            if len(idx) == 0:
                continue
            model = CompositeClassifier(arena.defence, tau, c, kappa).to(dev).eval()
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
        return {"x_adv": x_adv}

    return _run_cached(arena, run, compute)["x_adv"]


# ------------------------------------------------------------------------------------------------ the suite

def surrogate_examples(cache, surrogate, x: torch.Tensor, y: torch.Tensor, *, norm: str, eps: float, steps: int,
                       step_size: float) -> torch.Tensor:
    """The transfer attack's examples: untargeted CW-margin PGD with random start on the surrogate (cached)."""
    from .gat import cached_attack
    from .losses import untargeted_margin

    dev = device_of(surrogate)
    return cached_attack(cache, {"model": getattr(surrogate, "config", None), "objective": "transfer"},
                         untargeted_margin(surrogate), x.to(dev), y.to(dev),
                         {"norm": norm, "eps": eps, "steps": steps, "step_size": step_size, "rule": "steepest",
                          "random_start": True})


def run_spec(arena: Arena, spec: Mapping, surrogate_x: Mapping | None = None) -> torch.Tensor:
    """The adversarial examples of one attack of the suite, described by ``spec`` (``method`` and its keywords;
    see :func:`attack_specs`)."""
    s = dict(spec)
    method = s.pop("method")
    s.pop("name", None)
    s.pop("table", None)
    if method in ("pgd", "mim", "fgsm"):
        return white_box(arena, method=method, **s)
    if method == "multi-targeted":
        return multi_targeted(arena, **s)
    if method == "cw":
        return cw_l2(arena, **s)
    if method == "transfer":
        return transfer(arena, surrogate_x[(s["norm"], s["eps"])])
    if method == "nes":
        return nes(arena, **s)
    if method == "hsj":
        return hsj(arena, **s)
    if method == "autoattack":
        return autoattack(arena, **s)
    raise ValueError(f"unknown attack method {method!r}: choose one of {', '.join(METHODS)}")


def attack_name(norm: str, eps: float) -> str:
    """ARCLU's label of a threat model: ``Linf 0.3``, ``L2 2.0``, ``L1 15``, ``L0 25``."""
    return {"linf": "Linf", "l2": "L2", "l1": "L1", "l0": "L0"}[norm] + (f" {eps:.1f}" if norm == "l2" else f" {eps:g}")


def attack_specs(p: Mapping) -> list[dict]:
    """The chapter's attacks from its settings ``p`` (the names of the ``adaptive`` chapter of
    :mod:`advdetect.profiles`). Each spec has a ``name`` (ARCLU's row label), the ``table`` it belongs to
    (2: white-box PGD, 4: other white-box methods, "mt": multi-targeted, 3: black-box, "sanity": unbounded
    budgets, "aa": AutoAttack) and the keywords of :func:`run_spec`."""
    specs = []
    steps = p["STEPS"]
    for norm, eps in p["BUDGETS"]:
        for targeted in (True, False):
            specs.append({"name": f"PGD {attack_name(norm, eps)}, {'T' if targeted else 'U'}", "table": 2,
                          "method": "pgd", "norm": norm, "eps": eps, "targeted": targeted, "steps": steps,
                          "step_sizes": list(p["STEP_SIZES"][norm])})
    cw_eps = p["CW_EPS"]
    specs.append({"name": f"CW {attack_name('l2', cw_eps)}", "table": 4, "method": "cw", "eps": cw_eps,
                  "searches": p["CW_SEARCHES"], "steps": p["CW_STEPS"], "lr": p["CW_LR"]})
    specs.append({"name": f"MIM Linf {p['MIM_EPS']:g}", "table": 4, "method": "mim", "norm": "linf",
                  "eps": p["MIM_EPS"], "steps": steps, "step_sizes": list(p["STEP_SIZES"]["linf"])})
    specs.append({"name": f"FGSM Linf {p['MIM_EPS']:g}", "table": 4, "method": "fgsm", "norm": "linf",
                  "eps": p["MIM_EPS"]})
    for norm, eps in p["MT_BUDGETS"]:
        specs.append({"name": f"Multi-targeted {attack_name(norm, eps)}", "table": "mt", "method": "multi-targeted",
                      "norm": norm, "eps": eps, "steps": p["MT_STEPS"], "step_size": p["STEP_SIZES"][norm][0]})
    for norm, eps in p["SANITY_BUDGETS"]:
        specs.append({"name": f"PGD {attack_name(norm, eps)}, U", "table": "sanity", "method": "pgd", "norm": norm,
                      "eps": eps, "targeted": False, "steps": steps, "step_sizes": list(p["SANITY_STEP_SIZES"][norm])})
    specs.append({"name": f"Transfer {attack_name('linf', p['BB_LINF'])}", "table": 3, "method": "transfer",
                  "norm": "linf", "eps": p["BB_LINF"]})
    for norm, eps in (("linf", p["BB_LINF"]), ("l2", p["BB_L2"])):
        specs.append({"name": f"NES {attack_name(norm, eps)}", "table": 3, "method": "nes", "norm": norm,
                      "eps": eps, "steps": p["NES_STEPS"], "step_size": p["NES_STEP"][norm],
                      "sigma": p["NES_SIGMA"], "samples": p["NES_SAMPLES"]})
    for norm, eps in (("linf", p["BB_LINF"]), ("l2", p["BB_L2"])):
        specs.append({"name": f"HopSkipJump {attack_name(norm, eps)}", "table": 3, "method": "hsj", "norm": norm,
                      "eps": eps, "steps": p["HSJ_STEPS"], "initial_evals": p["HSJ_EVALS"]})
    for norm, eps in p["AA_BUDGETS"]:
        aa = {"version": p["AA_VERSION"]}
        if p["AA_VERSION"] == "custom":
            aa.update(attacks_to_run=["apgd-ce", "apgd-t"], n_iter=p["AA_ITER"], n_target_classes=p["AA_TARGETS"])
        specs.append({"name": f"AutoAttack {attack_name(norm, eps)}", "table": "aa", "method": "autoattack",
                      "norm": norm, "eps": eps, **aa})
    return specs


def threat(spec: Mapping) -> tuple[str, float] | None:
    """The (norm, eps) an attack of the suite works within (CW: L2 and its budget; FGSM and MIM: L-inf)."""
    if spec["method"] == "cw":
        return ("l2", float(spec["eps"]))
    if spec["method"] in ("fgsm", "mim"):
        return ("linf", float(spec["eps"]))
    return (spec["norm"], float(spec["eps"]))


@dataclass
class SuiteResult:
    """Every (defence, attack) evaluation of a suite run: ``results[(defence, attack name)]`` holds the dict
    of :meth:`Arena.evaluate` plus ``n`` (points attacked) and ``seconds``; ``arenas`` the main arena of each
    defence, ``specs`` the attacks."""

    results: dict
    arenas: dict
    specs: list

    def get(self, defence: str, attack: str, metric: str = "ASR-1") -> float:
        return self.results[(defence, attack)][metric]

    @property
    def defences(self) -> list[str]:
        return list(self.arenas)


SUBSET_METHODS = ("nes", "hsj")  # query-hungry: run on the first ``n_blackbox`` points


def run_suite(cache, defences: Mapping, x: torch.Tensor, y: torch.Tensor, x_heldout: torch.Tensor,
              specs: list, *, n_blackbox: int, surrogate_x: Mapping, ps=(1, 2, 5, 10), seed: int = 0,
              progress: bool = True) -> SuiteResult:
    """Run every attack of ``specs`` on every defence (adversarial examples cached per defence, attack and
    budget) and evaluate them. NES and HopSkipJump use the first ``n_blackbox`` points only."""
    import time

    from .runtime import progress_bar

    results, arenas = {}, {}
    bar = progress_bar([(d, s) for d in defences for s in specs], enabled=progress, desc="attack suite")
    for name, spec in bar:
        bar.set_postfix_str(f"{name}: {spec['name']}")
        if name not in arenas:
            arenas[name] = Arena(defences[name], x, y, x_heldout, cache, tuple(ps), seed)
            arenas[(name, "subset")] = Arena(defences[name], x[:n_blackbox], y[:n_blackbox], x_heldout, cache,
                                             tuple(ps), seed)
        arena = arenas[(name, "subset")] if spec["method"] in SUBSET_METHODS else arenas[name]
        started = time.perf_counter()
        x_adv = run_spec(arena, spec, surrogate_x)
        r = arena.evaluate(x_adv)
        r.update(n=len(arena.x), seconds=time.perf_counter() - started, x_adv=x_adv)
        results[(name, spec["name"])] = r
    return SuiteResult(results, {k: v for k, v in arenas.items() if isinstance(k, str)}, list(specs))


# ----------------------------------------------------------------------------------------------------- tables

def _paper_value(paper: Mapping | None, attack: str, defence: str, metric: str) -> float:
    from .defences import PAPER_NAMES

    if paper is None or defence not in PAPER_NAMES:
        return float("nan")
    return paper.get(attack, {}).get(PAPER_NAMES[defence], {}).get(metric, float("nan"))


def results_table(suite: SuiteResult, attacks: list[str], metrics=("ASR-1", "EROC"), paper: Mapping | None = None,
                  paper_rows: Mapping | None = None, accuracy: Mapping | None = None):
    """ARCLU's table layout: rows (attack, metric), columns (defence, ``ours`` | ``paper``), the paper's
    value of the same cell beside ours (``paper[attack][baseline][metric]``; ``paper_rows`` maps our attack
    name to the paper's row where they differ, e.g. HopSkipJump -> Boundary). With ``accuracy`` (the paper's
    clean accuracies) a first row gives the clean accuracy."""
    import pandas as pd

    rows, index = [], []
    if accuracy is not None:
        from .defences import PAPER_NAMES

        index.append(("clean", "accuracy"))
        rows.append([v for d in suite.defences for v in
                     (suite.arenas[d].accuracy(), accuracy.get(PAPER_NAMES.get(d, ""), float("nan")))])
    for a in attacks:
        for m in metrics:
            index.append((a, m))
            row = []
            for d in suite.defences:
                row += [suite.get(d, a, m), _paper_value(paper, (paper_rows or {}).get(a, a), d, m)]
            rows.append(row)
    cols = pd.MultiIndex.from_tuples([(d, src) for d in suite.defences for src in ("ours", "paper")])
    return pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=["attack", "metric"]), columns=cols)


def with_worst_case(table, paper_worst: Mapping | None = None):
    """Append ARCLU's "Worst case" rows to a :func:`results_table`: the largest ASR-1 and the smallest EROC over
    its attack rows (ours), and the paper's worst-case values (``paper_worst[baseline][metric]``)."""
    import pandas as pd

    from .defences import PAPER_NAMES

    body = table.drop(index="clean", level=0, errors="ignore")
    rows = {}
    for metric, pick in (("ASR-1", "max"), ("EROC", "min")):
        part = body.xs(metric, level="metric")
        row = getattr(part, pick)()
        for d in table.columns.get_level_values(0).unique():
            row[(d, "paper")] = (paper_worst or {}).get(PAPER_NAMES.get(d, ""), {}).get(metric, float("nan"))
        rows[("Worst case", metric)] = row
    return pd.concat([table, pd.DataFrame(rows).T.rename_axis(["attack", "metric"])])


def asr_curve(arena: Arena, result: Mapping, fprs=None):
    """ASR against the false-positive rate of the per-class thresholds for one evaluated attack (the threshold
    explorer's curve). Returns (fprs, ASRs)."""
    from .metrics import asr_p

    fprs = np.unique(np.r_[np.geomspace(0.001, 0.5, 50), np.asarray(arena.ps, float) / 100]) if fprs is None else fprs
    k = arena.defence.num_classes
    return fprs, np.array([asr_p(100 * f, arena.heldout[1], arena.heldout[0], arena.y, arena.clean[0],
                                 arena.clean[1], result["pred"], result["score"], k) for f in fprs])


def strongest(suite: SuiteResult, defence: str, norm: str, eps: float, tables=(2, 4, "mt")) -> torch.Tensor:
    """Per sample, the best adversarial example of all white-box attacks within (``norm``, ``eps``)."""
    runs = [suite.results[(defence, s["name"])]["x_adv"] for s in suite.specs
            if s["table"] in tables and threat(s) == (norm, float(eps))]
    return best_of(suite.arenas[defence], runs)


def union_success(suite: SuiteResult, defence: str, norm: str, eps: float, n: int | None = None,
                  tables=(2, 4, "mt")) -> torch.Tensor:
    """Per-sample success of any white-box attack of ``tables`` within (``norm``, ``eps``) (first ``n``)."""
    masks = [suite.results[(defence, s["name"])]["success"] for s in suite.specs
             if s["table"] in tables and threat(s) == (norm, float(eps))]
    if not masks:
        return torch.zeros(0, dtype=torch.bool)
    m = torch.stack(masks).any(0)
    return m if n is None else m[:n]


def _eligible(suite: SuiteResult, defence: str) -> torch.Tensor:
    a = suite.arenas[defence]
    tau = a.tau[a.ps[0]]
    return (a.clean[0] == a.y) & (a.clean[1] <= tau[a.clean[0]])


def worst_case(suite: SuiteResult, exclude_tables=("sanity",)):
    """The head-to-head summary: per defence, its clean accuracy, its worst-case ASR-1 over all attacks (the
    attack that reached it, with a Wilson 95% interval) and the per-sample union of all white-box attacks at
    L-inf 0.3 (an attacker who tries every attack of the suite)."""
    import pandas as pd

    rows = []
    for d in suite.defences:
        name = worst_attack(suite, d, exclude_tables)
        r = suite.results[(d, name)]
        lo, hi = proportion_ci(*r["counts"][1])
        elig = _eligible(suite, d)
        u = union_success(suite, d, "linf", 0.3)
        rows.append({"defence": d, "accuracy": suite.arenas[d].accuracy(), "worst-case ASR-1": r["ASR-1"],
                     "95% CI": f"{lo:.2f}-{hi:.2f}", "attack": name,
                     "EROC there": r["EROC"],
                     "all L-inf 0.3 attacks together": float(u[elig].float().mean()) if len(u) else float("nan")})
    return pd.DataFrame(rows).set_index("defence").sort_values("worst-case ASR-1")


def sanity_checks(suite: SuiteResult, sweeps: Mapping | None = None, *, unbounded_min: float = 0.9,
                  aa_margin: float = 0.02):
    """Carlini et al. 2019's and Athalye et al. 2018's checks, per defence, as a table of (check, value,
    passed): unbounded budgets (every ``sanity`` attack) reach ASR-1 >= ``unbounded_min``; ASR-1 does not fall
    as eps grows (L-inf 0.3 -> 0.4 -> 1.0 and L2 2.0 -> 6.0, per-sample unions, one sample of slack); ASR-1 does
    not fall as steps grow (``sweeps``: defence -> (steps, ASR-1) of independent runs); black-box ASR-1 does not
    exceed white-box ASR-1 on the same points; AutoAttack finds at most ``aa_margin`` more successes than the
    whole white-box suite at its budget."""
    import pandas as pd

    rows = []

    def add(d, check, value, passed):
        rows.append({"defence": d, "check": check, "value": value, "passed": bool(passed)})

    for d in suite.defences:
        elig = _eligible(suite, d)
        n = max(int(elig.sum()), 1)

        def asr(mask, m=None):
            e = elig if m is None else elig[:m]
            return float(mask[e].float().mean()) if int(e.sum()) else float("nan")

        for s in suite.specs:
            if s["table"] == "sanity":
                v = suite.get(d, s["name"])
                add(d, f"{s['name']} reaches ASR-1 >= {unbounded_min:g}", f"{v:.2f}", v >= unbounded_min)
        sanity = {threat(s): suite.results[(d, s["name"])]["success"] for s in suite.specs if s["table"] == "sanity"}
        for norm, chain in (("linf", (0.3, 0.4)), ("l2", (2.0,))):
            masks = [(e, union_success(suite, d, norm, e)) for e in chain]
            masks += [(e, m) for (nn_, e), m in sanity.items() if nn_ == norm]
            masks = [(e, m) for e, m in masks if len(m)]
            values = [asr(m) for _, m in masks]
            if len(values) > 1:
                ok = all(b >= a - 1.0 / n for a, b in zip(values, values[1:]))
                add(d, f"ASR-1 grows with {norm} eps " + " -> ".join(f"{e:g}" for e, _ in masks),
                    " -> ".join(f"{v:.2f}" for v in values), ok)
        if sweeps and d in sweeps:
            steps, values = sweeps[d]
            ok = all(b >= a - 1.0 / n for a, b in zip(values, values[1:]))
            add(d, "ASR-1 grows with steps " + " -> ".join(str(int(t)) for t in steps),
                " -> ".join(f"{v:.2f}" for v in values), ok)
        for s in suite.specs:
            if s["table"] != 3:
                continue
            r = suite.results[(d, s["name"])]
            m = r["n"]
            wb = union_success(suite, d, *threat(s), n=m)
            if not len(wb):
                continue
            bb = asr(r["success"], m) if r["success"].shape[0] == m else float("nan")
            w = asr(wb, m)
            add(d, f"{s['name']} <= white-box", f"{bb:.2f} vs {w:.2f}", bb <= w + 1.0 / n)
        for s in suite.specs:
            if s["table"] == "aa":
                c = _aa_comparison(suite, d, s)
                va, vo = c["AutoAttack ASR-1"], c["our suite ASR-1"]
                add(d, f"{s['name']} <= suite + {aa_margin:g}",
                    f"{va:.2f} vs {vo:.2f} ({c['found only by AutoAttack']} found only by AA)", va <= vo + aa_margin)
    return pd.DataFrame(rows)


def _aa_comparison(suite: SuiteResult, defence: str, spec: Mapping) -> dict:
    elig = _eligible(suite, defence)
    aa = suite.results[(defence, spec["name"])]["success"]
    ours = union_success(suite, defence, *threat(spec))
    if not len(ours):
        ours = torch.zeros_like(aa)
    rate = (lambda m: float(m[elig].float().mean())) if int(elig.sum()) else (lambda m: float("nan"))
    return {"AutoAttack ASR-1": rate(aa), "our suite ASR-1": rate(ours),
            "found only by AutoAttack": int((aa & ~ours & elig).sum()),
            "found only by our suite": int((ours & ~aa & elig).sum())}


def autoattack_comparison(suite: SuiteResult):
    """AutoAttack against our whole white-box suite at the same budget, per defence: both ASR-1 (on the same
    eligible images) and how many images only one of them broke."""
    import pandas as pd

    rows = [{"defence": d, "attack": s["name"], **_aa_comparison(suite, d, s)}
            for d in suite.defences for s in suite.specs if s["table"] == "aa"]
    return pd.DataFrame(rows).set_index(["defence", "attack"])


def multi_targeted_comparison(suite: SuiteResult):
    """The multi-targeted attack beside the targeted and untargeted PGD attacks of the same budget, per
    defence (ASR-1 at the first FPR; the multi-targeted attack's Wilson 95% interval)."""
    import pandas as pd

    rows = []
    for d in suite.defences:
        for s in (s for s in suite.specs if s["table"] == "mt"):
            budget = attack_name(*threat(s))
            r = suite.results[(d, s["name"])]
            lo, hi = proportion_ci(*r["counts"][suite.arenas[d].ps[0]])
            rows.append({"defence": d, "budget": budget, "PGD targeted": suite.get(d, f"PGD {budget}, T"),
                         "PGD untargeted": suite.get(d, f"PGD {budget}, U"), "multi-targeted": r["ASR-1"],
                         "95% CI": f"{lo:.2f}-{hi:.2f}"})
    return pd.DataFrame(rows).set_index(["defence", "budget"])


def classification_curves(suite: SuiteResult, norm: str, eps: float) -> dict:
    """GAT's view of every defence: accuracy on clean images against the error on attacked ones (misclassified
    and accepted) as the rejection threshold moves, under the strongest white-box attack per image within
    (``norm``, ``eps``). Returns defence -> :class:`advdetect.metrics.Curve`."""
    from .metrics import classification_curve

    curves = {}
    for d in suite.defences:
        arena = suite.arenas[d]
        adv_pred, adv_score = arena.defence.decide(strongest(suite, d, norm, eps))
        # classification_curve accepts inputs whose score is >= the threshold: pass minus the rejection score
        curves[d] = classification_curve(-arena.clean[1], arena.clean[0], arena.y, -adv_score, adv_pred, arena.y)
    return curves


def worst_attack(suite: SuiteResult, defence: str, exclude_tables=("sanity",), full_only: bool = False) -> str:
    """The name of the attack with the largest ASR-1 on ``defence`` (ties: the shorter name), optionally
    among the attacks run on every attacked image (NES and HopSkipJump run on fewer)."""
    n = len(suite.arenas[defence].x) if full_only else None
    names = [s["name"] for s in suite.specs if s["table"] not in exclude_tables
             and (n is None or suite.results[(defence, s["name"])]["n"] == n)]
    return max(names, key=lambda a: (suite.get(defence, a), -len(a)))


def asr_curves(suite: SuiteResult) -> tuple[dict, dict]:
    """For the threshold explorer: per defence, the ASR-vs-FPR curve and the EROC of its worst attack among
    those run on every attacked image. Returns ({label: (fprs, ASRs)}, {label: EROC})."""
    curves, erocs = {}, {}
    for d in suite.defences:
        name = worst_attack(suite, d, full_only=True)
        r = suite.results[(d, name)]
        curves[f"{d} ({name})"] = asr_curve(suite.arenas[d], r)
        erocs[f"{d} ({name})"] = r["EROC"]
    return curves, erocs


def step_sweeps(arena: Arena, *, norm: str, eps: float, step_sizes, steps_list, step_size: float,
                loss: str = "composite") -> dict:
    """ARCLU Figs 6 and 7 for one defence: ASR-1 and EROC of the untargeted attack (``loss``) for each step size
    (at the largest number of steps), and ASR-1 of independent runs with each number of steps (at
    ``step_size``), plus the best-so-far ASR trace of the longest run."""
    by_size = {}
    for a in step_sizes:  # the run at ``step_size`` is also the traced longest run of the steps sweep
        r = arena.evaluate(pgd_run(arena, loss=loss, norm=norm, eps=eps, steps=max(steps_list), step_size=a,
                                   targeted=False, trace=a == step_size)["x_adv"])
        by_size[a] = (r["ASR-1"], r["EROC"])
    by_steps = {}
    for t in steps_list:
        out = pgd_run(arena, loss=loss, norm=norm, eps=eps, steps=t, step_size=step_size, targeted=False,
                      trace=t == max(steps_list))
        by_steps[t] = arena.evaluate(out["x_adv"])["ASR-1"]
        if "trace" in out:
            trace = out["trace"]
    tau = arena.tau[arena.ps[0]]
    elig = (arena.clean[0] == arena.y) & (arena.clean[1] <= tau[arena.clean[0]])
    return {"step sizes": by_size, "steps": by_steps, "trace": trace[:, elig].float().mean(1)}


def attacked_points(ds, n: int, seed: int = 0):
    """The chapter's evaluation points: a stratified subset of ``n`` test images fixed by ``seed``, and the
    held-out benign images that set the thresholds: the validation images plus every test image not attacked.
    Returns (x, y, x_heldout)."""
    from .data import stratified_split

    n = min(n, len(ds.y_test))
    if n >= len(ds.y_test):
        rest, chosen = np.array([], dtype=int), np.arange(len(ds.y_test))
    elif n >= ds.num_classes:
        rest, chosen = stratified_split(ds.y_test.numpy(), n, seed=seed)
    else:  # fewer points than classes: a seeded random choice
        order = np.random.default_rng(seed).permutation(len(ds.y_test))
        chosen, rest = order[:n], order[n:]
    chosen = torch.as_tensor(chosen, dtype=torch.long)  # shuffled: any prefix is a fair sample
    x_heldout = torch.cat([ds.x_val, ds.x_test[torch.as_tensor(rest, dtype=torch.long)]])
    return ds.x_test[chosen], ds.y_test[chosen], x_heldout
