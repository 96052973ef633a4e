"""ARCLU (Joe et al. 2020): an encoder whose representations form a Gaussian mixture, one cluster per class plus
one for adversarial examples, and detection by the distance to the predicted class's mean.

* :func:`class_means` - the means u(y) of Eq. 13 (value ``M`` on the ``l`` coordinates of class y) and the
  adversarial cluster's mean at the origin (row ``k``); identity covariances (Eq. 14).
* :func:`decide` - classification by the nearest class mean (Eq. 16) and the detection score, the distance to
  that mean; :func:`thresholds` - per-class thresholds tau_y at a false-positive rate of held-out benign data.
* :func:`targeted_objective`, :func:`adaptive_objective` - the adaptive PGD of Eq. 17 (targeted, and toward the
  nearest wrong-class mean re-chosen at every step) as objectives of :func:`advdetect.attacks.attack`.
* :func:`relabel`, :func:`balanced_loss`, :func:`train_arclu` - Algorithm 1: successful adversarial examples go
  to the adversarial cluster, failed ones to their own class (every one to its own class for the L-Ben
  ablation), and the two groups' mean squared distances are added (Eq. 31).
* :func:`center_loss`, :func:`train_center` - the motivation experiment's encoder (Eq. 10, Section 3.1).
* :func:`overlap` - how much adversarial and benign representations overlap, measured in the representation
  space itself (not in a 2-D embedding).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from . import attacks
from .cache import Entry
from .runtime import device_of, freeze


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


def decide(z: torch.Tensor, means: torch.Tensor, k: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest-class-mean classification over the ``k`` benign clusters (Eq. 16) and the detection score: the
    distance to the predicted class's mean (detected when above that class's tau). Returns (pred, score)."""
    k = len(means) - 1 if k is None else k
    score, pred = distances(z, means[:k]).min(1)
    return pred, score


