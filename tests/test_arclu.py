import math

import pytest
import torch
from torch import nn

from advdetect import arclu, artefacts, attacks, reports
from advdetect.cache import ArtefactCache
from advdetect.defences import DistanceDefence
from advdetect.evaluation import random_targets
from advdetect.models import ArcluEncoder
from advdetect.objectives import Criterion, objective


def test_class_means_follow_eq13_with_the_adversarial_cluster_at_the_origin():
    means = arclu.class_means(3, l=2, magnitude=5.0)
    assert means.shape == (4, 6)
    assert means.tolist() == [[5, 5, 0, 0, 0, 0], [0, 0, 5, 5, 0, 0], [0, 0, 0, 0, 5, 5], [0] * 6]
    with pytest.raises(ValueError, match="k >= 2"):
        arclu.class_means(1)


def test_nearest_mean_classification_and_the_distance_score():
    means = arclu.class_means(3, magnitude=1.0)
    z = torch.tensor([[0.9, 0.1, 0.0], [0.0, 0.0, 2.0], [0.0, 0.0, 0.0]])
    logits, score = DistanceDefence("ARCLU", nn.Identity(), means)(z)
    pred = logits.argmax(1)
    assert torch.equal(pred, arclu.nearest_mean(z, means))
    assert pred.tolist() == [0, 2, 0]   # the origin (adversarial mean) is never a prediction; ties: first class
    assert score.tolist() == pytest.approx([math.sqrt(0.02), 1.0, 1.0])


class Identity(nn.Module):
    def forward(self, x):
        return x.flatten(1)


def test_thresholds_at_a_false_positive_rate_on_hand_made_distances():
    means = arclu.class_means(2, magnitude=10.0)
    # class 0: distances 1..10 from mu_0; class 1: distances 1..10 from mu_1
    x = torch.cat([torch.stack([torch.tensor([10.0 + d, 0.0]) for d in range(1, 11)]),
                   torch.stack([torch.tensor([0.0, 10.0 + d]) for d in range(1, 11)])])
    # floor(fpr * n) benign inputs per class lie above tau: 20% of ten -> tau 8 (distances 9 and 10 detected)
    d = DistanceDefence("ARCLU", Identity(), means)
    assert d.thresholds(x, fpr=0.2).tolist() == [8.0, 8.0]
    assert d.thresholds(x, fpr=0.15).tolist() == [9.0, 9.0]
    assert d.thresholds(x, fpr=0.0).tolist() == [10.0, 10.0]


def test_relabelling_sends_successes_to_the_adversarial_cluster_unless_lben():
    y = torch.tensor([0, 1, 2, 3])
    success = torch.tensor([True, False, True, False])
    assert arclu.relabel(y, success, k=10).tolist() == [10, 1, 10, 3]
    assert arclu.relabel(y, success, k=10, lben=True).tolist() == [0, 1, 2, 3]


def test_balanced_loss_averages_the_two_groups_separately():
    means = arclu.class_means(2, magnitude=1.0)   # mu_0 = (1, 0), mu_1 = (0, 1), adversarial = (0, 0)
    z = torch.tensor([[1.0, 0.0], [0.0, 3.0], [2.0, 0.0]])
    targets = torch.tensor([0, 1, 2])
    # benign group: squared distances 0 and 4 -> mean 2; adversarial group: 4 -> mean 4
    assert float(arclu.balanced_loss(z, targets, means)) == pytest.approx(6.0)
    assert float(arclu.balanced_loss(z[:2], targets[:2], means)) == pytest.approx(2.0)
    only_adv = arclu.balanced_loss(z[2:], targets[2:], means)
    assert float(only_adv) == pytest.approx(4.0)
    # one adversarial example weighs as much as all the benign ones together (the point of Eq. 31)
    many = torch.cat([z[:1].repeat(99, 1), z[2:]])
    assert float(arclu.balanced_loss(many, torch.tensor([0] * 99 + [2]), means)) == pytest.approx(4.0)


def test_center_loss_is_the_mean_euclidean_distance():
    means = arclu.class_means(2, magnitude=1.0)
    z = torch.tensor([[1.0, 0.0], [3.0, 5.0]])   # distances 0 and 5
    assert float(arclu.center_loss(z, torch.tensor([0, 1]), means)) == pytest.approx(2.5)


