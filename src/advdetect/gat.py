"""GAT on images: batches, the training step of Eq. 5 for all K detectors at once, and the two classifiers.

Batches. The authors draw a window of 320 shuffled training images per step; detector k's positives are the
window's images of class k (about 32) and its negatives as many other-class images, PGD-perturbed to raise
detector k's logit. To train the K detectors as one batched model every detector needs a batch of the same
size, so :func:`detector_batches` draws exactly ``m`` positives of class k and ``m`` other-class negatives for
every k (the same balance and the same expected number of images per step).

Classifiers. The *generative* and *integrated* classifiers (GAT Sections 3.2, 4.3) are the decision rules
:class:`~advdetect.defences.GatGenerative` and :class:`~advdetect.defences.GatIntegrated`; GAT's attacks (Eqs.
8-12) are losses of :mod:`advdetect.objectives`. Here: training (Eq. 5, and the single-detector version of
Appendix F), the robustness test of Section 4.1 and the mean L2 distortion of Appendix B.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from . import attacks
from .defences import GatGenerative
from .ensemble import DetectorBank
from .metrics import roc_auc
from .objectives import Criterion, penalised, raise_logit
from .runtime import autocast, check_precision, device_of
from .training import fit, make_optimizer


def detector_batches(y: torch.Tensor, m: int, num_classes: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(positives, negatives)``, each of shape ``(K, m)``: row k holds ``m`` images of class k and
    ``m`` images of other classes, drawn uniformly without replacement within each row."""
    pos_rows, neg_rows = [], []
    for k in range(num_classes):
        own = torch.nonzero(y == k).squeeze(1)
        other = torch.nonzero(y != k).squeeze(1)
        if len(own) < m or len(other) < m:
            raise ValueError(f"class {k} has too few images ({len(own)}) for batches of {m} positives")
        pos_rows.append(own[torch.randperm(len(own), generator=generator)[:m]])
        neg_rows.append(other[torch.randperm(len(other), generator=generator)[:m]])
    return torch.stack(pos_rows), torch.stack(neg_rows)


