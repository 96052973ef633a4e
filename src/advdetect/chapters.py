"""The chapters' models and studies at a profile (book layer): every chapter that needs a model gets it here,
trained with the settings of the chapter that owns it (:mod:`advdetect.profiles`), so that all chapters share
one cached artefact.
"""

from __future__ import annotations

from typing import Mapping

import torch

from . import arclu, artefacts, gat, plotting, profiles
from .artefacts import Trained
from .cache import ArtefactCache
from .data import load_for, subset
from .defences import (
    ClassifierDefence,
    Defence,
    DistanceDefence,
    FeatureSqueezing,
    GatGenerative,
    GatIntegrated,
    ResistingDefence,
)
from .embedding import METHODS
from .evaluation import attacked_points, random_targets
from .objectives import Criterion
from .runtime import best_device

# ----------------------------------------------------------------------------------------- GAT (ch. 02, 03)


def gat_classifiers(cache, ds, s: Mapping, device) -> tuple[Trained, Trained]:
    """The natural classifier f and Madry's robust classifier with the GAT chapters' settings ``s``."""
    f = artefacts.natural_classifier(cache, ds, width=s["WIDTH"], epochs=s["NAT_EPOCHS"], lr=s["NAT_LR"],
                                     batch_size=s["NAT_BATCH"], seed=s["SEED"], device=device)
    return f, madry_classifier(cache, ds, s, device)


def madry_classifier(cache, ds, s: Mapping, device) -> Trained:
    """Madry's robust classifier with the GAT chapters' settings ``s``."""
    return artefacts.madry_classifier(cache, ds, width=s["WIDTH"], epochs=s["MADRY_EPOCHS"], lr=s["MADRY_LR"],
                                        batch_size=s["MADRY_BATCH"],
                                        attack=dict(norm="linf", eps=0.3, steps=s["MADRY_STEPS"],
                                                    step_size=s["MADRY_STEP"]),
                                        seed=s["SEED"], device=device, warmup=s["MADRY_WARMUP"],
                                        lr_drops=s["MADRY_DROPS"], precision=s["PRECISION"])


def for_configuration(s: Mapping, key: str, name: str):
    """A setting that is one value for every configuration of Table 6 or a dict with one per configuration."""
    value = s[key]
    if not isinstance(value, Mapping):
        return value
    if name not in value:
        raise ValueError(f"{key} has no value for the configuration {name!r}: give one number, or one per "
                         f"configuration of Table 6 ({sorted(gat.TABLE6)})")
    return value[name]


def _detector_init(cache, ds, s: Mapping, device, name: str = "Linf 0.3") -> Trained | None:
    """What the detectors of Table 6's configuration ``name`` start from: the trained detectors of the
    configuration ``GAT_CONTINUE[name]`` where there is one (a curriculum from a smaller budget), else
    ``GAT_INIT``: ``"scratch"`` (GAT on MNIST) or ``"madry"``, the robust classifier's logits (GAT's start on
    CIFAR-10, from a natural classifier there)."""
    previous = s["GAT_CONTINUE"].get(name)
    if previous is not None:
        if previous not in gat.TABLE6 or previous == name:
            raise ValueError(f"GAT_CONTINUE[{name!r}] must name another configuration of Table 6 "
                             f"({sorted(gat.TABLE6)}), got {previous!r}")
        return table6_detectors(cache, ds, previous, s, device)
    if s["GAT_INIT"] == "scratch":
        return None
    if s["GAT_INIT"] == "madry":
        return madry_classifier(cache, ds, s, device)
    raise ValueError(f"GAT_INIT must be 'scratch' or 'madry', got {s['GAT_INIT']!r}")


