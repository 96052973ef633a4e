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
Resisting          minus the distances of the VAE's posterior   that distance plus the L2 reconstruction
                   mean to the K mixture means                  error (ARCLU Table 1; Ghosh et al. 2019)
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

Each defence names its *paper objective* (``paper_objective``): the adaptive loss of
:data:`advdetect.objectives.LOSSES` its paper (or ARCLU's Table 1, or GAT's Eqs. 9, 12) attacks it with; GAT's
and ARCLU's defences also carry their paper's whole attack (``paper_protocol``: ARCLU's sign-step PGD of Eq. 17,
targeted and untargeted; GAT's Adam PGD with Eqs. 12 and 9, 100 steps of 0.01).
:meth:`Defence.outputs` returns the logits and score together with what some losses need besides (GAT's
detector logits), from one forward pass. Thresholds, acceptance and success are the
:class:`~advdetect.objectives.Criterion`'s; the trained models come from :mod:`advdetect.artefacts`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .models import max_pool_2x2
from .metrics import thresholds_at_fpr
from .runtime import device_of


@dataclass
class Outputs:
    """A defence's outputs on a batch: ``logits`` (B, K), the detection ``score`` (B,) and, for GAT's defences,
    the K ``detectors``' logits (B, K) - or a function that computes them, where most losses need none of them
    (GAT's integrated classifier consults one detector per input), and then ``select``, a function giving
    detector ``which[i]``'s logit on input i alone. Read them with :meth:`detector_logits` and
    :meth:`detector_logit`."""

    logits: torch.Tensor
    score: torch.Tensor
    detectors: torch.Tensor | Callable[[], torch.Tensor] | None = None
    select: Callable[[torch.Tensor], torch.Tensor] | None = None

    def detector_logits(self) -> torch.Tensor | None:
        """The detectors' logits (B, K), computed on the first call where they were deferred; None for a defence
        without detectors."""
        if callable(self.detectors):
            self.detectors = self.detectors()
        return self.detectors

    def detector_logit(self, which: torch.Tensor) -> torch.Tensor | None:
        """Detector ``which[i]``'s logit on input i (B,), without computing the other detectors where they were
        deferred; None for a defence without detectors."""
        if self.select is not None and callable(self.detectors):
            return self.select(which)
        h = self.detector_logits()
        return None if h is None else h.gather(1, which[:, None]).squeeze(1)


class Defence(nn.Module):
    """Base class: ``outputs(x) -> Outputs`` and ``forward(x) -> (logits, score)``; ``name`` and
    ``paper_objective`` are set by subclasses. A trained defence is identified by its weights (see
    :func:`advdetect.cache.identity`), never by an attribute."""

    paper_objective: str = "composite"
    #: the paper's own white-box attack(s) on this defence within L-inf eps (engine keywords besides the budget:
    #: loss, step rule, step size, steps - None for the evaluating chapter's number - and targeted); empty where
    #: the defence's paper gives none that the book reproduces
    paper_protocol: tuple = ()
    kind: str = "detector"

    def __init__(self, name: str, num_classes: int):
        super().__init__()
        self.name, self.num_classes = name, num_classes

    def outputs(self, x: torch.Tensor) -> Outputs:
        raise NotImplementedError

    def forward(self, x):
        o = self.outputs(x)
        return o.logits, o.score

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

    def accuracy(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> float:
        """The share of ``x`` classified as ``y`` (before any rejection)."""
        return float((self.decide(x, batch_size)[0] == y.cpu()).float().mean())

    @torch.no_grad()
    def represent(self, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """The representations of ``x`` (any device), batched; returned on the CPU."""
        self.eval()
        device = device_of(self)
        return torch.cat([self._represent(x[i:i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])

    def _represent(self, x: torch.Tensor) -> torch.Tensor:
        return self.outputs(x).logits

    def classify(self, z: torch.Tensor) -> torch.Tensor:
        """The prediction from a representation of :meth:`represent`."""
        return z.argmax(1)

    def thresholds(self, x_heldout: torch.Tensor, fpr: float, batch_size: int = 500) -> torch.Tensor:
        """Per-class thresholds ``(K,)`` so that a fraction ``fpr`` of held-out benign inputs predicted as each
        class is rejected."""
        pred, score = self.decide(x_heldout, batch_size)
        return torch.as_tensor(thresholds_at_fpr(score, pred, fpr, self.num_classes), dtype=torch.float32)


def _confidence_score(z: torch.Tensor) -> torch.Tensor:
    """-log of the largest softmax probability (0 for a certain prediction, grows as confidence falls)."""
    return torch.logsumexp(z, 1) - z.amax(1)


class ClassifierDefence(Defence):
    """A classifier whose softmax confidence is the detection score (Vanilla, Madry, TRADES). ``recipe`` names
    how a robust classifier was trained (``"madry"``, ``"trades"``), so that reports can set the field's
    figures for that recipe beside it."""

    paper_objective = "margin"

    def __init__(self, name: str, classifier: nn.Module, kind: str = "classifier", recipe: str | None = None):
        super().__init__(name, classifier.num_outputs)
        self.classifier, self.kind, self.recipe = classifier, kind, recipe

    def outputs(self, x):
        z = self.classifier(x)
        return Outputs(z, _confidence_score(z))


class GatIntegrated(Defence):
    """GAT's integrated classifier (Section 4.2): f's prediction, rejected when that class's detector logit is
    low. Its paper objective is the combined attack (Eq. 12): f's margin until f is fooled, then the largest
    wrong-class detector logit raised."""

    paper_objective = "gat combined"
    paper_protocol = ({"loss": "gat combined", "rule": "adam", "step_size": 0.01, "steps": 100, "targeted": False},)

    def __init__(self, classifier: nn.Module, bank: nn.Module, name: str = "GAT integrated"):
        super().__init__(name, classifier.num_outputs)
        self.classifier, self.bank = classifier, bank

    def outputs(self, x):
        z = self.classifier(x)
        pred = z.argmax(1, keepdim=True)
        if hasattr(self.bank, "selected"):   # a DetectorBank: the predicted class's detector only, all K on demand
            return Outputs(z, -self.bank.selected(x, pred.squeeze(1)), lambda: self.bank(x),
                           lambda which: self.bank.selected(x, which))
        h = self.bank(x)                     # any module with K logits
        return Outputs(z, -h.gather(1, pred).squeeze(1), h)


class GatGenerative(Defence):
    """GAT's generative classifier (Section 4.3): argmax of the detectors' logits, rejected when the largest
    logit is low. Its paper objective is the detectors attack (Eq. 9): raise the largest wrong-class logit."""

    paper_objective = "nearest wrong"
    paper_protocol = ({"loss": "nearest wrong", "rule": "adam", "step_size": 0.01, "steps": 100, "targeted": False},)

    def __init__(self, bank: nn.Module, name: str = "GAT generative"):
        super().__init__(name, bank.k)
        self.bank = bank

    def outputs(self, x):
        h = self.bank(x)
        return Outputs(h, -h.amax(1), h)


class DistanceDefence(Defence):
    """ARCLU (or L-Ben): nearest class mean in the encoder's space and the distance to it (Eq. 16). Logits are
    minus the distances, so the prediction is the nearest mean. Paper objective: Eq. 17 (the nearest wrong
    class's mean)."""

    paper_objective = "nearest wrong"
    paper_protocol = tuple({"loss": "nearest wrong", "rule": "sign", "step_size": 0.01, "steps": None,
                            "targeted": targeted} for targeted in (False, True))

    def __init__(self, name: str, encoder: nn.Module, means: torch.Tensor):
        k = len(means) - 1
        super().__init__(name, k)
        self.encoder = encoder
        self.register_buffer("means", means.clone().float())   # the k class means, then the adversarial cluster's

    def outputs(self, x):
        d = torch.cdist(self.encoder(x), self.means)[:, :self.num_classes]
        return Outputs(-d, d.amin(1))

    def _represent(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def classify(self, z: torch.Tensor) -> torch.Tensor:
        """Eq. 16's classification of representations ``z`` (any device): the nearest class mean."""
        return torch.cdist(z, self.means.to(z))[:, :self.num_classes].argmin(1)


class ResistingDefence(Defence):
    """Resisting (Ghosh et al. 2019) as ARCLU's Table 1 describes it: a VAE with a Gaussian-mixture prior
    (:class:`~advdetect.models.GaussianMixtureVAE`) classifies by the mixture mean nearest to the posterior mean
    ``H(x)`` and scores ``||H(x) - mu_pred||_2 + ||x - rec(x)||_2``. Paper objective: the composite loss (the
    margin, then the score), which attacks both terms."""

    paper_objective = "composite"

    def __init__(self, name: str, vae: nn.Module):
        super().__init__(name, vae.num_outputs)
        self.vae = vae

    def outputs(self, x):
        z = self.vae(x)
        d = torch.cdist(z, self.vae.means)
        rec = self.vae.decode(z)
        error = (x - rec).flatten(1).norm(dim=1)
        return Outputs(-d, d.amin(1) + error)

    def _represent(self, x: torch.Tensor) -> torch.Tensor:
        return self.vae(x)

    def classify(self, z: torch.Tensor) -> torch.Tensor:
        return torch.cdist(z, self.vae.means.to(z)).argmin(1)


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
        super().__init__(name, classifier.num_outputs)
        self.classifier, self.size = classifier, size
        self.register_buffer("median_size", torch.tensor(size))  # part of the defence's identity

    def outputs(self, x):
        z = self.classifier(x)
        squeezed = self.classifier(median_filter(x, self.size))
        return Outputs(z, (z.softmax(1) - squeezed.softmax(1)).abs().sum(1))


# ------------------------------------------------------------------------------------------ LID and Mahalanobis

def layer_activations(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The activations of every stage of a two-convolution network (:class:`~advdetect.models.SmallCNN`):
    after each convolution stage (ReLU + pool), after the hidden fully connected layer, and the logits."""
    h1 = max_pool_2x2(F.relu(model.conv1(model.normalize(x))))
    h2 = max_pool_2x2(F.relu(model.conv2(h1)))
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
    which the adaptive attack (ARCLU Table 1: CW loss + the score) follows. Fitted by
    :func:`advdetect.baselines.fit_feature_detector`, which sets the reference statistics
    (:meth:`set_reference`) and the regression (:meth:`set_regression`)."""

    paper_objective = "sum"

    def __init__(self, name: str, classifier: nn.Module, method: str, *, k: int = 20):
        if method not in ("lid", "maha"):
            raise ValueError(f"unknown feature detector {method!r}: choose 'lid' or 'maha'")
        super().__init__(name, classifier.num_outputs)
        self.classifier, self.method, self.k = classifier, method, k
        self.register_buffer("neighbours", torch.tensor(k))  # part of the defence's identity
        self.layers = 4
        self.register_buffer("feat_mean", torch.zeros(self.layers))
        self.register_buffer("feat_std", torch.ones(self.layers))
        self.register_buffer("weight", torch.zeros(self.layers))
        self.register_buffer("bias", torch.zeros(()))

    def set_reference(self, x_ref: torch.Tensor, y_ref: torch.Tensor) -> None:
        """The statistics of benign reference images: LID's reference batch of nearest-neighbour distances;
        MAHA's class means and shared covariance per layer."""
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

    def outputs(self, x):
        z = self.classifier(x)
        f = (self.features(x) - self.feat_mean) / self.feat_std
        return Outputs(z, f @ self.weight + self.bias)

    def fitted_state(self) -> dict[str, torch.Tensor]:
        """What the fit set (reference statistics and regression), without the classifier's weights: what
        :meth:`load_fitted` restores."""
        return {k: v.detach().cpu() for k, v in self.state_dict().items() if not k.startswith("classifier.")}

    def load_fitted(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore a fit saved by :meth:`fitted_state` (the reference buffers :meth:`set_reference` would
        register included)."""
        own = {k for k in self.state_dict() if not k.startswith("classifier.")}
        fixed = {"neighbours", "feat_mean", "feat_std", "weight", "bias"}
        if not fixed <= set(state) or any(k.startswith("classifier.") for k in state):
            raise ValueError(f"not a fitted {type(self).__name__} state: expected the keys {sorted(fixed)} and "
                             f"the reference buffers, got {sorted(state)}")
        device = self.feat_mean.device
        for k, v in state.items():
            if k in own:
                getattr(self, k).copy_(v)
            else:
                self.register_buffer(k, v.to(device).clone())

    def set_regression(self, mean: torch.Tensor, std: torch.Tensor, weight: torch.Tensor, bias: float) -> None:
        """The logistic regression over standardised features: ``(features - mean) / std @ weight + bias``."""
        self.feat_mean.copy_(mean.float())
        self.feat_std.copy_(std.float())
        self.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        self.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
