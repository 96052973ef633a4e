"""The attack suite of the head-to-head chapter (book layer): which attacks run on which defence, and their
adversarial examples through the artefact cache.

**Success.** Against a defence with per-class thresholds tau (at the first FPR of the arena, 1% false positives
of held-out benign data), an adversarial example succeeds when it is misclassified and not rejected - the
:class:`~advdetect.objectives.Criterion` of the arena. Every attack keeps, per sample, its best iterate by that
criterion, and combining runs (several losses, step sizes, targets) keeps the per-sample best
(:func:`advdetect.evaluation.best_of`) - at least as strong as the paper's worst case over whole runs.

Every white-box attack runs each defence's paper objective and the composite loss of
:mod:`advdetect.objectives`. **Attacks:** ``pgd`` (the engine, any norm), ``mim`` (:func:`advdetect.attacks.mim`,
decay 0.9), ``fgsm`` (:func:`advdetect.attacks.fgsm`), ``cw`` (CW-L2: :func:`advdetect.attacks.penalty_search`
on :func:`advdetect.objectives.penalised`, success within the L2 budget), ``multi-targeted`` (Tramer et al.
2020: the composite targeted loss for every target class, best over targets), ``transfer`` (PGD on a surrogate
classifier), and the adapters of :mod:`advdetect.blackbox`: ``nes``, ``hsj`` and ``autoattack``.

:func:`attack_specs` turns a chapter's settings into the list of attacks; :func:`run_suite` runs them on every
defence; :mod:`advdetect.reports` tabulates the result.
"""

from __future__ import annotations

import io
import multiprocessing
import queue
import time
from dataclasses import dataclass
from typing import Mapping

import torch

from . import attacks, blackbox
from .artefacts import attack_examples, memo
from .evaluation import Arena, best_per_p
from .objectives import Criterion, objective, penalised
from .runtime import check_precision, device_of, progress_bar

#: what a cached attack holds; bumped when that changes, so that older entries are not read as the new kind
#: (2: a PGD run also keeps, per other operating point, the first iterate that met its thresholds)
SCHEMA = 2
METHODS = ("pgd", "mim", "fgsm", "cw", "multi-targeted", "transfer", "nes", "hsj", "autoattack")
BLACK_BOX = ("transfer", "nes", "hsj")


def losses_for(defence) -> list[str]:
    """The losses every white-box attack runs against ``defence``: its paper objective and the composite."""
    return list(dict.fromkeys([defence.paper_objective, "composite"]))


#: compute seconds of the cached attack results read since :func:`metered` began (NaN once one came without)
_LEDGER = [0.0]


def _cached(cache, arena: Arena, run: Mapping, compute) -> dict:
    """One attack's result for ``arena``, computed once: keyed by the defence's weights, the attacked points and
    labels, the held-out images, the FPRs, the seed, the attack ``run`` and :data:`SCHEMA`. The result keeps the
    seconds its computation took (``compute seconds``), which :func:`metered` adds up whether the result was
    computed now or read from the cache (a result cached before this was recorded has none: NaN)."""
    def timed():
        started = time.perf_counter()
        out = dict(compute())
        out["compute seconds"] = time.perf_counter() - started
        return out

    out = memo(cache, "suite_attack", {"defence": arena.defence, "x": arena.x, "y": arena.y,
                                       "heldout": arena.x_heldout, "ps": list(arena.ps), "seed": arena.seed,
                                       "run": dict(run), "schema": SCHEMA}, timed)
    _LEDGER[0] += float(out.get("compute seconds", float("nan")))
    return out


def metered(fn, *args, **kwargs) -> tuple:
    """``fn(*args, **kwargs)`` and the seconds of computation behind the cached attack results it read:
    ``(its result, seconds)`` - what it costs from an empty cache, even where this call only loaded them (NaN
    where a result was cached before its time was recorded)."""
    saved, _LEDGER[0] = _LEDGER[0], 0.0
    try:
        out = fn(*args, **kwargs)
    finally:
        spent = _LEDGER[0]
        _LEDGER[0] = saved + spent
    return out, spent


# ------------------------------------------------------------------------------------------ white-box attacks

_ENGINE = {"pgd": attacks.attack, "mim": attacks.mim, "fgsm": attacks.fgsm}


def pgd_run(cache, arena: Arena, *, loss: str, eps: float, targeted: bool, method: str = "pgd", norm: str = "linf",
            steps: int = 1, step_size: float | None = None, rule: str = "steepest", random_start: bool = False,
            restarts: int = 1, trace: bool = False, target_offset: int | None = None, batch_size: int = 500,
            p: float | None = None, precision: str | None = None) -> dict:
    """One run of the engine (``method``: ``pgd``, ``mim`` or ``fgsm``; cached) on the arena's criterion at the
    thresholds of ``p``% false positives (default: the first p): ``{"x_adv", "also"}``, where ``also`` holds,
    for each other p of the arena, the first iterate that succeeded at tau_p (or the run's best; see
    :func:`candidates`), and with ``trace`` also ``"trace"``: (steps, N) which samples had succeeded after each
    step. A targeted run aims at the arena's random targets, or with ``target_offset`` r at the classes
    (y + r) mod K. ``precision`` (default: the arena's) is the arithmetic of its forward passes
    (:func:`advdetect.objectives.objective`); a bfloat16 run is cached apart from a float32 one."""
    if method not in _ENGINE:
        raise ValueError(f"unknown engine attack {method!r}: choose one of {', '.join(_ENGINE)}")
    run = {"method": method, "loss": loss, "eps": eps, "targeted": targeted, "random_start": random_start,
           "restarts": restarts, "trace": trace}
    if method != "fgsm":
        run.update(norm=norm, steps=steps, step_size=step_size, **({"rule": rule} if method == "pgd" else {}))
    if target_offset is not None:
        run["target_offset"] = int(target_offset)
    if p is not None and p != arena.ps[0]:
        run["p"] = p
    precision = arena.precision if precision is None else precision
    if precision != "fp32":
        run["precision"] = precision

    def compute():
        dev = arena.device
        targets = (arena.targets if target_offset is None
                   else (arena.y + target_offset) % arena.defence.num_classes)
        labels = (arena.y.to(dev), targets.to(dev)) if targeted else arena.y.to(dev)
        kw = dict(random_start=random_start, restarts=restarts, early_stop=True, trace=trace,
                  batch_size=batch_size, generator=torch.Generator().manual_seed(arena.seed))
        if method != "fgsm":
            kw.update(norm=norm, steps=steps, step_size=step_size)
        if method == "pgd":
            kw["rule"] = rule
        aim = arena.ps[0] if p is None else p
        others = [arena.criterion(q).to(dev) for q in arena.ps if q != aim]
        res = _ENGINE[method](objective(arena.defence, loss, arena.criterion(p).to(dev), targeted,
                                        also=others, precision=precision), arena.x.to(dev), labels, eps=eps, **kw)
        out = {"x_adv": res.x_adv.cpu(),
               "also": (res.also.cpu() if res.also is not None else arena.x.new_zeros((0, *arena.x.shape)))}
        if trace:
            out["trace"] = res.trace.cpu()
        return out

    return _cached(cache, arena, run, compute)


