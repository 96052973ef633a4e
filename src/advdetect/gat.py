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

import numpy as np
import torch
import torch.nn.functional as F

from . import attacks
from .cache import fingerprint
from .ensemble import DetectorBank
from .losses import untargeted_margin
from .runtime import freeze


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

        def objective(x_flat, _, c=c):
            return -bank.each(x_flat.view(k, c, *shape)).reshape(-1)

        flat = chunk.reshape(k * c, *shape)
        parts.append(attacks.attack(objective, flat, None, **kwargs).x_adv.view_as(chunk))
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
    from .metrics import roc_auc

    ks = list(range(bank.k)) if ks is None else [int(k) for k in ks]
    device = next(bank.parameters()).device
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


# ------------------------------------------------------------------------------------ the MNIST models, cached

def _fit_kwargs(attack: Mapping) -> dict:
    """Engine keywords of a training attack: Adam on the perturbation with a random start (GAT's MNIST attack)."""
    return {"rule": "adam", "random_start": True, **attack}


def natural_classifier(cache, ds, *, width: float, epochs: int, lr: float, batch_size: int, seed: int, device):
    """GAT's natural classifier f: the Madry CNN trained with cross-entropy (cached). Returns (model, history)."""
    from .models import MadryCNN
    from .runtime import seed_everything
    from .training import train_classifier

    seed_everything(seed)
    model = MadryCNN(ds.num_classes, in_channels=ds.shape[0], image_size=ds.shape[1], width=width).to(device)
    config = {"data": ds.name, "n": len(ds.y_train), "width": width, "epochs": epochs, "lr": lr,
              "batch": batch_size, "seed": seed}
    hist = train_classifier(cache.entry("natural_classifier", config), model, ds.x_train, ds.y_train,
                            epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, desc="natural classifier")
    model.config = {"model": "natural_classifier", **config}  # identifies the trained model in cached attacks
    return freeze(model), hist


def robust_classifier(cache, ds, *, width: float, epochs: int, lr: float, batch_size: int, attack: Mapping,
                      seed: int, device):
    """Madry et al.'s adversarial training of the same network (PGD with sign steps, random start; cached)."""
    from .models import MadryCNN
    from .runtime import seed_everything
    from .training import train_classifier

    seed_everything(seed)
    model = MadryCNN(ds.num_classes, in_channels=ds.shape[0], image_size=ds.shape[1], width=width).to(device)
    kwargs = {"rule": "sign", "random_start": True, **attack}
    config = {"data": ds.name, "n": len(ds.y_train), "width": width, "epochs": epochs, "lr": lr,
              "batch": batch_size, "seed": seed, "attack": dict(kwargs)}
    hist = train_classifier(cache.entry("madry_classifier", config), model, ds.x_train, ds.y_train,
                            epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, attack_kwargs=kwargs,
                            desc="Madry adversarial training")
    model.config = {"model": "madry_classifier", **config}
    return freeze(model), hist


