"""Every trained model and every long computation of the book, through the artefact cache (book layer).

:func:`trained` is the one builder every trained artefact goes through: seed, build the network, train it
through a cache entry keyed by its configuration (resumable per epoch; loaded when done), freeze it, and return
a :class:`Trained` - the model with its configuration and training history. The functions below it are the
book's models, each a configuration and a call of :func:`trained`.

Cached computations are keyed by what they depend on: models by :func:`~advdetect.cache.identity` (a hash of
their weights), tensors by :func:`~advdetect.cache.fingerprint` (a hash of their bytes) - so other images,
another order of them, or another model with the same configuration never hit a stale result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn

from . import arclu, attacks, baselines, density, embedding, gat, synthesis
from .cache import ArtefactCache, fingerprint, identity
from .data import random_crop_flip
from .defences import ClassifierDefence, FeatureDetector
from .ensemble import DetectorBank, bank_from_classifier
from .models import MLP, ArcluEncoder, GaussianMixtureVAE, MadryCNN, cifar_network
from .objectives import objective
from .runtime import freeze, seed_everything
from .training import scaled_attack, train_classifier


@dataclass
class Trained:
    """A trained, frozen model with the configuration that identifies its training and its per-epoch history;
    ``extra`` holds what else the training produced (ARCLU's cluster means, a fit's statistics)."""

    model: nn.Module
    config: dict
    history: list
    extra: dict = field(default_factory=dict)

    def __iter__(self):  # ``model, history = trained(...)``
        return iter((self.model, self.history))

    @property
    def seconds(self) -> float:
        """Wall-clock training time, as measured when it ran (kept when loaded from the cache)."""
        return float(sum(h.get("seconds", 0.0) for h in self.history))


def trained(cache: ArtefactCache, kind: str, config: Mapping[str, Any], build: Callable[[], nn.Module],
            train: Callable[[Any, nn.Module], list], device, extra: Mapping | None = None) -> Trained:
    """The one builder: seed with ``config["seed"]``, ``build()`` the network on ``device``, ``train(entry,
    model)`` through the cache entry of (``kind``, ``config``) and freeze it."""
    seed_everything(int(config["seed"]))
    model = build().to(device)
    history = train(cache.entry(kind, config), model)
    return Trained(freeze(model), {"model": kind, **dict(config)}, list(history), dict(extra or {}))


def _data(ds) -> dict:
    """A dataset's part of a configuration: its name, its training images' count and their hash."""
    return {"data": ds.name, "n": len(ds.y_train), "images": fingerprint(ds.x_train)}


# --------------------------------------------------------------------------------------------- GAT's models

def natural_classifier(cache, ds, *, width: float, epochs: int, lr: float, batch_size: int, seed: int,
                       device) -> Trained:
    """GAT's natural classifier f: the Madry CNN trained with cross-entropy."""
    config = {**_data(ds), "width": width, "epochs": epochs, "lr": lr, "batch": batch_size, "seed": seed}
    return trained(cache, "natural_classifier", config,
                   lambda: MadryCNN(ds.num_classes, in_channels=ds.shape[0], image_size=ds.shape[1], width=width),
                   lambda store, m: train_classifier(store, m, ds.x_train, ds.y_train, epochs=epochs, lr=lr,
                                                     batch_size=batch_size, seed=seed, desc="natural classifier"),
                   device)


def _precision(precision: str) -> dict:
    """The part of a cached model's configuration that names its training precision: nothing for float32, so that
    the entries trained before precisions existed stay valid."""
    return {} if precision == "fp32" else {"precision": precision}


def madry_classifier(cache, ds, *, width: float, epochs: int, lr: float, batch_size: int, attack: Mapping,
                     seed: int, device, warmup: float = 0.0, lr_drops=(), precision: str = "fp32") -> Trained:
    """Madry et al.'s adversarial training of the same network (PGD with sign steps, random start); the budget
    ramps up from 0.3 eps over ``warmup`` epochs and the learning rate drops tenfold at each of ``lr_drops``;
    ``precision`` is the training loop's (:func:`~advdetect.runtime.autocast`)."""
    kwargs = {"rule": "sign", "random_start": True, **dict(attack)}
    config = {**_data(ds), "width": width, "epochs": epochs, "lr": lr, "batch": batch_size, "seed": seed,
              "attack": kwargs, "warmup": warmup, "lr_drops": list(lr_drops),
              **_precision(precision)}
    return trained(cache, "madry_classifier", config,
                   lambda: MadryCNN(ds.num_classes, in_channels=ds.shape[0], image_size=ds.shape[1], width=width),
                   lambda store, m: train_classifier(store, m, ds.x_train, ds.y_train, epochs=epochs, lr=lr,
                                                     batch_size=batch_size, seed=seed, attack_kwargs=kwargs,
                                                     warmup=warmup, lr_drops=lr_drops, precision=precision,
                                                     desc="Madry adversarial training"),
                   device)


