"""Metrics of both papers.

Conventions: a *logit score* is high for natural inputs (GAT detectors: accept when ``score >= T``); an
*anomaly score* is high for adversarial inputs (ARCLU distances: detect when ``score > tau``). Labels and
predictions are integer tensors or arrays.

* :func:`roc_auc` - scikit-learn's ROC AUC of positives vs negatives;
* :func:`detection_curve` - GAT Eqs. 6-7: TPR on clean data, FPR on perturbed data counting only inputs that
  are misclassified and not rejected;
* :func:`classification_curve` - GAT Eqs. 13-14: accuracy (correct and accepted) on clean data, error
  (misclassified and accepted) on perturbed data, with a reject option;
* :func:`thresholds_at_fpr`, :func:`attack_success_ratio`, :func:`asr_p` and :func:`eroc` - ARCLU Section 5:
  per-class thresholds at p% false positives of held-out benign data, ASR-p and the expected ROC AUC as the
  authors compute it; :func:`weighted_auc` (with a bootstrap interval) - the class-weighted AUC behind it, which
  the book also reports over the misclassified adversarial examples alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import bootstrap, norm
from sklearn.metrics import roc_auc_score

from .objectives import Criterion


def _np(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def roc_auc(positive_scores, negative_scores) -> float:
    """Area under the ROC curve for telling positives (higher scores) from negatives (scikit-learn)."""
    pos, neg = _np(positive_scores).ravel(), _np(negative_scores).ravel()
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("roc_auc needs at least one positive and one negative score")
    labels = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    return float(roc_auc_score(labels, np.concatenate([pos, neg])))


def threshold_grid(*score_sets, n: int = 400) -> np.ndarray:
    """Sorted thresholds spanning all given scores, plus one above the maximum (accept nothing)."""
    allv = np.concatenate([_np(s).ravel() for s in score_sets])
    allv = allv[np.isfinite(allv)]
    qs = np.unique(np.quantile(allv, np.linspace(0, 1, n)))
    return np.concatenate([[-np.inf], qs, [np.nextafter(allv.max(), np.inf)]])


@dataclass
class Curve:
    thresholds: np.ndarray
    x: np.ndarray
    y: np.ndarray


def detection_curve(clean_scores, adv_scores, adv_pred, y, thresholds=None) -> Curve:
    """GAT Eqs. 6-7. ``clean_scores``: logit of the detector of each clean input's predicted class;
    ``adv_scores``/``adv_pred``: the same for the perturbed inputs and their predictions; ``y``: true labels
    of the perturbed inputs. Returns FPR (x) and TPR (y) per threshold T (accept if score >= T)."""
    cs, asc, ap, yy = _np(clean_scores), _np(adv_scores), _np(adv_pred), _np(y)
    t = threshold_grid(cs, asc) if thresholds is None else np.asarray(thresholds)
    tpr = (cs[None, :] >= t[:, None]).mean(1)
    fooled = ap != yy
    fpr = ((asc[None, :] >= t[:, None]) & fooled[None, :]).mean(1)
    return Curve(t, fpr, tpr)


def classification_curve(clean_scores, clean_pred, clean_y, adv_scores, adv_pred, adv_y, thresholds=None) -> Curve:
    """GAT Eqs. 13-14 with a reject option: error on perturbed data (x) and accuracy on clean data (y)."""
    cs, cp, cy = _np(clean_scores), _np(clean_pred), _np(clean_y)
    asc, ap, ay = _np(adv_scores), _np(adv_pred), _np(adv_y)
    t = threshold_grid(cs, asc) if thresholds is None else np.asarray(thresholds)
    acc = ((cs[None, :] >= t[:, None]) & (cp == cy)[None, :]).mean(1)
    err = ((asc[None, :] >= t[:, None]) & (ap != ay)[None, :]).mean(1)
    return Curve(t, err, acc)


def threshold_at_tpr(clean_scores, tpr: float) -> float:
    """The largest threshold T with at least ``tpr`` of the clean scores >= T."""
    s = np.sort(_np(clean_scores).ravel())[::-1]
    k = max(1, int(math.ceil(tpr * len(s))))
    return float(s[k - 1])


def thresholds_at_fpr(benign_scores, benign_pred, fpr: float, num_classes: int) -> np.ndarray:
    """Per-class thresholds tau_c on an anomaly score so that a fraction ``fpr`` of held-out benign inputs
    predicted as c has a score above tau_c (ARCLU: 1% in the paper). A class with no benign input gets +inf
    (nothing detected)."""
    s, p = _np(benign_scores).ravel(), _np(benign_pred).ravel()
    tau = np.full(num_classes, np.inf)
    for c in range(num_classes):
        sc = np.sort(s[p == c])[::-1]
        if len(sc):
            # the (floor(fpr * n) + 1)-th largest score: exactly floor(fpr * n) inputs lie above it (ties aside)
            tau[c] = sc[min(int(np.floor(fpr * len(sc) + 1e-9)), len(sc) - 1)]
    return tau


def attack_success_ratio(y, clean_pred, clean_scores, adv_pred, adv_scores, tau) -> tuple[float, int, int]:
    """ARCLU's ASR: among inputs correctly classified and not detected before the attack, the share that is
    misclassified and not detected after it (both by :class:`~advdetect.objectives.Criterion`). ``tau``:
    per-class thresholds on the anomaly score (detect if score > tau[predicted class]), or one threshold for
    all classes. Returns (ASR, successes, eligible)."""
    yy, cp, ap = (torch.as_tensor(_np(a)).long() for a in (y, clean_pred, adv_pred))
    cs, asc = (torch.as_tensor(_np(a), dtype=torch.float64) for a in (clean_scores, adv_scores))
    tau = torch.as_tensor(np.asarray(tau, dtype=float), dtype=torch.float64)
    if tau.ndim == 0:
        tau = tau.expand(max(int(cp.max()) if len(cp) else 0, int(ap.max()) if len(ap) else 0) + 1)
    criterion = Criterion(tau)
    eligible = criterion.eligible(cp, cs, yy)
    success = eligible & criterion.success_of(ap, asc, yy)
    n = int(eligible.sum())
    return (float(success.sum() / n) if n else float("nan")), int(success.sum()), n


def asr_p(p: float, heldout_scores, heldout_pred, y, clean_pred, clean_scores, adv_pred, adv_scores,
          num_classes: int) -> float:
    """ASR-p: ASR with per-class thresholds at p% false positives of held-out benign data."""
    tau = thresholds_at_fpr(heldout_scores, heldout_pred, p / 100.0, num_classes)
    return attack_success_ratio(y, clean_pred, clean_scores, adv_pred, adv_scores, tau)[0]


def _class_weighted(adv_pred, benign_pred, auc_of) -> float:
    """The class weighting of ARCLU's EROC: per class c predicted for some adversarial input and some benign
    input, ``auc_of(c, adversarial inputs predicted c, benign inputs predicted c)`` (boolean masks) weighted by
    the share of adversarial inputs predicted as c; classes with no benign input are left out and the weights
    renormalised. NaN without adversarial inputs."""
    ap, bp = _np(adv_pred), _np(benign_pred)
    if len(ap) == 0:
        return float("nan")
    total, weight = 0.0, 0.0
    for c in np.unique(ap):
        adv_c, benign_c = ap == c, bp == c
        if not benign_c.any():
            continue
        w = adv_c.sum() / len(ap)
        total += w * auc_of(c, adv_c, benign_c)
        weight += w
    return float(total / weight) if weight else float("nan")


def _auc(adv_scores: np.ndarray, benign_scores: np.ndarray) -> float:
    """ROC AUC of adversarial (positive, higher anomaly score) against benign scores."""
    labels = np.r_[np.ones(len(adv_scores)), np.zeros(len(benign_scores))]
    return float(roc_auc_score(labels, np.r_[adv_scores, benign_scores]))


def weighted_auc(benign_scores, benign_pred, adv_scores, adv_pred) -> float:
    """A class-weighted ROC AUC: per predicted class c, the AUC of telling adversarial (positive, higher anomaly
    score) from benign inputs predicted as c, weighted by the share of adversarial inputs predicted as c
    (:func:`_class_weighted`). Over the misclassified adversarial examples only it is the book's stricter reading
    of EROC (detection alone, see :func:`eroc`)."""
    bs, asc = _np(benign_scores), _np(adv_scores)
    return _class_weighted(adv_pred, benign_pred, lambda c, adv_c, benign_c: _auc(asc[adv_c], bs[benign_c]))


def eroc(benign_scores, benign_pred, adv_scores, adv_pred, y) -> float:
    """ARCLU's expected ROC AUC as its authors compute it (their evaluation code; the paper's tables): over the
    adversarial examples of the attacked inputs that were eligible (correctly classified and accepted before the
    attack; the caller passes those, with their true labels ``y``), the class-weighted AUC of
    :func:`weighted_auc`, except that an adversarial example still classified correctly (the attack failed)
    counts as detected: it takes the highest anomaly score among its class's adversarial examples, and a class
    whose adversarial examples are all still correct scores 1. So EROC rewards robust classification as well as
    detection; :func:`weighted_auc` over the misclassified examples measures detection alone."""
    bs, asc, yy = _np(benign_scores), _np(adv_scores).astype(float), _np(y)

    def auc_of(c, adv_c, benign_c):
        scores, wrong = asc[adv_c], yy[adv_c] != c
        return _auc(np.where(wrong, scores, scores.max()), bs[benign_c]) if wrong.any() else 1.0

    return _class_weighted(adv_pred, benign_pred, auc_of)


def weighted_auc_interval(benign_scores, benign_pred, adv_scores, adv_pred, *, level: float = 0.95,
                          resamples: int = 300, seed: int = 0) -> tuple[float, float]:
    """A percentile bootstrap interval of :func:`weighted_auc` (scipy's ``bootstrap``), benign and adversarial inputs
    resampled independently. NaN where there is nothing to resample."""
    bs, bp, asc, ap = _np(benign_scores), _np(benign_pred), _np(adv_scores), _np(adv_pred)
    if len(asc) < 2 or len(bs) < 2 or math.isnan(weighted_auc(bs, bp, asc, ap)):
        return (float("nan"), float("nan"))

    def stat(ib, ia):
        ib, ia = ib.astype(int), ia.astype(int)
        return weighted_auc(bs[ib], bp[ib], asc[ia], ap[ia])

    res = bootstrap((np.arange(len(bs)), np.arange(len(asc))), stat, paired=False, vectorized=False,
                    n_resamples=resamples, confidence_level=level, method="percentile",
                    random_state=np.random.default_rng(seed))
    return (float(res.confidence_interval.low), float(res.confidence_interval.high))


def mean_interval(values, *, level: float = 0.95, resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """A percentile bootstrap interval of the mean of ``values`` (scipy's ``bootstrap``); NaN for fewer than two."""
    v = _np(values).astype(float)
    if len(v) < 2:
        return (float("nan"), float("nan"))
    res = bootstrap((v,), np.mean, n_resamples=resamples, confidence_level=level, method="percentile",
                    random_state=np.random.default_rng(seed))
    return (float(res.confidence_interval.low), float(res.confidence_interval.high))


def proportion_ci(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion."""
    if n == 0:
        return (float("nan"), float("nan"))
    z = float(norm.ppf(0.5 + level / 2))
    p = successes / n
    den = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / den
    return (max(0.0, centre - half), min(1.0, centre + half))


def interval_order(a: tuple[float, float], b: tuple[float, float]) -> int:
    """How two 95% intervals ``(low, high)`` lie: 1 when ``a`` lies wholly above ``b``, -1 wholly below, 0 when
    they overlap (or either is undefined). The book ranks two estimates only when this is not 0."""
    (alo, ahi), (blo, bhi) = a, b
    if any(math.isnan(float(v)) for v in (alo, ahi, blo, bhi)):
        return 0
    return 1 if alo > bhi else -1 if ahi < blo else 0


def sound_order(order: int, a_sound: bool = True, b_sound: bool = True) -> int:
    """:func:`interval_order` of two attack success ratios ``a`` and ``b``, kept only where the lower of the two
    is sound (every check of the attacks behind it passed): a figure that failed a check is only a lower bound
    on what an attacker achieves, so it can lie above another but never below it. Returns ``order`` or 0."""
    if order == 1:
        return 1 if b_sound else 0
    if order == -1:
        return -1 if a_sound else 0
    return 0


def total_variation(p: np.ndarray, q: np.ndarray, cell: float) -> float:
    """Total-variation distance 0.5 * integral |p - q| of two densities sampled on a regular grid."""
    return float(0.5 * np.abs(np.asarray(p) - np.asarray(q)).sum() * cell)


def hellinger(p: np.ndarray, q: np.ndarray, cell: float) -> float:
    """Hellinger distance sqrt(1 - integral sqrt(p q)) of two densities on a regular grid (0 = equal, 1 = disjoint)."""
    bc = float((np.sqrt(np.clip(p, 0, None) * np.clip(q, 0, None))).sum() * cell)
    return math.sqrt(max(0.0, 1.0 - bc))