def candidates(run: Mapping) -> list[torch.Tensor]:
    """The adversarial examples a run of :func:`pgd_run` offers :func:`advdetect.evaluation.best_per_p`: its
    best iterate and the first iterate that met each other operating point's thresholds."""
    return [run["x_adv"], *run["also"]]


def _resolve(arena: Arena, losses) -> list[str]:
    """``losses`` with ``"paper"`` replaced by the arena's defence's paper objective, without repeats."""
    return list(dict.fromkeys(arena.defence.paper_objective if loss == "paper" else loss for loss in losses))


def fixed_applies(fixed_step: float | None, fixed_for, defence: str | None) -> bool:
    """Whether a white-box or multi-targeted spec's fixed-step run (``fixed_step``, ``fixed_for``) is made on
    the defence named ``defence``: a step is given, and ``fixed_for`` is None (every defence) or names it."""
    return fixed_step is not None and (fixed_for is None or defence in fixed_for)


def more_losses_for(more_losses, defence: str | None) -> list[str]:
    """The losses a multi-targeted spec's ``more_losses`` (defence name -> losses) adds on ``defence``."""
    return list((more_losses or {}).get(defence, []))


def white_box_runs(arena: Arena, *, method: str, norm: str, eps: float, targeted: bool = False, steps: int = 100,
                   step_sizes=(0.01,), losses=None, fixed_step: float | None = None, fixed_steps: int | None = None,
                   fixed_for=None, p: float | None = None, **kwargs) -> list[dict]:
    """The runs of :func:`white_box` aimed at the operating point ``p`` (default: the arena's first), each as the
    keywords of one :func:`pgd_run` call: one per loss and step size, and with ``fixed_step`` the paper
    objective under ``fixed_steps`` (default: ``steps``) fixed steepest steps from the clean input - on every
    defence, or with ``fixed_for`` (defence names) on those only."""
    if fixed_step is not None and method != "pgd":
        raise ValueError(f"fixed_step is a second step rule for PGD, not for {method!r}")
    losses = losses_for(arena.defence) if losses is None else _resolve(arena, losses)
    common = dict(method=method, norm=norm, eps=eps, steps=steps, targeted=targeted, p=p)
    runs = [{**common, "loss": loss, "step_size": a, **kwargs}
            for loss in losses for a in ([None] if method == "fgsm" else step_sizes)]
    if fixed_applies(fixed_step, fixed_for, arena.defence.name):
        plain = {k: v for k, v in kwargs.items() if k not in ("rule", "random_start")}
        runs.append({**common, "method": "pgd", "loss": arena.defence.paper_objective, "step_size": fixed_step,
                     "rule": "steepest", "random_start": False, **plain,
                     **({"steps": int(fixed_steps)} if fixed_steps else {})})
    return runs


def white_box(cache, arena: Arena, *, method: str, norm: str, eps: float, targeted: bool = False, steps: int = 100,
              step_sizes=(0.01,), losses=None, fixed_step: float | None = None, fixed_steps: int | None = None,
              fixed_for=None, **kwargs) -> dict:
    """The adversarial examples of ``method`` (``pgd``, ``mim``, ``fgsm``) aimed at each operating point: for
    every p of ``arena.attack_ps`` one run per loss (default :func:`losses_for`; ``"paper"`` stands for the
    defence's paper objective) and step size (FGSM has one
    step of size eps) on the thresholds of p, and with ``fixed_step`` one more run of the paper objective:
    ``fixed_steps`` (default: ``steps``) steepest steps of that size from the clean input, on every defence or on
    those ``fixed_for`` names (the fixed small steps of most papers' PGD; an adaptive
    rule's first step of 2 eps, or a random start, can carry an input into a region it does not leave, as
    on ARCLU, whose training sends perturbed inputs to its adversarial cluster); per p of the arena the
    per-sample best over all runs (:func:`advdetect.evaluation.best_per_p`; the runs: :func:`white_box_runs`).
    Returns ``{p: examples}``."""
    runs = {p: [xa for run in white_box_runs(arena, method=method, norm=norm, eps=eps, targeted=targeted,
                                             steps=steps, step_sizes=step_sizes, losses=losses,
                                             fixed_step=fixed_step, fixed_steps=fixed_steps, fixed_for=fixed_for,
                                             p=p, **kwargs)
                for xa in candidates(pgd_run(cache, arena, **run))]
            for p in arena.attack_ps}
    return best_per_p(arena, runs)


def multi_targeted(cache, arena: Arena, *, norm: str, eps: float, steps: int, step_size: float,
                   random_start: bool = True, rule: str = "steepest", losses=("composite",), more_losses=None,
                   fixed_step: float | None = None, fixed_steps: int | None = None, fixed_for=None) -> dict:
    """Tramer et al. 2020's multi-targeted attack on any defence: for each of the K-1 other classes t, first
    make the defence predict t, then lower the score below tau_t (the targeted composite loss; ``losses`` may
    add others, ``"paper"`` standing for the defence's paper objective in its targeted form; ``more_losses``, a
    mapping of defence names to losses, adds losses on the defences it names); with
    ``fixed_step``, also each target's run of the targeted paper objective under ``fixed_steps`` (default:
    ``steps``) fixed steepest steps of that size from the clean input, on every defence or on those ``fixed_for``
    names (the step rule of the papers' own PGD; see :func:`white_box`); per sample the best over targets and
    runs, aimed at each p of ``arena.attack_ps``. Each target's run is a cached :func:`pgd_run`. Returns ``{p:
    examples}``."""
    extra = more_losses_for(more_losses, arena.defence.name)
    kinds = [dict(loss=loss, steps=steps, step_size=step_size, random_start=random_start, rule=rule)
             for loss in _resolve(arena, [*losses, *extra])]
    if fixed_applies(fixed_step, fixed_for, arena.defence.name):
        kinds.append(dict(loss=arena.defence.paper_objective, steps=int(fixed_steps or steps), step_size=fixed_step,
                          random_start=False, rule="steepest"))
    runs = {p: [xa for kind in kinds for r in range(1, arena.defence.num_classes)
                for xa in candidates(pgd_run(cache, arena, norm=norm, eps=eps, targeted=True, target_offset=r, p=p,
                                             **kind))]
            for p in arena.attack_ps}
    return best_per_p(arena, runs)


