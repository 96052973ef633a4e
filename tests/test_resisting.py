import math

import torch

from advdetect import arclu, baselines
from advdetect.defences import ResistingDefence
from advdetect.models import GaussianMixtureVAE


def _vae(width=0.25):
    torch.manual_seed(0)
    return GaussianMixtureVAE(arclu.class_means(10, l=1, magnitude=10.0)[:10], width=width)


def test_the_vae_maps_images_to_its_latent_space_and_back():
    vae = _vae()
    x = torch.rand(6, 1, 28, 28)
    assert vae(x).shape == (6, 10) and vae.reconstruct(x).shape == x.shape
    rec = vae.reconstruct(x).detach()
    assert float(rec.min()) >= 0.0 and float(rec.max()) <= 1.0


def test_the_loss_is_the_negative_elbo_computed_by_hand():
    vae = _vae()
    x, y = torch.rand(4, 1, 28, 28).round(), torch.tensor([0, 3, 3, 9])
    gen = torch.Generator().manual_seed(5)
    loss = baselines.gmvae_loss(vae, x, y, gen)
    mu, logvar = vae.encode(x)
    z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=torch.Generator().manual_seed(5))
    p = vae.decode(z).clamp(1e-7, 1 - 1e-7)
    rec = -(x * p.log() + (1 - x) * (1 - p).log()).flatten(1).sum(1)
    var = logvar.exp()
    kl = 0.5 * (var + (mu - vae.means[y]) ** 2 - 1 - logvar).sum(1)
    assert math.isclose(float(loss), float((rec + kl).mean()), rel_tol=1e-4)


def test_resisting_scores_the_distance_to_the_nearest_mean_plus_the_reconstruction_error():
    vae = _vae()
    d = ResistingDefence("Resisting", vae).eval()
    x = torch.rand(5, 1, 28, 28)
    logits, score = d(x)
    z = vae(x)
    dist = torch.cdist(z, vae.means)
    assert torch.equal(logits.argmax(1), dist.argmin(1))
    want = dist.amin(1) + (x - vae.reconstruct(x)).flatten(1).norm(dim=1)
    assert torch.allclose(score, want, atol=1e-5)
    assert torch.equal(d.classify(d.represent(x)), logits.argmax(1))


def test_training_lowers_the_loss_and_learns_to_classify(mnist_small):
    vae = _vae(width=0.5)
    x, y = mnist_small.x_train[:2000], mnist_small.y_train[:2000]
    hist = baselines.train_gmvae(None, vae, x, y, epochs=8, lr=2e-3, batch_size=50, progress=False)
    assert hist[-1]["loss"] < hist[0]["loss"]
    d = ResistingDefence("Resisting", vae.eval())
    pred, score = d.decide(mnist_small.x_test[:500])
    assert float((pred == mnist_small.y_test[:500]).float().mean()) > 0.8
    # noise is far from every digit: it scores higher than benign test images
    _, noise_score = d.decide(torch.rand(100, 1, 28, 28))
    assert float(noise_score.median()) > float(score.quantile(0.99))
