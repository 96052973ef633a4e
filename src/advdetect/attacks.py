"""One projected-gradient engine for every white-box attack of both papers.

:func:`attack` minimises a per-sample *objective* over a threat model. The objective is any callable
``objective(x_adv, y) -> loss`` (shape ``(B,)``), or ``-> (loss, success)`` with a boolean ``(B,)`` success mask
computed from the same forward pass - or a ``(B, P)`` mask of P criteria, the first the one the attack aims at and
the others watched on the way (see ``also`` below); ``y`` is whatever per-sample tensor (or tuple of tensors) the objective
needs - labels, targets - and is sliced together with ``x`` when the engine works in chunks. An adaptive attack
is therefore just another objective (see :mod:`advdetect.losses`).

Threat models (``norm``): ``"linf"``, ``"l2"``, ``"l1"`` (projection onto the L1 ball; sparse steepest descent),
``"l0"`` (at most ``eps`` changed coordinates: k-sparse projection). ``eps=math.inf`` leaves only the box.
Every iterate is clipped to the box ``bounds`` (default [0, 1]) and then projected onto the eps-ball, which
keeps it inside both.

Step rules (``rule``):

``"steepest"``  normalised steepest descent of the threat model's norm: sign for L-inf (``"sign"`` is an alias),
                g/||g||_2 for L2 and L0, the sparse L1 direction (top ``l1_quantile`` of |g| among coordinates
                that can still move) for L1;
``"adam"``      Adam on the perturbation (learning rate = step size, moments reset at every restart), GAT's
                MNIST attack;
``"momentum"``  MIM: g_t = decay * g_{t-1} + grad / ||grad||_1, then a steepest step along g_t.
``"apgd"``      Croce & Hein's APGD (2020): a steepest step of size eta, then a heavy-ball average with the
                previous iterate (weight 0.75 on the new point); eta starts at ``step_size`` (they use 2 eps) and
                is halved, per sample, at the checkpoints of :func:`apgd_checkpoints` when fewer than 75% of the
                steps since the last checkpoint lowered the objective, or when neither eta nor the best value
                changed at the last one; a halving restarts that sample from its best point so far.

FGSM is one ``"sign"`` step of size eps (:func:`fgsm`). With ``restarts > 1`` every restart after the first
starts at a random point; each sample keeps its best iterate over all steps and restarts: a successful one
before an unsuccessful one, else the lowest objective. With ``early_stop`` a sample leaves the batch once it has
succeeded (its best iterate is kept; the samples still attacked are the only ones evaluated, so a run costs in
proportion to the samples that resist it) and the run stops once all have; the success trace is unchanged by it.
With a ``(B, P)`` success mask, the first criterion decides all of this, and for each other one the run also keeps
the first iterate that met it (``AttackResult.also``; where none did, the best iterate): an attack aimed at a
strict threshold passes through points that a looser one accepts, and keeping its final point alone would lose them.
Everything is batched; the device is the one ``x`` lives on (move ``x`` to the model's device).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from .runtime import progress_bar

NORMS = ("linf", "l2", "l1", "l0")
RULES = ("steepest", "sign", "adam", "momentum", "apgd")

Objective = Callable[[torch.Tensor, Any], "torch.Tensor | tuple[torch.Tensor, torch.Tensor]"]


@dataclass
class AttackResult:
    """Best iterate per sample, its objective value, its success flag (None if the objective gives none)
    and the number of gradient evaluations spent."""

    x_adv: torch.Tensor
    loss: torch.Tensor
    success: torch.Tensor | None
    gradient_evaluations: int
    trace: torch.Tensor | None = None  # with ``trace=True``: (steps * restarts, B) success of the best so far
    snapshots: torch.Tensor | None = None  # with ``snapshots=(t, ...)``: (len(snapshots), B, ...) iterates
    also: torch.Tensor | None = None  # with a (B, P) success mask: (P - 1, B, ...) iterates, one per other criterion
    also_success: torch.Tensor | None = None  # (B, P - 1): whether each met that criterion

    def __iter__(self):  # allows ``x_adv, loss, success, n = attack(...)``
        return iter((self.x_adv, self.loss, self.success, self.gradient_evaluations))


# ------------------------------------------------------------------------------------------------------ geometry

def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1)


def _view(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.ndim - 1)))


def norms(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-sample norm of a perturbation (L0 counts non-zero coordinates)."""
    d = _flat(delta)
    if norm == "linf":
        return d.abs().amax(1)
    if norm == "l2":
        return d.norm(dim=1)
    if norm == "l1":
        return d.abs().sum(1)
    if norm == "l0":
        return (d != 0).sum(1).to(delta.dtype)
    raise ValueError(f"unknown norm {norm!r}: choose one of {', '.join(NORMS)}")