def cw_target(arena: Arena, p: float, kappa: float) -> torch.Tensor:
    """The per-class score CW aims below at the operating point ``p``: ``kappa`` of the way from tau_p down to
    the median held-out score of the class (CW's confidence margin, in the defence's own units: 0 aims at the
    threshold itself, 1 at a typical benign image of the class). Benign images reach it, whatever the shape of
    the score's distribution - a margin in standard deviations of the pooled scores can lie below every score
    a skewed score (the softmax confidence's) takes, so that no attack could reach it. Classes without held-out
    images keep tau_p."""
    pred, score = arena.heldout
    tau = arena.tau[p].to(score.dtype)
    medians = torch.stack([score[pred == c].median() if bool((pred == c).any()) else tau[c]
                           for c in range(len(tau))])
    return torch.where(torch.isfinite(tau), tau - kappa * (tau - medians).clamp_min(0), tau)


def cw_l2(cache, arena: Arena, *, eps: float, searches: int = 5, steps: int = 100, lr: float = 0.01,
          c_init: float = 1.0, loss: str = "composite", kappa: float = 0.0, rule: str = "adam") -> dict:
    """Carlini & Wagner's L2 attack adapted to the defence, aimed at each p of ``arena.attack_ps``: Adam
    (learning rate ``lr``; or L2-normalised steps of length ``lr`` with ``rule="steepest"``, see
    :func:`advdetect.attacks.penalty_search`) on the perturbation of ||delta||_2^2 + c * max(loss, 0), with a binary search on c
    over ``searches`` rounds (start ``c_init``; times 10 while no round has succeeded), where success means
    misclassified with a score under :func:`cw_target` (``kappa`` of the way from tau_p to the class's median
    held-out score: CW's confidence margin, so that the smallest successful perturbation lies below the
    threshold, not on it). Keeps per sample the smallest such perturbation and counts it only within the L2
    budget ``eps``; a sample without one keeps the input (a failure). The search also watches every operating
    point's own thresholds (no margin) and keeps, per sample and p, the smallest perturbation among each round's
    first iterates under tau_p, within the budget too: a candidate where the margin is out of reach but the
    threshold is not. Cached. Returns ``{p: examples}`` (:func:`advdetect.evaluation.best_per_p`)."""
    runs = {}
    for p in arena.attack_ps:
        run = {"method": "cw", "eps": eps, "searches": searches, "steps": steps, "lr": lr, "c": c_init,
               "loss": loss, "kappa": kappa, "margin": "towards the class median", "p": p,
               "watched": "every p's thresholds", **({"rule": rule} if rule != "adam" else {}),
               **({"precision": arena.precision} if arena.precision != "fp32" else {})}

        def compute(p=p):
            dev = arena.device
            x, y = arena.x.to(dev), arena.y.to(dev)
            criterion = Criterion(cw_target(arena, p, kappa)).to(dev)
            fn = penalised(arena.defence, loss, criterion, penalty_on="loss",
                           also=[arena.criterion(q).to(dev) for q in arena.ps], precision=arena.precision)
            best_x, best_l2, also_x, also_l2 = attacks.penalty_search(
                fn, x, y, rounds=searches, steps=steps, lr=lr, c_init=c_init, penalty_on="loss", batch_size=500,
                rule=rule)
            within = [(best_x, best_l2)] + [(also_x[j], also_l2[:, j]) for j in range(len(also_x))]
            return {"x_adv": torch.stack([torch.where((d <= eps + 1e-6)[:, None, None, None], xa, x)
                                          for xa, d in within]).cpu()}

        runs[p] = list(_cached(cache, arena, run, compute)["x_adv"])
    return best_per_p(arena, runs)


# --------------------------------------------------------------------------------- black-box and AutoAttack

def nes(cache, arena: Arena, **kwargs) -> torch.Tensor:
    """:func:`advdetect.blackbox.nes`, cached."""
    return _cached(cache, arena, {"method": "nes", **kwargs},
                   lambda: {"x_adv": blackbox.nes(arena, **kwargs)})["x_adv"]


def hsj_run(cache, arena: Arena, **kwargs) -> dict:
    """:func:`advdetect.blackbox.hsj`, cached: the defence in float32, remembering its decisions; should foolbox
    still find a decision that changed on a second look (its assertion), the run is made again in float64.
    Returns ``{"x_adv": .., "precision": the arithmetic it was made in}``."""
    def compute():
        try:
            return {"x_adv": blackbox.hsj(arena, precision="float32", **kwargs), "precision": "float32"}
        except AssertionError:
            return {"x_adv": blackbox.hsj(arena, precision="float64", **kwargs), "precision": "float64"}

    return _cached(cache, arena, {"method": "hsj", "precision": "float32, remembered", **kwargs}, compute)


def hsj(cache, arena: Arena, **kwargs) -> torch.Tensor:
    """The adversarial examples of :func:`hsj_run`."""
    return hsj_run(cache, arena, **kwargs)["x_adv"]


def autoattack(cache, arena: Arena, **kwargs) -> dict:
    """:func:`advdetect.blackbox.autoattack`, cached with AutoAttack's own checks: ``{"x_adv", "checks"}``."""
    run = {"method": "autoattack", "checks kept": True,
           **{k: list(v) if isinstance(v, (list, tuple)) else v for k, v in kwargs.items()}}

    def compute():
        checks: list = []
        x_adv = blackbox.autoattack(arena, checks=checks, **kwargs)
        return {"x_adv": x_adv, "checks": sorted(set(checks))}

    return _cached(cache, arena, run, compute)


# ------------------------------------------------------------------------------------------------ the suite

def surrogate_examples(cache, surrogate, x: torch.Tensor, y: torch.Tensor, *, norm: str, eps: float, steps: int,
                       step_size: float) -> torch.Tensor:
    """The transfer attack's examples: untargeted CW-margin PGD with random start on the surrogate classifier (a
    :class:`~advdetect.defences.ClassifierDefence`; cached)."""
    dev = device_of(surrogate)
    return attack_examples(cache, surrogate, "margin", x.to(dev), y.to(dev),
                           {"norm": norm, "eps": eps, "steps": steps, "step_size": step_size, "rule": "steepest",
                            "random_start": True}, purpose="transfer")