def test_adaptive_attacks_reach_a_wrong_cluster_of_an_undefended_encoder(mnist_small):
    torch.manual_seed(0)
    encoder = ArcluEncoder(10, width=0.25)
    means = arclu.class_means(10, magnitude=10.0)
    opt = torch.optim.Adam(encoder.parameters(), lr=2e-3)
    x, y = mnist_small.x_train[:1000], mnist_small.y_train[:1000]
    for _ in range(3):
        for i in range(0, 1000, 50):
            loss = arclu.center_loss(encoder(x[i:i + 50]), y[i:i + 50], means)
            opt.zero_grad()
            loss.backward()
            opt.step()
    encoder.eval()
    for p in encoder.parameters():
        p.requires_grad_(False)
    xt, yt = mnist_small.x_test[:40], mnist_small.y_test[:40]
    defence = DistanceDefence("ARCLU", encoder, means)
    assert (defence.decide(xt)[0] == yt).float().mean() > 0.7
    kw = dict(norm="linf", eps=0.3, steps=20, step_size=0.03)
    res = attacks.attack(objective(defence, "nearest wrong"), xt, yt, **kw)   # Eq. 17
    assert (res.x_adv - xt).abs().max() <= 0.3 + 1e-6 and res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    pred, _ = defence.decide(res.x_adv)
    assert (pred != yt).float().mean() > 0.9 and torch.equal(res.success, pred != yt)
    t = random_targets(yt, 10, seed=1)
    assert (t != yt).all()
    res_t = attacks.attack(objective(defence, "nearest wrong", Criterion(targeted=True), targeted=True), xt, (yt, t),
                           **kw)
    assert (defence.decide(res_t.x_adv)[0] == t).float().mean() > 0.8


def test_one_epoch_of_algorithm1_trains_and_resumes_from_the_cache(mnist_small, tmp_path):
    torch.manual_seed(0)
    means = arclu.class_means(10, magnitude=10.0)
    x, y = mnist_small.x_train[:200], mnist_small.y_train[:200]
    kw = dict(norm="linf", eps=0.3, steps=3, step_size=0.1)
    entry = ArtefactCache(tmp_path).entry("arclu", {"t": 1})
    enc = ArcluEncoder(10, width=0.25)
    hist = arclu.train_arclu(entry, enc, x, y, means, epochs=2, batch_size=50, attack_kwargs=kw, tau_n=100,
                             progress=False)
    assert len(hist) == 2 and all(math.isfinite(h["loss"]) for h in hist)
    assert 0.0 <= hist[0]["attack success"] <= 1.0
    again = ArcluEncoder(10, width=0.25)
    hist2 = arclu.train_arclu(entry, again, x, y, means, epochs=2, batch_size=50, attack_kwargs=kw, tau_n=100,
                              progress=False)
    assert hist2 == hist and all(torch.equal(a, b) for a, b in zip(enc.state_dict().values(),
                                                                   again.state_dict().values()))


def test_overlap_scores_separated_and_mixed_clouds():
    gen = torch.Generator().manual_seed(0)
    zb = torch.randn(300, 4, generator=gen)
    pb = torch.zeros(300, dtype=torch.long)
    centres = torch.zeros(1, 4)
    mixed = arclu.overlap(zb, pb, torch.randn(300, 4, generator=gen), pb, centres)
    assert 0.4 < mixed["centre AUC"] < 0.6 and 0.4 < mixed["kNN accuracy"] < 0.6
    far = arclu.overlap(zb, pb, torch.randn(300, 4, generator=gen) + 8.0, pb, centres)
    assert far["centre AUC"] > 0.99 and far["kNN accuracy"] > 0.99
    inside = arclu.overlap(zb, pb, 0.05 * torch.randn(300, 4, generator=gen), pb, centres)
    assert inside["centre AUC"] < 0.05       # adversarial points deep inside the cluster: distance cannot tell
    assert inside["kNN accuracy"] > 0.8      # ... but they still form their own cluster
    for r in (mixed, far, inside):
        lo, hi = r["centre AUC 95% CI"]
        assert lo <= r["centre AUC"] <= hi and hi - lo < 0.2
    lo, _ = mixed["centre AUC 95% CI"]
    assert lo > 0.35


def test_representation_study_measures_overlap_on_successful_attacks_only():
    gen = torch.Generator().manual_seed(0)
    x_benign = torch.randn(200, 2, generator=gen)
    # the first 60 "attacks" reached target 1 and lie far out; the other 140 failed and sit inside the cluster
    x_adv = torch.cat([torch.randn(60, 2, generator=gen) + 9.0, 0.05 * torch.randn(140, 2, generator=gen)])
    targets = torch.ones(200, dtype=torch.long)

    def classify(z):
        return (z[:, 0] > 4.5).long()

    study = arclu.representation_study(lambda x: x, classify, x_benign, x_adv, targets, x_centres=x_benign,
                                       y_centres=torch.zeros(200, dtype=torch.long), num_classes=2)
    assert study["n successful"] == 60 and study["n attacked"] == 200 and study["success"] == pytest.approx(0.3)
    assert study["successful"][:60].all() and not study["successful"][60:].any()
    # only the 60 far-out points are measured (predicted 1, no benign point there: the class is left out of
    # the centre AUC, so it is NaN), and they form a cluster of their own
    assert study["kNN accuracy"] > 0.95
    few = arclu.representation_study(lambda x: x, classify, x_benign, x_adv, targets, x_centres=x_benign,
                                     y_centres=torch.zeros(200, dtype=torch.long), num_classes=2,
                                     min_successful=61)
    assert math.isnan(few["centre AUC"]) and math.isnan(few["kNN accuracy"])
    table = reports.overlap_table({"far": study, "few": few})
    assert list(table["n successful"]) == [60, 60] and table.loc["few", "centre AUC 95% CI"] == "-"
    assert reports.overlap_phrase(table.loc["few"]).startswith("they are too few (60)")
    assert "kNN accuracy of 1.000" in reports.overlap_phrase({**table.loc["far"], "centre AUC": 0.5})