def detectors(cache, ds, *, attack: Mapping, width: float, epochs: int, m: int, lr: float, seed: int, device,
              monitor: int = 20, select: Mapping | None = None, desc: str = "GAT detectors"):
    """The K detectors trained together with GAT (cached). Every epoch logs, for Fig 11, the mean over
    detectors of the natural and adversarial AUC (training attack) on ``monitor`` fixed negatives per detector
    of the training and the test set. With ``select = {"attack": engine keywords, "n": negatives}`` every
    detector ends with its weights of the epoch with the best AUC on the validation set under that attack
    (GAT App. A.1: 200-step attacks, Table 6's validation row). Returns (bank, history)."""
    from .models import MadryCNN
    from .runtime import seed_everything
    from .training import train_gat

    seed_everything(seed)
    bank = DetectorBank([MadryCNN(1, in_channels=ds.shape[0], image_size=ds.shape[1], width=width)
                         for _ in range(ds.num_classes)]).to(device)
    kwargs = _fit_kwargs(attack)
    config = {"data": ds.name, "n": len(ds.y_train), "width": width, "epochs": epochs, "m": m, "lr": lr,
              "seed": seed, "attack": dict(kwargs), "monitor": monitor}
    sets = {"train": (ds.x_train, ds.y_train), "test": (ds.x_test, ds.y_test)}

    def monitor_fn(b):
        out = {}
        for split, (xs, ys) in sets.items():
            logits = generative_scores(b, xs[:2000])
            ys2 = ys[:2000]
            for kind, kw in (("nat", None), ("adv", kwargs)):
                aucs = detector_aucs(b, xs[:2000], ys2, kw, n_negatives=monitor, seed=seed + 1, clean_logits=logits)
                out[f"{split} {kind} AUC"] = sum(aucs.values()) / len(aucs)
        return out

    select_fn = None
    if select is not None:
        config["select"] = {"attack": dict(select["attack"]), "n": int(select["n"])}

        def select_fn(b):
            aucs = detector_aucs(b, ds.x_val, ds.y_val, select["attack"], n_negatives=int(select["n"]), seed=seed + 2)
            return [aucs[k] for k in range(b.k)]

    hist = train_gat(cache.entry("gat_detectors", config), bank, ds.x_train, ds.y_train, epochs=epochs, m=m,
                     lr=lr, attack_kwargs=kwargs, seed=seed, eval_fn=monitor_fn if monitor else None,
                     select_fn=select_fn, desc=desc)
    bank.config = config  # identifies the trained bank in cached evaluations
    return freeze(bank), hist


def chapter_classifiers(cache, ds, settings: Mapping, device):
    """The natural classifier f and Madry's robust classifier with the GAT chapters' ``settings`` (the names of
    :mod:`advdetect.profiles`' GAT training block), cached. Returns ((f, history), (robust, history))."""
    s = settings
    f = natural_classifier(cache, ds, width=s["WIDTH"], epochs=s["NAT_EPOCHS"], lr=s["NAT_LR"],
                           batch_size=s["NAT_BATCH"], seed=s["SEED"], device=device)
    robust = robust_classifier(cache, ds, width=s["WIDTH"], epochs=s["MADRY_EPOCHS"], lr=s["MADRY_LR"],
                               batch_size=s["MADRY_BATCH"], attack=dict(norm="linf", eps=0.3, steps=s["MADRY_STEPS"],
                                                                        step_size=s["MADRY_STEP"]),
                               seed=s["SEED"], device=device)
    return f, robust


def table6_detectors(cache, ds, name: str, settings: Mapping, device):
    """The detectors of Table 6's configuration ``name`` trained with the GAT chapters' ``settings`` (their
    training attack from ``TRAIN_ATTACKS``; per-epoch curves for L-inf 0.3; best epoch per detector when
    ``SELECT_BEST``), cached: every chapter that uses them gets the same artefact. Returns (bank, history)."""
    s = settings
    steps, step = s["TRAIN_ATTACKS"][name]
    attack = {"norm": TABLE6[name]["norm"], "eps": TABLE6[name]["eps"], "steps": steps, "step_size": step}
    return detectors(cache, ds, attack=attack, width=s["WIDTH"], epochs=s["GAT_EPOCHS"], m=s["GAT_M"],
                     lr=s["GAT_LR"], seed=s["SEED"], device=device, monitor=s["MONITOR"] if name == "Linf 0.3" else 0,
                     desc=f"GAT {name}",
                     select={"attack": validation_attack(name), "n": s["SELECT_NEG"]} if s["SELECT_BEST"] else None)


def chapter_detectors(cache, name: str = "Linf 0.3", profile: str | None = None, device=None):
    """The detectors of configuration ``name`` exactly as the GAT chapters train them at ``profile`` (their
    dataset and settings from :mod:`advdetect.profiles`), from the cache or trained now; other chapters use
    this to study GAT's detectors. Returns (bank, dataset)."""
    from . import data, profiles

    p = profiles.defaults("gat_detectors", profile)
    ds = data.load_for(p)
    bank, _ = table6_detectors(cache, ds, name, p, device if device is not None else "cpu")
    return bank, ds


