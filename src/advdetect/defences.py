"""Every defence of the head-to-head chapter behind one interface: a classifier with a detection score.

A :class:`Defence` maps images to ``(logits, score)``: ``logits`` ``(B, K)`` whose argmax is the prediction and
an anomaly ``score`` ``(B,)`` - higher means more suspicious - so that an input predicted as class c is rejected
when its score exceeds that class's threshold tau_c. Thresholds are set per class at a false-positive rate of
held-out benign inputs (:meth:`Defence.thresholds`, ARCLU's ASR-p convention), for every defence alike. Both
outputs are differentiable, so that one attack engine attacks them all (:mod:`advdetect.suite`).

=================  ===========================================  ==========================================
defence            logits                                       score (reject if above tau_pred)
=================  ===========================================  ==========================================
GAT integrated     natural classifier f                         minus the detector logit of f's class
GAT generative     the K detectors' logits                      minus the largest detector logit
ARCLU, L-Ben       minus the distances to the K class means     distance to the nearest class mean (Eq. 16)
Vanilla, Madry,    the classifier's logits                      -log max softmax (the confidence baseline of
TRADES                                                          Hendrycks & Gimpel, ARCLU's "Vanilla")
FS                 the classifier's logits                      L1 distance of the softmax before and after
                                                                a median filter (Xu et al. 2018)
LID                the classifier's logits                      logistic regression on the local intrinsic
                                                                dimensionality of each layer (Ma et al. 2018)
MAHA               the classifier's logits                      logistic regression on each layer's smallest
                                                                Mahalanobis distance to a class mean (Lee et
                                                                al. 2018), no input preprocessing
=================  ===========================================  ==========================================

Each defence names its *paper objective* (``paper_objective``): the adaptive loss its paper (or ARCLU's Table 1,
or GAT's Eqs. 9, 12) attacks it with; :mod:`advdetect.suite` defines those losses.

:func:`book_defences` builds the ten defences of the chapter from the artefacts of the earlier chapters (GAT's
natural and robust classifiers and L-inf 0.3 detectors, ARCLU and L-Ben) plus the models only this chapter
needs (TRADES; the fitted LID and Mahalanobis detectors), all cached.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .runtime import device_of, freeze


class Defence(nn.Module):
    """Base class: ``forward(x) -> (logits, score)``; ``name``, ``paper_objective`` and ``config`` (which
    identifies the trained models in cached attacks) are set by subclasses."""

    paper_objective: str = "composite"
    kind: str = "detector"

    def __init__(self, name: str, num_classes: int, config: Mapping):
        super().__init__()
        self.name, self.num_classes, self.config = name, num_classes, {"defence": name, **dict(config)}

    @torch.no_grad()
    def decide(self, x: torch.Tensor, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
        """Predictions and scores of ``x`` (any device), batched on the defence's device; returned on the CPU."""
        self.eval()
        device = device_of(self)
        preds, scores = [], []
        for i in range(0, len(x), batch_size):
            z, s = self(x[i:i + batch_size].to(device))
            preds.append(z.argmax(1).cpu())
            scores.append(s.float().cpu())
        return torch.cat(preds), torch.cat(scores)

    def thresholds(self, x_heldout: torch.Tensor, fpr: float) -> torch.Tensor:
        """Per-class thresholds ``(K,)`` so that a fraction ``fpr`` of held-out benign inputs predicted as each
        class is rejected."""
        from .metrics import thresholds_at_fpr

        pred, score = self.decide(x_heldout)
        return torch.as_tensor(thresholds_at_fpr(score, pred, fpr, self.num_classes), dtype=torch.float32)


def _confidence_score(z: torch.Tensor) -> torch.Tensor:
    """-log of the largest softmax probability (0 for a certain prediction, grows as confidence falls)."""
    return torch.logsumexp(z, 1) - z.amax(1)


class ClassifierDefence(Defence):
    """A classifier whose softmax confidence is the detection score (Vanilla, Madry, TRADES)."""

    paper_objective = "margin"

    def __init__(self, name: str, classifier: nn.Module, kind: str = "classifier"):
        super().__init__(name, classifier.num_outputs, {"classifier": getattr(classifier, "config", None)})
        self.classifier, self.kind = classifier, kind

    def forward(self, x):
        z = self.classifier(x)
        return z, _confidence_score(z)