def table6_detectors(cache, ds, name: str, s: Mapping, device) -> Trained:
    """The detectors of Table 6's configuration ``name`` with the GAT chapters' settings ``s`` (training attack
    from ``TRAIN_ATTACKS``; the start of :func:`_detector_init`; ``GAT_EPOCHS`` and ``GAT_LR`` of the
    configuration; per-epoch curves for L-inf 0.3; best epoch per detector when ``SELECT_BEST``)."""
    steps, step = s["TRAIN_ATTACKS"][name]
    attack = {"norm": gat.TABLE6[name]["norm"], "eps": gat.TABLE6[name]["eps"], "steps": steps, "step_size": step}
    return artefacts.gat_detectors(
        cache, ds, attack=attack, width=s["WIDTH"], epochs=for_configuration(s, "GAT_EPOCHS", name), m=s["GAT_M"],
        lr=for_configuration(s, "GAT_LR", name), seed=s["SEED"], device=device,
        monitor=s["MONITOR"] if name == "Linf 0.3" else 0,
        desc=f"GAT {name}", init=_detector_init(cache, ds, s, device, name), precision=s["PRECISION"],
        select={"attack": gat.validation_attack(name), "n": s["SELECT_NEG"]} if s["SELECT_BEST"] else None)


def large_step_detectors(cache, ds, steps: int, step: float, s: Mapping, device) -> Trained:
    """Table 18's lesson on MNIST: L-inf 0.3 detectors trained with ``steps`` large steps of ``step``."""
    return artefacts.gat_detectors(cache, ds, attack=dict(norm="linf", eps=0.3, steps=steps, step_size=step),
                                   width=s["WIDTH"], epochs=for_configuration(s, "GAT_EPOCHS", "Linf 0.3"), m=s["GAT_M"],
                                   lr=for_configuration(s, "GAT_LR", "Linf 0.3"),
                                   seed=s["SEED"], device=device, monitor=0, init=_detector_init(cache, ds, s, device),
                                   precision=s["PRECISION"], desc=f"GAT large steps {steps} x {step:g}")


def gat_detectors(cache, name: str = "Linf 0.3", profile: str | None = None, device="cpu"):
    """The detectors of configuration ``name`` exactly as the GAT chapters train them at ``profile``. Returns
    (Trained bank, dataset)."""
    p = profiles.defaults("gat_detectors", profile)
    ds = load_for(p)
    return table6_detectors(cache, ds, name, p, device), ds


def gat_systems(f: torch.nn.Module, bank: torch.nn.Module) -> dict[str, Defence]:
    """GAT's two classifiers with a reject option: ``{"integrated": .., "generative": ..}``."""
    return {"integrated": GatIntegrated(f, bank), "generative": GatGenerative(bank)}


def cifar_models(cache, ds, s: Mapping, device) -> tuple[Trained, Trained]:
    """GAT's CIFAR-10 natural classifier and the L-inf 8/255 detectors finetuned from it (``CIFAR_*``)."""
    f = artefacts.cifar_classifier(cache, ds, arch=s["CIFAR_ARCH"], width=s["CIFAR_WIDTH"],
                                   epochs=s["CIFAR_CLF_EPOCHS"], lr=s["CIFAR_CLF_LR"], batch_size=s["CIFAR_CLF_BATCH"],
                                   lr_drops=s["CIFAR_CLF_DROPS"], seed=s["SEED"], device=device)
    bank = artefacts.cifar_detectors(cache, ds, f, attack=gat.CIFAR_TRAIN_ATTACK, epochs=s["CIFAR_GAT_EPOCHS"],
                                     m=s["CIFAR_M"], lr=s["CIFAR_LR"], seed=s["SEED"], device=device)
    return f, bank


# --------------------------------------------------------------------------------------- ARCLU (ch. 01, 04)

def motivation_models(cache, ds, m: Mapping, device) -> tuple[Trained, Trained]:
    """The motivation chapter's Eq. 10 encoder and softmax classifier (settings ``m``)."""
    kw = dict(width=m["WIDTH"], epochs=m["EPOCHS"], lr=m["LR"], batch_size=m["BATCH"], seed=m["SEED"], device=device)
    return artefacts.center_encoder(cache, ds, **kw), artefacts.softmax_classifier(cache, ds, **kw)


def softmax_classifier(cache, profile: str | None = None, device="cpu") -> Trained:
    """The motivation chapter's naturally trained softmax network at ``profile`` (the transfer attack's
    surrogate, the image-synthesis chapter's judge)."""
    m = profiles.defaults("motivation", profile)
    return motivation_models(cache, load_for(m), m, device)[1]