def robustness(cache, bank: DetectorBank, x: torch.Tensor, y: torch.Tensor, attack: Mapping | None, *, ks=None,
               n_negatives: int, seed: int = 0, restarts: int = 1, clean_logits=None) -> dict:
    """:func:`detector_aucs` through the cache (keyed by the bank's training configuration and the attack).
    ``attack`` holds the engine's keywords (norm, eps, steps, step_size, rule, random_start); ``restarts``
    restarts from random points and keeps each negative's best."""
    kw = None if attack is None else {**dict(attack), **({"restarts": restarts} if restarts > 1 else {})}
    ks = list(range(bank.k)) if ks is None else [int(k) for k in ks]
    config = {"bank": getattr(bank, "config", None), "attack": kw, "ks": ks, "n": n_negatives, "seed": seed,
              "x": fingerprint(x)}
    out = cache.memo("gat_robustness", config, lambda: {"auc": torch.tensor(list(detector_aucs(
        bank, x, y, kw, ks=ks, n_negatives=n_negatives, seed=seed, clean_logits=clean_logits).values()))})
    return dict(zip(ks, out["auc"].tolist()))


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

    def objective(xa, extra):
        cc, x0, (tt, yy) = extra
        z = bank(xa)
        dist2 = (xa - x0).flatten(1).pow(2).sum(1)
        score, pred = z.max(1)
        return -z.gather(1, tt[:, None]).squeeze(1) + cc * dist2, (pred != yy) & (score > threshold)

    _, best = attacks.penalty_search(objective, x, (t, y), rounds=rounds, steps=steps, lr=lr, c_init=c_init,
                                     c_bounds=c_bounds, penalty_on="distance", batch_size=batch_size)
    return best.cpu(), t.cpu()


def cached_attack(cache, key: Mapping, objective, x: torch.Tensor, y: torch.Tensor, attack: Mapping) -> torch.Tensor:
    """Adversarial examples of ``objective`` (engine keywords ``attack``) for ``(x, y)``, computed once and
    cached under ``key`` (which names the attacked models and the objective). Returned on the CPU."""
    config = {**dict(key), "attack": dict(attack), "x": fingerprint(x), "y": int(y.sum())}

    def run():
        return {"x_adv": attacks.attack(objective, x, y, **attack).x_adv.cpu()}

    return cache.memo("gat_attack", config, run)["x_adv"]


def robust_accuracy(cache, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, steps: int,
                    step_size: float, batch_size: int = 500) -> float:
    """Accuracy of a classifier under an untargeted L-inf PGD attack (CW margin, sign steps, random start; the
    evaluation of Madry et al.'s classifier), its adversarial examples cached under the model's ``config``."""
    attack = dict(norm="linf", eps=eps, steps=steps, step_size=step_size, rule="sign", random_start=True,
                  batch_size=batch_size)
    device = next(model.parameters()).device
    x_adv = cached_attack(cache, {"model": getattr(model, "config", None), "objective": "untargeted margin"},
                          untargeted_margin(model), x.to(device), y.to(device), attack)
    from .training import accuracy

    return accuracy(model, x_adv, y.cpu())


def error_at_accuracy_drop(curve, max_drop: float = 0.05) -> tuple[float, float]:
    """Tramer et al.'s operating point: the error on perturbed data at the threshold where the clean accuracy is
    at most ``max_drop`` below its value without rejection. Returns (error, accuracy) there."""
    base = float(curve.y[0])  # thresholds start at -inf: nothing rejected
    ok = curve.y >= base - max_drop
    i = int(np.nonzero(ok)[0][-1])
    return float(curve.x[i]), float(curve.y[i])


# ------------------------------------------------------------------------------------------- CIFAR-10 (App. A.2)

