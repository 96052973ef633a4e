"""Evaluating a defence with a reject option, ARCLU's way (Section 5), for every defence alike.

An :class:`Arena` holds one defence and what every attack on it shares: the attacked points, the held-out
benign inputs and the per-class thresholds tau_p they set at p% false positives, the decisions on clean inputs
and the random targets of targeted attacks. :meth:`Arena.evaluate` scores adversarial examples: ASR-p (among
the *eligible* inputs - correctly classified and accepted before the attack - the share misclassified and
accepted after it), EROC and the per-sample success, all through :class:`~advdetect.objectives.Criterion`.
:func:`best_of` keeps, per sample, the best of several candidate adversarial examples.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import torch

from .data import stratified_split
from .metrics import asr_p, attack_success_ratio, eroc, thresholds_at_fpr, weighted_auc
from .objectives import Criterion
from .runtime import check_precision, device_of


def score_unit(scores: torch.Tensor) -> float:
    """The standard deviation of the finite ``scores`` (a defence's held-out detection scores): the unit in
    which AutoAttack's composite classifier (:class:`advdetect.blackbox.CompositeClassifier`) weighs a score's
    height above its threshold against the logits. 1.0 where the scores do not vary (a classifier whose score
    is constant) or are too few."""
    s = scores[torch.isfinite(scores)].double()
    unit = float(s.std()) if s.numel() > 1 else 0.0
    return unit if unit > 1e-12 else 1.0


#: how many sets of examples an :class:`Arena` remembers the decisions of (:meth:`Arena.decide`)
_REMEMBERED = 16


def _digest(xa: torch.Tensor) -> bytes:
    """The identity of a set of examples: a hash of its shape, dtype and bytes."""
    t = xa.detach().cpu().contiguous()
    h = hashlib.blake2b(str((tuple(t.shape), t.dtype)).encode(), digest_size=16)
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.digest()


def random_targets(y: torch.Tensor, k: int, seed: int = 0) -> torch.Tensor:
    """One target class t != y per sample, uniformly at random (fixed by ``seed``)."""
    gen = torch.Generator().manual_seed(seed)
    return ((y.cpu() + 1 + torch.randint(0, k - 1, y.shape, generator=gen)) % k).to(y.device)


@dataclass
class Arena:
    """One defence and what every attack on it shares: the attacked points ``(x, y)``, the held-out benign
    inputs that set the thresholds, their decisions, the thresholds at each FPR ``ps`` (in %) and the random
    targets of targeted attacks (seeded). ``attack_ps`` (default: every p) are the operating points that the
    white-box attacks aim at, each with its own run (see :meth:`evaluate`). ``precision`` is the arithmetic of
    their forward passes (:func:`advdetect.objectives.objective`: ``bf16`` computes the gradients in bfloat16
    and judges success in float32); thresholds, decisions and every evaluation are float32 whatever it is.
    ``decided_heldout`` may hold the defence's decisions ``(pred, score)`` on ``x_heldout`` made before (the
    book caches them); without it the arena decides them."""

    defence: Any
    x: torch.Tensor
    y: torch.Tensor
    x_heldout: torch.Tensor
    ps: tuple = (1, 2, 5, 10)
    seed: int = 0
    attack_ps: tuple | None = None
    precision: str = "fp32"
    decided_heldout: tuple | None = field(default=None, repr=False, compare=False)
    heldout: tuple = field(init=False)
    clean: tuple = field(init=False)
    tau: dict = field(init=False)
    score_unit: float = field(init=False)
    targets: torch.Tensor = field(init=False)
    _decided: dict = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self):
        k = self.defence.num_classes
        self.ps = tuple(self.ps)
        self.attack_ps = self.ps if self.attack_ps is None else tuple(self.attack_ps)
        if not self.attack_ps or any(p not in self.ps for p in self.attack_ps):
            raise ValueError(f"attack_ps {self.attack_ps} must be a non-empty subset of ps {self.ps}")
        check_precision(self.precision)
        if self.decided_heldout is None:
            self.heldout = self.defence.decide(self.x_heldout)
        else:
            pred, score = self.decided_heldout
            if pred.shape != score.shape or len(pred) != len(self.x_heldout):
                raise ValueError(f"decided_heldout must hold one prediction and one score per held-out input "
                                 f"({len(self.x_heldout)}): got {tuple(pred.shape)} and {tuple(score.shape)}")
            self.heldout = (pred, score)
        self.decided_heldout = None   # held once, as heldout
        self.clean = self.defence.decide(self.x)
        self.tau = {p: torch.as_tensor(thresholds_at_fpr(self.heldout[1], self.heldout[0], p / 100, k),
                                       dtype=torch.float32) for p in self.ps}
        self.score_unit = score_unit(self.heldout[1])
        self.targets = random_targets(self.y, k, self.seed)

    @property
    def device(self):
        return device_of(self.defence)

    def decide(self, xa: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The defence's decisions ``(pred, score)`` on ``xa``; examples that :func:`best_per_p` has just put
        together from candidates it decided are not passed through the defence again (their decisions are the
        candidates', remembered by the examples' bytes, for the last few sets only)."""
        known = self._decided.get(_digest(xa))
        return known if known is not None else self.defence.decide(xa)

    def _remember(self, xa: torch.Tensor, decisions: tuple[torch.Tensor, torch.Tensor]) -> None:
        while len(self._decided) >= _REMEMBERED:
            self._decided.pop(next(iter(self._decided)))
        self._decided[_digest(xa)] = decisions

    def subset(self, n: int) -> "Arena":
        """The same arena on its first ``n`` attacked points (a seeded, stratified-then-shuffled prefix): the
        held-out decisions and thresholds are shared, not recomputed."""
        n = min(int(n), len(self.x))
        if n == len(self.x):
            return self
        sub = object.__new__(Arena)
        sub.__dict__.update(self.__dict__)
        sub.x, sub.y, sub.targets = self.x[:n], self.y[:n], self.targets[:n]
        sub._decided = {}
        sub.clean = tuple(c[:n] for c in self.clean)
        return sub

    def criterion(self, p: float | None = None, targeted: bool = False) -> Criterion:
        """Success at the thresholds of p% false positives (default: the first FPR)."""
        return Criterion(self.tau[self.ps[0] if p is None else p], targeted)

    def eligible(self, p: float | None = None) -> torch.Tensor:
        """Correctly classified and accepted before the attack (at the thresholds of p%)."""
        return self.criterion(p).eligible(self.clean[0], self.clean[1], self.y)

    def accuracy(self) -> float:
        return float((self.clean[0] == self.y).float().mean())

    def evaluate(self, x_adv) -> dict:
        """ASR-p for every p (with the counts behind it), EROC as ARCLU's authors compute it
        (:func:`~advdetect.metrics.eroc`: the adversarial examples of the images eligible at the first p, an
        example still correctly classified counting as detected), ``"EROC, misclassified"`` (the class-weighted
        AUC of the same images' misclassified adversarial examples alone against the held-out benign inputs:
        detection alone; NaN where none is misclassified), and the per-sample success at the first p. ``x_adv`` is one set of
        adversarial examples for every p, or ``{p: examples}`` with the examples aimed at each p (a p missing
        there takes the first p's); EROC, ``success``, ``pred``, ``score`` and ``x_adv`` in the result are those
        of the first p."""
        by_p = dict(x_adv) if isinstance(x_adv, dict) else {}
        first = by_p.get(self.ps[0], x_adv if not isinstance(x_adv, dict) else None)
        if first is None:
            raise ValueError(f"examples for the first operating point p={self.ps[0]} are needed")
        decided: dict[int, tuple] = {}

        def decide(xa):
            if id(xa) not in decided:
                decided[id(xa)] = self.decide(xa)
            return decided[id(xa)]

        pred, score = decide(first)
        out: dict[str, Any] = {"counts": {}, "x_adv": first}
        for p in self.ps:
            pp, sp = decide(by_p.get(p, first))
            out[f"ASR-{p:g}"], succ, n = attack_success_ratio(self.y, self.clean[0], self.clean[1], pp, sp,
                                                              self.tau[p])
            out["counts"][p] = (succ, n)
        eligible = self.eligible()
        fooled = eligible & (pred != self.y)
        out["EROC"] = eroc(self.heldout[1], self.heldout[0], score[eligible], pred[eligible], self.y[eligible])
        out["EROC, misclassified"] = weighted_auc(self.heldout[1], self.heldout[0], score[fooled], pred[fooled])
        out["success"] = eligible & self.criterion().success_of(pred, score, self.y)
        out["pred"], out["score"] = pred, score
        return out

    def asr_curve(self, result: dict, fprs=None):
        """ASR against the false-positive rate of the per-class thresholds for one evaluated attack (the
        threshold explorer's curve). Returns (fprs, ASRs)."""
        if fprs is None:
            fprs = np.unique(np.r_[np.geomspace(0.001, 0.5, 50), np.asarray(self.ps, float) / 100])
        k = self.defence.num_classes
        return fprs, np.array([asr_p(100 * f, self.heldout[1], self.heldout[0], self.y, self.clean[0],
                                     self.clean[1], result["pred"], result["score"], k) for f in fprs])