class GatIntegrated(Defence):
    """GAT's integrated classifier (Section 4.2): f's prediction, rejected when that class's detector logit is
    low. Its paper objective is the combined attack (Eq. 12), which is this suite's composite loss."""

    paper_objective = "composite"

    def __init__(self, classifier: nn.Module, bank: nn.Module, name: str = "GAT integrated"):
        super().__init__(name, classifier.num_outputs, {"classifier": getattr(classifier, "config", None),
                                                        "bank": getattr(bank, "config", None)})
        self.classifier, self.bank = classifier, bank

    def forward(self, x):
        z = self.classifier(x)
        h = self.bank(x)
        return z, -h.gather(1, z.argmax(1, keepdim=True)).squeeze(1)


class GatGenerative(Defence):
    """GAT's generative classifier (Section 4.3): argmax of the detectors' logits, rejected when the largest
    logit is low. Its paper objective is the detectors attack (Eq. 9): raise the largest wrong-class logit."""

    paper_objective = "nearest wrong"

    def __init__(self, bank: nn.Module, name: str = "GAT generative"):
        super().__init__(name, bank.k, {"bank": getattr(bank, "config", None)})
        self.bank = bank

    def forward(self, x):
        h = self.bank(x)
        return h, -h.amax(1)


class DistanceDefence(Defence):
    """ARCLU (or L-Ben): nearest class mean in the encoder's space and the distance to it (Eq. 16). Logits are
    minus the distances, so the prediction is the nearest mean. Paper objective: Eq. 17 (the nearest wrong
    class's mean)."""

    paper_objective = "nearest wrong"

    def __init__(self, name: str, encoder: nn.Module, means: torch.Tensor):
        k = len(means) - 1
        super().__init__(name, k, {"encoder": getattr(encoder, "config", None)})
        self.encoder = encoder
        self.register_buffer("means", means[:k].clone().float())

    def forward(self, x):
        d = torch.cdist(self.encoder(x), self.means)
        return -d, d.amin(1)


def median_filter(x: torch.Tensor, size: int = 2) -> torch.Tensor:
    """Median over ``size x size`` windows of each channel (windows anchored at the pixel and extending right
    and down, edges replicated, as scipy's even-sized filter); differentiable: the gradient reaches the pixel
    chosen as the median (the lower middle value for an even window)."""
    if size < 2:
        return x
    lo = (size - 1) // 2
    hi = size - 1 - lo
    padded = F.pad(x, (lo, hi, lo, hi), mode="replicate")
    patches = padded.unfold(2, size, 1).unfold(3, size, 1)  # (B, C, H, W, size, size)
    return patches.reshape(*patches.shape[:4], -1).median(-1).values


class FeatureSqueezing(Defence):
    """Feature Squeezing with a median filter (Xu et al. 2018; ARCLU's FS): the score is the L1 distance between
    the softmax outputs of the image and of its median-filtered copy. Differentiable through the filter, so the
    adaptive attack (ARCLU Table 1: CW loss + the score) needs no approximation."""

    paper_objective = "sum"

    def __init__(self, classifier: nn.Module, size: int = 2, name: str = "FS"):
        super().__init__(name, classifier.num_outputs, {"classifier": getattr(classifier, "config", None),
                                                        "median": size})
        self.classifier, self.size = classifier, size

    def forward(self, x):
        z = self.classifier(x)
        squeezed = self.classifier(median_filter(x, self.size))
        return z, (z.softmax(1) - squeezed.softmax(1)).abs().sum(1)


# ------------------------------------------------------------------------------------------ LID and Mahalanobis