def bank_from_classifier(classifier: torch.nn.Module) -> DetectorBank:
    """GAT's CIFAR-10 initialisation: detector k is the natural classifier's subnetwork for logit k (a copy of
    the network whose last linear layer keeps row k only). Batch norm stays in inference mode while the bank is
    finetuned (the bank evaluates a template in eval mode with the stacked running statistics)."""
    import copy

    last = [m for m in classifier.modules() if isinstance(m, torch.nn.Linear)][-1]
    models = []
    for k in range(last.out_features):
        m = copy.deepcopy(classifier).eval()
        head = [mod for mod in m.modules() if isinstance(mod, torch.nn.Linear)][-1]
        new = torch.nn.Linear(head.in_features, 1, bias=head.bias is not None).to(head.weight.device)
        with torch.no_grad():
            new.weight.copy_(head.weight[k:k + 1])
            if head.bias is not None:
                new.bias.copy_(head.bias[k:k + 1])
        _replace_module(m, head, new)
        if hasattr(m, "num_outputs"):
            m.num_outputs = 1
        models.append(m)
    return DetectorBank(models)


def cifar_network(arch: str, width: float = 1.0, num_outputs: int = 10) -> torch.nn.Module:
    """The CIFAR-10 network: ``"wrn-34-10"`` (GAT's, the Madry challenge network; ARCLU's Wide ResNet) or
    ``"resnet18"`` (cheaper; ``width`` scales its channels, 1.0 = 64), with ``num_outputs`` outputs."""
    from .models import WideResNet, resnet18

    if arch == "wrn-34-10":
        return WideResNet(34, 10, num_outputs=num_outputs)
    if arch == "resnet18":
        return resnet18(num_outputs=num_outputs, width=max(1, int(round(64 * width))))
    raise ValueError(f"unknown CIFAR-10 architecture {arch!r}: choose 'wrn-34-10' or 'resnet18'")


def cifar_classifier(cache, ds, *, arch: str, width: float = 1.0, epochs: int, lr: float, batch_size: int,
                     lr_drops=(), seed: int, device):
    """The natural CIFAR-10 classifier the detectors start from (GAT: a naturally trained WRN-34-10, 95.01%):
    SGD with momentum 0.9 and weight decay 2e-4, random crop and flip, ``lr`` divided by 10 at the epochs
    ``lr_drops`` (cached). Returns (model, history)."""
    from .data import random_crop_flip
    from .runtime import seed_everything
    from .training import train_classifier

    seed_everything(seed)
    model = cifar_network(arch, width).to(device)
    config = {"data": ds.name, "n": len(ds.y_train), "arch": arch, "width": width, "epochs": epochs, "lr": lr,
              "batch": batch_size, "lr_drops": list(lr_drops), "seed": seed}
    hist = train_classifier(cache.entry("cifar_classifier", config), model, ds.x_train, ds.y_train, epochs=epochs,
                            lr=lr, batch_size=batch_size, seed=seed, optimizer="sgd", weight_decay=2e-4,
                            augment=random_crop_flip, lr_drops=lr_drops, desc="CIFAR-10 natural classifier")
    model.config = {"model": "cifar_classifier", **config}
    return freeze(model), hist


#: GAT App. A.2: the CIFAR-10 detectors' training attack (sign steps, random start; 0-1 units)
CIFAR_TRAIN_ATTACK = {"norm": "linf", "eps": 8 / 255, "steps": 40, "step_size": 0.5 / 255, "rule": "sign",
                      "random_start": True}


def cifar_detectors(cache, ds, classifier: torch.nn.Module, *, attack: Mapping, epochs: int, m: int, lr: float,
                    seed: int, device, desc: str = "GAT CIFAR-10 detectors"):
    """GAT's CIFAR-10 detectors (App. A.2): detector k starts as the natural classifier's logit k
    (:func:`bank_from_classifier`, batch norm in inference mode) and is finetuned with the GAT objective on
    ``m`` positives + ``m`` perturbed negatives per step (paper: about 30 + 30), SGD with momentum 0.9, weight
    decay 2e-4, random crop and flip (cached). ``attack`` holds the engine's keywords (paper:
    :data:`CIFAR_TRAIN_ATTACK`). Returns (bank, history)."""
    from .data import random_crop_flip
    from .runtime import seed_everything
    from .training import train_gat

    seed_everything(seed)
    bank = bank_from_classifier(classifier).to(device)
    config = {"data": ds.name, "n": len(ds.y_train), "classifier": getattr(classifier, "config", None),
              "epochs": epochs, "m": m, "lr": lr, "seed": seed, "attack": dict(attack)}
    hist = train_gat(cache.entry("gat_cifar_detectors", config), bank, ds.x_train, ds.y_train, epochs=epochs, m=m,
                     lr=lr, attack_kwargs=dict(attack), seed=seed, optimizer="sgd", weight_decay=2e-4,
                     augment=random_crop_flip, desc=desc)
    bank.config = config
    return freeze(bank), hist