def best_of(arena: Arena, candidates: list[torch.Tensor], p: float | None = None) -> torch.Tensor:
    """Per sample, the candidate adversarial example that succeeds (misclassified, not rejected at the
    thresholds of p% false positives, default the first p) with the largest room under the threshold; among
    failures, a misclassified one closest to it."""
    return _best(arena, candidates, [arena.ps[0] if p is None else p])[0]


def _best(arena: Arena, candidates: list[torch.Tensor], ps) -> list[torch.Tensor]:
    """:func:`best_of` at each p of ``ps``, deciding every candidate once (the arena remembers the decisions
    of what it returns, so that evaluating it does not decide it again)."""
    best, best_key, best_pred, best_score = ([None] * len(ps) for _ in range(4))
    for xa in candidates:
        pred, score = arena.decide(xa)
        for i, p in enumerate(ps):
            room = arena.criterion(p).threshold(pred) - score  # >= 0: not rejected
            key = torch.where(pred != arena.y, torch.where(room >= 0, 1e6 + room, room), torch.full_like(room, -1e9))
            if best[i] is None:
                best[i], best_key[i], best_pred[i], best_score[i] = xa.clone(), key, pred.clone(), score.clone()
            else:
                better = key > best_key[i]
                best[i][better] = xa[better]
                best_key[i] = torch.where(better, key, best_key[i])
                best_pred[i] = torch.where(better, pred, best_pred[i])
                best_score[i] = torch.where(better, score, best_score[i])
    for i in range(len(ps)):
        if best[i] is not None:
            arena._remember(best[i], (best_pred[i], best_score[i]))
    return best