def gat_detectors(cache, ds, *, attack: Mapping, width: float, epochs: int, m: int, lr: float, seed: int, device,
                  monitor: int = 20, select: Mapping | None = None, init: Trained | None = None,
                  precision: str = "fp32", desc: str = "GAT detectors") -> Trained:
    """The K detectors trained together with GAT (Adam on the perturbation, random start). Every epoch logs, for
    Fig 11, the mean over detectors of the natural and adversarial AUC (training attack) on ``monitor`` fixed
    negatives per detector of the training and the test set. With ``select = {"attack": engine keywords, "n":
    negatives}`` every detector ends with its weights of the epoch with the best AUC on the validation set under
    that attack (GAT App. A.1: 200-step attacks, Table 6's validation row). With ``init`` (a trained classifier
    of the same network and width) detector k starts as that classifier's logit k
    (:func:`~advdetect.ensemble.bank_from_classifier`, GAT's start on CIFAR-10) instead of at random; with a
    trained :class:`~advdetect.ensemble.DetectorBank` of the same network as ``init``, the detectors continue
    from it (a curriculum: a larger budget's detectors start from a smaller budget's). ``precision`` is the
    training steps' (:func:`~advdetect.runtime.autocast`; monitoring and selection run in float32)."""
    kwargs = {"rule": "adam", "random_start": True, **dict(attack)}
    config = {**_data(ds), "width": width, "epochs": epochs, "m": m, "lr": lr, "seed": seed, "attack": kwargs,
              "monitor": monitor, **_precision(precision)}
    if init is not None:
        config["init"] = identity(init.model)
    sets = {"train": (ds.x_train, ds.y_train), "test": (ds.x_test, ds.y_test)}

    def monitor_fn(b):
        out = {}
        for split, (xs, ys) in sets.items():
            logits = gat.generative_scores(b, xs[:2000])
            for kind, kw in (("nat", None), ("adv", kwargs)):
                aucs = gat.detector_aucs(b, xs[:2000], ys[:2000], kw, n_negatives=monitor, seed=seed + 1,
                                         clean_logits=logits)
                out[f"{split} {kind} AUC"] = sum(aucs.values()) / len(aucs)
        return out

    select_fn = None
    if select is not None:
        config["select"] = {"attack": dict(select["attack"]), "n": int(select["n"])}

        def select_fn(b):
            aucs = gat.detector_aucs(b, ds.x_val, ds.y_val, select["attack"], n_negatives=int(select["n"]),
                                     seed=seed + 2)
            return [aucs[k] for k in range(b.k)]

    def fresh():
        return DetectorBank([MadryCNN(1, in_channels=ds.shape[0], image_size=ds.shape[1], width=width)
                             for _ in range(ds.num_classes)])

    def build():
        if init is None:
            return fresh()
        if isinstance(init.model, DetectorBank):
            bank = fresh()
            bank.load_state_dict(init.model.state_dict())
            return bank
        return bank_from_classifier(init.model)

    return trained(cache, "gat_detectors", config, build,
                   lambda store, b: gat.train_gat(store, b, ds.x_train, ds.y_train, epochs=epochs, m=m, lr=lr,
                                                  attack_kwargs=kwargs, seed=seed,
                                                  eval_fn=monitor_fn if monitor else None, select_fn=select_fn,
                                                  precision=precision, desc=desc),
                   device)