def project_l1_ball(delta: torch.Tensor, eps: float) -> torch.Tensor:
    """Euclidean projection of each sample onto the L1 ball of radius eps (Duchi et al. 2008, sort-based)."""
    d = _flat(delta)
    a = d.abs()
    inside = a.sum(1) <= eps
    if bool(inside.all()):
        return delta
    s, _ = a.sort(1, descending=True)
    cs = s.cumsum(1)
    k = torch.arange(1, d.shape[1] + 1, device=d.device, dtype=d.dtype)
    cond = s * k > (cs - eps)
    rho = (cond * torch.arange(d.shape[1], device=d.device)).amax(1, keepdim=True)
    theta = (cs.gather(1, rho) - eps) / (rho + 1).to(d.dtype)
    out = torch.sign(d) * (a - theta).clamp_min(0)
    out = torch.where(inside[:, None], d, out)
    return out.view_as(delta)


def project_l0_ball(delta: torch.Tensor, k: float) -> torch.Tensor:
    """Keep the ``k`` coordinates of largest magnitude of each sample, zero the rest."""
    d = _flat(delta)
    k = int(k)
    if k >= d.shape[1]:
        return delta
    if k <= 0:
        return torch.zeros_like(delta)
    thresh = d.abs().topk(k, dim=1).values[:, -1:]
    keep = d.abs() >= thresh
    # ties could keep more than k: keep the first k of them
    keep &= keep.cumsum(1) <= k
    return (d * keep).view_as(delta)


def project(delta: torch.Tensor, norm: str, eps: float) -> torch.Tensor:
    """Project perturbations onto the eps-ball of ``norm``."""
    if math.isinf(eps):
        return delta
    if norm == "linf":
        return delta.clamp(-eps, eps)
    if norm == "l2":
        n = _flat(delta).norm(dim=1).clamp_min(1e-12)
        return delta * _view(torch.clamp(eps / n, max=1.0), delta)
    if norm == "l1":
        return project_l1_ball(delta, eps)
    if norm == "l0":
        return project_l0_ball(delta, eps)
    raise ValueError(f"unknown norm {norm!r}: choose one of {', '.join(NORMS)}")