def chapter_cifar_models(cache, ds, settings: Mapping, device):
    """GAT's CIFAR-10 natural classifier and the L-inf 8/255 detectors finetuned from it with the GAT chapters'
    ``settings`` (their ``CIFAR_*`` names), cached. Returns ((classifier, history), (bank, history))."""
    s = settings
    f = cifar_classifier(cache, ds, arch=s["CIFAR_ARCH"], width=s["CIFAR_WIDTH"], epochs=s["CIFAR_CLF_EPOCHS"],
                         lr=s["CIFAR_CLF_LR"], batch_size=s["CIFAR_CLF_BATCH"], lr_drops=s["CIFAR_CLF_DROPS"],
                         seed=s["SEED"], device=device)
    bank = cifar_detectors(cache, ds, f[0], attack=CIFAR_TRAIN_ATTACK, epochs=s["CIFAR_GAT_EPOCHS"], m=s["CIFAR_M"],
                           lr=s["CIFAR_LR"], seed=s["SEED"], device=device)
    return f, bank


#: GAT Table 3's attacks on the CIFAR-10 detectors: (steps, step size on the 0-255 scale), sign steps, 8/255
CIFAR_TABLE3_ATTACKS = ((20, 2.0), (40, 0.5), (200, 0.1), (200, 0.5), (500, 0.5))


def cifar_robustness_tables(cache, bank: DetectorBank, ds, *, n_negatives: int, seed: int = 0,
                            attacks_255=CIFAR_TABLE3_ATTACKS, table17_attack_255=(40, 0.5)):
    """GAT Tables 3 and 17 for CIFAR-10 detectors, each beside the paper's values: the AUC of detectors 0 and 1
    under L-inf 8/255 attacks of ``attacks_255`` (steps, step size in 0-255 units; normalised steepest descent
    from the natural image), and of all ten under ``table17_attack_255`` (paper: 40 x 0.5). Returns two
    DataFrames."""
    import pandas as pd

    from .paper import GAT_TABLE3_CIFAR, GAT_TABLE17_CIFAR

    clean = generative_scores(bank, ds.x_test)

    def run(steps, step, ks):
        attack = {"norm": "linf", "eps": 8 / 255, "steps": steps, "step_size": step / 255, "rule": "sign",
                  "batch_size": 500}
        return robustness(cache, bank, ds.x_test, ds.y_test, attack, ks=ks, n_negatives=n_negatives, seed=seed,
                          clean_logits=clean)

    rows = []
    for steps, step in attacks_255:
        got = run(steps, step, (0, 1))
        ref = GAT_TABLE3_CIFAR.get((steps, step), (np.nan, np.nan))
        rows.append({"attack (steps, step/255)": f"{steps}, {step:g}", "k=0": got[0], "k=1": got[1],
                     "paper k=0": ref[0], "paper k=1": ref[1]})
    table3 = pd.DataFrame(rows).set_index("attack (steps, step/255)")
    got = run(*table17_attack_255, range(bank.k))
    table17 = pd.DataFrame({"ours": [got[k] for k in range(bank.k)], "paper": list(GAT_TABLE17_CIFAR[:bank.k])},
                           index=[f"k={k}" for k in range(bank.k)]).T
    return table3, table17


def _replace_module(root: torch.nn.Module, old: torch.nn.Module, new: torch.nn.Module) -> None:
    for name, child in root.named_children():
        if child is old:
            setattr(root, name, new)
            return
        _replace_module(child, old, new)