def arclu_detector(cache, ds, c: Mapping, device, *, lben: bool = False) -> Trained:
    """ARCLU's detector (or L-Ben) with the cluster separation chapter's settings ``c``."""
    return artefacts.arclu_detector(cache, ds, width=c["WIDTH"], l=c["L"], magnitude=c["M"], epochs=c["EPOCHS"],
                                    lr=c["LR"], batch_size=c["BATCH"],
                                    attack=dict(norm="linf", eps=c["EPS"], steps=c["TRAIN_STEPS"],
                                                step_size=c["TRAIN_STEP"]),
                                    fpr=c["TRAIN_FPR"], lben=lben, seed=c["SEED"], device=device,
                                    warmup=c["WARMUP"], lr_drops=c["DROPS"], precision=c["PRECISION"])


def arclu_detectors(cache, ds, c: Mapping, device) -> dict[str, Trained]:
    """``{"ARCLU": .., "L-Ben": ..}`` with the cluster separation chapter's settings ``c``."""
    return {name: arclu_detector(cache, ds, c, device, lben=lben) for name, lben in (("ARCLU", False),
                                                                                       ("L-Ben", True))}


def distance_defence(name: str, t: Trained) -> DistanceDefence:
    """A trained ARCLU-style encoder (with its cluster means) as a defence."""
    return DistanceDefence(name, t.model, t.extra["means"])


def arclu_defence(cache, profile: str | None = None, device="cpu", lben: bool = False) -> DistanceDefence:
    """ARCLU's detector (or L-Ben) exactly as the cluster separation chapter trains it at ``profile``."""
    c = profiles.defaults("cluster_separation", profile)
    return distance_defence("L-Ben" if lben else "ARCLU", arclu_detector(cache, load_for(c), c, device, lben=lben))


def representation_study(cache, defence: Defence, loss: str, x_benign, x_source, y_source, targets, attack: Mapping,
                         *, x_centres, y_centres, num_classes: int = 10, neighbours: int = 10, seed: int = 0) -> dict:
    """:func:`advdetect.arclu.representation_study` in the representation space of ``defence``
    (:meth:`~advdetect.defences.Defence.represent`, :meth:`~advdetect.defences.Defence.classify`) on targeted
    adversarial examples of it (the ``loss`` from ``x_source`` of labels ``y_source`` toward ``targets``,
    success = classified as the target; cached)."""
    dev = next(defence.parameters()).device
    x_adv = artefacts.attack_examples(cache, defence, loss, x_source.to(dev), (y_source.to(dev), targets.to(dev)),
                                      attack, criterion=Criterion(targeted=True), targeted=True, study="overlap")
    return arclu.representation_study(defence.represent, defence.classify, x_benign, x_adv, targets, x_centres=x_centres,
                                      y_centres=y_centres, num_classes=num_classes, neighbours=neighbours, seed=seed)


def motivation_study(cache, defence: Defence, loss: str, ds, s: Mapping) -> dict:
    """The motivation chapter's overlap study of ``defence``'s representation space with that chapter's settings
    ``s`` (``N_POINTS`` benign training images and as many sources toward random targets, seeded by ``SEED``;
    ``ATTACK_STEPS`` sign steps of ``ATTACK_STEP`` within L-inf ``EPS``; ``KNN`` neighbours): the study of
    chapter 01, which chapter 04 repeats on the same encoder (cached)."""
    x_benign, _ = subset(ds.x_train, ds.y_train, s["N_POINTS"], seed=s["SEED"])
    x_source, y_source = subset(ds.x_train, ds.y_train, s["N_POINTS"], seed=s["SEED"] + 1)
    targets = random_targets(y_source, ds.num_classes, seed=s["SEED"])
    attack = dict(norm="linf", eps=s["EPS"], steps=s["ATTACK_STEPS"], step_size=s["ATTACK_STEP"], rule="sign",
                  batch_size=1000)
    return representation_study(cache, defence, loss, x_benign, x_source, y_source, targets, attack,
                                x_centres=ds.x_train, y_centres=ds.y_train, num_classes=ds.num_classes,
                                neighbours=s["KNN"], seed=s["SEED"])


