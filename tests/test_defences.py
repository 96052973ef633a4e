import math

import pytest
import torch
from torch import nn

from advdetect import arclu, baselines, defences, models, objectives
from advdetect.ensemble import DetectorBank


class _Fixed(nn.Module):
    """A 'network' that returns given outputs per input index (the input's first pixel)."""

    def __init__(self, outputs):
        super().__init__()
        self.register_buffer("outputs", torch.as_tensor(outputs, dtype=torch.float32))
        self.num_outputs = self.outputs.shape[1]

    def forward(self, x):
        return self.outputs[x.flatten(1)[:, 0].long()]


def _inputs(n):
    return torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1)


def test_classifier_score_is_minus_log_confidence():
    z = torch.tensor([[0.0, math.log(3.0)], [5.0, 5.0]])
    d = defences.ClassifierDefence("Vanilla", _Fixed(z))
    logits, score = d(_inputs(2))
    assert torch.equal(logits, z)
    assert torch.allclose(score, torch.tensor([math.log(4 / 3), math.log(2.0)]), atol=1e-6)


def test_gat_integrated_and_generative_scores_by_hand():
    f = _Fixed([[2.0, 1.0, 0.0], [0.0, 0.0, 3.0]])      # f predicts 0, then 2

    class Bank(_Fixed):
        k = 3
        full_calls = 0

        def forward(self, x):
            Bank.full_calls += 1
            return super().forward(x)

        def selected(self, x, which):
            return super().forward(x).gather(1, which[:, None])[:, 0]

    bank = Bank([[-1.0, 4.0, 0.5], [0.2, 0.1, -2.0]])    # generative predicts 1, then 0
    integ = defences.GatIntegrated(f, bank)
    z, s = integ(_inputs(2))
    assert z.argmax(1).tolist() == [0, 2]
    assert torch.allclose(s, torch.tensor([1.0, 2.0]))   # minus detector 0's logit, minus detector 2's
    o = integ.outputs(_inputs(2))
    assert Bank.full_calls == 0                          # the score consults the predicted class's detector only
    assert o.detector_logit(torch.tensor([1, 2])).tolist() == [4.0, -2.0] and Bank.full_calls == 0
    assert torch.equal(o.detector_logits(), bank(_inputs(2))) and Bank.full_calls == 2
    o.detector_logits()
    assert Bank.full_calls == 2                          # computed once, on demand
    gen = defences.GatGenerative(bank)
    z, s = gen(_inputs(2))
    assert z.argmax(1).tolist() == [1, 0]
    assert torch.allclose(s, torch.tensor([-4.0, -0.2]))


def test_distance_defence_predicts_the_nearest_mean_and_scores_its_distance():
    means = arclu.class_means(3, l=1, magnitude=10.0)    # rows: 10e0, 10e1, 10e2, origin (adversarial)
    enc = nn.Flatten()
    d = defences.DistanceDefence("ARCLU", enc, means)
    x = torch.tensor([[9.0, 0.0, 0.0], [0.0, 0.0, 13.0]]).view(2, 3, 1, 1)
    z, s = d(x)
    assert z.argmax(1).tolist() == [0, 2]
    assert torch.allclose(s, torch.tensor([1.0, 3.0]))
    assert d.num_classes == 3


def test_median_filter_by_hand_and_its_gradient():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]).view(1, 1, 3, 3)
    m = defences.median_filter(x, 3)
    assert m.shape == x.shape
    assert float(m[0, 0, 1, 1]) == 5.0                    # the centre window is the whole image
    assert float(m[0, 0, 0, 0]) == 2.0                    # replicated edge: 1 1 2 / 1 1 2 / 4 4 5 -> 2
    const = torch.full((2, 1, 5, 5), 0.3)
    assert torch.equal(defences.median_filter(const, 2), const)
    xr = torch.rand(1, 1, 6, 6, requires_grad=True)
    defences.median_filter(xr, 2).sum().backward()
    assert float(xr.grad.sum()) == pytest.approx(36.0)    # each output pixel passes gradient to one input


def test_feature_squeezing_flags_a_salt_pixel_not_a_smooth_image():
    torch.manual_seed(0)
    clf = models.MadryCNN(10, width=0.25).eval()
    fs = defences.FeatureSqueezing(clf, size=2)
    smooth = torch.full((1, 1, 28, 28), 0.5)
    salted = smooth.clone()
    salted[0, 0, 10:12, 10:12] = 1.0
    salted[0, 0, 20, 5] = 0.0
    with torch.no_grad():
        _, s_smooth = fs(smooth)
        _, s_salt = fs(salted)
    assert float(s_smooth) == pytest.approx(0.0, abs=1e-6)
    assert float(s_salt) > 0.0


def test_lid_estimate_matches_the_formula_and_the_dimension():
    ref = torch.tensor([[1.0, 0.0], [2.0, 0.0], [4.0, 0.0]])
    x = torch.zeros(1, 2)
    # distances 1, 2, 4; k = 3: -(mean(log(1/4), log(2/4), log(4/4)))^-1
    expect = -1.0 / ((math.log(0.25) + math.log(0.5) + 0.0) / 3)
    assert float(defences.lid(x, ref, 3)) == pytest.approx(expect, rel=1e-5)
    torch.manual_seed(0)
    for dim in (2, 6):
        pts = torch.zeros(4001, 20)
        pts[:, :dim] = torch.rand(4001, dim)
        centre = torch.zeros(1, 20)
        centre[0, :dim] = 0.5
        est = float(defences.lid(centre, pts[1:], 100))
        assert abs(est - dim) < 0.35 * dim, (dim, est)