def run_spec(cache, arena: Arena, spec: Mapping, surrogate_x: Mapping | None = None):
    """One attack of the suite, described by ``spec`` (``method`` and its keywords; see :func:`attack_specs`):
    ``{"x_adv": its adversarial examples (or {p: examples}), "checks": AutoAttack's own warnings, else []}``,
    and for HopSkipJump ``"arithmetic"``: float32, or float64 where its fallback ran."""
    s = dict(spec)
    method = s.pop("method")
    for key in ("name", "table", "n"):
        s.pop(key, None)
    if method == "autoattack":
        return autoattack(cache, arena, **s)
    if method in ("pgd", "mim", "fgsm"):
        x_adv = white_box(cache, arena, method=method, **s)
    elif method == "multi-targeted":
        x_adv = multi_targeted(cache, arena, **s)
    elif method == "cw":
        x_adv = cw_l2(cache, arena, **s)
    elif method == "transfer":  # adversarial examples crafted on a surrogate, applied unchanged
        x_adv = surrogate_x[(s["norm"], s["eps"])]
    elif method == "nes":
        x_adv = nes(cache, arena, **s)
    elif method == "hsj":
        out = hsj_run(cache, arena, **s)
        return {"x_adv": out["x_adv"], "checks": [], "arithmetic": out["precision"]}
    else:
        raise ValueError(f"unknown attack method {method!r}: choose one of {', '.join(METHODS)}")
    return {"x_adv": x_adv, "checks": []}


def attack_name(norm: str, eps: float) -> str:
    """ARCLU's label of a threat model: ``Linf 0.3``, ``L2 2.0``, ``L1 15``, ``L0 25``."""
    return {"linf": "Linf", "l2": "L2", "l1": "L1", "l0": "L0"}[norm] + (f" {eps:.1f}" if norm == "l2" else f" {eps:g}")


def _step(p: Mapping, norm: str, eps: float) -> dict:
    """The step rule and sizes of a white-box attack within (``norm``, ``eps``): APGD's adaptive step from 2 eps
    where the chapter's ``RULE`` is ``apgd`` and the norm is L-inf or L2, else steepest descent at every size of
    ``STEP_SIZES[norm]`` (per-sample best over the sizes)."""
    if p.get("RULE", "steepest") == "apgd" and norm in ("linf", "l2"):
        return {"rule": "apgd", "step_sizes": [2 * eps]}
    return {"step_sizes": list(p["STEP_SIZES"][norm])}