def overlap_figure(cache, studies: dict, *, seed: int = 0, perplexity: float = 30.0, neighbors: int = 15,
                   num_classes: int = 10):
    """The t-SNE and UMAP pictures of every study (embeddings cached), titled with the measured overlap."""
    points = {}
    for name, st in studies.items():
        z = torch.cat([st["z_benign"], st["z_adv"][st["successful"].to(st["z_adv"].device)]])
        for method in METHODS:
            points[(name, method)] = artefacts.embed(cache, z, method, seed=seed, perplexity=perplexity,
                                                     neighbors=neighbors)
    return plotting.overlap_figure(studies, points, num_classes=num_classes, methods=METHODS)


# ------------------------------------------------------------------------------------ head to head (ch. 05)

def arclu_baselines(cache, profile: str, device) -> dict[str, Trained]:
    """The baselines of ARCLU's Table 1 that only the cluster separation chapter trains, from its settings at
    ``profile``: TRADES (``TRADES_*``, on the GAT chapters' data and network, with their Madry classifier's batch
    and learning rate) and Resisting's Gaussian-mixture VAE (``RES_*``). Returns {"TRADES": ..., "Resisting VAE":
    ...}; the head-to-head chapter loads the same artefacts."""
    g = profiles.defaults("gat_detectors", profile)
    c = profiles.defaults("cluster_separation", profile)
    ds = load_for(g)
    trades = artefacts.trades_classifier(cache, ds, width=g["WIDTH"], epochs=c["TRADES_EPOCHS"], lr=g["MADRY_LR"],
                                         batch_size=g["MADRY_BATCH"], beta=c["TRADES_BETA"],
                                         attack=dict(norm="linf", eps=0.3, steps=c["TRADES_STEPS"],
                                                     step_size=c["TRADES_STEP"]), seed=g["SEED"], device=device,
                                         warmup=c["TRADES_WARMUP"], lr_drops=c["TRADES_DROPS"],
                                         precision=c["TRADES_PRECISION"])
    resisting = artefacts.resisting_vae(cache, ds, width=c["RES_WIDTH"], magnitude=c["RES_M"], epochs=c["RES_EPOCHS"],
                                        lr=c["RES_LR"], batch_size=c["RES_BATCH"], seed=g["SEED"], device=device)
    return {"TRADES": trades, "Resisting VAE": resisting}


def robust_classifiers(cache, profile: str, device) -> dict[str, ClassifierDefence]:
    """The two adversarially trained classifiers at ``profile`` as defences without a detector: the GAT
    chapters' Madry classifier and the cluster separation chapter's TRADES (:func:`arclu_baselines`)."""
    g = profiles.defaults("gat_detectors", profile)
    _, robust = gat_classifiers(cache, load_for(g), g, device)
    trades = arclu_baselines(cache, profile, device)["TRADES"]
    return {"Madry": ClassifierDefence("Madry", robust.model, kind="robust classifier", recipe="madry"),
            "TRADES": ClassifierDefence("TRADES", trades.model, kind="robust classifier", recipe="trades")}