def random_perturbation(x: torch.Tensor, norm: str, eps: float, bounds: tuple[float, float],
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """A random perturbation inside the eps-ball (and, after the caller's clipping, the box).

    L-inf: uniform in the ball; L2: uniform direction, radius uniform in [0, eps]; L1: Laplace direction,
    radius uniform in [0, eps]; L0: eps random coordinates set to uniform values of the box.
    """
    lo, hi = bounds
    shape, dev, dt = x.shape, x.device, x.dtype

    def rand(*s):
        return torch.rand(*s, generator=generator, dtype=dt).to(dev)

    def randn(*s):
        return torch.randn(*s, generator=generator, dtype=dt).to(dev)

    e = eps if not math.isinf(eps) else (hi - lo)
    if norm == "linf":
        return (rand(*shape) * 2 - 1) * e
    if norm in ("l2", "l1"):
        if norm == "l2":
            d = randn(*shape)
        else:
            d = -torch.log(rand(*shape).clamp_min(1e-12)) * torch.sign(rand(*shape) - 0.5)
        n = norms(d, norm).clamp_min(1e-12)
        r = rand(shape[0]) * e
        return d * _view(r / n, d)
    if norm == "l0":
        flat = _flat(x)
        k = int(min(e, flat.shape[1]))
        scores = rand(*flat.shape)
        idx = scores.topk(k, dim=1).indices
        values = lo + rand(flat.shape[0], k) * (hi - lo) - flat.gather(1, idx)
        d = torch.zeros_like(flat).scatter(1, idx, values)
        return d.view_as(x)
    raise ValueError(f"unknown norm {norm!r}: choose one of {', '.join(NORMS)}")


def steepest_direction(g: torch.Tensor, norm: str, x_adv: torch.Tensor | None = None,
                       bounds: tuple[float, float] = (0.0, 1.0), l1_quantile: float = 0.99) -> torch.Tensor:
    """Unit steepest-descent direction of ``norm`` for a gradient ``g`` (the caller subtracts it)."""
    if norm == "linf":
        return torch.sign(g)
    if norm in ("l2", "l0"):
        return g / _view(_flat(g).norm(dim=1).clamp_min(1e-12), g)
    if norm == "l1":
        a = g.abs()
        if x_adv is not None:  # coordinates pinned at the box and pushed outward cannot move
            lo, hi = bounds
            stuck = ((x_adv <= lo) & (g > 0)) | ((x_adv >= hi) & (g < 0))
            a = a.masked_fill(stuck, 0.0)
        fa = _flat(a)
        q = torch.quantile(fa, l1_quantile, dim=1, keepdim=True)
        e = torch.sign(_flat(g)) * ((fa >= q) & (fa > 0))
        e = e / e.abs().sum(1, keepdim=True).clamp_min(1.0)
        return e.view_as(g)
    raise ValueError(f"unknown norm {norm!r}: choose one of {', '.join(NORMS)}")


# -------------------------------------------------------------------------------------------------------- engine

def apgd_checkpoints(steps: int) -> list[int]:
    """APGD's checkpoints for a run of ``steps`` steps (Croce & Hein 2020, Sec. 3.2, in whole steps as their
    code counts them): the first after 22% of the steps, then intervals shrinking by 3% of the steps down to a
    floor of 6%: 22, 41, 57, 70, 80, 87, 93, 99 for 100 steps."""
    interval = max(int(0.22 * steps), 1)
    floor, shrink = max(int(0.06 * steps), 1), max(int(0.03 * steps), 1)
    out, k = [], interval
    while k < steps:
        out.append(k)
        interval = max(interval - shrink, floor)
        k += interval
    return out


def _evaluate(objective: Objective, x: torch.Tensor, y: Any):
    out = objective(x, y)
    if isinstance(out, tuple):
        loss, success = out
        return loss, success.bool()
    return out, None


def _slice(y: Any, idx: slice):
    if y is None:
        return None
    if isinstance(y, (tuple, list)):
        return type(y)(_slice(v, idx) for v in y)
    return y[idx]


class _ApgdState:
    """The per-sample bookkeeping of the ``"apgd"`` rule within one restart (minimisation)."""

    rho, alpha = 0.75, 0.75

    def __init__(self, x: torch.Tensor, delta: torch.Tensor, step_size: float, steps: int):
        b = len(x)
        self.eta = torch.full((b,), float(step_size), device=x.device, dtype=x.dtype)
        self.checkpoints = apgd_checkpoints(steps)
        self.last_checkpoint = 0
        self.prev_delta = delta.clone()
        self.prev_loss: torch.Tensor | None = None
        self.best_loss = torch.full((b,), math.inf, device=x.device, dtype=x.dtype)
        self.best_delta = delta.clone()
        self.best_grad = torch.zeros_like(x)
        self.improved = torch.zeros(b, device=x.device)
        self.best_at_checkpoint = self.best_loss.clone()
        self.halved_at_checkpoint = torch.zeros(b, dtype=torch.bool, device=x.device)

    def observe(self, k: int, delta, loss, g):
        """Record the objective (and gradient) at iterate ``k``; at a checkpoint, halve eta where APGD's
        conditions hold and move those samples back to their best point, with that point's gradient. Returns
        (delta, gradient) to step from."""
        if self.prev_loss is not None:
            self.improved += (loss < self.prev_loss).float()
        self.prev_loss = loss.clone()
        better = loss < self.best_loss
        self.best_loss = torch.where(better, loss, self.best_loss)
        self.best_delta = torch.where(_view(better, delta), delta, self.best_delta)
        self.best_grad = torch.where(_view(better, g), g, self.best_grad)
        if k in self.checkpoints:
            span = k - self.last_checkpoint
            slow = self.improved < self.rho * span
            stuck = ~self.halved_at_checkpoint & (self.best_loss >= self.best_at_checkpoint)
            halve = slow | stuck
            self.eta = torch.where(halve, self.eta / 2, self.eta)
            delta = torch.where(_view(halve, delta), self.best_delta, delta)
            g = torch.where(_view(halve, g), self.best_grad, g)
            self.prev_delta = torch.where(_view(halve, delta), self.best_delta, self.prev_delta)
            self.halved_at_checkpoint = halve
            self.best_at_checkpoint = self.best_loss.clone()
            self.improved.zero_()
            self.last_checkpoint = k
        return delta, g

    def select(self, keep: torch.Tensor) -> None:
        """Keep only the samples of ``keep`` (a boolean mask): the others left the working set."""
        for name in ("eta", "prev_delta", "prev_loss", "best_loss", "best_delta", "best_grad", "improved",
                     "best_at_checkpoint", "halved_at_checkpoint"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value[keep])

    def average(self, k: int, delta, z, project_fn):
        """x_{k+1} = P(x_k + alpha (z - x_k) + (1 - alpha)(x_k - x_{k-1})); the first step takes z itself."""
        new = z if k == 0 else project_fn(delta + self.alpha * (z - delta) + (1 - self.alpha) * (delta - self.prev_delta))
        self.prev_delta = delta
        return new


def attack(objective: Objective, x: torch.Tensor, y: Any = None, *, norm: str = "linf", eps: float,
           steps: int, step_size: float, rule: str = "steepest", random_start: bool = False,
           restarts: int = 1, early_stop: bool = False, decay: float = 0.9,
           adam_betas: tuple[float, float] = (0.9, 0.999), l1_quantile: float = 0.99,
           bounds: tuple[float, float] = (0.0, 1.0), batch_size: int | None = None,
           generator: torch.Generator | None = None, progress: bool = False, trace: bool = False,
           snapshots=None) -> AttackResult:
    """Minimise ``objective`` over the eps-ball around ``x`` within the box (see the module docstring).

    ``random_start`` starts the first restart at a random point of the ball. ``batch_size`` splits ``x`` (and
    ``y``) into chunks attacked one after another; ``progress`` shows a bar over the chunks. ``trace`` records,
    after every step, which samples have succeeded so far (the success-versus-steps curve of one run; needs an
    objective that reports success). ``snapshots`` (step numbers, 0 = the start) records the iterate of the
    first restart after each of those steps - the path of one run, e.g. to show an image changing as the attack
    raises a logit; a run stopped early repeats its last iterate.
    """
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}: choose one of {', '.join(NORMS)}")
    if rule not in RULES:
        raise ValueError(f"unknown step rule {rule!r}: choose one of {', '.join(RULES)}")
    if steps < 0 or restarts < 1:
        raise ValueError("steps must be >= 0 and restarts >= 1")
    if not (eps >= 0):
        raise ValueError(f"eps must be >= 0, got {eps}")
    if batch_size is not None and len(x) > batch_size:
        chunks = progress_bar(range(0, len(x), batch_size), enabled=progress, desc="attack", leave=False)
        parts = [attack(objective, x[i:i + batch_size], _slice(y, slice(i, i + batch_size)), norm=norm, eps=eps,
                        steps=steps, step_size=step_size, rule=rule, random_start=random_start,
                        restarts=restarts, early_stop=early_stop, decay=decay, adam_betas=adam_betas,
                        l1_quantile=l1_quantile, bounds=bounds, generator=generator, trace=trace,
                        snapshots=snapshots) for i in chunks]
        succ = None if parts[0].success is None else torch.cat([p.success for p in parts])
        tr = torch.cat([p.trace for p in parts], 1) if trace and parts[0].trace is not None else None
        snaps = torch.cat([p.snapshots for p in parts], 1) if snapshots is not None else None
        also = torch.cat([p.also for p in parts], 1) if parts[0].also is not None else None
        also_succ = torch.cat([p.also_success for p in parts]) if parts[0].also is not None else None
        return AttackResult(torch.cat([p.x_adv for p in parts]), torch.cat([p.loss for p in parts]), succ,
                            sum(p.gradient_evaluations for p in parts), tr, snaps, also, also_succ)

    lo, hi = bounds
    x = x.detach()
    best_x = x.clone()
    best_loss = torch.full((len(x),), math.inf, device=x.device, dtype=x.dtype)
    best_succ: torch.Tensor | None = None
    also_x: torch.Tensor | None = None       # (P - 1, N, ...): the first iterate that met each other criterion
    also_succ: torch.Tensor | None = None    # (N, P - 1)
    n_grad = 0
    history: list[torch.Tensor] = []
    wanted = sorted({int(t) for t in snapshots}) if snapshots is not None else []
    if any(t < 0 or t > steps for t in wanted):
        raise ValueError(f"snapshots must lie in 0..steps={steps}, got {list(snapshots)}")
    recorded: dict[int, torch.Tensor] = {}
    # with early_stop, the working set holds only the samples that have not yet succeeded (``rows``: their
    # positions in the batch); a recorded path needs every sample, so snapshots keep the whole batch
    compact = early_stop and snapshots is None

    def keep_best(rows, x_now, loss, succ):
        nonlocal best_succ, also_x, also_succ
        loss = loss.detach()
        if succ is not None and succ.dim() == 2:
            others, succ = succ[:, 1:], succ[:, 0]
            if also_x is None:
                also_x = x.unsqueeze(0).repeat(others.shape[1], *([1] * x.dim()))
                also_succ = torch.zeros(len(x), others.shape[1], dtype=torch.bool, device=x.device)
            first = others & ~also_succ[rows]
            for j in range(others.shape[1]):
                if bool(first[:, j].any()):
                    also_x[j, rows[first[:, j]]] = x_now.detach()[first[:, j]]
            also_succ[rows] |= others
        if succ is None:
            better = loss < best_loss[rows]
        else:
            if best_succ is None:
                best_succ = torch.zeros(len(x), dtype=torch.bool, device=x.device)
            had = best_succ[rows]
            better = (succ & ~had) | ((succ == had) & (loss < best_loss[rows]))
            best_succ[rows] = torch.where(better, succ, had)
        best_loss[rows] = torch.where(better, loss, best_loss[rows])
        best_x[rows] = torch.where(_view(better, x_now), x_now.detach(), best_x[rows])

    def all_done():
        return early_stop and best_succ is not None and bool(best_succ.all())

    step_rule = "steepest" if rule == "sign" else rule
    everyone = torch.arange(len(x), device=x.device)
    for restart in range(restarts):
        if all_done():
            break
        rows = everyone[~best_succ] if compact and best_succ is not None else everyone
        xw, yw = x[rows], _slice(y, rows)
        if random_start or restart > 0:
            delta = random_perturbation(xw, norm, eps, bounds, generator)
            delta = project((xw + delta).clamp(lo, hi) - xw, norm, eps)
        else:
            delta = torch.zeros_like(xw)
        if restart == 0 and 0 in wanted:
            recorded[0] = (xw + delta).detach().clone()
        m = torch.zeros_like(xw) if step_rule in ("adam", "momentum") else None
        v = torch.zeros_like(xw) if step_rule == "adam" else None
        if step_rule == "apgd":
            ap = _ApgdState(xw, delta, step_size, steps)
        for t in range(1, steps + 1):
            x_adv = (xw + delta).requires_grad_(True)
            loss, succ = _evaluate(objective, x_adv, yw)
            (g,) = torch.autograd.grad(loss.sum(), x_adv)
            n_grad += 1
            keep_best(rows, x_adv, loss, succ)
            if step_rule == "apgd":
                delta, g = ap.observe(t - 1, delta, loss.detach(), g)
            if trace and best_succ is not None:
                history.append(best_succ.clone())
            if all_done():
                break
            with torch.no_grad():
                if step_rule == "steepest":
                    direction = steepest_direction(g, norm, x_adv, bounds, l1_quantile)
                elif step_rule == "momentum":
                    m = decay * m + g / _view(_flat(g).abs().sum(1).clamp_min(1e-12), g)
                    direction = steepest_direction(m, norm, x_adv, bounds, l1_quantile)
                elif step_rule == "apgd":
                    direction = steepest_direction(g, norm, xw + delta, bounds, l1_quantile)
                else:  # adam on the perturbation
                    b1, b2 = adam_betas
                    m.mul_(b1).add_(g, alpha=1 - b1)
                    v.mul_(b2).addcmul_(g, g, value=1 - b2)
                    direction = (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + 1e-8)
                if step_rule == "apgd":
                    z = project((xw + delta - _view(ap.eta, xw) * direction).clamp(lo, hi) - xw, norm, eps)
                    delta = ap.average(t - 1, delta, z, lambda d: project((xw + d).clamp(lo, hi) - xw, norm, eps))
                else:
                    delta = delta - step_size * direction
                    delta = project((xw + delta).clamp(lo, hi) - xw, norm, eps)
                if restart == 0 and t in wanted:
                    recorded[t] = (xw + delta).detach().clone()
                if compact and best_succ is not None:
                    keep = ~best_succ[rows]
                    if not bool(keep.all()):  # drop the samples that succeeded: their best iterate is kept
                        rows, xw, yw, delta = rows[keep], xw[keep], _slice(yw, keep), delta[keep]
                        m = None if m is None else m[keep]
                        v = None if v is None else v[keep]
                        if step_rule == "apgd":
                            ap.select(keep)
        else:
            with torch.no_grad():
                x_last = xw + delta
                loss, succ = _evaluate(objective, x_last, yw)
            keep_best(rows, x_last, loss, succ)
    if also_x is not None:   # a criterion never met falls back to the best iterate
        met = also_succ.T.reshape(*also_succ.T.shape, *([1] * (x.dim() - 1)))
        also_x = torch.where(met, also_x, best_x.unsqueeze(0))
    tr = None
    if trace and history:
        history[-1] = best_succ.clone()  # the last iterate, evaluated after the final step
        history += [history[-1]] * (steps * restarts - len(history))  # an early stop keeps its last state
        tr = torch.stack(history)
    snaps = None
    if snapshots is not None:
        last = None
        for t in wanted:  # an early stop repeats the last recorded iterate
            last = recorded.get(t, last if last is not None else x.clone())
            recorded[t] = last
        snaps = torch.stack([recorded[int(t)] for t in snapshots]) if len(wanted) else x.new_zeros((0, *x.shape))
    return AttackResult(best_x, best_loss, best_succ, n_grad, tr, snaps, also_x, also_succ)