def test_embeddings_are_seeded_2d_and_unknown_methods_fail(tmp_path):
    from advdetect import embedding

    z = torch.cat([torch.randn(40, 5, generator=torch.Generator().manual_seed(0)),
                   torch.randn(40, 5, generator=torch.Generator().manual_seed(1)) + 6])
    for method in embedding.METHODS:
        a = embedding.embed(z, method, seed=3, perplexity=10, neighbors=8)
        assert a.shape == (80, 2)
        assert (a == embedding.embed(z, method, seed=3, perplexity=10, neighbors=8)).all()
    cache = ArtefactCache(tmp_path)
    first = artefacts.embed(cache, z, "t-SNE", seed=3, perplexity=10)
    assert (artefacts.embed(cache, z, "t-SNE", seed=3, perplexity=10) == first).all()
    with pytest.raises(ValueError, match="unknown embedding"):
        embedding.embed(z, "PCA")


def test_the_cifar10_path_trains_and_evaluates_on_cifar_format_data(tmp_path):
    """ARCLU's CIFAR-10 section (detector on a CIFAR network, Table 2 rows) on tiny CIFAR-10-format data."""
    from advdetect import data, paper

    from .conftest import write_tiny_cifar

    ds = data.load("cifar10", root=write_tiny_cifar(tmp_path, per_batch=20, test=30), val_size=20)
    cache = ArtefactCache(tmp_path / "c")
    attack = dict(norm="linf", eps=0.03, steps=2, step_size=0.007)
    models = {}
    for name, lben in (("ARCLU", False), ("L-Ben", True)):
        t = artefacts.arclu_detector(cache, ds, arch="resnet18", width=1 / 16, l=1, magnitude=10.0, epochs=1,
                                     lr=1e-3, batch_size=25, attack=attack, fpr=0.01, lben=lben, seed=0,
                                     device="cpu")
        assert t.model(ds.x_test[:2]).shape == (2, 10) and math.isfinite(t.history[0]["loss"])
        models[name] = DistanceDefence(name, t.model, t.extra["means"])
    table, results = reports.arclu_table2(cache, models, ds.x_val, ds.x_test, ds.y_test, {**attack, "steps": 3},
                                          paper_rows=paper.ARCLU_TABLE2_CIFAR,
                                          paper_accuracy=paper.ARCLU_TABLE2_CIFAR_ACCURACY)
    assert list(table.index) == [("ARCLU", "PGD Linf 0.03, T"), ("ARCLU", "PGD Linf 0.03, U"),
                                 ("L-Ben", "PGD Linf 0.03, T"), ("L-Ben", "PGD Linf 0.03, U")]
    assert table.loc[("L-Ben", "PGD Linf 0.03, U"), "paper ASR-1"] == 0.55
    assert table["accuracy"].between(0, 1).all() and len(results) == 4


def test_the_eq10_encoder_training_lowers_its_loss(mnist_small, tmp_path):
    torch.manual_seed(0)
    means = arclu.class_means(10, magnitude=1.0)
    enc = ArcluEncoder(10, width=0.25)
    hist = arclu.train_center(ArtefactCache(tmp_path).entry("c", {"t": 1}), enc, mnist_small.x_train[:500],
                              mnist_small.y_train[:500], means, epochs=3, batch_size=50, progress=False)
    assert hist[-1]["loss"] < hist[0]["loss"] and hist[-1]["train_acc"] > hist[0]["train_acc"]


def test_the_overlap_verdict_needs_attacks_that_reached_their_target():
    from advdetect.arclu import overlap_verdict

    assert overlap_verdict(0.55, 0.6, success=0.95).endswith("the paper's overlap claim holds")
    assert overlap_verdict(0.95, 0.9).endswith("the overlap claim does not hold")
    weak = overlap_verdict(0.55, 0.6, success=0.012)
    assert weak.startswith("only 1% of the targeted attacks") and "cannot be judged" in weak
    few = overlap_verdict(0.55, 0.6, success=0.9, n_successful=12)
    assert few.startswith("only 12 targeted attacks") and "too few" in few