def cifar_classifier(cache, ds, *, arch: str, width: float = 1.0, epochs: int, lr: float, batch_size: int,
                     lr_drops=(), seed: int, device) -> Trained:
    """The natural CIFAR-10 classifier the detectors start from (GAT: a naturally trained WRN-34-10, 95.01%):
    SGD with momentum 0.9 and weight decay 2e-4, random crop and flip, ``lr`` divided by 10 at ``lr_drops``."""
    config = {**_data(ds), "arch": arch, "width": width, "epochs": epochs, "lr": lr, "batch": batch_size,
              "lr_drops": list(lr_drops), "seed": seed}
    return trained(cache, "cifar_classifier", config, lambda: cifar_network(arch, width),
                   lambda store, m: train_classifier(store, m, ds.x_train, ds.y_train, epochs=epochs, lr=lr,
                                                     batch_size=batch_size, seed=seed, optimizer="sgd",
                                                     weight_decay=2e-4, augment=random_crop_flip,
                                                     lr_drops=lr_drops, desc="CIFAR-10 natural classifier"),
                   device)


def cifar_detectors(cache, ds, classifier: Trained, *, attack: Mapping, epochs: int, m: int, lr: float, seed: int,
                    device, desc: str = "GAT CIFAR-10 detectors") -> Trained:
    """GAT's CIFAR-10 detectors (App. A.2): detector k starts as the natural classifier's logit k
    (:func:`~advdetect.ensemble.bank_from_classifier`, batch norm in inference mode) and is finetuned with the
    GAT objective on ``m`` positives + ``m`` perturbed negatives per step, SGD with momentum 0.9, weight decay
    2e-4, random crop and flip. ``attack``: engine keywords (paper: :data:`advdetect.gat.CIFAR_TRAIN_ATTACK`)."""
    config = {**_data(ds), "classifier": identity(classifier.model), "epochs": epochs, "m": m, "lr": lr,
              "seed": seed, "attack": dict(attack)}
    return trained(cache, "gat_cifar_detectors", config, lambda: bank_from_classifier(classifier.model),
                   lambda store, b: gat.train_gat(store, b, ds.x_train, ds.y_train, epochs=epochs, m=m, lr=lr,
                                                  attack_kwargs=dict(attack), seed=seed, optimizer="sgd",
                                                  weight_decay=2e-4, augment=random_crop_flip, desc=desc),
                   device)


# ------------------------------------------------------------------------------------------- ARCLU's models

def center_encoder(cache, ds, *, width: float, epochs: int, lr: float, batch_size: int, seed: int,
                   device) -> Trained:
    """The motivation experiment's encoder (Eq. 10, one-hot centres); ``extra["means"]`` holds the centres."""
    means = arclu.class_means(ds.num_classes, l=1, magnitude=1.0)
    config = {**_data(ds), "width": width, "epochs": epochs, "lr": lr, "batch": batch_size, "seed": seed}
    return trained(cache, "arclu_center_encoder", config,
                   lambda: ArcluEncoder(ds.num_classes, in_channels=ds.shape[0], image_size=ds.shape[1],
                                        width=width),
                   lambda store, e: arclu.train_center(store, e, ds.x_train, ds.y_train, means, epochs=epochs,
                                                       lr=lr, batch_size=batch_size, seed=seed),
                   device, extra={"means": means})


def softmax_classifier(cache, ds, *, width: float, epochs: int, lr: float, batch_size: int, seed: int,
                       device) -> Trained:
    """The same network trained with cross-entropy (the vanilla classifier of ARCLU Fig 2)."""
    config = {**_data(ds), "width": width, "epochs": epochs, "lr": lr, "batch": batch_size, "seed": seed}
    return trained(cache, "arclu_softmax_classifier", config,
                   lambda: ArcluEncoder(ds.num_classes, in_channels=ds.shape[0], image_size=ds.shape[1],
                                        width=width),
                   lambda store, m: train_classifier(store, m, ds.x_train, ds.y_train, epochs=epochs, lr=lr,
                                                     batch_size=batch_size, seed=seed, desc="softmax classifier"),
                   device)