def layer_activations(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The activations of every stage of a two-convolution network (:class:`~advdetect.models.SmallCNN`):
    after each convolution stage (ReLU + pool), after the hidden fully connected layer, and the logits."""
    h1 = F.max_pool2d(F.relu(model.conv1(model.normalize(x))), 2)
    h2 = F.max_pool2d(F.relu(model.conv2(h1)), 2)
    h3 = F.relu(model.fc1(h2.flatten(1)))
    return [h1, h2, h3, model.fc2(h3)]


def lid(acts: torch.Tensor, reference: torch.Tensor, k: int) -> torch.Tensor:
    """Maximum-likelihood estimate of local intrinsic dimensionality (Amsaleg et al.; Ma et al. 2018, Eq. 4)
    of each row of ``acts`` (B, d) with respect to the ``reference`` points (R, d), from its ``k`` nearest
    reference distances r_1 <= ... <= r_k: -(mean_i log(r_i / r_k))^-1."""
    d = torch.cdist(acts.flatten(1), reference.flatten(1)).clamp_min(1e-12)
    r = d.topk(k, dim=1, largest=False).values
    return -1.0 / (torch.log(r / r[:, -1:]).mean(1) - 1e-12)


def _pooled(acts: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each layer's activations as vectors: convolution maps averaged over space (Lee et al.)."""
    return [a.mean((2, 3)) if a.ndim == 4 else a for a in acts]


class FeatureDetector(Defence):
    """A logistic regression over per-layer statistics of a classifier's activations: LID (``method="lid"``)
    or the smallest Mahalanobis distance to a class mean (``method="maha"``). The regression's decision value
    (standardised features times weights plus bias) is the score; it is a differentiable function of the input,
    which the adaptive attack (ARCLU Table 1: CW loss + the score) follows. Fit with :meth:`fit`."""

    paper_objective = "sum"

    def __init__(self, name: str, classifier: nn.Module, method: str, *, k: int = 20, config: Mapping = ()):
        if method not in ("lid", "maha"):
            raise ValueError(f"unknown feature detector {method!r}: choose 'lid' or 'maha'")
        super().__init__(name, classifier.num_outputs, {"classifier": getattr(classifier, "config", None),
                                                        "method": method, "k": k, **dict(config)})
        self.classifier, self.method, self.k = classifier, method, k
        self.layers = 4
        self.register_buffer("feat_mean", torch.zeros(self.layers))
        self.register_buffer("feat_std", torch.ones(self.layers))
        self.register_buffer("weight", torch.zeros(self.layers))
        self.register_buffer("bias", torch.zeros(()))

    # statistics of the reference data, set by fit()
    def _set_reference(self, x_ref: torch.Tensor, y_ref: torch.Tensor) -> None:
        with torch.no_grad():
            acts = layer_activations(self.classifier, x_ref.to(device_of(self.classifier)))
        if self.method == "lid":
            for i, a in enumerate(acts):
                self.register_buffer(f"ref{i}", a.flatten(1).clone())
        else:
            for i, a in enumerate(_pooled(acts)):
                means = torch.stack([a[y_ref == c].mean(0) for c in range(self.num_classes)])
                centred = a - means[y_ref.to(a.device)]
                cov = centred.T @ centred / len(a)
                cov = cov + 1e-3 * cov.diagonal().mean() * torch.eye(len(cov), device=a.device)
                self.register_buffer(f"mu{i}", means)
                self.register_buffer(f"prec{i}", torch.linalg.inv(cov))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The per-layer statistics ``(B, 4)`` of ``x``, before standardisation."""
        acts = layer_activations(self.classifier, x)
        if self.method == "lid":
            return torch.stack([lid(a, getattr(self, f"ref{i}"), self.k) for i, a in enumerate(acts)], 1)
        cols = []
        for i, a in enumerate(_pooled(acts)):
            diff = a[:, None, :] - getattr(self, f"mu{i}")[None]  # (B, K, d)
            m = torch.einsum("bkd,de,bke->bk", diff, getattr(self, f"prec{i}"), diff)
            cols.append(m.amin(1))
        return torch.stack(cols, 1)

    def forward(self, x):
        z = self.classifier(x)
        f = (self.features(x) - self.feat_mean) / self.feat_std
        return z, f @ self.weight + self.bias

    def fit(self, x_ref: torch.Tensor, y_ref: torch.Tensor, x_benign: torch.Tensor, x_adv: torch.Tensor,
            x_noisy: torch.Tensor | None = None, *, seed: int = 0) -> dict[str, float]:
        """Set the reference statistics from benign training images ``(x_ref, y_ref)`` (LID: the reference batch
        of the nearest-neighbour distances; MAHA: class means and the shared covariance per layer), then fit the
        logistic regression (scikit-learn) telling ``x_adv`` (label 1) from ``x_benign`` and ``x_noisy``
        (label 0; Ma et al. add noisy images so that noise alone is not flagged). Returns the training AUC."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import roc_auc_score

        self._set_reference(x_ref, y_ref)
        negatives = [x_benign] + ([x_noisy] if x_noisy is not None else [])
        device = device_of(self.classifier)

        @torch.no_grad()
        def feats(x):
            return torch.cat([self.features(x[i:i + 500].to(device)).cpu() for i in range(0, len(x), 500)])

        f0 = torch.cat([feats(x) for x in negatives])
        f1 = feats(x_adv)
        f = torch.cat([f0, f1]).double()
        mean, std = f.mean(0), f.std(0).clamp_min(1e-8)
        X = ((f - mean) / std).numpy()
        labels = np.r_[np.zeros(len(f0)), np.ones(len(f1))]
        lr = LogisticRegression(max_iter=1000, random_state=seed).fit(X, labels)
        self.feat_mean.copy_(mean.float())
        self.feat_std.copy_(std.float())
        self.weight.copy_(torch.as_tensor(lr.coef_[0], dtype=torch.float32))
        self.bias.copy_(torch.as_tensor(lr.intercept_[0], dtype=torch.float32))
        return {"train AUC": float(roc_auc_score(labels, lr.decision_function(X)))}


# ------------------------------------------------------------------------------------------------------ TRADES

def trades_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, beta: float, attack: Mapping):
    """TRADES (Zhang et al. 2019): cross-entropy on natural images plus ``beta`` times the KL divergence between
    the softmax outputs on x and on x', where x' maximises that KL inside the eps-ball (engine keywords
    ``attack``; the inner attack starts at a random point of the ball, since the KL's gradient vanishes at x).
    Returns (loss, natural logits). The model is put in evaluation mode for the inner attack only."""
    from . import attacks

    was_training = model.training
    model.eval()
    with torch.no_grad():
        p_nat = model(x).softmax(1)

    def objective(xa, p):
        return -F.kl_div(model(xa).log_softmax(1), p, reduction="none").sum(1)

    x_adv = attacks.attack(objective, x, p_nat, **{"random_start": True, **dict(attack)}).x_adv
    model.train(was_training)
    z = model(x)
    robust = F.kl_div(model(x_adv).log_softmax(1), z.softmax(1), reduction="batchmean")
    return F.cross_entropy(z, y) + beta * robust, z


