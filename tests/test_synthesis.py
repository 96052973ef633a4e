import math

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from advdetect import artefacts, attacks, defences, plotting, synthesis  # noqa: E402


def _toy_data(n=300, seed=0):
    """Two classes of 1x4x4 images: bright upper half (class 0) / bright lower half (class 1), pixel (0, 0)
    constant 0 everywhere (a never-varying pixel, as MNIST's borders)."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = 0.2 * torch.rand(n, 1, 4, 4, generator=gen)
    x[y == 0, :, :2] += 0.7
    x[y == 1, :, 2:] += 0.7
    x[:, :, 0, 0] = 0.0
    return x.clamp(0, 1), y


class Linear(nn.Module):
    """Logits linear in the pixels: a model whose logit we can raise and check by hand."""

    def __init__(self, k=3, d=16, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.fc = nn.Linear(d, k)

    def forward(self, x):
        return self.fc(x.flatten(1))


# ---------------------------------------------------------------------------------------- Gaussian sampler

def test_class_gaussians_fit_regularised_covariance():
    x, y = _toy_data()
    g = synthesis.ClassGaussians.fit(x, y, 2, reg=1e-4)
    assert g.means.shape == (2, 16) and g.scale_tril.shape == (2, 16, 16) and g.shape == (1, 4, 4)
    for k in range(2):
        xk = x[y == k].reshape(-1, 16).double()
        emp = torch.cov(xk.T, correction=0)
        assert torch.allclose(g.means[k].double(), xk.mean(0), atol=1e-6)
        # the fitted covariance is the empirical one plus 1e-4 I - positive definite despite the constant pixel
        assert torch.allclose(g.covariance(k).double(), emp + 1e-4 * torch.eye(16, dtype=torch.float64), atol=1e-6)
        assert abs(float(g.covariance(k)[0, 0]) - 1e-4) < 1e-7
    # a larger regulariser adds more to the diagonal only
    g2 = synthesis.ClassGaussians.fit(x, y, 2, reg=1e-2)
    diff = (g2.covariance(0) - g.covariance(0)).double()
    assert torch.allclose(diff, (1e-2 - 1e-4) * torch.eye(16, dtype=torch.float64), atol=1e-6)


def test_class_gaussians_sample_shape_clipping_and_moments():
    x, y = _toy_data()
    g = synthesis.ClassGaussians.fit(x, y, 2)
    classes = torch.tensor([0] * 4000 + [1] * 4000)
    raw = g.sample(classes, torch.Generator().manual_seed(1), clip=False)
    clipped = g.sample(classes, torch.Generator().manual_seed(1))
    assert raw.shape == clipped.shape == (8000, 1, 4, 4)
    assert clipped.min() >= 0 and clipped.max() <= 1
    assert raw.min() < 0 or raw.max() > 1            # clipping does something on these data
    assert torch.equal(clipped, raw.clamp(0, 1))     # ... and nothing else
    # unclipped samples follow each class's Gaussian
    for k in range(2):
        s = raw[classes == k].reshape(-1, 16).double()
        assert torch.allclose(s.mean(0), g.means[k].double(), atol=0.01)
        assert torch.allclose(torch.cov(s.T), g.covariance(k).double(), atol=0.004)
    # seeded: the same noise twice
    assert torch.equal(g.sample([0, 1], torch.Generator().manual_seed(3)), g.sample([0, 1], torch.Generator().manual_seed(3)))


def test_class_gaussians_bad_input():
    x, y = _toy_data()
    with pytest.raises(ValueError, match="regulariser"):
        synthesis.ClassGaussians.fit(x, y, 2, reg=0.0)
    with pytest.raises(ValueError, match="class 2"):
        synthesis.ClassGaussians.fit(x, y, 3)
    with pytest.raises(ValueError, match="classes must lie"):
        synthesis.ClassGaussians.fit(x, y, 2).sample([2])


# ------------------------------------------------------------------------------------------ synthesis loop

def test_raise_logit_raises_the_target_logit_within_the_ball_and_box():
    model = Linear()
    x = torch.full((6, 1, 4, 4), 0.5)
    t = torch.tensor([0, 1, 2, 0, 1, 2])
    before = synthesis.target_logits(model, x, t)
    for norm, eps in (("linf", 0.2), ("l2", 0.5)):
        res = synthesis.raise_logit(model, x, t, norm=norm, eps=eps, steps=20, step_size=0.05)
        after = synthesis.target_logits(model, res.x_adv, t)
        assert (after > before + 1e-3).all()
        assert (attacks.norms(res.x_adv - x, norm) <= eps + 1e-5).all()
        assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    with pytest.raises(ValueError, match="one target per image"):
        synthesis.raise_logit(model, x, t[:3], norm="l2", eps=1.0, steps=1, step_size=0.1)


def test_raise_logit_of_a_defence_uses_its_logits():
    enc = Linear(k=4)
    arclu_like = defences.DistanceDefence("ARCLU", enc, torch.eye(4)[:4].repeat(1, 1) * 3)
    x = torch.full((3, 1, 4, 4), 0.5)
    t = torch.tensor([0, 1, 2])
    before = synthesis.target_logits(arclu_like, x, t)   # minus the distance to mean t
    res = synthesis.raise_logit(arclu_like, x, t, norm="l2", eps=2.0, steps=30, step_size=0.1)
    d_after = torch.cdist(enc(res.x_adv), arclu_like.means).gather(1, t[:, None]).squeeze(1)
    assert (d_after < -before - 1e-3).all()              # moved closer to class t's mean


def test_noise_paths_record_rising_logits():
    model = Linear()
    noise = synthesis.noise_image((1, 4, 4), seed=0)
    assert noise.shape == (1, 1, 4, 4) and noise.min() >= 0 and noise.max() <= 1
    out = synthesis.noise_paths(model, noise, steps=12, step_size=0.1, every=4)
    assert out["steps"].tolist() == [0, 4, 8, 12]
    assert out["images"].shape == (3, 4, 1, 4, 4) and out["logits"].shape == (3, 4)
    assert torch.equal(out["images"][:, 0], noise.expand(3, 1, 4, 4))   # step 0 is the noise itself
    assert (out["logits"][:, -1] > out["logits"][:, 0]).all()
    assert (out["logits"].diff(dim=1) >= -1e-5).all()                     # a linear logit only rises


def test_targeted_grid_and_synthesize_shapes_and_gains():
    model = Linear(k=2)
    x, y = _toy_data(40)
    sources = synthesis.one_per_class(x, y, 2, seed=0)
    assert sources.shape == (2, 1, 4, 4)
    grid = synthesis.targeted_grid(model, sources, eps=0.3, steps=10, step_size=0.05, rule="adam")
    assert grid["images"].shape == (2, 2, 1, 4, 4) and grid["logits"].shape == (2, 2)
    base = synthesis.target_logits(model, sources.repeat(2, 1, 1, 1), torch.arange(2).repeat_interleave(2))
    assert (grid["logits"].reshape(-1) > base).all()
    g = synthesis.ClassGaussians.fit(x, y, 2)
    syn = synthesis.synthesize(model, g, 3, eps=1.0, steps=10, step_size=0.2, seed=0)
    assert syn["images"].shape == syn["start"].shape == (2, 3, 1, 4, 4)
    assert syn["classes"].tolist() == [[0, 0, 0], [1, 1, 1]]
    assert (syn["logits"] > syn["logits before"]).all()
    delta = (syn["images"] - syn["start"]).reshape(6, -1).norm(dim=1)
    assert (delta <= 1.0 + 1e-5).all()
    # the same noise gives the same start for another model
    noise = syn["start"].reshape(6, 1, 4, 4)
    again = synthesis.synthesize(Linear(k=2, seed=1), g, 3, eps=1.0, steps=10, step_size=0.2, noise=noise)
    assert torch.equal(again["start"], syn["start"])


def test_engine_snapshots_record_the_path_in_chunks():
    model = Linear()
    x = torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    t = torch.zeros(5, dtype=torch.long)

    def objective(xa, tt):
        return -model(xa).gather(1, tt[:, None]).squeeze(1)

    res = attacks.attack(objective, x, t, norm="l2", eps=math.inf, steps=6, step_size=0.1, snapshots=[0, 3, 6],
                         batch_size=2)
    assert res.snapshots.shape == (3, 5, 1, 4, 4)
    assert torch.equal(res.snapshots[0], x)
    whole = attacks.attack(objective, x, t, norm="l2", eps=math.inf, steps=3, step_size=0.1)
    assert torch.allclose(res.snapshots[1], whole.x_adv, atol=1e-6)
    with pytest.raises(ValueError, match="snapshots"):
        attacks.attack(objective, x, t, norm="l2", eps=1.0, steps=2, step_size=0.1, snapshots=[5])


def test_penalty_search_finds_the_smallest_l2_crossing_of_a_linear_boundary():
    # f(x) = w.x - b: the smallest L2 step from x to f >= 0 is (b - w.x) / ||w|| (inside the box here)
    w = torch.zeros(16)
    w[:4] = 1.0
    x = torch.full((2, 1, 4, 4), 0.3)
    b = torch.tensor([1.6, 1.8])
    exact = (b - 4 * 0.3) / 2.0

    def objective(xa, extra):
        c, x0, bb = extra
        f = xa.flatten(1) @ w - bb
        dist = (xa - x0).flatten(1).pow(2).sum(1)
        return dist + c * (-f).clamp_min(0), f >= 0

    best_x, l2 = attacks.penalty_search(objective, x, b, rounds=12, steps=300, lr=0.01, c_init=1.0)
    assert torch.isfinite(l2).all()
    assert (l2 >= exact - 1e-4).all() and (l2 <= exact * 1.1 + 0.01).all()
    assert ((best_x.flatten(1) @ w - b) >= 0).all()
    # an impossible goal: no success, the input back and an infinite distance
    best_x, l2 = attacks.penalty_search(objective, x, torch.tensor([100.0, 100.0]), rounds=2, steps=10, lr=0.01)
    assert torch.isinf(l2).all() and torch.equal(best_x, x)
    # a watched, looser criterion (f >= -0.2): its smallest first crossing, beside the aimed one
    def watching(xa, extra):
        value, _ = objective(xa, extra)
        f = xa.flatten(1) @ w - extra[2]
        return value, torch.stack([f >= 0, f >= -0.2], 1)

    best_x, l2, also_x, also_l2 = attacks.penalty_search(watching, x, b, rounds=12, steps=300, lr=0.01, c_init=1.0)
    loose = (b - 0.2 - 4 * 0.3) / 2.0
    assert also_x.shape == (1, *x.shape) and also_l2.shape == (2, 1)
    assert (also_l2[:, 0] >= loose - 1e-4).all() and (also_l2[:, 0] <= loose * 1.1 + 0.01).all()
    assert (also_l2[:, 0] < l2).all() and ((also_x[0].flatten(1) @ w - b) >= -0.2 - 1e-5).all()
    # L2-normalised steps instead of Adam find the same crossing; no other step rule is taken
    best_x, l2 = attacks.penalty_search(objective, x, b, rounds=12, steps=300, lr=0.01, c_init=1.0, rule="steepest")
    assert (l2 >= exact - 1e-4).all() and (l2 <= exact * 1.1 + 0.01).all()
    assert ((best_x.flatten(1) @ w - b) >= 0).all()
    with pytest.raises(ValueError, match="steepest"):
        attacks.penalty_search(objective, x, b, rounds=1, steps=1, lr=0.01, rule="momentum")


# --------------------------------------------------------------------------------------------------- judges

def test_judges_by_hand():
    x, y = _toy_data(60)
    cnn = Linear(k=2)
    j = synthesis.Judges(x, y, 2, k=3, cnn=cnn)
    s = j.score(x, y)
    assert s["kNN accuracy"] == 1.0 and s["NN distance"] == pytest.approx(0.0, abs=1e-6)
    # with the wrong labels the kNN vote is always wrong
    assert j.score(x, 1 - y)["kNN accuracy"] == 0.0
    assert 0.0 <= s["CNN accuracy"] <= 1.0
    # the distance to the nearest training image of the class, by hand
    probe = x[:1] + 0.1
    d = j.nearest_distance(probe, np.array([int(y[0])]))[0]
    same = x[y == y[0]].reshape(-1, 16)
    assert d == pytest.approx(float((same - probe.reshape(1, 16)).norm(dim=1).min()), rel=1e-5)
    # grids (R, C, ...) are flattened; the table has a row per entry
    assert j.score(x[:4].reshape(2, 2, 1, 4, 4), y[:4].reshape(2, 2))["kNN accuracy"] == 1.0
    t = j.table({"right": (x, y), "wrong": (x, 1 - y)})
    assert list(t.index) == ["right", "wrong"] and t.loc["wrong", "kNN accuracy"] == 0.0
    assert t.loc["right", "n"] == 60 and t.loc["wrong", "kNN 95% CI"].startswith("0.00-")


def test_logit_separation_by_hand():
    assert synthesis.logit_separation([3.0, 4.0], [1.0, 2.0]) == 1.0
    assert synthesis.logit_separation([1.0, 2.0], [3.0, 4.0]) == 0.0
    assert synthesis.logit_separation([1.0, 3.0], [2.0, 2.0]) == 0.5
    rng = np.random.default_rng(0)
    nat, per = rng.normal(1.0, 1.0, 200), rng.normal(0.0, 1.0, 200)
    lo, hi = synthesis.logit_separation_interval(nat, per)
    assert lo < synthesis.logit_separation(nat, per) < hi and 0.6 < lo and hi < 0.85


def test_mosaic_and_grid_figures():
    imgs = torch.rand(2, 3, 1, 4, 4)
    m = plotting.mosaic(imgs)
    assert m.shape == (2 * 5 - 1, 3 * 5 - 1)
    assert np.allclose(m[:4, :4], imgs[0, 0, 0].numpy()) and np.allclose(m[4, :], 1.0)
    assert plotting.mosaic(torch.rand(1, 2, 3, 4, 4)).shape == (4, 9, 3)
    with pytest.raises(ValueError):
        plotting.mosaic(torch.rand(3, 1, 4, 4))
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    plotting.image_grid(ax, imgs, row_labels=["a", "b"], col_labels=["0", "1", "2"], col_title="source")
    fig2 = plt.figure()
    axes = plotting.image_table(fig2, imgs, [["x"] * 3] * 2, row_labels=["a", "b"])
    assert axes.shape == (2, 3)
    plt.close("all")


def test_even_marks_and_attack_path():
    assert synthesis.even_marks(200, every=50) == [0, 50, 100, 150, 200]
    assert synthesis.even_marks(12, every=5) == [0, 5, 10, 12]
    assert synthesis.even_marks(60) == [0, 15, 30, 45, 60]
    model = Linear()
    x = torch.full((2, 1, 4, 4), 0.5)
    p = synthesis.attack_path(model, x, torch.tensor([0, 2]), norm="linf", eps=0.1, steps=8, step_size=0.02,
                              marks=[0, 4, 8])
    assert p["images"].shape == (2, 3, 1, 4, 4) and p["logits"].shape == (2, 3)
    assert torch.equal(p["images"][:, 0], x) and (p["logits"][:, -1] > p["logits"][:, 0]).all()


def test_pushed_is_cached_by_the_images_and_targets(tmp_path):
    from advdetect.cache import ArtefactCache

    cache = ArtefactCache(tmp_path)
    model = Linear()
    x = torch.full((3, 1, 4, 4), 0.5)
    attack = dict(norm="linf", eps=0.1, steps=5, step_size=0.05)
    a = artefacts.pushed(cache, model, x, torch.tensor([0, 1, 2]), attack)
    assert torch.equal(a, artefacts.pushed(cache, model, x, torch.tensor([0, 1, 2]), attack))
    assert len(list((tmp_path / "synthesis").iterdir())) == 1
    artefacts.pushed(cache, model, x, torch.tensor([1, 1, 2]), attack)    # other targets: another entry
    assert len(list((tmp_path / "synthesis").iterdir())) == 2
    other = Linear()
    with torch.no_grad():
        next(other.parameters()).add_(1.0)                                 # same class, other weights
    artefacts.pushed(cache, other, x, torch.tensor([0, 1, 2]), attack)
    assert len(list((tmp_path / "synthesis").iterdir())) == 3