def arclu_detector(cache, ds, *, width: float, l: int, magnitude: float, epochs: int, lr: float, batch_size: int,
                   attack: Mapping, fpr: float, lben: bool, seed: int, device, arch: str = "small cnn",
                   warmup: float = 0.0, lr_drops=(), precision: str = "fp32", desc: str | None = None) -> Trained:
    """ARCLU's detector (Algorithm 1), or the L-Ben ablation with ``lben=True``: the encoder to m = k * l
    dimensions; ``extra["means"]`` holds its cluster means (M = ``magnitude``). ``arch``: ARCLU's small MNIST
    CNN (``"small cnn"``) or a CIFAR-10 network of :func:`~advdetect.models.cifar_network`. ``precision``: the
    training steps' arithmetic (:func:`~advdetect.runtime.autocast`)."""
    k = ds.num_classes
    means = arclu.class_means(k, l=l, magnitude=magnitude)
    kwargs = {"rule": "sign", **dict(attack)}
    config = {**_data(ds), "arch": arch, "width": width, "l": l, "M": magnitude, "epochs": epochs, "lr": lr,
              "batch": batch_size, "attack": kwargs, "fpr": fpr, "lben": lben, "seed": seed, "warmup": warmup,
              "lr_drops": list(lr_drops), **_precision(precision)}

    def build():
        if arch == "small cnn":
            return ArcluEncoder(k * l, in_channels=ds.shape[0], image_size=ds.shape[1], width=width)
        return cifar_network(arch, width, num_outputs=k * l)

    return trained(cache, "arclu_detector", config, build,
                   lambda store, e: arclu.train_arclu(store, e, ds.x_train, ds.y_train, means, epochs=epochs, lr=lr,
                                                      batch_size=batch_size, attack_kwargs=kwargs, fpr=fpr,
                                                      lben=lben, seed=seed, warmup=warmup, lr_drops=lr_drops,
                                                      precision=precision, desc=desc or ("L-Ben" if lben else "ARCLU")),
                   device, extra={"means": means})


# ------------------------------------------------------------------------------------------------ baselines

def trades_classifier(cache, ds, *, width: float, epochs: int, lr: float, batch_size: int, beta: float,
                      attack: Mapping, seed: int, device, warmup: float = 0.0, lr_drops=(),
                      precision: str = "fp32") -> Trained:
    """TRADES: the Madry CNN (the architecture of the other MNIST classifiers) trained with
    :func:`~advdetect.baselines.trades_loss` (Adam), with the warm-up, schedule and precision of
    :func:`madry_classifier`."""
    kwargs = {"rule": "sign", **dict(attack)}
    config = {**_data(ds), "width": width, "epochs": epochs, "lr": lr, "batch": batch_size, "beta": beta,
              "attack": kwargs, "seed": seed, "warmup": warmup, "lr_drops": list(lr_drops),
              **_precision(precision)}
    return trained(cache, "trades_classifier", config,
                   lambda: MadryCNN(ds.num_classes, in_channels=ds.shape[0], image_size=ds.shape[1], width=width),
                   lambda store, m: train_classifier(
                       store, m, ds.x_train, ds.y_train, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                       desc="TRADES", warmup=warmup, lr_drops=lr_drops, precision=precision,
                       batch_loss=lambda mm, xb, yb, scale: baselines.trades_loss(
                           mm, xb, yb, beta=beta, attack=scaled_attack(kwargs, scale))),
                   device)


def resisting_vae(cache, ds, *, width: float, magnitude: float, epochs: int, lr: float, batch_size: int, seed: int,
                  device) -> Trained:
    """Resisting's Gaussian-mixture VAE (:class:`~advdetect.models.GaussianMixtureVAE`): one latent coordinate per
    class, the mixture means one-hot times ``magnitude`` (ARCLU's means without the adversarial cluster),
    trained on the negative ELBO (:func:`~advdetect.baselines.train_gmvae`)."""
    k = ds.num_classes
    means = arclu.class_means(k, l=1, magnitude=magnitude)[:k]
    config = {**_data(ds), "width": width, "M": magnitude, "epochs": epochs, "lr": lr, "batch": batch_size,
              "seed": seed}
    return trained(cache, "resisting_vae", config,
                   lambda: GaussianMixtureVAE(means, in_channels=ds.shape[0], image_size=ds.shape[1], width=width),
                   lambda store, v: baselines.train_gmvae(store, v, ds.x_train, ds.y_train, epochs=epochs, lr=lr,
                                                          batch_size=batch_size, seed=seed),
                   device)