def trades_classifier(cache, ds, *, width: float, epochs: int, lr: float, batch_size: int, beta: float,
                      attack: Mapping, seed: int, device):
    """The TRADES classifier: the Madry CNN (the architecture of the other MNIST classifiers of the chapter)
    trained with :func:`trades_loss` (Adam), cached. Returns (model, history)."""
    from .models import MadryCNN
    from .runtime import seed_everything
    from .training import train_classifier

    seed_everything(seed)
    model = MadryCNN(ds.num_classes, in_channels=ds.shape[0], image_size=ds.shape[1], width=width).to(device)
    kwargs = {"rule": "sign", **dict(attack)}
    config = {"data": ds.name, "n": len(ds.y_train), "width": width, "epochs": epochs, "lr": lr,
              "batch": batch_size, "beta": beta, "attack": kwargs, "seed": seed}
    hist = train_classifier(cache.entry("trades_classifier", config), model, ds.x_train, ds.y_train, epochs=epochs,
                            lr=lr, batch_size=batch_size, seed=seed, desc="TRADES",
                            batch_loss=lambda m, xb, yb: trades_loss(m, xb, yb, beta=beta, attack=kwargs))
    model.config = {"model": "trades_classifier", **config}
    return freeze(model), hist


# ----------------------------------------------------------------------------------------- the chapter's ten

