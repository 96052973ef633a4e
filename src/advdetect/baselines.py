"""The baselines' training: TRADES' loss (Zhang et al. 2019), fitting the LID and Mahalanobis detectors
(Ma et al. 2018; Lee et al. 2018) and the Gaussian-mixture VAE of Resisting (Ghosh et al. 2019). Their decision rules live in :mod:`advdetect.defences`; the cached models in
:mod:`advdetect.artefacts`.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from torch import nn

from . import attacks
from .defences import FeatureDetector
from .objectives import kl_divergence
from .runtime import device_of
from .training import fit


def trades_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, beta: float, attack: Mapping):
    """TRADES: cross-entropy on natural images plus ``beta`` times the KL divergence between the softmax outputs
    on x and on x', where x' maximises that KL inside the eps-ball (engine keywords ``attack``; the inner attack
    starts at a random point of the ball, since the KL's gradient vanishes at x). Returns (loss, natural
    logits). The model is put in evaluation mode for the inner attack only."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        p_nat = model(x).softmax(1)
    x_adv = attacks.attack(kl_divergence(model), x, p_nat, **{"random_start": True, **dict(attack)}).x_adv
    model.train(was_training)
    z = model(x)
    robust = F.kl_div(model(x_adv).log_softmax(1), z.softmax(1), reduction="batchmean")
    return F.cross_entropy(z, y) + beta * robust, z


def feature_fit_split(n_train: int, *, n_fit: int, n_reference: int, seed: int = 0):
    """The seeded choice of training images that fit LID/MAHA (``n_fit``) and of LID's reference batch
    (``n_reference`` others), and the generator that then draws the noisy copies. Returns (fit indices,
    reference indices, generator)."""
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(n_train, generator=gen)
    return order[:n_fit], order[n_fit:n_fit + n_reference], gen


def fit_feature_detector(detector: FeatureDetector, x_ref: torch.Tensor, y_ref: torch.Tensor, x_benign: torch.Tensor,
                         x_adv: torch.Tensor, x_noisy: torch.Tensor | None = None, *, seed: int = 0) -> dict[str, float]:
    """Fit a :class:`~advdetect.defences.FeatureDetector`: set its reference statistics from benign training
    images ``(x_ref, y_ref)``, then fit the logistic regression (scikit-learn) telling ``x_adv`` (label 1) from
    ``x_benign`` and ``x_noisy`` (label 0; Ma et al. add noisy images so that noise alone is not flagged).
    Returns the training AUC."""
    detector.set_reference(x_ref, y_ref)
    negatives = [x_benign] + ([x_noisy] if x_noisy is not None else [])
    device = device_of(detector.classifier)

    @torch.no_grad()
    def feats(x):
        return torch.cat([detector.features(x[i:i + 500].to(device)).cpu() for i in range(0, len(x), 500)])

    f0 = torch.cat([feats(x) for x in negatives])
    f1 = feats(x_adv)
    f = torch.cat([f0, f1]).double()
    mean, std = f.mean(0), f.std(0).clamp_min(1e-8)
    X = ((f - mean) / std).numpy()
    labels = np.r_[np.zeros(len(f0)), np.ones(len(f1))]
    lr = LogisticRegression(max_iter=1000, random_state=seed).fit(X, labels)
    detector.set_regression(mean, std, lr.coef_[0], float(lr.intercept_[0]))
    return {"train AUC": float(roc_auc_score(labels, lr.decision_function(X)))}


# ------------------------------------------------------------------------------------- Resisting (GMM-VAE)

def gmvae_loss(vae, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The negative ELBO of the class-conditional Gaussian-mixture VAE per image (Ghosh et al. 2019): the binary
    cross-entropy of the reconstruction of one posterior sample, summed over pixels, plus the KL divergence from
    the posterior N(mu, sigma^2) to the prior component of the image's class, N(mean_y, I); averaged."""
    mu, logvar = vae.encode(x)
    noise = torch.randn(mu.shape, generator=generator).to(mu) if generator is not None else torch.randn_like(mu)
    z = mu + (0.5 * logvar).exp() * noise
    rec = F.binary_cross_entropy_with_logits(vae.dec(z), x, reduction="none").flatten(1).sum(1)
    kl = 0.5 * (logvar.exp() + (mu - vae.means[y]).pow(2) - 1 - logvar).sum(1)
    return (rec + kl).mean()


def train_gmvae(store, vae, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float = 1e-3,
                batch_size: int = 100, seed: int = 0, desc: str = "Resisting VAE", progress: bool = True):
    """Adam on :func:`gmvae_loss` through the checkpoint ``store`` (:func:`advdetect.training.fit`); the history
    logs the loss and the training accuracy of the nearest-mean classification per epoch."""
    device = device_of(vae)
    optimizer = torch.optim.Adam(vae.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)

    def epoch_fn(epoch: int):
        order = torch.randperm(len(y), generator=gen)
        total, correct, loss_sum = 0, 0, 0.0
        for start in range(0, len(y), batch_size):
            idx = order[start:start + batch_size]
            xb, yb = x[idx].to(device), y[idx].to(device)
            loss = gmvae_loss(vae, xb, yb, gen)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                correct += int((torch.cdist(vae(xb), vae.means).argmin(1) == yb).sum())
            total += len(idx)
            loss_sum += float(loss.detach()) * len(idx)
        return {"loss": loss_sum / total, "train_acc": correct / total}

    return fit(store, vae, optimizer, epoch_fn, epochs, desc=desc, progress=progress)