def feature_detectors(cache, classifier: nn.Module, ds, *, n_fit: int, n_reference: int, k: int, attack: Mapping,
                      seed: int = 0) -> dict[str, Trained]:
    """LID and MAHA on ``classifier``, fitted on ``n_fit`` training images, their non-adaptive PGD adversarial
    examples (engine keywords ``attack``, CW margin of the classifier; cached) and noisy copies (uniform noise of
    the same L-inf size), LID's reference batch being ``n_reference`` other training images. The fits take
    seconds; each :class:`Trained` has the training AUC as its history."""
    device = next(classifier.parameters()).device
    fit_idx, ref_idx, gen = baselines.feature_fit_split(len(ds.y_train), n_fit=n_fit, n_reference=n_reference,
                                                        seed=seed)
    x_fit, y_fit = ds.x_train[fit_idx], ds.y_train[fit_idx]
    kw = {"rule": "sign", "random_start": True, **dict(attack)}
    x_adv = attack_examples(cache, ClassifierDefence("victim", classifier), "margin", x_fit.to(device),
                            y_fit.to(device), kw, purpose="feature detectors")
    x_noisy = (x_fit + (torch.rand(x_fit.shape, generator=gen) * 2 - 1) * float(attack["eps"])).clamp(0, 1)
    x_ref, y_ref = ds.x_train[ref_idx], ds.y_train[ref_idx]
    out = {}
    for name, method in (("LID", "lid"), ("MAHA", "maha")):
        config = {**_data(ds), "classifier": identity(classifier), "method": method, "n_fit": n_fit,
                  "n_reference": n_reference, "k": k, "attack": kw, "seed": seed}

        def fit(store, det, method=method):
            return _fitted_once(store, det, lambda: baselines.fit_feature_detector(
                det, x_ref, y_ref, x_fit, x_adv, x_noisy if method == "lid" else None, seed=seed))

        out[name] = trained(cache, f"{method}_detector", config,
                            lambda name=name, method=method: FeatureDetector(name, classifier, method, k=k), fit,
                            device)
    return out


def _fitted_once(store, detector: FeatureDetector, fit: Callable[[], Mapping]) -> list:
    """``fit()`` ``detector`` once and keep what it set in ``store``; later calls restore it. The fit takes
    seconds, but its floats depend on the number of threads that computed the features: refitting in each
    process would give the defence another identity, and every attack cached on it would be missed."""
    blob = store.memo("final", lambda: {"history": [dict(fit())], "fitted": detector.fitted_state()})
    detector.load_fitted(blob["fitted"])   # restores a saved fit (a fit made now is already in place)
    return list(blob["history"])


# ----------------------------------------------------------------------------------- GAT App. F (synthetic)

def density_fit(cache, data, method: str, *, hidden: int, lr: float, steps: int, batch: int | None,
                pgd_steps: int, pgd_step: float, eps: float, grid_points: int, seed: int, warmup_steps: int = 0,
                device="cpu") -> density.DensityFit:
    """The App. F MLP trained on a synthetic set with ``method`` ``"gat"`` or ``"discriminative"`` (GAT's first
    ``warmup_steps`` steps are discriminative; both methods take ``steps`` steps), and its Gibbs density scored
    against the truth."""
    attack = density.training_attack(data, method, eps=eps, pgd_steps=pgd_steps, pgd_step=pgd_step)
    gat_run = attack is not None
    config = {"data": data.name, "seed": seed, "method": method, "hidden": hidden, "lr": lr, "steps": steps,
              "batch": batch, "pgd_steps": pgd_steps if gat_run else 0, "pgd_step": pgd_step,
              "eps": eps if gat_run else 0.0, "warmup": warmup_steps if gat_run else 0}
    dim = data.positives.shape[1]
    t = trained(cache, "density_mlp", config, lambda: MLP(dim, (hidden,) * 5, 1),
                lambda store, m: gat.train_binary(store, m, data.positives, data.negatives, steps=steps, lr=lr,
                                                  batch=batch, attack_kwargs=attack, seed=seed,
                                                  warmup_steps=warmup_steps if gat_run else 0,
                                                  desc=f"{data.name} {method}"),
                device)
    return density.score(method, t.model, data, grid_points, t.history)


# ------------------------------------------------------------------------------------- cached computations

def memo(cache, kind: str, key: Mapping[str, Any], compute: Callable[[], Mapping]) -> dict:
    """``compute()`` once per (``kind``, ``key``): modules in ``key`` enter by their weights, tensors by their
    bytes (:func:`~advdetect.cache.identity`, :func:`~advdetect.cache.fingerprint`)."""
    def plain(v):
        if isinstance(v, nn.Module):
            return identity(v)
        if isinstance(v, torch.Tensor):
            return fingerprint(v)
        if isinstance(v, Mapping):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, np.generic):
            return v.item()
        return v

    return cache.memo(kind, plain(dict(key)), compute)