def _split_test(ds, n: int, seed: int):
    n = min(n, len(ds.y_test))
    if n >= len(ds.y_test):
        rest, chosen = np.array([], dtype=int), np.arange(len(ds.y_test))
    elif n >= ds.num_classes:
        rest, chosen = stratified_split(ds.y_test.numpy(), n, seed=seed)
    else:  # fewer points than classes: a seeded random choice
        order = np.random.default_rng(seed).permutation(len(ds.y_test))
        chosen, rest = order[:n], order[n:]
    # shuffled: any prefix is a fair sample
    return torch.as_tensor(chosen, dtype=torch.long), torch.as_tensor(rest, dtype=torch.long)


def attacked_points(ds, n: int, seed: int = 0):
    """The evaluation points: a stratified subset of ``n`` test images fixed by ``seed``, and the held-out benign
    images that set the thresholds: the validation images plus every test image not attacked. Returns
    (x, y, x_heldout)."""
    chosen, rest = _split_test(ds, n, seed)
    x_heldout = torch.cat([ds.x_val, ds.x_test[rest]])
    return ds.x_test[chosen], ds.y_test[chosen], x_heldout


def heldout_labels(ds, n: int, seed: int = 0) -> torch.Tensor:
    """The true labels of the held-out images of :func:`attacked_points` (same ``n`` and ``seed``), in order."""
    _, rest = _split_test(ds, n, seed)
    return torch.cat([ds.y_val, ds.y_test[rest]])


def best_per_p(arena: Arena, runs: Mapping[float, list[torch.Tensor]]) -> dict:
    """The examples aimed at each operating point: ``runs`` maps each attacked p to its candidate runs; for every
    p of the arena, the per-sample best (at tau_p) over the candidates of *all* attacked ps - an example aimed at
    a stricter threshold can be the best at a looser one. Returns ``{p: examples}``."""
    pool = [xa for xs in runs.values() for xa in xs]
    return dict(zip(arena.ps, _best(arena, pool, arena.ps)))