def perturb_negatives(bank: DetectorBank, negatives: torch.Tensor, attack_kwargs: Mapping) -> torch.Tensor:
    """PGD on each detector's negatives ``(K, m, ...)`` to raise that detector's logit (GAT Eq. 5's inner max).
    A ``batch_size`` among the engine's keywords bounds the inputs per chunk (K times the columns of a chunk).
    The chunking is done here, over columns, because the engine's own chunks run along the flattened rows and
    would cut the ``(K, m)`` layout that one call of ``bank.each`` needs."""
    kwargs = dict(attack_kwargs)
    batch_size = kwargs.pop("batch_size", None)
    k, m = negatives.shape[:2]
    shape = negatives.shape[2:]
    cols = m if batch_size is None else max(1, batch_size // k)
    parts = []
    for start in range(0, m, cols):
        chunk = negatives[:, start:start + cols]
        c = chunk.shape[1]

        each = raise_logit(lambda x_flat, c=c: bank.each(x_flat.view(k, c, *shape)).reshape(-1))
        flat = chunk.reshape(k * c, *shape)
        parts.append(attacks.attack(each, flat, None, **kwargs).x_adv.view_as(chunk))
    return torch.cat(parts, dim=1)


def gat_loss(bank: DetectorBank, positives: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """Sigmoid cross-entropy of GAT Eq. 5 for every detector: positives ``(K, m, ...)`` labelled 1, (perturbed)
    negatives ``(K, m, ...)`` labelled 0; mean over detectors and samples."""
    logits = bank.each(torch.cat([positives, negatives], dim=1))
    m = positives.shape[1]
    target = torch.zeros_like(logits)
    target[:, :m] = 1.0
    return F.binary_cross_entropy_with_logits(logits, target)


def gat_step(bank: DetectorBank, optimizer: torch.optim.Optimizer, positives: torch.Tensor, negatives: torch.Tensor,
             attack_kwargs: Mapping | None, precision: str = "fp32") -> float:
    """One optimiser step of all K detectors; ``attack_kwargs=None`` trains on clean negatives. ``precision``:
    the arithmetic of the attack's and the loss's forward passes (:func:`advdetect.runtime.autocast`)."""
    with autocast(device_of(bank), precision):
        if attack_kwargs is not None:
            bank.eval()
            for p in bank.parameters():
                p.requires_grad_(False)
            negatives = perturb_negatives(bank, negatives, attack_kwargs)
            for p in bank.parameters():
                p.requires_grad_(True)
            bank.train()
        loss = gat_loss(bank, positives, negatives)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


@torch.no_grad()
def generative_scores(bank: DetectorBank, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """All detectors' logits ``(N, K)`` for ``x``, batched, on the bank's device; returned on the CPU."""
    bank.eval()
    device = device_of(bank)
    return torch.cat([bank(x[i:i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])


# ------------------------------------------------------------------------------------------- robustness (Sec. 4.1)

def validation_attack(name: str) -> dict:
    """GAT Table 6's validation attack of a configuration: 200 steps of the training step size (Adam PGD)."""
    cfg = TABLE6[name]
    return {"norm": cfg["norm"], "eps": cfg["eps"], "steps": 200, "step_size": cfg["step_size"], "rule": "adam"}


#: GAT Table 6: the training attacks of the four MNIST detector configurations (Adam on the perturbation)
TABLE6 = {
    "Linf 0.3": {"norm": "linf", "eps": 0.3, "steps": 100, "step_size": 0.01},
    "Linf 0.5": {"norm": "linf", "eps": 0.5, "steps": 100, "step_size": 0.01},
    "L2 2.5": {"norm": "l2", "eps": 2.5, "steps": 100, "step_size": 0.1},
    "L2 5.0": {"norm": "l2", "eps": 5.0, "steps": 200, "step_size": 0.1},
}


def other_class_indices(y: torch.Tensor, ks, n: int, seed: int) -> torch.Tensor:
    """For each detector k in ``ks``, ``n`` indices of other-class examples (fixed by ``seed``): ``(len(ks), n)``."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for k in ks:
        other = torch.nonzero(y != k).squeeze(1)
        rows.append(other[torch.randperm(len(other), generator=gen)[: min(n, len(other))]])
    width = min(len(r) for r in rows)
    return torch.stack([r[:width] for r in rows])


def sub_bank(bank: DetectorBank, ks) -> DetectorBank:
    """A bank of the detectors ``ks`` only (copies), so that attacks on a few detectors stay batched."""
    return DetectorBank([bank.detector(int(k)) for k in ks]).to(next(bank.parameters()).device).eval()


def detector_aucs(bank: DetectorBank, x: torch.Tensor, y: torch.Tensor, attack_kwargs: Mapping | None, *,
                  ks=None, n_negatives: int = 1000, seed: int = 0, clean_logits: torch.Tensor | None = None) -> dict:
    """GAT's robustness test (Section 4.1): for each detector k, the ROC AUC of its logit on the natural images
    of class k (positives) against ``n_negatives`` other-class images attacked with ``attack_kwargs`` to raise
    its logit (negatives; clean when ``attack_kwargs`` is None). Returns ``{k: auc}``."""
    ks = list(range(bank.k)) if ks is None else [int(k) for k in ks]
    device = device_of(bank)
    if clean_logits is None:
        clean_logits = generative_scores(bank, x)
    idx = other_class_indices(y, ks, n_negatives, seed)
    negatives = x[idx].to(device)
    sub = sub_bank(bank, ks) if ks != list(range(bank.k)) else bank
    sub.eval()
    grads = [p.requires_grad for p in sub.parameters()]
    for p in sub.parameters():
        p.requires_grad_(False)
    try:
        if attack_kwargs is not None:
            negatives = perturb_negatives(sub, negatives, attack_kwargs)
        with torch.no_grad():
            neg_scores = torch.cat([sub.each(negatives[:, i:i + 250]) for i in range(0, negatives.shape[1], 250)], 1)
    finally:
        for p, g in zip(sub.parameters(), grads):
            p.requires_grad_(g)
    return {k: roc_auc(clean_logits[y == k, k], neg_scores[i].cpu()) for i, k in enumerate(ks)}


# --------------------------------------------------------------------------------- mean L2 distortion (App. B)

def min_l2_distortion(bank: DetectorBank, x: torch.Tensor, y: torch.Tensor, threshold: float, *,
                      c_bounds: tuple[float, float] = (0.0, 8.0), c_init: float = 0.0, rounds: int = 20,
                      steps: int = 1000, lr: float = 1.0, seed: int = 0, batch_size: int | None = None):
    """GAT Appendix B (Eq. 15): per-sample binary search on c for the smallest L2 perturbation that the
    generative classifier accepts as a wrong class.

    Each sample gets a random target t != y. A round minimises -z(h_t(x')) + c ||x' - x||_2^2 with Adam
    (learning rate ``lr``, box constraint only) from the natural image; the round succeeds when the generative
    classifier predicts a class != y with a logit above ``threshold`` (a false positive). Success makes c
    effective and the search moves to a larger c, failure to a smaller one (bounds ``c_bounds``, first
    c = ``c_init``). Returns (smallest successful L2 per sample, +inf where no round succeeded; the targets).
    """
    gen = torch.Generator().manual_seed(seed)
    k = bank.k
    y = y.to(x.device)
    t = (y + 1 + torch.randint(0, k - 1, y.shape, generator=gen).to(x.device)) % k
    # accepted as a wrong class: the generative classifier's score (minus its largest logit) <= -threshold
    criterion = Criterion(torch.full((k,), -float(threshold), device=x.device))
    fn = penalised(GatGenerative(bank), "gat detectors", criterion, penalty_on="distance", targeted=True)
    _, best = attacks.penalty_search(fn, x, (y, t), rounds=rounds, steps=steps, lr=lr, c_init=c_init,
                                     c_bounds=c_bounds, penalty_on="distance", batch_size=batch_size)
    return best.cpu(), t.cpu()


def error_at_accuracy_drop(curve, max_drop: float = 0.05) -> tuple[float, float]:
    """Tramer et al.'s operating point: the error on perturbed data at the threshold where the clean accuracy is
    at most ``max_drop`` below its value without rejection. Returns (error, accuracy) there."""
    base = float(curve.y[0])  # thresholds start at -inf: nothing rejected
    ok = curve.y >= base - max_drop
    i = int(np.nonzero(ok)[0][-1])
    return float(curve.x[i]), float(curve.y[i])


# ------------------------------------------------------------------------------------------- CIFAR-10 (App. A.2)

#: GAT App. A.2: the CIFAR-10 detectors' training attack (sign steps, random start; 0-1 units)
CIFAR_TRAIN_ATTACK = {"norm": "linf", "eps": 8 / 255, "steps": 40, "step_size": 0.5 / 255, "rule": "sign",
                      "random_start": True}


#: GAT Table 3's attacks on the CIFAR-10 detectors: (steps, step size on the 0-255 scale), sign steps, 8/255
CIFAR_TABLE3_ATTACKS = ((20, 2.0), (40, 0.5), (200, 0.1), (200, 0.5), (500, 0.5))




# ------------------------------------------------------------------------------------------- training (Eq. 5)

def train_gat(store, bank, x: torch.Tensor, y: torch.Tensor, *, epochs: int, m: int, lr: float,
              attack_kwargs: Mapping | None, seed: int = 0, eval_fn: Callable | None = None,
              select_fn: Callable | None = None, optimizer: str = "adam", momentum: float = 0.9,
              weight_decay: float = 0.0, augment: Callable | None = None, precision: str = "fp32",
              desc: str = "GAT detectors", progress: bool = True) -> list[dict[str, float]]:
    """Train the K detectors of ``bank`` together with GAT's objective (Eq. 5), through the checkpoint ``store``
    (see :func:`advdetect.training.fit`).

    Every step draws ``m`` positives and ``m`` negatives per detector (:func:`advdetect.gat.detector_batches`),
    perturbs the negatives with ``attack_kwargs`` and takes one Adam step for all detectors; an epoch has as
    many steps as it takes to draw about every training image once as a positive. ``eval_fn(bank)``, if
    given, adds numbers (e.g. AUCs) to each epoch's history. ``select_fn(bank)``, if given, returns every
    detector's validation score (shape ``(K,)``, higher is better) after each epoch; each detector ends with its
    weights of its best epoch (GAT: the validation AUC under a 200-step attack), recorded in the history as
    ``best epoch k``. ``optimizer`` is ``"adam"`` (MNIST) or ``"sgd"`` (CIFAR-10: momentum 0.9, weight decay
    2e-4); ``augment(x, generator)`` transforms positives and negatives before the attack (CIFAR-10: random crop
    and flip). ``precision`` is that of every step (:func:`gat_step`).
    """
    device = device_of(bank)
    check_precision(precision)
    opt = make_optimizer(bank.parameters(), optimizer, lr, momentum=momentum, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    steps = max(1, len(y) // (bank.k * m))
    extra: dict[str, torch.Tensor] = {}
    if select_fn is not None:
        extra = {"best_score": torch.full((bank.k,), float("-inf"), device=device),
                 "best_epoch": torch.zeros(bank.k, device=device)}
        extra.update({f"best_{n}": p.detach().clone() for n, p in bank.stacked.items()})

    def epoch_fn(epoch: int):
        losses = []
        for _ in range(steps):
            pos, neg = detector_batches(y, m, bank.k, gen)
            xp, xn = x[pos], x[neg]
            if augment is not None:
                xp = augment(xp.flatten(0, 1), gen).view_as(xp)
                xn = augment(xn.flatten(0, 1), gen).view_as(xn)
            losses.append(gat_step(bank, opt, xp.to(device), xn.to(device), attack_kwargs, precision))
        stats = {"loss": sum(losses) / len(losses)}
        if eval_fn is not None:
            stats.update(eval_fn(bank))
        if select_fn is not None:
            score = torch.as_tensor(select_fn(bank), dtype=torch.float32, device=device)
            better = score > extra["best_score"]
            extra["best_score"].copy_(torch.where(better, score, extra["best_score"]))
            extra["best_epoch"].copy_(torch.where(better, torch.full_like(score, epoch + 1), extra["best_epoch"]))
            with torch.no_grad():
                for n, p in bank.stacked.items():
                    keep = better.view(-1, *([1] * (p.ndim - 1)))
                    extra[f"best_{n}"].copy_(torch.where(keep, p, extra[f"best_{n}"]))
            stats.update({f"val score {k}": float(v) for k, v in enumerate(score)})
        return stats

    history = fit(store, bank, opt, epoch_fn, epochs, desc=desc, progress=progress, extra=extra)
    if select_fn is not None:
        with torch.no_grad():
            for n, p in bank.stacked.items():
                p.copy_(extra[f"best_{n}"])
        history = [dict(h) for h in history]
        history[-1].update({f"best epoch {k}": int(e) for k, e in enumerate(extra["best_epoch"].tolist())})
    return history


# --------------------------------------------------------------------------- one detector (App. F, synthetic data)


def gat_binary_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, positives: torch.Tensor,
                    negatives: torch.Tensor, *, attack_kwargs: Mapping | None) -> float:
    """One optimiser step of GAT's objective (Eq. 5) for a single detector.

    Negatives are PGD-perturbed to *raise* the detector's logit (``attack_kwargs`` of the engine), or used as
    they are when ``attack_kwargs`` is None (ordinary discriminative training); sigmoid cross-entropy with
    positives labelled 1 and negatives 0.
    """
    if attack_kwargs is not None:
        model.eval()
        negatives = attacks.attack(raise_logit(model), negatives, None, **attack_kwargs).x_adv
        model.train()
    x = torch.cat([positives, negatives])
    target = torch.cat([torch.ones(len(positives)), torch.zeros(len(negatives))]).to(x.device)
    loss = F.binary_cross_entropy_with_logits(model(x).squeeze(1), target)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def train_binary(store, model: torch.nn.Module, positives: torch.Tensor, negatives: torch.Tensor, *,
                 steps: int, lr: float, batch: int | None, attack_kwargs: Mapping | None, seed: int,
                 warmup_steps: int = 0, steps_per_epoch: int = 50, desc: str = "training") -> list[dict[str, float]]:
    """Train a one-logit detector with GAT (``attack_kwargs`` given) or discriminatively (None), through the
    checkpoint ``store`` (see :func:`advdetect.training.fit`); ``batch`` positives and as many negatives are drawn per step (all of them if None). The first
    ``warmup_steps`` steps are discriminative (clean negatives), as in the authors' synthetic notebooks."""
    device = device_of(model)
    positives, negatives = positives.to(device), negatives.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)

    def draw(t: torch.Tensor) -> torch.Tensor:
        if batch is None or batch >= len(t):
            return t
        return t[torch.randperm(len(t), generator=gen)[:batch].to(t.device)]

    def epoch_fn(epoch: int):
        losses = []
        for i in range(steps_per_epoch):
            warm = epoch * steps_per_epoch + i < warmup_steps
            losses.append(gat_binary_step(model, optimizer, draw(positives), draw(negatives),
                                          attack_kwargs=None if warm else attack_kwargs))
        return {"loss": sum(losses) / len(losses)}

    return fit(store, model, optimizer, epoch_fn, max(1, steps // steps_per_epoch), desc=desc)