def attack_examples(cache, defence, loss: str, x: torch.Tensor, labels, engine: Mapping, *, criterion=None,
                    targeted: bool = False, seed: int = 0, **key) -> torch.Tensor:
    """Adversarial examples of the ``loss`` of :mod:`advdetect.objectives` on ``defence`` (engine keywords
    ``engine``; ``labels`` the true labels, or ``(y, t)`` when ``targeted``; random starts drawn from a generator
    seeded with ``seed``), computed once and cached under the defence's weights, the loss, the criterion, the
    engine's keywords, the seed, the images and the labels (and any further ``key``). Returned on the CPU."""
    def run():
        fn = objective(defence, loss, criterion, targeted)
        return {"x_adv": attacks.attack(fn, x, labels, generator=torch.Generator().manual_seed(seed),
                                        **engine).x_adv.cpu()}

    crit = None if criterion is None else {"tau": criterion.tau, "targeted": criterion.targeted}
    return memo(cache, "attack", {"defence": defence, "loss": loss, "criterion": crit, "targeted": targeted,
                                  "engine": dict(engine), "seed": seed, "x": x, "labels": labels, **key},
                run)["x_adv"]


def robustness(cache, bank: DetectorBank, x: torch.Tensor, y: torch.Tensor, attack: Mapping | None, *, ks=None,
               n_negatives: int, seed: int = 0, restarts: int = 1, clean_logits=None) -> dict:
    """:func:`advdetect.gat.detector_aucs` through the cache. ``attack`` holds the engine's keywords;
    ``restarts`` restarts from random points and keeps each negative's best. Returns ``{k: AUC}``."""
    kw = None if attack is None else {**dict(attack), **({"restarts": restarts} if restarts > 1 else {})}
    ks = list(range(bank.k)) if ks is None else [int(k) for k in ks]
    out = memo(cache, "gat_robustness", {"bank": bank, "attack": kw, "ks": ks, "n": n_negatives, "seed": seed,
                                         "x": x, "y": y},
               lambda: {"auc": torch.tensor(list(gat.detector_aucs(bank, x, y, kw, ks=ks, n_negatives=n_negatives,
                                                                   seed=seed, clean_logits=clean_logits).values()))})
    return dict(zip(ks, out["auc"].tolist()))


def embed(cache, z: torch.Tensor, method: str, *, seed: int = 0, perplexity: float = 30.0,
          neighbors: int = 15) -> np.ndarray:
    """:func:`advdetect.embedding.embed` through the cache (keyed by the points, the method and its settings)."""
    out = memo(cache, "embedding", {"z": z, "method": method, "seed": seed, "perplexity": perplexity,
                                    "neighbors": neighbors},
               lambda: {"points": torch.as_tensor(embedding.embed(z, method, seed=seed, perplexity=perplexity,
                                                                  neighbors=neighbors))})
    return out["points"].numpy()


def pushed(cache, model, x: torch.Tensor, targets: torch.Tensor, attack: Mapping) -> torch.Tensor:
    """``x`` pushed toward ``targets`` by :func:`advdetect.synthesis.raise_logit` (engine keywords ``attack``)."""
    return memo(cache, "synthesis", {"what": "pushed", "model": model, **dict(attack), "x": x, "targets": targets},
                lambda: {"x_adv": synthesis.raise_logit(model, x, targets, **attack).x_adv.cpu()})["x_adv"]



def targeted_grid(cache, model, sources: torch.Tensor, **attack) -> dict:
    """:func:`advdetect.synthesis.targeted_grid`, cached."""
    return memo(cache, "synthesis", {"what": "targeted grid", "model": model, "sources": sources, **attack},
                lambda: synthesis.targeted_grid(model, sources, **attack))


def synthesize(cache, model, gaussians, per_class: int, noise: torch.Tensor, **attack) -> dict:
    """:func:`advdetect.synthesis.synthesize` from the samples ``noise``, cached."""
    return memo(cache, "synthesis", {"what": "gaussian synthesis", "model": model, "noise": noise, **attack},
                lambda: synthesis.synthesize(model, gaussians, per_class, noise=noise, **attack))


def noise_paths(cache, model, noise: torch.Tensor, **attack) -> dict:
    """:func:`advdetect.synthesis.noise_paths` from the image ``noise``, cached."""
    return memo(cache, "synthesis", {"what": "noise paths", "model": model, "noise": noise, **attack},
                lambda: synthesis.noise_paths(model, noise, **attack))