def book_defences(cache, profile: str, s: Mapping, device) -> tuple[dict[str, Defence], dict[str, Trained]]:
    """The head-to-head chapter's eleven defences at ``profile``: GAT's natural classifier, robust classifier and
    L-inf 0.3 detectors as the GAT chapters train them, ARCLU, L-Ben, TRADES and Resisting as the cluster
    separation chapter trains them (:func:`arclu_baselines`), and what only this chapter needs, from its settings
    ``s``: Feature Squeezing (``FS_MEDIAN``), LID and MAHA (``FEATURE_FIT`` images, ``LID_K`` neighbours among
    ``LID_REFERENCE``). Returns (defences, the trained models by name)."""
    g = profiles.defaults("gat_detectors", profile)
    ds = load_for(g)
    bank = table6_detectors(cache, ds, "Linf 0.3", g, device)
    f, robust = gat_classifiers(cache, ds, g, device)
    c = profiles.defaults("cluster_separation", profile)
    encoders = arclu_detectors(cache, load_for(c), c, device)
    baselines = arclu_baselines(cache, profile, device)
    trades, resisting = baselines["TRADES"], baselines["Resisting VAE"]
    feature = artefacts.feature_detectors(cache, f.model, ds, n_fit=s["FEATURE_FIT"], n_reference=s["LID_REFERENCE"],
                                          k=s["LID_K"], attack=dict(norm="linf", eps=0.3, steps=g["MADRY_STEPS"],
                                                                    step_size=g["MADRY_STEP"]), seed=g["SEED"])
    out: dict[str, Defence] = {
        "GAT integrated": GatIntegrated(f.model, bank.model),
        "GAT generative": GatGenerative(bank.model),
        "ARCLU": distance_defence("ARCLU", encoders["ARCLU"]),
        "L-Ben": distance_defence("L-Ben", encoders["L-Ben"]),
        "Vanilla": ClassifierDefence("Vanilla", f.model),
        **robust_classifiers(cache, profile, device),
        "Resisting": ResistingDefence("Resisting", resisting.model),
        "FS": FeatureSqueezing(f.model, size=s["FS_MEDIAN"]),
        "LID": feature["LID"].model,
        "MAHA": feature["MAHA"].model,
    }
    assert tuple(out) == BOOK_DEFENCES, "BOOK_DEFENCES must list book_defences' defences, in order"
    models = {"natural classifier": f, "Madry": robust, "GAT Linf 0.3": bank, "ARCLU": encoders["ARCLU"],
              "L-Ben": encoders["L-Ben"], "TRADES": trades, "Resisting VAE": resisting, "LID": feature["LID"],
              "MAHA": feature["MAHA"]}
    return {k: v.to(device).eval() for k, v in out.items()}, models


#: the defences of :func:`book_defences`, in its order
BOOK_DEFENCES: tuple[str, ...] = ("GAT integrated", "GAT generative", "ARCLU", "L-Ben", "Vanilla", "Madry", "TRADES",
                                  "Resisting", "FS", "LID", "MAHA")


def head_to_head_inputs(profile: str, names, n: int | None = None, device=None) -> dict:
    """What a measurement of the head-to-head chapter's attacks starts from (the benchmarks): its settings at
    ``profile`` (``settings``), the artefact cache (``cache``), the ``device``, the defences of
    :func:`book_defences` called ``names`` (a list or one comma-separated string; ``defences``, in that order;
    an unknown name fails with the choices) and ``n`` attacked images (default the chapter's ``N_TEST``; a
    smaller ``n`` draws another stratified subset) with the held-out images (``x``, ``y``, ``x_heldout``)."""
    s = profiles.defaults("adaptive", profile)
    names = names.split(",") if isinstance(names, str) else list(names)
    unknown = [d for d in names if d not in BOOK_DEFENCES]
    if unknown:       # before anything is loaded or trained
        raise ValueError(f"unknown defence(s) {', '.join(unknown)}: choose among {', '.join(BOOK_DEFENCES)}")
    cache = ArtefactCache()
    device = best_device() if device is None else device
    every, _ = book_defences(cache, profile, s, device)
    ds = load_for(profiles.defaults("gat_detectors", profile))
    x, y, x_heldout = attacked_points(ds, s["N_TEST"] if n is None else n, seed=s["SEED"])
    return {"settings": s, "cache": cache, "device": device, "defences": {d: every[d] for d in names},
            "x": x, "y": y, "x_heldout": x_heldout}


# ------------------------------------------------------------------------------------ image synthesis (ch. 06)

def synthesis_models(cache, profile: str, device) -> tuple[dict[str, Defence], object]:
    """The models the image-synthesis chapter attacks, exactly as the earlier chapters train them at
    ``profile``: GAT's generative classifier on the L-inf 0.3 detectors, Madry's robust classifier trained with
    the same eps, and ARCLU's encoder. Returns ({name: defence}, GAT's dataset)."""
    bank, ds = gat_detectors(cache, "Linf 0.3", profile, device)
    _, robust = gat_classifiers(cache, ds, profiles.defaults("gat_detectors", profile), device)
    models = {"GAT generative": GatGenerative(bank.model),
              "Madry robust": ClassifierDefence("Madry", robust.model, kind="robust classifier", recipe="madry"),
              "ARCLU": arclu_defence(cache, profile, device)}
    return {name: m.to(device).eval() for name, m in models.items()}, ds