@pytest.mark.parametrize("method", ["lid", "maha"])
def test_feature_detectors_separate_what_they_were_fitted_on(mnist_small, method):
    torch.manual_seed(0)
    clf = models.MadryCNN(10, width=0.25).eval()
    det = defences.FeatureDetector(method.upper(), clf, method, k=10)
    x, y = mnist_small.x_train[:300], mnist_small.y_train[:300]
    odd = (torch.rand(200, 1, 28, 28) > 0.5).float()      # far from the digits in every layer
    stats = baselines.fit_feature_detector(det, x[:100], y[:100], x[100:300], odd)
    assert stats["train AUC"] > 0.9
    with torch.no_grad():
        _, s_benign = det(mnist_small.x_test[:50])
        _, s_odd = det((torch.rand(50, 1, 28, 28) > 0.5).float())
    assert float(s_odd.mean()) > float(s_benign.mean())
    feats = det.features(mnist_small.x_test[:4])
    assert feats.shape == (4, 4) and bool(torch.isfinite(feats).all())
    with pytest.raises(ValueError, match="lid"):
        defences.FeatureDetector("x", clf, "kde")


@pytest.mark.parametrize("method", ["lid", "maha"])
def test_a_feature_detectors_fit_is_kept_once_and_restored_with_the_same_identity(mnist_small, method, tmp_path):
    from advdetect.artefacts import _fitted_once
    from advdetect.cache import ArtefactCache, identity

    torch.manual_seed(0)
    clf = models.MadryCNN(10, width=0.25).eval()
    x, y = mnist_small.x_train[:160], mnist_small.y_train[:160]
    odd = (torch.rand(60, 1, 28, 28) > 0.5).float()
    store = ArtefactCache(tmp_path).entry(f"{method}_detector", {"seed": 0})
    calls = []

    def fitted():
        det = defences.FeatureDetector(method.upper(), clf, method, k=10)
        history = _fitted_once(store, det, lambda: calls.append(1) or baselines.fit_feature_detector(
            det, x[:100], y[:100], x[100:], odd))
        return det, history

    first, h1 = fitted()
    again, h2 = fitted()
    assert len(calls) == 1 and h1 == h2 and h1[0]["train AUC"] > 0.5
    assert identity(first) == identity(again)
    probe = mnist_small.x_test[:8]
    assert torch.equal(first(probe)[1], again(probe)[1])
    assert not any(k.startswith("classifier.") for k in first.fitted_state())
    with pytest.raises(ValueError, match="fitted"):
        defences.FeatureDetector("x", clf, method).load_fitted({"weight": torch.zeros(4)})


def test_trades_loss_adds_a_nonnegative_robust_term_and_decreases_with_training(mnist_small):
    torch.manual_seed(0)
    model = models.MadryCNN(10, width=0.25)
    x, y = mnist_small.x_train[:64], mnist_small.y_train[:64]
    attack = {"norm": "linf", "eps": 0.3, "steps": 3, "step_size": 0.1, "rule": "sign"}
    model.train()
    loss0, z = baselines.trades_loss(model, x, y, beta=6.0, attack=attack)
    ce = torch.nn.functional.cross_entropy(z, y)
    assert float(loss0) >= float(ce) - 1e-6 and model.training
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(15):
        loss, _ = baselines.trades_loss(model, x, y, beta=6.0, attack=attack)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(baselines.trades_loss(model, x, y, beta=6.0, attack=attack)[0]) < float(loss0)


def test_every_defence_gives_logits_and_scores_of_the_right_shape():
    torch.manual_seed(0)
    clf = models.MadryCNN(10, width=0.125).eval()
    bank = DetectorBank([models.MadryCNN(1, width=0.125) for _ in range(10)]).eval()
    enc = models.ArcluEncoder(10, width=0.125).eval()
    x = torch.rand(5, 1, 28, 28)
    for d in (defences.GatIntegrated(clf, bank), defences.GatGenerative(bank),
              defences.DistanceDefence("ARCLU", enc, arclu.class_means(10)), defences.ClassifierDefence("V", clf),
              defences.FeatureSqueezing(clf)):
        z, s = d(x)
        assert z.shape == (5, 10) and s.shape == (5,)
        pred, score = d.decide(x, batch_size=2)
        assert torch.equal(pred, z.argmax(1)) and torch.allclose(score, s, atol=1e-5)
        tau = d.thresholds(torch.rand(40, 1, 28, 28), 0.1)
        assert tau.shape == (10,)
        assert d.paper_objective in objectives.LOSSES
        o = d.outputs(x)
        assert torch.equal(o.logits, z) and torch.equal(o.score, s)



def test_composite_loss_by_hand_is_the_margin_then_the_score_above_the_threshold():
    # three inputs, true class 0, thresholds (1, 2, 3)
    o = defences.Outputs(logits=torch.tensor([[3.0, 1.0, 0.0], [1.0, 4.0, 0.0], [1.0, 4.0, 0.0]]),
                         score=torch.tensor([0.0, 1.0, 6.0]))
    c = objectives.Criterion(torch.tensor([1.0, 2.0, 3.0]))
    y = torch.zeros(3, dtype=torch.long)
    loss = objectives.loss_value("composite", o, y, c)
    # correct: the margin 2; fooled (predicted 1) and accepted: 1 - 2; fooled but rejected: 6 - 2
    assert torch.allclose(loss, torch.tensor([2.0, -1.0, 4.0]))
    assert ((loss < 0) == c.success(o.logits, o.score, y)).all()
    t = torch.tensor([1, 1, 2])
    targeted = objectives.loss_value("composite", o, t, objectives.Criterion(c.tau, True), targeted=True)
    # not yet t: max_{i != t} z_i - z_t; classified as t: s - tau_t
    assert torch.allclose(targeted, torch.tensor([2.0, -1.0, 4.0]))