def attack_specs(p: Mapping) -> list[dict]:
    """The chapter's attacks from its settings ``p`` (the names of the ``adaptive`` chapter of
    :mod:`advdetect.profiles`). Each spec has a ``name`` (ARCLU's row label), the ``table`` it belongs to
    (2: white-box PGD, 4: other white-box methods, "mt": multi-targeted, 3: black-box, "sanity": unbounded
    budgets, "apgd": APGD's step rule on each defence's own losses, "aa": AutoAttack), optionally ``n`` (the
    attack runs on the first n attacked points only: CW, the multi-targeted attack, the unbounded budgets, the
    black-box attacks, the APGD check and AutoAttack) and
    the keywords of :func:`run_spec`. The white-box attacks of Tables 2 and 4 run the losses ``LOSSES``
    (``"paper"`` standing for each defence's paper objective; default: the paper objective and the
    composite loss), except on the threat models of ``DEEP_BUDGETS``, where they run ``DEEP_LOSSES`` for
    ``DEEP_STEPS`` steps, and where their rule is APGD's, also the paper objective under fixed steepest steps of
    ``DEEP_FIXED_STEP`` eps from the clean input (:func:`white_box`'s ``fixed_step``; ``DEEP_FIXED_STEPS`` of
    them, default ``DEEP_STEPS``) on the threat models of ``DEEP_FIXED_BUDGETS`` (default: every deep one),
    untargeted only unless ``DEEP_FIXED_TARGETED``, and on the defences ``DEEP_FIXED_DEFENCES`` names (default:
    every one). The unbounded sanity budgets take ``SANITY_STEPS`` steepest
    steps of each of
    ``SANITY_STEP_SIZES`` (an unbounded ball is crossed only by many steps); the multi-targeted attack takes
    ``MT_STEPS`` steps per target with each loss of ``MT_LOSSES`` (default: the composite; ``MT_MORE_LOSSES``
    adds losses on the defences it names) and, within L-inf
    budgets, on the defences ``MT_FIXED_DEFENCES`` names (None: every one; absent or empty: none), each target's
    paper objective under the fixed-step run's steps (``DEEP_FIXED_STEP``, ``DEEP_FIXED_STEPS``); the APGD
    check starts from a random point of the ball, so that it is a second run beside the suite's own APGD, and
    runs in float32 whatever the suite's precision, so that it also checks what bfloat16 gradients leave."""
    specs = []
    steps = p["STEPS"]
    losses = p.get("LOSSES")
    wb = {} if losses is None else {"losses": list(losses)}
    deep = {(n, float(e)) for n, e in p.get("DEEP_BUDGETS", [])}
    fixed = {(n, float(e)) for n, e in p.get("DEEP_FIXED_BUDGETS", p.get("DEEP_BUDGETS", []))}
    for norm, eps in p["BUDGETS"]:
        for targeted in (True, False):
            step = _step(p, norm, eps)
            depth = ({"steps": p["DEEP_STEPS"], "losses": list(p["DEEP_LOSSES"])} if (norm, float(eps)) in deep
                     else {"steps": steps, **wb})
            if ((norm, float(eps)) in deep and (norm, float(eps)) in fixed and step.get("rule") == "apgd"
                    and p.get("DEEP_FIXED_STEP") and (not targeted or p.get("DEEP_FIXED_TARGETED", True))):
                depth["fixed_step"] = p["DEEP_FIXED_STEP"] * eps
                if p.get("DEEP_FIXED_STEPS"):
                    depth["fixed_steps"] = int(p["DEEP_FIXED_STEPS"])
                if p.get("DEEP_FIXED_DEFENCES") is not None:
                    depth["fixed_for"] = list(p["DEEP_FIXED_DEFENCES"])
            specs.append({"name": f"PGD {attack_name(norm, eps)}, {'T' if targeted else 'U'}", "table": 2,
                          "method": "pgd", "norm": norm, "eps": eps, "targeted": targeted, **step, **depth})
    cw_eps = p["CW_EPS"]
    specs.append({"name": f"CW {attack_name('l2', cw_eps)}", "table": 4, "method": "cw", "eps": cw_eps,
                  "searches": p["CW_SEARCHES"], "steps": p["CW_STEPS"], "lr": p["CW_LR"],
                  "kappa": p.get("CW_KAPPA", 0.0), "rule": p.get("CW_RULE", "adam"), "c_init": p.get("CW_C", 1.0),
                  **({"n": p["CW_N"]} if "CW_N" in p else {})})
    specs.append({"name": f"MIM Linf {p['MIM_EPS']:g}", "table": 4, "method": "mim", "norm": "linf",
                  "eps": p["MIM_EPS"], "steps": steps, "step_sizes": list(p["STEP_SIZES"]["linf"]), **wb})
    specs.append({"name": f"FGSM Linf {p['MIM_EPS']:g}", "table": 4, "method": "fgsm", "norm": "linf",
                  "eps": p["MIM_EPS"], **wb})
    for norm, eps in p["MT_BUDGETS"]:
        step = _step(p, norm, eps)
        mt_fixed = {}
        if norm == "linf" and p.get("DEEP_FIXED_STEP") and p.get("MT_FIXED_DEFENCES", []) != []:
            mt_fixed = {"fixed_step": p["DEEP_FIXED_STEP"] * eps,
                        **({"fixed_steps": int(p["DEEP_FIXED_STEPS"])} if p.get("DEEP_FIXED_STEPS") else {}),
                        **({"fixed_for": list(p["MT_FIXED_DEFENCES"])} if p.get("MT_FIXED_DEFENCES") is not None
                           else {})}
        specs.append({"name": f"Multi-targeted {attack_name(norm, eps)}", "table": "mt", "method": "multi-targeted",
                      "norm": norm, "eps": eps, "steps": p["MT_STEPS"], "step_size": step["step_sizes"][0],
                      "rule": step.get("rule", "steepest"), **({"n": p["MT_N"]} if "MT_N" in p else {}),
                      **({"losses": list(p["MT_LOSSES"])} if "MT_LOSSES" in p else {}),
                      **({"more_losses": {d: list(v) for d, v in p["MT_MORE_LOSSES"].items()}}
                         if p.get("MT_MORE_LOSSES") else {}), **mt_fixed})
    for norm, eps in p["SANITY_BUDGETS"]:
        step = {"step_sizes": list(p["SANITY_STEP_SIZES"][norm])}
        specs.append({"name": f"PGD {attack_name(norm, eps)}, U", "table": "sanity", "method": "pgd", "norm": norm,
                      "eps": eps, "targeted": False, "steps": p.get("SANITY_STEPS", steps), **step, **wb,
                      **({"n": p["SANITY_N"]} if "SANITY_N" in p else {})})
    specs.append({"name": f"Transfer {attack_name('linf', p['BB_LINF'])}", "table": 3, "method": "transfer",
                  "norm": "linf", "eps": p["BB_LINF"]})
    for norm, eps in (("linf", p["BB_LINF"]), ("l2", p["BB_L2"])):
        specs.append({"name": f"NES {attack_name(norm, eps)}", "table": 3, "method": "nes", "norm": norm,
                      "eps": eps, "steps": p["NES_STEPS"], "step_size": p["NES_STEP"][norm],
                      "sigma": p["NES_SIGMA"], "samples": p["NES_SAMPLES"], "n": p["N_BLACKBOX"]})
    for norm, eps in (("linf", p["BB_LINF"]), ("l2", p["BB_L2"])):
        specs.append({"name": f"HopSkipJump {attack_name(norm, eps)}", "table": 3, "method": "hsj", "norm": norm,
                      "eps": eps, "steps": p["HSJ_STEPS"], "initial_evals": p["HSJ_EVALS"], "n": p["N_BLACKBOX"]})
    for norm, eps in p["APGD_BUDGETS"]:   # the independent check: Croce & Hein's step rule on each defence's losses
        specs.append({"name": f"APGD {attack_name(norm, eps)}, U", "table": "apgd", "method": "pgd", "norm": norm,
                      "eps": eps, "targeted": False, "steps": p["APGD_STEPS"], "step_sizes": [2 * eps],
                      "rule": "apgd", "random_start": True, "n": p.get("N_SUBSET", p["N_TEST"]), "precision": "fp32",
                      **({"losses": list(p["APGD_LOSSES"])} if "APGD_LOSSES" in p else {})})
    for norm, eps in p["AA_BUDGETS"]:
        aa = {"version": p["AA_VERSION"]}
        if p["AA_VERSION"] == "custom":
            aa.update(attacks_to_run=["apgd-ce", "apgd-t"], n_iter=p["AA_ITER"], n_target_classes=p["AA_TARGETS"])
        specs.append({"name": f"AutoAttack {attack_name(norm, eps)}", "table": "aa", "method": "autoattack",
                      "norm": norm, "eps": eps, "n": p.get("AA_N", p["N_TEST"]), **aa})
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
    of :meth:`Arena.evaluate` plus ``n`` (points attacked), ``seconds`` and ``checks`` (AutoAttack's own
    warnings, else empty); ``arenas`` the main arena of each
    defence, ``specs`` the attacks."""

    results: dict
    arenas: dict
    specs: list

    def get(self, defence: str, attack: str, metric: str = "ASR-1") -> float:
        return self.results[(defence, attack)][metric]

    @property
    def defences(self) -> list[str]:
        return list(self.arenas)


def run_suite(cache, defences: Mapping, x: torch.Tensor, y: torch.Tensor, x_heldout: torch.Tensor,
              specs: list, *, surrogate_x: Mapping, ps=(1, 2, 5, 10), attack_ps=None, seed: int = 0,
              progress: bool = True, workers: int = 1, follow_up: Mapping | None = None,
              precision: str | Mapping = "fp32") -> SuiteResult:
    """Run every attack of ``specs`` on every defence (adversarial examples cached per defence, attack and
    budget) and evaluate them. The white-box attacks aim at each p of ``attack_ps`` (default: every p) with
    runs of their own, and every p is scored by the best example of any of those runs under its thresholds; the
    black-box attacks and AutoAttack aim at the first p. A spec with ``n`` runs on the first n points only
    (:meth:`~advdetect.evaluation.Arena.subset`: the same thresholds).

    With ``workers`` > 1 (at most this process's number of threads) the attacks are computed in that many
    processes at once, each with its share of the threads (a small CNN's attack step keeps two threads busy
    only part of the time): every (defence, attack) pair is one task, handed to the next free process, the
    costliest first (:func:`_task_cost`), so that one costly defence's attacks are shared out too. The
    processes fill the artefact cache, and this process then evaluates from it. ``follow_up`` (keywords
    ``n``, ``steps``, ``size_steps``, ``step_sizes``, ``protocol_steps`` and optionally ``protocol_eps`` and
    ``budget``, the study's (norm, eps), default L-inf 0.3) has the processes also compute, as tasks of their
    own, each defence's paper protocols (:func:`paper_protocol` on the first ``n`` points) and, once its Table 2
    attacks within ``budget`` are done, its convergence study (:func:`convergence_study`), which the chapter
    then reads from the cache. ``seconds`` is each attack's
    compute time either way. ``precision`` is the arithmetic of the gradient attacks' forward passes (the
    arenas'; ``bf16``: bfloat16 gradients, success judged in float32 - see :class:`~advdetect.evaluation.Arena`),
    one for every defence or ``{defence: precision}`` (float32 for those it does not name); the black-box
    attacks, AutoAttack, the papers' own protocols and a spec that names its own ``precision`` (the APGD check)
    run as they say."""
    precisions = _precisions(precision, defences)
    seconds, done = {}, {}
    workers = min(workers, torch.get_num_threads())
    if workers > 1 and (len(defences) > 1 or len(specs) > 1):
        seconds, done = _in_parallel(cache, defences, x, y, x_heldout, specs, surrogate_x=surrogate_x, ps=ps,
                                     attack_ps=attack_ps, seed=seed, progress=progress, workers=workers,
                                     follow=follow_up, precision=precisions)
    arenas = {name: _arena(cache, d, x, y, x_heldout, ps, seed, attack_ps, precisions[name])
              for name, d in defences.items()}
    results = _evaluate(cache, arenas, specs, surrogate_x, seconds, progress=progress and not seconds, done=done)
    return SuiteResult(results, arenas, list(specs))


def _precisions(precision: str | Mapping, defences: Mapping) -> dict:
    """Each defence's attack precision from :func:`run_suite`'s ``precision`` (a name fails early)."""
    if isinstance(precision, str):
        return {name: check_precision(precision) for name in defences}
    unknown = set(precision) - set(defences)
    if unknown:
        raise ValueError(f"precision names defences the suite does not attack: {', '.join(sorted(unknown))} "
                         f"(choose among {', '.join(defences)})")
    return {name: check_precision(precision.get(name, "fp32")) for name in defences}


def _evaluate(cache, arenas: Mapping, specs, surrogate_x, seconds: Mapping, progress: bool = False,
              done: Mapping | None = None) -> dict:
    """Every spec run (or read from the cache) on every arena and evaluated: the ``results`` of a
    :class:`SuiteResult`, ``seconds`` taken from ``seconds`` where it has the pair; pairs already evaluated
    (``done``: by the worker processes) are taken as they are."""
    done = {} if done is None else done
    results = {}
    bar = progress_bar([(d, s) for d in arenas for s in specs], enabled=progress, desc="attack suite")
    for name, spec in bar:
        bar.set_postfix_str(f"{name}: {spec['name']}")
        if (name, spec["name"]) in done:
            r = done[(name, spec["name"])]
        else:
            started = time.perf_counter()
            r = _evaluate_one(cache, arenas[name], spec, surrogate_x)
            r["seconds"] = time.perf_counter() - started
        if (name, spec["name"]) in seconds:
            r["seconds"] = seconds[(name, spec["name"])]
        results[(name, spec["name"])] = r
    return results


def _evaluate_one(cache, arena: Arena, spec: Mapping, surrogate_x) -> dict:
    """One (defence, attack) of the suite, run (or read from the cache) and evaluated on its arena (the first
    ``n`` points where the spec has ``n``): :meth:`Arena.evaluate`'s dict plus ``n``, ``checks``, ``compute
    seconds`` and, where the run says it (HopSkipJump), its ``arithmetic``."""
    arena = arena.subset(spec["n"]) if "n" in spec else arena
    out, spent = metered(run_spec, cache, arena, spec, surrogate_x)
    r = arena.evaluate(out["x_adv"])
    r.update(n=len(arena.x), checks=list(out["checks"]), **{"compute seconds": spent},
             **({"arithmetic": out["arithmetic"]} if "arithmetic" in out else {}))
    return r


def heldout_decisions(cache, defence, x_heldout: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``defence.decide(x_heldout)``, cached under the defence's weights and the held-out images: every process
    of a suite run, and every later run, builds its arenas from them instead of deciding ~20,000 images again."""
    out = memo(cache, "heldout_decisions", {"defence": defence, "heldout": x_heldout},
               lambda: dict(zip(("pred", "score"), defence.decide(x_heldout))))
    return out["pred"], out["score"]


def _arena(cache, defence, x, y, x_heldout, ps, seed, attack_ps, precision) -> Arena:
    return Arena(defence, x, y, x_heldout, tuple(ps), seed, attack_ps, precision,
                 decided_heldout=heldout_decisions(cache, defence, x_heldout))


def _step_cost(defence, x: torch.Tensor, y: torch.Tensor) -> float:
    """Seconds of one forward pass and input gradient of the composite loss on ``x`` (to order the work)."""
    xa = x.to(device_of(defence)).clone().requires_grad_(True)
    started = time.perf_counter()
    loss, _ = objective(defence, "composite")(xa, y.to(xa.device))
    torch.autograd.grad(loss.sum(), xa)
    return time.perf_counter() - started


def _task_cost(spec: Mapping, n: int, classes: int, attack_ps: int, defence: str | None = None) -> float:
    """A rough count of the attack steps (forward passes and input gradients of one image) that ``spec`` costs
    on ``n`` points against the defence named ``defence``, to hand out the costliest tasks first; only the order
    matters. A convergence study (``{"method": "convergence", ...}``) and paper protocols (``"protocol"``) are
    counted the same way."""
    m, n = spec["method"], min(n, spec.get("n", n))
    losses = spec.get("losses") or ("paper", "composite")   # the default: losses_for's two
    runs = len(losses) * len(spec.get("step_sizes", (None,)))
    fixed = (spec.get("fixed_steps") or spec.get("steps", 0)
             if fixed_applies(spec.get("fixed_step"), spec.get("fixed_for"), defence) else 0)
    if m in ("pgd", "mim"):
        return n * (spec["steps"] * runs + fixed) * attack_ps
    if m == "fgsm":
        return n * runs * attack_ps
    if m == "cw":
        return n * spec["steps"] * spec["searches"] * attack_ps
    if m == "multi-targeted":
        losses = len(spec.get("losses", ("composite",))) + len(more_losses_for(spec.get("more_losses"), defence))
        return n * (spec["steps"] * losses + fixed) * (classes - 1) * attack_ps
    if m == "nes":
        return n * spec["steps"] * spec["samples"] / 3   # forward passes only
    if m == "hsj":
        return n * spec["steps"] * spec["initial_evals"] / 3
    if m == "autoattack":
        return n * spec.get("n_iter", 100) * (1 + spec.get("n_target_classes", 9) + 5 * (spec["version"] != "custom"))
    if m == "convergence":
        return n * (spec["steps"] + spec["size_steps"] * len(spec["step_sizes"]))
    if m == "protocol":
        return n * spec["steps"] * 2
    return n   # transfer: one evaluation


def _study_budget(follow: Mapping) -> tuple[str, float]:
    """The threat model of the convergence study of a ``follow_up`` (its ``budget``, default L-inf 0.3)."""
    norm, eps = follow.get("budget", ("linf", 0.3))
    return norm, float(eps)


# state of a worker process of :func:`_in_parallel`, set once by :func:`_worker_start`
_WORKER: dict = {}


def _worker_start(state: dict) -> None:
    torch.set_num_threads(state["threads"])
    _WORKER.clear()
    _WORKER.update(state, arenas={})


def _worker_arena(name: str) -> Arena:
    w = _WORKER
    if name not in w["arenas"]:
        w["arenas"][name] = _arena(w["cache"], w["defences"][name], w["x"], w["y"], w["x_heldout"], w["ps"],
                                   w["seed"], w["attack_ps"], w["precision"][name])
    return w["arenas"][name]


def _worker_task(task: tuple) -> tuple:
    """One task of :func:`_in_parallel` in a worker: ``("attack", defence, spec name)``, ``("protocol",
    defence, None)`` or ``("convergence", defence, None)``. Returns the task, its seconds and, for an attack,
    its evaluation (:func:`_evaluate_one`, packed)."""
    kind, name, spec_name = task
    w, started = _WORKER, time.perf_counter()
    arena = _worker_arena(name)
    follow = w["follow"]
    evaluated = None
    if kind == "attack":
        evaluated = _evaluate_one(w["cache"], arena, w["specs"][spec_name], w["surrogate_x"])
    elif kind == "protocol":
        paper_protocol(w["cache"], arena.subset(follow["n"]), eps=follow.get("protocol_eps", 0.3),
                       steps=follow["protocol_steps"])
    else:
        norm, eps = _study_budget(follow)
        table2 = [s for s in w["specs"].values() if s["table"] == 2 and threat(s) == (norm, eps)]
        part = SuiteResult({}, {name: arena}, table2)
        convergence_study(w["cache"], part, name, n=follow["n"], steps=follow["steps"], norm=norm, eps=eps,
                          size_steps=follow["size_steps"], step_sizes=follow["step_sizes"])
    return task, time.perf_counter() - started, _packed(evaluated)


def _packed(obj) -> bytes | None:
    """``obj`` (an evaluation: tensors, numbers, lists, dicts) as bytes for the trip back from a worker (torch's
    own pickling of tensors between processes shares them through file descriptors, hundreds at a time)."""
    if obj is None:
        return None
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _unpacked(data: bytes | None):
    return None if data is None else torch.load(io.BytesIO(data), weights_only=True)


def _in_parallel(cache, defences: Mapping, x, y, x_heldout, specs, *, surrogate_x, ps, attack_ps, seed, progress,
                 workers: int, follow, precision: Mapping) -> tuple[dict, dict]:
    """Compute every (defence, attack) of the suite, and with ``follow`` each defence's paper protocols and
    convergence study, in ``workers`` spawned processes: a task goes to the next free process, the costliest
    ready task first (its estimated steps, :func:`_task_cost`, times the defence's measured step cost); a
    convergence study is ready once its defence's Table 2 attacks are done. ``precision`` is every defence's
    attack precision, resolved (:func:`_precisions`). Returns the seconds of every
    (defence, attack) and its evaluation (:func:`_evaluate_one`, made in the worker that ran it)."""
    threads = max(1, torch.get_num_threads() // workers)
    probe = slice(0, min(64, len(x)))
    step = {d: _step_cost(defences[d], x[probe], y[probe]) for d in defences}
    n_ps = len(ps if attack_ps is None else attack_ps)
    by_name = {s["name"]: dict(s) for s in specs}

    def cost(task):
        kind, d, name = task
        k = defences[d].num_classes
        if kind == "attack":
            return step[d] * _task_cost(by_name[name], len(x), k, n_ps, defence=defences[d].name)
        if kind == "protocol":
            return step[d] * _task_cost({"method": "protocol", "steps": follow["protocol_steps"]}, follow["n"], k, 1)
        return step[d] * _task_cost({"method": "convergence", **follow}, follow["n"], k, 1)

    ready = [("attack", d, s["name"]) for d in defences for s in specs]
    ready += [("protocol", d, None) for d in defences if follow is not None and defences[d].paper_protocol]
    table2 = {s["name"] for s in specs if s["table"] == 2 and threat(s) == _study_budget(follow or {})}
    blocked = {d: set(table2) for d in defences} if follow is not None and table2 else {}
    total = len(ready) + len(blocked)
    state = dict(cache=cache, defences=dict(defences), x=x, y=y, x_heldout=x_heldout, specs=by_name,
                 surrogate_x=dict(surrogate_x), ps=tuple(ps), attack_ps=attack_ps, seed=seed, threads=threads,
                 follow=None if follow is None else dict(follow), precision=dict(precision))
    done: queue.SimpleQueue = queue.SimpleQueue()
    seconds, evaluated, running = {}, {}, 0
    bar = progress_bar(None, enabled=progress, total=total, desc=f"attack suite ({workers} processes)")
    with multiprocessing.get_context("spawn").Pool(workers, initializer=_worker_start, initargs=(state,)) as pool:
        while ready or running:
            ready.sort(key=cost)
            while ready and running < workers:
                pool.apply_async(_worker_task, (ready.pop(),), callback=done.put, error_callback=done.put)
                running += 1
            out = done.get()
            running -= 1
            if isinstance(out, BaseException):
                pool.terminate()
                raise out
            (kind, d, name), secs, packed = out
            bar.update(1)
            bar.set_postfix_str(f"{d}: {name or kind}")
            if kind == "attack":
                seconds[(d, name)] = secs
                evaluated[(d, name)] = _unpacked(packed)
                if d in blocked and name in blocked[d]:
                    blocked[d].discard(name)
                    if not blocked[d]:
                        ready.append(("convergence", d, None))
    bar.close()
    return seconds, evaluated


def run_label(run: Mapping) -> str:
    """A reader's name for one run of :func:`white_box_runs` beside its attack's name (which says the threat
    model and the targeting): loss, step rule and (first) step size, and a random start where it has one."""
    rule = run.get("rule", "steepest")
    start = ", random start" if run.get("random_start") else ""
    size = f"{run['step_size']:.3g}" if run.get("step_size") is not None else "eps"
    return f"{run['loss']}, {rule} {size}{start}"


def worst_run(cache, result: SuiteResult, defence: str, norm: str, eps: float) -> tuple[dict, dict, float]:
    """The single run, among all the PGD runs of the suite's Table 2 attacks within (``norm``, ``eps``) (every
    loss, step rule, targeting and aimed operating point of :func:`white_box_runs`), with the largest ASR-1 on
    ``defence``, a run scored by its best candidate per image (:func:`candidates`): ``(its spec, its pgd_run
    keywords, its ASR-1)``. The runs are the suite's own, read from the cache. The per-image union of every
    attack is stronger than any run; the run is what a convergence study can trace."""
    arena = result.arenas[defence]
    specs = [s for s in result.specs if s["table"] == 2 and s["method"] == "pgd" and threat(s) == (norm, float(eps))]
    if not specs:
        raise ValueError(f"no Table 2 PGD attack of the suite works within {attack_name(norm, eps)}: choose one of "
                         + ", ".join(sorted({attack_name(*threat(s)) for s in result.specs if s["table"] == 2})))
    best = None
    for spec in specs:
        kw = {k: v for k, v in spec.items() if k not in ("name", "table", "n")}
        for p in arena.attack_ps:
            for run in white_box_runs(arena, p=p, **kw):
                found = best_per_p(arena, {p: candidates(pgd_run(cache, arena, **run))})
                asr = arena.evaluate(found)["ASR-1"]
                if best is None or asr > best[2]:
                    best = (spec, run, float(asr))
    return best


def convergence_study(cache, result: SuiteResult, defence: str, *, n: int, steps: int, size_steps: int,
                      step_sizes, norm: str = "linf", eps: float = 0.3, tolerance: float = 0.02) -> dict:
    """Has the worst-case attack on ``defence`` within (``norm``, ``eps``) converged? Its strongest single run
    (:func:`worst_run`: loss, targeting, step rule and start as the suite ran it) run again on the first ``n``
    attacked points for ``steps`` steps, aimed at the first operating point so that its trace reads ASR-1 after
    every step (:func:`convergence`; ``converged``: the last doubling of the
    steps adds at most ``tolerance`` ASR-1), and fixed-step steepest runs of the same loss and targeting, from
    the clean input, of ``size_steps`` steps at each of ``step_sizes`` (fractions of eps; ARCLU Fig 6). Also the
    ASR-1 the trace reaches at the suite's own number of steps (``at suite steps``), so that a reader sees what
    the suite's shorter runs leave, and the ``compute seconds`` of its runs (:func:`metered`). Returns the
    convergence dict plus ``attack`` (the suite's attack),
    ``run`` (:func:`run_label`), ``loss``, ``eps``, ``rule``, ``curve`` (ASR-1 after each step), ``sizes`` ({step
    size: ASR-1}) and ``result`` (the long run's examples scored by
    :meth:`~advdetect.evaluation.Arena.evaluate`)."""
    (spec, run, _), _ = metered(worst_run, cache, result, defence, norm, eps)   # the suite's runs: not its cost
    arena = result.arenas[defence].subset(n)
    rule = run.get("rule", "steepest")
    long = {k: v for k, v in run.items() if k not in ("steps", "method", "p")}
    conv, spent = metered(convergence, cache, arena, steps=steps, tolerance=tolerance, **long)
    x_adv = conv.pop("x_adv")
    sizes = {}
    for f in step_sizes:
        a = f * eps
        out, secs = metered(pgd_run, cache, arena, loss=run["loss"], norm=norm, eps=eps, targeted=run["targeted"],
                            steps=size_steps, step_size=a)
        sizes[a] = arena.evaluate(out["x_adv"])["ASR-1"]
        spent += secs
    suite_steps = min(int(run["steps"]), steps)   # the run's own: the fixed-step run may take more than its attack
    return {**conv, "attack": spec["name"], "run": run_label(run), "loss": run["loss"], "norm": norm,
            "eps": float(eps), "rule": rule, "sizes": sizes, "size steps": size_steps, "suite steps": suite_steps,
            "at suite steps": float(conv["curve"][suite_steps - 1]), "result": arena.evaluate(x_adv),
            "compute seconds": spent}


def convergence(cache, arena: Arena, *, loss: str, norm: str, eps: float, steps: int, step_size: float,
                targeted: bool = False, rule: str = "steepest", tolerance: float = 0.02, **kwargs) -> dict:
    """Has an attack converged? One long run of the engine (cached) with its best-so-far success trace on the
    arena's points: ASR-1 after 1, 2, 4, ... and ``steps`` steps, the gain of the last doubling (ASR after
    ``steps`` minus ASR after ``steps // 2``) and ``converged`` (:func:`converged`: that gain is at most
    ``tolerance``, or every eligible point is broken). Returns
    ``{"steps", "asr", "gain", "converged", "tolerance", "n", "curve", "x_adv"}`` (``n``: eligible points; ``curve``: ASR-1
    after every step; ``x_adv``: the run's examples). Other keywords (``random_start``) go to :func:`pgd_run`."""
    out = pgd_run(cache, arena, loss=loss, norm=norm, eps=eps, steps=steps, step_size=step_size,
                  targeted=targeted, rule=rule, trace=True, **kwargs)
    elig = arena.eligible()
    n = int(elig.sum())
    curve = out["trace"][:, elig].float().mean(1) if n else torch.zeros(steps)
    marks = sorted({*(2 ** i for i in range(steps.bit_length()) if 2 ** i <= steps), steps // 2, steps} - {0})
    asr = [float(curve[t - 1]) for t in marks]
    gain = float(curve[steps - 1] - curve[max(steps // 2, 1) - 1])
    return {"steps": marks, "asr": asr, "gain": gain, "converged": converged(gain, asr[-1], tolerance),
            "tolerance": tolerance, "n": n, "curve": curve, "x_adv": out["x_adv"]}


def converged(gain: float, final: float, tolerance: float = 0.02) -> bool:
    """Whether a traced attack has converged: the last doubling of its steps added at most ``tolerance`` of ASR,
    or it broke every eligible image (``final`` ASR 1), where no more steps can add anything. The ASRs are means
    in float32, so 2 images of 100 come out as 0.0200000107: the comparison allows for that rounding."""
    return gain <= tolerance + 1e-6 or final >= 1.0 - 1e-6


def paper_protocol(cache, arena: Arena, *, eps: float = 0.3, steps: int) -> dict:
    """The arena's defence attacked as its own paper did (``defence.paper_protocol``), on the same images and
    thresholds as the suite, each attack evaluated on its own: ``{label: Arena.evaluate() result}``; ``steps``
    fills the protocols that take the chapter's number of steps. In float32, whatever the arena's precision, as
    the papers ran them. Empty for a defence without one."""
    out = {}
    for proto in arena.defence.paper_protocol:
        n = proto["steps"] or steps
        label = (f"{proto['loss']}, {proto['rule']} {n} x {proto['step_size']:g}"
                 f"{', targeted' if proto['targeted'] else ''}")
        x_adv = pgd_run(cache, arena, loss=proto["loss"], norm="linf", eps=eps, steps=n, step_size=proto["step_size"],
                        rule=proto["rule"], targeted=proto["targeted"], precision="fp32")["x_adv"]
        out[label] = arena.evaluate(x_adv)
    return out