#: the engine under its usual name
pgd = attack


def fgsm(objective: Objective, x: torch.Tensor, y: Any = None, *, eps: float, **kwargs) -> AttackResult:
    """Fast gradient sign method: one sign step of size eps (no random start)."""
    kwargs.setdefault("norm", "linf")
    return attack(objective, x, y, eps=eps, steps=1, step_size=eps, rule="sign", **kwargs)


def mim(objective: Objective, x: torch.Tensor, y: Any = None, *, decay: float = 0.9, **kwargs) -> AttackResult:
    """Momentum iterative method (Dong et al. 2018), decay 0.9 by default."""
    return attack(objective, x, y, rule="momentum", decay=decay, **kwargs)


def penalty_search(objective: Objective, x: torch.Tensor, y: Any = None, *, rounds: int, steps: int, lr: float,
                   c_init: float = 1.0, c_bounds: tuple[float, float] = (0.0, math.inf), penalty_on: str = "loss",
                   batch_size: int | None = None, rule: str = "adam") -> tuple[torch.Tensor, torch.Tensor]:
    """Smallest-perturbation attack by a per-sample binary search on a penalty constant c (Carlini & Wagner's
    L2 attack; GAT's Eq. 15).

    Each of ``rounds`` rounds runs Adam (``steps`` steps of learning rate ``lr``, box constraint only) from the
    natural images - or, with ``rule="steepest"``, L2-normalised gradient steps of length ``lr``, which in a short
    search can end closer to the image than Adam - on ``objective(x_adv, (c, x, y))``, an objective that weighs a distance term against an
    attack term with the per-sample constant c and reports success. With ``penalty_on="loss"`` (c multiplies
    the attack term, CW) a success lowers c and a failure raises it; with ``"distance"`` (c multiplies the
    distance, GAT) the other way round. c starts at ``c_init`` within ``c_bounds`` and moves to the middle of
    its bounds, or grows tenfold while the bound it moves towards is infinite. Returns, per sample, the
    successful iterate with the smallest L2 perturbation (``x`` where no round succeeded) and that L2 norm
    (``inf`` there).

    An objective whose success is a ``(B, P)`` mask (the criterion the search aims at, then ``P - 1`` watched
    ones, as :func:`advdetect.objectives.penalised` with ``also``) steers the search by the first column only,
    and the search also keeps, per watched criterion and sample, the smallest L2 perturbation among the rounds'
    first iterates that met it: the return value is then ``(best_x, best_l2, also_x, also_l2)`` with ``also_x``
    of shape ``(P - 1, B, ...)`` (``x`` where never met) and ``also_l2`` of shape ``(B, P - 1)`` (``inf`` there).
    """
    if penalty_on not in ("loss", "distance"):
        raise ValueError(f"penalty_on must be 'loss' or 'distance', got {penalty_on!r}")
    if rule not in ("adam", "steepest"):
        raise ValueError(f"penalty_search steps with 'adam' or 'steepest', got {rule!r}")
    n = len(x)
    lo = torch.full((n,), float(c_bounds[0]), device=x.device)
    hi = torch.full((n,), float(c_bounds[1]), device=x.device)
    c = torch.full((n,), float(c_init), device=x.device)
    best_x, best_l2 = x.clone(), torch.full((n,), math.inf, device=x.device)
    also_x = also_l2 = None
    for _ in range(rounds):
        res = attack(objective, x, (c, x, y), norm="l2", eps=math.inf, steps=steps, step_size=lr, rule=rule,
                     batch_size=batch_size)
        if res.success is None:
            raise ValueError("penalty_search needs an objective that returns (loss, success)")
        l2 = norms(res.x_adv - x, "l2")
        better = res.success & (l2 < best_l2)
        best_x[better] = res.x_adv[better]
        best_l2 = torch.where(better, l2, best_l2)
        if res.also is not None:
            if also_x is None:
                also_x = x.unsqueeze(0).repeat(len(res.also), *([1] * x.dim()))
                also_l2 = torch.full((n, len(res.also)), math.inf, device=x.device)
            for j, xa in enumerate(res.also):
                d = norms(xa - x, "l2")
                closer = res.also_success[:, j] & (d < also_l2[:, j])
                also_x[j, closer] = xa[closer]
                also_l2[:, j] = torch.where(closer, d, also_l2[:, j])
        grow = res.success if penalty_on == "distance" else ~res.success
        lo = torch.where(grow, c, lo)
        hi = torch.where(grow, hi, c)
        c = torch.where(torch.isinf(hi), c * 10, (lo + hi) / 2)
    if also_x is not None:
        return best_x, best_l2, also_x, also_l2
    return best_x, best_l2
