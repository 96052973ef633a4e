"""ARCLU (Joe et al. 2020): an encoder whose representations form a Gaussian mixture, one cluster per class plus
one for adversarial examples, and detection by the distance to the predicted class's mean.

* :func:`class_means` - the means u(y) of Eq. 13 (value ``M`` on the ``l`` coordinates of class y) and the
  adversarial cluster's mean at the origin (row ``k``); identity covariances (Eq. 14).
* the decision rule (Eq. 16: nearest class mean, the distance to it as detection score) is
  :class:`~advdetect.defences.DistanceDefence`; the adaptive PGD of Eq. 17 is the ``nearest wrong`` loss of
  :mod:`advdetect.objectives` on it (targeted: toward a chosen class's mean).
* :func:`relabel`, :func:`balanced_loss`, :func:`train_arclu` - Algorithm 1: successful adversarial examples go
  to the adversarial cluster, failed ones to their own class (every one to its own class for the L-Ben
  ablation), and the two groups' mean squared distances are added (Eq. 31).
* :func:`center_loss`, :func:`train_center` - the motivation experiment's encoder (Eq. 10, Section 3.1).
* :func:`overlap`, :func:`representation_study` - how much adversarial and benign representations overlap,
  measured in the representation space itself (not in a 2-D embedding).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from . import attacks
from .defences import DistanceDefence
from .metrics import weighted_auc, weighted_auc_interval
from .objectives import Criterion, objective
from .runtime import autocast, check_precision, device_of
from .training import eps_scale, fit, scaled_attack, step_schedule, train_classifier

# ------------------------------------------------------------------------------------ the mixture (Eqs. 11-16)

def class_means(k: int, l: int = 1, magnitude: float = 10.0) -> torch.Tensor:
    """Means of the k class clusters and of the adversarial cluster, shape ``(k + 1, k * l)``: row y has
    ``magnitude`` (ARCLU's M) on coordinates ``y*l .. (y+1)*l - 1`` and 0 elsewhere (Eq. 13); row k, the
    adversarial cluster, is the origin."""
    if k < 2 or l < 1:
        raise ValueError(f"need k >= 2 classes and l >= 1 coordinates per class, got k={k}, l={l}")
    means = torch.zeros(k + 1, k * l)
    for y in range(k):
        means[y, y * l:(y + 1) * l] = magnitude
    return means


def distances(z: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """Euclidean distances ``(N, len(means))`` of representations ``z`` ``(N, m)`` to every mean."""
    return torch.cdist(z, means.to(z))


def nearest_mean(z: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """The nearest of the k class means (not the adversarial cluster's): Eq. 16's classification of
    representations ``z``."""
    return distances(z, means[:len(means) - 1]).argmin(1)


# ------------------------------------------------------------------------------------------ training (Alg. 1)

def relabel(y: torch.Tensor, success: torch.Tensor, k: int, lben: bool = False) -> torch.Tensor:
    """Targets of the adversarial examples of a batch: successful ones (Eq. 20) -> the adversarial cluster k
    (Eq. 21), failed ones -> their original class (Eq. 23). L-Ben (``lben=True``): all to their original class."""
    if lben:
        return y.clone()
    return torch.where(success, torch.full_like(y, k), y)


def balanced_loss(z: torch.Tensor, targets: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """Eq. 31 (the negative log-likelihood of Eqs. 25-30 up to constants): the mean squared distance to the
    target mean over the examples labelled adversarial (target k), plus the same mean over all others; a group
    that is empty contributes nothing."""
    k = len(means) - 1
    sq = (z - means.to(z)[targets]).pow(2).sum(1)
    adv = targets == k
    loss = sq[~adv].mean() if (~adv).any() else z.sum() * 0
    if adv.any():
        loss = loss + sq[adv].mean()
    return loss


def train_arclu(store, encoder: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, means: torch.Tensor, *,
                epochs: int, lr: float = 1e-3, batch_size: int = 100, attack_kwargs: Mapping, fpr: float = 0.01,
                tau_n: int = 1000, lben: bool = False, seed: int = 0, warmup: float = 0.0,
                warmup_from: float = 0.3, lr_drops=(), precision: str = "fp32", desc: str = "ARCLU",
                progress: bool = True) -> list[dict[str, float]]:
    """Algorithm 1 through the checkpoint ``store`` (resumable per epoch, see :func:`advdetect.training.fit`). Per batch B: phase 1 attacks every benign example
    with the adaptive PGD of Eq. 17 (``attack_kwargs``: engine keywords; ARCLU MNIST: L-inf 0.3, 40 sign steps
    of 0.01 from the natural image); an example is successful when it lands inside another class's threshold
    (Eq. 20). Phase 2 relabels (:func:`relabel`) and takes one Adam step on :func:`balanced_loss` over
    B, B_S and B_F. The thresholds tau are re-set at the start of each epoch at ``fpr`` false positives on
    ``tau_n`` fixed training images. The history logs the loss, the share of successful attacks and the benign
    training accuracy per epoch. ``warmup`` (epochs) ramps the attack's budget up from ``warmup_from`` times its
    eps, and the learning rate drops tenfold at each epoch of ``lr_drops``, as
    :func:`advdetect.training.train_classifier` does; ``precision`` is the arithmetic of the attack's and the
    loss's forward passes (:func:`advdetect.runtime.autocast`; the thresholds are set in float32)."""
    device = device_of(encoder)
    check_precision(precision)
    means = means.to(device)
    k = len(means) - 1
    defence = DistanceDefence("ARCLU (training)", encoder, means)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    x_tau = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed + 1))[:tau_n]]

    def epoch_fn(epoch: int):
        step_schedule(optimizer, lr, epoch, lr_drops)
        adversary = objective(defence, "nearest wrong", Criterion(defence.thresholds(x_tau, fpr, 1000).to(device)))
        order = torch.randperm(len(y), generator=gen)
        loss_sum, succ, correct, total = 0.0, 0, 0, 0
        batches = -(-len(y) // batch_size)
        for b, start in enumerate(range(0, len(y), batch_size)):
            scale = eps_scale(epoch + b / batches, warmup, warmup_from)
            idx = order[start:start + batch_size]
            xb, yb = x[idx].to(device), y[idx].to(device)
            with autocast(device, precision):
                encoder.eval()
                for p in encoder.parameters():
                    p.requires_grad_(False)
                res = attacks.attack(adversary, xb, yb, **scaled_attack(attack_kwargs, scale))
                for p in encoder.parameters():
                    p.requires_grad_(True)
                encoder.train()
                targets = torch.cat([yb, relabel(yb, res.success, k, lben)])
                z = encoder(torch.cat([xb, res.x_adv])).float()
            loss = balanced_loss(z, targets, means)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            n = len(idx)
            loss_sum += float(loss.detach()) * n
            succ += int(res.success.sum())
            correct += int((nearest_mean(z[:n].detach(), means) == yb).sum())
            total += n
        return {"loss": loss_sum / total, "attack success": succ / total, "train_acc": correct / total}

    return fit(store, encoder, optimizer, epoch_fn, epochs, desc=desc, progress=progress)


# --------------------------------------------------------------------------------- motivation (Section 3.1)

def center_loss(z: torch.Tensor, y: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """Eq. 10: the mean Euclidean (not squared) distance of each representation to its class mean."""
    return (z - means.to(z)[y]).norm(dim=1).mean()


def train_center(store, encoder: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, means: torch.Tensor, *,
                 epochs: int, lr: float = 1e-3, batch_size: int = 100, seed: int = 0, desc: str = "encoder (Eq. 10)",
                 progress: bool = True) -> list[dict[str, float]]:
    """The motivation experiment's encoder: representations pulled to one-hot class centres by Eq. 10 (Adam;
    no adversarial examples), through the cache (:func:`advdetect.training.train_classifier` with this loss
    and nearest-mean predictions)."""
    means = means.to(device_of(encoder))
    return train_classifier(store, encoder, x, y, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                            loss_fn=lambda z, t: center_loss(z, t, means),
                            predict_fn=lambda z: nearest_mean(z, means), desc=desc, progress=progress)


# ------------------------------------------------------------------------------------ overlap, measured

def overlap(z_benign: torch.Tensor, pred_benign: torch.Tensor, z_adv: torch.Tensor, pred_adv: torch.Tensor,
            centres: torch.Tensor, *, neighbours: int = 10, folds: int = 5, seed: int = 0) -> dict[str, float]:
    """How well adversarial representations can be told from benign ones *in the representation space*.

    ``centre AUC``: per predicted class c, the ROC AUC of the distance to class c's centre (``centres[c]``, e.g.
    the mean benign training representation of c) between adversarial and benign points predicted as c,
    weighted by the share of adversarial points predicted as c (EROC's class weighting with this distance as score):
    0.5 means the two are equally far from the centre, 1 that every adversarial point lies farther out than
    every benign one, below 0.5 that adversarial points sit *closer* to the centre; ``centre AUC 95% CI`` its
    bootstrap interval (:func:`advdetect.metrics.weighted_auc_interval`).
    ``kNN accuracy``: balanced accuracy of a ``neighbours``-nearest-neighbour classifier telling adversarial
    from benign points, ``folds``-fold cross-validated (scikit-learn): 0.5 when the two clouds are mixed, 1 when
    every neighbourhood is pure."""
    zb, za = z_benign.float().cpu(), z_adv.float().cpu()
    cb = torch.cdist(zb, centres.float().cpu()).gather(1, pred_benign.cpu()[:, None]).squeeze(1)
    ca = torch.cdist(za, centres.float().cpu()).gather(1, pred_adv.cpu()[:, None]).squeeze(1)
    auc = weighted_auc(cb, pred_benign, ca, pred_adv)
    feats = torch.cat([zb, za]).numpy()
    labels = np.r_[np.zeros(len(zb)), np.ones(len(za))]
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    knn = cross_val_score(KNeighborsClassifier(n_neighbors=neighbours), feats, labels, cv=cv,
                          scoring="balanced_accuracy")
    return {"centre AUC": float(auc),
            "centre AUC 95% CI": weighted_auc_interval(cb, pred_benign, ca, pred_adv, seed=seed),
            "kNN accuracy": float(knn.mean())}


def class_centres(z: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    """Mean representation of each class ``(k, m)`` (the empirical cluster centres of a representation space)."""
    return torch.stack([z[y == c].mean(0) for c in range(k)])


def representation_study(represent, classify, x_benign: torch.Tensor, x_adv: torch.Tensor, targets: torch.Tensor,
                         *, x_centres: torch.Tensor, y_centres: torch.Tensor, num_classes: int = 10,
                         neighbours: int = 10, seed: int = 0, min_successful: int = 20) -> dict:
    """ARCLU's motivation experiment for one representation space (Section 3.1): representations of benign
    inputs ``x_benign`` and of targeted adversarial examples ``x_adv`` (crafted toward ``targets``), and how much
    they overlap (:func:`overlap`, class centres = mean representation of ``x_centres`` per label
    ``y_centres``). ``represent(x) -> z`` and ``classify(z) -> predicted class`` define the space.

    The overlap claim is about adversarial examples that work, so the overlap numbers are measured on the
    successful ones only (classified as their target): ``n successful`` of ``n attacked``; with fewer than
    ``min_successful`` of them the numbers are NaN. Returns the representations and predictions of every
    attacked point (``successful`` marks the ones measured), the success rate and the overlap numbers."""
    z_b, z_a = represent(x_benign), represent(x_adv)
    p_b, p_a = classify(z_b), classify(z_a)
    hit = (p_a.cpu() == targets.cpu())
    centres = class_centres(represent(x_centres), y_centres.cpu(), num_classes)
    result = {"z_benign": z_b, "pred_benign": p_b, "z_adv": z_a, "pred_adv": p_a, "x_adv": x_adv,
              "successful": hit, "success": float(hit.float().mean()), "n successful": int(hit.sum()),
              "n attacked": len(hit)}
    if int(hit.sum()) >= min_successful:
        result.update(overlap(z_b, p_b, z_a[hit.to(z_a.device)], p_a[hit.to(p_a.device)], centres,
                              neighbours=neighbours, seed=seed))
    else:
        result.update({"centre AUC": float("nan"), "centre AUC 95% CI": (float("nan"), float("nan")),
                       "kNN accuracy": float("nan")})
    return result


def overlap_verdict(centre_auc: float, knn_accuracy: float, success: float | None = None,
                    min_success: float = 0.5, n_successful: int | None = None, min_successful: int = 20) -> str:
    """The motivation chapter's reading of the two overlap numbers of :func:`overlap` (measured on the
    successful adversarial examples) against ARCLU's claim that adversarial representations overlap the benign
    clusters. The claim is about typical adversarial examples that reach their target: where the targeted
    attack's ``success`` rate is below ``min_success`` (the space mostly resists the attack, and the few that
    succeed are not typical) or fewer than ``min_successful`` examples succeeded, no verdict is given."""
    if success is not None and success < min_success:
        return (f"only {success:.0%} of the targeted attacks reached their target, so the space mostly resists "
                "them and the few that succeed are not typical: the overlap claim cannot be judged in this space")
    if n_successful is not None and n_successful < min_successful:
        return (f"only {n_successful} targeted attacks reached their target: too few to judge the overlap claim "
                "in this space")
    own = ("adversarial representations form clusters of their own" if knn_accuracy >= 0.8 else
           "adversarial representations are mixed with the benign points rather than clustered apart")
    by_distance = ("can barely tell them from benign ones" if centre_auc < 0.6 else
                   "separates them only partly" if centre_auc < 0.9 else "separates them well")
    claim = ("the paper's overlap claim holds" if centre_auc < 0.6 else
             "the overlap claim holds only in part" if centre_auc < 0.9 else "the overlap claim does not hold")
    return f"{own}; a distance to the class centre {by_distance}: {claim}"
