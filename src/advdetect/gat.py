"""GAT on images: batches, the training step of Eq. 5 for all K detectors at once, and the two classifiers.

Batches. The authors draw a window of 320 shuffled training images per step; detector k's positives are the
window's images of class k (about 32) and its negatives as many other-class images, PGD-perturbed to raise
detector k's logit. To train the K detectors as one batched model every detector needs a batch of the same
size, so :func:`detector_batches` draws exactly ``m`` positives of class k and ``m`` other-class negatives for
every k (the same balance and the same expected number of images per step).

Classifiers. The *generative* classifier predicts argmax_k z(h_k(x)) and rejects when that logit is below a
threshold (GAT Section 3.2); the *integrated* classifier predicts with the natural classifier f and rejects when
the logit of the predicted class's detector is below the threshold (Section 4.3).
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F

from . import attacks
from .ensemble import DetectorBank


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
    """PGD on each detector's negatives ``(K, m, ...)`` to raise that detector's logit (GAT Eq. 5's inner max)."""
    k, m = negatives.shape[:2]
    shape = negatives.shape[2:]

    def objective(x_flat, _):
        return -bank.each(x_flat.view(k, m, *shape)).reshape(-1)

    flat = negatives.reshape(k * m, *shape)
    return attacks.attack(objective, flat, None, **attack_kwargs).x_adv.view_as(negatives)


def gat_loss(bank: DetectorBank, positives: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """Sigmoid cross-entropy of GAT Eq. 5 for every detector: positives ``(K, m, ...)`` labelled 1, (perturbed)
    negatives ``(K, m, ...)`` labelled 0; mean over detectors and samples."""
    logits = bank.each(torch.cat([positives, negatives], dim=1))
    m = positives.shape[1]
    target = torch.zeros_like(logits)
    target[:, :m] = 1.0
    return F.binary_cross_entropy_with_logits(logits, target)


def gat_step(bank: DetectorBank, optimizer: torch.optim.Optimizer, positives: torch.Tensor, negatives: torch.Tensor,
             attack_kwargs: Mapping | None) -> float:
    """One optimiser step of all K detectors; ``attack_kwargs=None`` trains on clean negatives."""
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
    device = next(bank.parameters()).device
    return torch.cat([bank(x[i:i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])


def generative_decision(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Generative classifier: prediction argmax_k z_k and its score max_k z_k (accept if score >= T)."""
    score, pred = logits.max(1)
    return pred, score


def integrated_decision(classifier_logits: torch.Tensor, detector_logits: torch.Tensor):
    """Integrated classifier: prediction f(x) and the logit of that class's detector (accept if >= T)."""
    pred = classifier_logits.argmax(1)
    return pred, detector_logits.gather(1, pred[:, None]).squeeze(1)