@torch.no_grad()
def encode(encoder: torch.nn.Module, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Representations of ``x`` in evaluation mode, batched on the encoder's device; returned on the CPU."""
    from .training import predict

    return predict(encoder, x, batch_size)


def decide_inputs(encoder: torch.nn.Module, means: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`decide` on the representations of images ``x`` (CPU tensors)."""
    return decide(encode(encoder, x), means.cpu())


def thresholds(encoder: torch.nn.Module, means: torch.Tensor, x_heldout: torch.Tensor, fpr: float) -> torch.Tensor:
    """Per-class thresholds tau (``(k,)``) on the distance so that a fraction ``fpr`` of held-out benign inputs
    predicted as each class is detected (ARCLU: 1%)."""
    from .metrics import thresholds_at_fpr

    pred, score = decide_inputs(encoder, means, x_heldout)
    return torch.as_tensor(thresholds_at_fpr(score, pred, fpr, len(means) - 1), dtype=torch.float32)


# ------------------------------------------------------------------------------------ adaptive attacks (Eq. 17)

def _accepted(pred: torch.Tensor, score: torch.Tensor, tau: torch.Tensor | None) -> torch.Tensor:
    if tau is None:
        return torch.ones_like(pred, dtype=torch.bool)
    return score <= tau.to(score.device)[pred]


def targeted_objective(encoder: torch.nn.Module, means: torch.Tensor, tau: torch.Tensor | None = None):
    """A_{y=t}: minimise ||H(x') - mu_t||_2 for a target ``t`` per sample (the objective's second argument).
    Success: classified as ``t`` and, with ``tau`` given, not detected."""
    k = len(means) - 1

    def objective(x, t):
        z = encoder(x)
        d = distances(z, means)
        pred, score = d[:, :k].min(1)
        return d.gather(1, t[:, None]).squeeze(1), (pred == t) & _accepted(pred, score, tau)

    return objective


def adaptive_objective(encoder: torch.nn.Module, means: torch.Tensor, tau: torch.Tensor | None = None):
    """Eq. 17, untargeted: minimise the distance to the nearest wrong-class mean, re-chosen at every step (the
    objective's second argument is the true label). Success: misclassified and, with ``tau``, not detected."""
    k = len(means) - 1

    def objective(x, y):
        z = encoder(x)
        d = distances(z, means)[:, :k]
        pred = d.argmin(1)
        score = d.gather(1, pred[:, None]).squeeze(1)
        wrong = d.masked_fill(torch.nn.functional.one_hot(y, k).bool(), float("inf")).min(1).values
        return wrong, (pred != y) & _accepted(pred, score, tau)

    return objective


def random_targets(y: torch.Tensor, k: int, seed: int = 0) -> torch.Tensor:
    """One target class t != y per sample, uniformly at random (fixed by ``seed``)."""
    gen = torch.Generator().manual_seed(seed)
    return ((y.cpu() + 1 + torch.randint(0, k - 1, y.shape, generator=gen)) % k).to(y.device)


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


def train_arclu(entry: Entry, encoder: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, means: torch.Tensor, *,
                epochs: int, lr: float = 1e-3, batch_size: int = 100, attack_kwargs: Mapping, fpr: float = 0.01,
                tau_n: int = 1000, lben: bool = False, seed: int = 0, desc: str = "ARCLU",
                progress: bool = True) -> list[dict[str, float]]:
    """Algorithm 1 through the cache (resumable per epoch). Per batch B: phase 1 attacks every benign example
    with the adaptive PGD of Eq. 17 (``attack_kwargs``: engine keywords; ARCLU MNIST: L-inf 0.3, 40 sign steps
    of 0.01 from the natural image); an example is successful when it lands inside another class's threshold
    (Eq. 20). Phase 2 relabels (:func:`relabel`) and takes one Adam step on :func:`balanced_loss` over
    B, B_S and B_F. The thresholds tau are re-set at the start of each epoch at ``fpr`` false positives on
    ``tau_n`` fixed training images. The history logs the loss, the share of successful attacks and the benign
    training accuracy per epoch."""
    from .training import fit

    device = device_of(encoder)
    means = means.to(device)
    k = len(means) - 1
    optimizer = torch.optim.Adam(encoder.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    x_tau = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed + 1))[:tau_n]]

    def epoch_fn(epoch: int):
        tau = thresholds(encoder, means, x_tau, fpr).to(device)
        order = torch.randperm(len(y), generator=gen)
        loss_sum, succ, correct, total = 0.0, 0, 0, 0
        for start in range(0, len(y), batch_size):
            idx = order[start:start + batch_size]
            xb, yb = x[idx].to(device), y[idx].to(device)
            encoder.eval()
            for p in encoder.parameters():
                p.requires_grad_(False)
            res = attacks.attack(adaptive_objective(encoder, means, tau), xb, yb, **attack_kwargs)
            for p in encoder.parameters():
                p.requires_grad_(True)
            encoder.train()
            targets = torch.cat([yb, relabel(yb, res.success, k, lben)])
            z = encoder(torch.cat([xb, res.x_adv]))
            loss = balanced_loss(z, targets, means)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            n = len(idx)
            loss_sum += float(loss.detach()) * n
            succ += int(res.success.sum())
            correct += int((decide(z[:n].detach(), means)[0] == yb).sum())
            total += n
        return {"loss": loss_sum / total, "attack success": succ / total, "train_acc": correct / total}

    return fit(entry, encoder, optimizer, epoch_fn, epochs, desc=desc, progress=progress)


# --------------------------------------------------------------------------------- motivation (Section 3.1)

def center_loss(z: torch.Tensor, y: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """Eq. 10: the mean Euclidean (not squared) distance of each representation to its class mean."""
    return (z - means.to(z)[y]).norm(dim=1).mean()


def train_center(entry: Entry, encoder: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, means: torch.Tensor, *,
                 epochs: int, lr: float = 1e-3, batch_size: int = 100, seed: int = 0, desc: str = "encoder (Eq. 10)",
                 progress: bool = True) -> list[dict[str, float]]:
    """The motivation experiment's encoder: representations pulled to one-hot class centres by Eq. 10 (Adam;
    no adversarial examples), through the cache (:func:`advdetect.training.train_classifier` with this loss
    and nearest-mean predictions)."""
    from .training import train_classifier

    means = means.to(device_of(encoder))
    return train_classifier(entry, encoder, x, y, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                            loss_fn=lambda z, t: center_loss(z, t, means),
                            predict_fn=lambda z: decide(z, means)[0], desc=desc, progress=progress)


# ------------------------------------------------------------------------------------ overlap, measured

def overlap(z_benign: torch.Tensor, pred_benign: torch.Tensor, z_adv: torch.Tensor, pred_adv: torch.Tensor,
            centres: torch.Tensor, *, neighbours: int = 10, folds: int = 5, seed: int = 0) -> dict[str, float]:
    """How well adversarial representations can be told from benign ones *in the representation space*.

    ``centre AUC``: per predicted class c, the ROC AUC of the distance to class c's centre (``centres[c]``, e.g.
    the mean benign training representation of c) between adversarial and benign points predicted as c,
    weighted by the share of adversarial points predicted as c (ARCLU's EROC with this distance as the score):
    0.5 means the two are equally far from the centre, 1 that every adversarial point lies farther out than
    every benign one, below 0.5 that adversarial points sit *closer* to the centre.
    ``kNN accuracy``: balanced accuracy of a ``neighbours``-nearest-neighbour classifier telling adversarial
    from benign points, ``folds``-fold cross-validated (scikit-learn): 0.5 when the two clouds are mixed, 1 when
    every neighbourhood is pure."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    from .metrics import eroc

    zb, za = z_benign.float().cpu(), z_adv.float().cpu()
    cb = torch.cdist(zb, centres.float().cpu()).gather(1, pred_benign.cpu()[:, None]).squeeze(1)
    ca = torch.cdist(za, centres.float().cpu()).gather(1, pred_adv.cpu()[:, None]).squeeze(1)
    auc = eroc(cb, pred_benign, ca, pred_adv)
    feats = torch.cat([zb, za]).numpy()
    labels = np.r_[np.zeros(len(zb)), np.ones(len(za))]
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    knn = cross_val_score(KNeighborsClassifier(n_neighbors=neighbours), feats, labels, cv=cv,
                          scoring="balanced_accuracy")
    return {"centre AUC": float(auc), "kNN accuracy": float(knn.mean())}


def class_centres(z: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    """Mean representation of each class ``(k, m)`` (the empirical cluster centres of a representation space)."""
    return torch.stack([z[y == c].mean(0) for c in range(k)])


def representation_study(cache, key: Mapping, represent, classify, objective, x_benign: torch.Tensor,
                         x_source: torch.Tensor, targets: torch.Tensor, attack: Mapping, *, x_centres: torch.Tensor,
                         y_centres: torch.Tensor, num_classes: int = 10, neighbours: int = 10,
                         seed: int = 0) -> dict:
    """ARCLU's motivation experiment for one representation space (Section 3.1): representations of benign
    inputs ``x_benign`` and of targeted adversarial examples A_{y=t}(x) crafted from ``x_source`` toward
    ``targets`` by minimising ``objective`` (engine keywords ``attack``; cached under ``key``), and how much
    they overlap (:func:`overlap`, class centres = mean representation of ``x_centres`` per label
    ``y_centres``). ``represent(x) -> z`` and ``classify(z) -> predicted class`` define the space.
    Returns the representations, predictions, the attack's success rate (classified as the target) and the
    overlap numbers."""
    from .gat import cached_attack

    x_adv = cached_attack(cache, key, objective, x_source, targets, attack)
    z_b, z_a = represent(x_benign), represent(x_adv)
    p_b, p_a = classify(z_b), classify(z_a)
    centres = class_centres(represent(x_centres), y_centres.cpu(), num_classes)
    result = {"z_benign": z_b, "pred_benign": p_b, "z_adv": z_a, "pred_adv": p_a, "x_adv": x_adv,
              "success": float((p_a == targets.cpu()).float().mean())}
    result.update(overlap(z_b, p_b, z_a, p_a, centres, neighbours=neighbours, seed=seed))
    return result


# ----------------------------------------------------------------------------------- cached models of the book


def center_encoder(cache, ds, *, width: float, epochs: int, lr: float, batch_size: int, seed: int, device):
    """The motivation experiment's encoder (Eq. 10, one-hot centres), cached. Returns (encoder, means, history)."""
    from .models import ArcluEncoder
    from .runtime import seed_everything

    seed_everything(seed)
    means = class_means(ds.num_classes, l=1, magnitude=1.0)
    encoder = ArcluEncoder(ds.num_classes, in_channels=ds.shape[0], image_size=ds.shape[1], width=width).to(device)
    config = {"data": ds.name, "n": len(ds.y_train), "width": width, "epochs": epochs, "lr": lr, "batch": batch_size,
              "seed": seed}
    hist = train_center(cache.entry("arclu_center_encoder", config), encoder, ds.x_train, ds.y_train, means,
                        epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
    encoder.config = {"model": "center encoder", **config}
    return freeze(encoder), means, hist


def softmax_classifier(cache, ds, *, width: float, epochs: int, lr: float, batch_size: int, seed: int, device):
    """The same network trained with cross-entropy (the vanilla classifier of ARCLU Fig 2), cached."""
    from .models import ArcluEncoder
    from .runtime import seed_everything
    from .training import train_classifier

    seed_everything(seed)
    model = ArcluEncoder(ds.num_classes, in_channels=ds.shape[0], image_size=ds.shape[1], width=width).to(device)
    config = {"data": ds.name, "n": len(ds.y_train), "width": width, "epochs": epochs, "lr": lr, "batch": batch_size,
              "seed": seed}
    hist = train_classifier(cache.entry("arclu_softmax_classifier", config), model, ds.x_train, ds.y_train,
                            epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, desc="softmax classifier")
    model.config = {"model": "softmax classifier", **config}
    return freeze(model), hist


def detector(cache, ds, *, width: float, l: int, magnitude: float, epochs: int, lr: float, batch_size: int,
             attack: Mapping, fpr: float, lben: bool, seed: int, device, arch: str = "small cnn",
             desc: str | None = None):
    """ARCLU's detector (Algorithm 1), or the L-Ben ablation with ``lben=True``, cached: the encoder to
    m = k * l dimensions, its cluster means (M = ``magnitude``) and the training history. ``arch``: ARCLU's
    small MNIST CNN (``"small cnn"``) or a CIFAR-10 network of :func:`advdetect.gat.cifar_network`
    (``"wrn-34-10"``, the paper's; ``"resnet18"``)."""
    from .gat import cifar_network
    from .models import ArcluEncoder
    from .runtime import seed_everything

    seed_everything(seed)
    k = ds.num_classes
    means = class_means(k, l=l, magnitude=magnitude)
    if arch == "small cnn":
        encoder = ArcluEncoder(k * l, in_channels=ds.shape[0], image_size=ds.shape[1], width=width)
    else:
        encoder = cifar_network(arch, width, num_outputs=k * l)
    encoder = encoder.to(device)
    kwargs = {"rule": "sign", **dict(attack)}
    config = {"data": ds.name, "n": len(ds.y_train), "arch": arch, "width": width, "l": l, "M": magnitude,
              "epochs": epochs,
              "lr": lr, "batch": batch_size, "attack": kwargs, "fpr": fpr, "lben": lben, "seed": seed}
    hist = train_arclu(cache.entry("arclu_detector", config), encoder, ds.x_train, ds.y_train, means, epochs=epochs,
                       lr=lr, batch_size=batch_size, attack_kwargs=kwargs, fpr=fpr, lben=lben, seed=seed,
                       desc=desc or ("L-Ben" if lben else "ARCLU"))
    encoder.config = {"model": "arclu detector", **config}
    return freeze(encoder), means, hist


def chapter_detector(cache, profile: str | None = None, device=None, lben: bool = False):
    """ARCLU's detector (or L-Ben) exactly as the cluster separation chapter trains it at ``profile`` (its dataset
    and settings from :mod:`advdetect.profiles`), from the cache or trained now; other chapters use this to
    study or attack it. Returns (encoder, means, dataset)."""
    from . import data, profiles

    c = profiles.defaults("cluster_separation", profile)
    ds = data.load_for(c)
    encoder, means, _ = detector(
        cache, ds, width=c["WIDTH"], l=c["L"], magnitude=c["M"], epochs=c["EPOCHS"], lr=c["LR"],
        batch_size=c["BATCH"], attack=dict(norm="linf", eps=c["EPS"], steps=c["TRAIN_STEPS"],
                                           step_size=c["TRAIN_STEP"]),
        fpr=c["TRAIN_FPR"], lben=lben, seed=c["SEED"], device=device if device is not None else "cpu")
    return encoder, means, ds


# ----------------------------------------------------------------------------------- evaluation (Table 2)

def evaluate(cache, encoder: torch.nn.Module, means: torch.Tensor, x_heldout: torch.Tensor, x: torch.Tensor,
             y: torch.Tensor, attack: Mapping, *, targeted: bool, seed: int = 0, ps=(1, 2, 5, 10)) -> dict:
    """ARCLU's white-box evaluation of a distance detector: the adaptive PGD of Eq. 17 (``targeted``: toward a
    random wrong class per input; else toward the nearest wrong-class mean, re-chosen every step; engine
    keywords ``attack``, adversarial examples cached), then ASR-p with per-class thresholds at p% false
    positives of the held-out benign inputs ``x_heldout``, EROC (over the adversarial examples that are
    misclassified) and the clean accuracy. Returns a dict with those numbers, ``"counts"`` (p -> successes,
    eligible inputs), ``"asr curve"`` (FPR, ASR) for the threshold explorer, and the raw scores."""
    from .gat import cached_attack
    from .metrics import asr_p, attack_success_ratio, eroc, thresholds_at_fpr

    device = next(encoder.parameters()).device
    k = len(means) - 1
    held_pred, held_score = decide_inputs(encoder, means, x_heldout)
    clean_pred, clean_score = decide_inputs(encoder, means, x)
    if targeted:
        labels = random_targets(y, k, seed)
        objective = targeted_objective(encoder, means.to(device))
    else:
        labels = y
        objective = adaptive_objective(encoder, means.to(device))
    key = {"model": getattr(encoder, "config", None), "objective": "targeted" if targeted else "untargeted",
           "seed": seed}
    x_adv = cached_attack(cache, key, objective, x.to(device), labels.to(device), {"rule": "sign", **dict(attack)})
    adv_pred, adv_score = decide_inputs(encoder, means, x_adv)
    out = {"accuracy": float((clean_pred == y.cpu()).float().mean()), "counts": {}}
    for p in ps:
        tau = thresholds_at_fpr(held_score, held_pred, p / 100.0, k)
        out[f"ASR-{p:g}"], succ, n = attack_success_ratio(y, clean_pred, clean_score, adv_pred, adv_score, tau)
        out["counts"][p] = (succ, n)  # successes among the eligible inputs, for confidence intervals
    fooled = adv_pred != y.cpu()
    out["EROC"] = eroc(clean_score, clean_pred, adv_score[fooled], adv_pred[fooled]) if fooled.any() else float("nan")
    fprs = np.unique(np.r_[np.geomspace(0.001, 0.5, 60), np.asarray(ps, dtype=float) / 100])
    out["asr curve"] = (fprs, np.array([asr_p(100 * f, held_score, held_pred, y, clean_pred, clean_score, adv_pred,
                                              adv_score, k) for f in fprs]))
    out.update({"clean": (clean_pred, clean_score), "adv": (adv_pred, adv_score), "x_adv": x_adv.cpu(),
                "heldout": (held_pred, held_score)})
    return out


def table2(cache, models: Mapping, x_heldout: torch.Tensor, x: torch.Tensor, y: torch.Tensor, attack: Mapping, *,
           paper_rows: Mapping, paper_accuracy: Mapping, seed: int = 0):
    """ARCLU Table 2's rows for the models ``{name: (encoder, means)}`` (names ``"ARCLU"`` and ``"L-Ben"``;
    the paper calls the first "Ours") under the targeted and the untargeted adaptive PGD of ``attack`` (engine
    keywords with ``eps``): accuracy, ASR-1/2/5/10 with a Wilson interval for ASR-1, EROC, beside the paper's
    values from ``paper_rows`` (``{"PGD Linf <eps>, T": {"Ours": {"ASR-1": .., "EROC": ..}, ...}}``). Returns
    (DataFrame, ``{(name, row label): evaluate() result}``)."""
    import pandas as pd

    from .metrics import proportion_ci

    results, rows = {}, []
    for name, (enc, means) in models.items():
        paper_name = "Ours" if name == "ARCLU" else name
        for targeted in (True, False):
            r = evaluate(cache, enc, means, x_heldout, x, y, attack, targeted=targeted, seed=seed)
            label = f"PGD Linf {attack['eps']:g}, {'T' if targeted else 'U'}"
            results[(name, label)] = r
            ref = paper_rows.get(label, {}).get(paper_name, {})
            lo, hi = proportion_ci(*r["counts"][1])
            rows.append({"model": name, "attack": label, "accuracy": r["accuracy"], "ASR-1": r["ASR-1"],
                         "ASR-1 95% CI": f"{lo:.3f}-{hi:.3f}", "ASR-2": r["ASR-2"], "ASR-5": r["ASR-5"],
                         "ASR-10": r["ASR-10"], "EROC": r["EROC"],
                         "paper accuracy": paper_accuracy.get(paper_name, np.nan),
                         "paper ASR-1": ref.get("ASR-1", np.nan), "paper EROC": ref.get("EROC", np.nan)})
    return pd.DataFrame(rows).set_index(["model", "attack"]), results