def fit_feature_detectors(cache, classifier: nn.Module, ds, *, n_fit: int, n_reference: int, k: int,
                          attack: Mapping, seed: int = 0) -> dict[str, FeatureDetector]:
    """LID and MAHA on ``classifier``, fitted on ``n_fit`` training images, their non-adaptive PGD adversarial
    examples (engine keywords ``attack``, CW margin of the classifier) and noisy copies (uniform noise of the
    same L-inf size), the LID reference batch being ``n_reference`` other training images. The adversarial
    training examples are cached; the fits take seconds."""
    from .gat import cached_attack
    from .losses import untargeted_margin

    device = device_of(classifier)
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(ds.y_train), generator=gen)
    fit_idx, ref_idx = order[:n_fit], order[n_fit:n_fit + n_reference]
    x_fit, y_fit = ds.x_train[fit_idx], ds.y_train[fit_idx]
    kw = {"rule": "sign", "random_start": True, **dict(attack)}
    x_adv = cached_attack(cache, {"model": getattr(classifier, "config", None), "objective": "untargeted margin",
                                  "purpose": "feature detectors"}, untargeted_margin(classifier), x_fit.to(device),
                          y_fit.to(device), kw)
    noise = (torch.rand(x_fit.shape, generator=gen) * 2 - 1) * float(attack["eps"])
    x_noisy = (x_fit + noise).clamp(0, 1)
    x_ref, y_ref = ds.x_train[ref_idx], ds.y_train[ref_idx]
    out = {}
    for name, method in (("LID", "lid"), ("MAHA", "maha")):
        det = FeatureDetector(name, classifier, method, k=k,
                              config={"n_fit": n_fit, "n_reference": n_reference, "attack": kw, "seed": seed})
        det = det.to(device)
        det.fit_stats = det.fit(x_ref, y_ref, x_fit, x_adv, x_noisy if method == "lid" else None, seed=seed)
        out[name] = freeze(det)
    return out


def book_defences(cache, profile: str, settings: Mapping, device) -> dict[str, Defence]:
    """The chapter's ten defences at ``profile``: GAT's natural classifier, robust classifier and L-inf 0.3
    detectors exactly as the GAT chapters train them (same cache entries), ARCLU and L-Ben as the cluster
    separation chapter trains them, and what only this chapter needs, from ``settings`` (the ``adaptive``
    chapter's names): TRADES (``TRADES_*``, on the GAT chapters' data and network), Feature Squeezing
    (``FS_MEDIAN``), LID and MAHA (``FEATURE_FIT`` images, ``LID_K`` neighbours among ``LID_REFERENCE``)."""
    from . import arclu, gat, profiles

    g = profiles.defaults("gat_detectors", profile)
    bank, ds = gat.chapter_detectors(cache, "Linf 0.3", profile, device)
    (f, _), (robust, _) = gat.chapter_classifiers(cache, ds, g, device)
    encoders = {name: arclu.chapter_detector(cache, profile, device, lben=lben)[:2]
                for name, lben in (("ARCLU", False), ("L-Ben", True))}
    s = settings
    trades, _ = trades_classifier(cache, ds, width=g["WIDTH"], epochs=s["TRADES_EPOCHS"], lr=g["MADRY_LR"],
                                  batch_size=g["MADRY_BATCH"], beta=s["TRADES_BETA"],
                                  attack=dict(norm="linf", eps=0.3, steps=s["TRADES_STEPS"],
                                              step_size=s["TRADES_STEP"]), seed=g["SEED"], device=device)
    feature = fit_feature_detectors(cache, f, ds, n_fit=s["FEATURE_FIT"], n_reference=s["LID_REFERENCE"],
                                    k=s["LID_K"], attack=dict(norm="linf", eps=0.3, steps=g["MADRY_STEPS"],
                                                              step_size=g["MADRY_STEP"]), seed=g["SEED"])
    out: dict[str, Defence] = {
        "GAT integrated": GatIntegrated(f, bank),
        "GAT generative": GatGenerative(bank),
        "ARCLU": DistanceDefence("ARCLU", *encoders["ARCLU"]),
        "L-Ben": DistanceDefence("L-Ben", *encoders["L-Ben"]),
        "Vanilla": ClassifierDefence("Vanilla", f),
        "Madry": ClassifierDefence("Madry", robust, kind="robust classifier"),
        "TRADES": ClassifierDefence("TRADES", trades, kind="robust classifier"),
        "FS": FeatureSqueezing(f, size=s["FS_MEDIAN"]),
        "LID": feature["LID"],
        "MAHA": feature["MAHA"],
    }
    return {k: freeze(v.to(device)) for k, v in out.items()}


#: ARCLU's names of the baselines (Table 2's columns) for the chapter's defences; GAT's two classifiers and
#: MAHA on MNIST have no column there
PAPER_NAMES = {"ARCLU": "Ours", "L-Ben": "L-Ben", "Vanilla": "Vanilla", "FS": "FS", "LID": "LID", "Madry": "Madry",
               "TRADES": "TRADES"}
