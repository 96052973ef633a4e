import math

import pytest
import torch
from torch import nn

from advdetect import artefacts, attacks, gat, reports
from advdetect.cache import ArtefactCache
from advdetect.defences import ClassifierDefence, GatGenerative, GatIntegrated
from advdetect.ensemble import DetectorBank, bank_from_classifier
from advdetect.gat import train_gat
from advdetect.models import MadryCNN
from advdetect.objectives import objective


def test_detector_batches_are_balanced_and_class_pure():
    y = torch.arange(200) % 10
    pos, neg = gat.detector_batches(y, 8, 10, torch.Generator().manual_seed(0))
    assert pos.shape == neg.shape == (10, 8)
    for k in range(10):
        assert bool((y[pos[k]] == k).all()) and bool((y[neg[k]] != k).all())
        assert len(set(pos[k].tolist())) == 8 and len(set(neg[k].tolist())) == 8
    with pytest.raises(ValueError, match="too few"):
        gat.detector_batches(y, 50, 10, torch.Generator())


class Fixed(nn.Module):
    """A stand-in bank whose logits are a fixed linear function of the input's first pixels."""

    def __init__(self, k):
        super().__init__()
        self.k = k
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return x.flatten(1)[:, : self.k] * 10 + self.w

    def each(self, x):
        return self.forward(x.flatten(0, 1)).view(x.shape[0], x.shape[1], -1)[..., 0]


def test_gat_loss_is_ln2_for_an_undecided_bank():
    bank = Fixed(3)
    x = torch.zeros(3, 4, 1, 2, 2)
    assert math.isclose(float(gat.gat_loss(bank, x, x).detach()), math.log(2), rel_tol=1e-6)


def test_perturbed_negatives_raise_each_detectors_logit_within_the_ball():
    torch.manual_seed(0)
    bank = DetectorBank([MadryCNN(1, width=0.25) for _ in range(3)]).eval()
    neg = torch.rand(3, 5, 1, 28, 28)
    adv = gat.perturb_negatives(bank, neg, dict(norm="linf", eps=0.3, steps=10, step_size=0.03))
    with torch.no_grad():
        before, after = bank.each(neg), bank.each(adv)
    assert bool((after >= before - 1e-5).all()) and float((adv - neg).abs().max()) <= 0.3 + 1e-6
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1


def test_gat_training_lowers_the_loss(mnist_small, tmp_path):
    torch.manual_seed(0)
    bank = DetectorBank([MadryCNN(1, width=0.25) for _ in range(10)])
    hist = train_gat(ArtefactCache(tmp_path).entry("gat", {"t": 1}), bank, mnist_small.x_train[:1000],
                     mnist_small.y_train[:1000], epochs=3, m=10, lr=1e-3,
                     attack_kwargs=dict(norm="linf", eps=0.3, steps=3, step_size=0.1, random_start=True),
                     progress=False)
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    assert hist[-1]["loss"] < hist[0]["loss"]


def _toy_models():
    class Lin(nn.Module):
        def __init__(self, w):
            super().__init__()
            self.w = w

        def forward(self, x):
            return x @ self.w

    f = Lin(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))   # logits = x
    h = Lin(torch.tensor([[0.0, 2.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 2.0]]))   # detectors see a permutation
    f.num_outputs, h.k = 3, 3
    return GatIntegrated(f, h), GatGenerative(h)


def test_combined_attack_switches_from_the_classifier_to_the_detectors():
    integrated, _ = _toy_models()
    x = torch.tensor([[3.0, 1.0, 0.0],    # f correct (y = 0): loss = margin = 3 - 1
                      [1.0, 3.0, 0.0]])   # f fooled (y = 0): loss = -max_{i != 0} h_i = -max(2, 0)
    y = torch.tensor([0, 0])
    loss, fooled = objective(integrated, "gat combined")(x, y)
    assert loss.tolist() == [2.0, -2.0] and fooled.tolist() == [False, True]
    # targeted at t = 2: f's targeted margin (max_{i != 2} f - f_2) until f predicts 2, then -h_2
    t = torch.tensor([2, 2])
    loss, _ = objective(integrated, "gat combined", targeted=True)(torch.tensor([[3.0, 1.0, 0.0], [0.0, 1.0, 3.0]]),
                                                                    (y, t))
    assert loss.tolist() == [3.0, -6.0]   # sample 2: h = (2, 0, 6)


def test_detectors_and_surrogate_attacks_hand_computed():
    integrated, generative = _toy_models()
    x = torch.tensor([[3.0, 1.0, 0.0]])
    y = torch.tensor([0])
    # h = (2, 6, 0): max over i != 0 is 6; the generative classifier predicts 1 (fooled), f still predicts 0
    loss, succ = objective(generative, "gat detectors")(x, y)
    assert loss.tolist() == [-6.0] and succ.tolist() == [True]
    loss, succ = objective(integrated, "gat detectors")(x, y)
    assert loss.tolist() == [-6.0] and succ.tolist() == [False]
    # g = (3, 1, 0, (1 - 6) * 3 = -15): max g = 3; max_{i != 0} f = 1 -> loss 2
    loss, succ = objective(integrated, "gat surrogate")(x, y)
    assert loss.tolist() == [2.0] and succ.tolist() == [False]


def test_the_engine_drives_the_detectors_attack():
    torch.manual_seed(0)
    bank = DetectorBank([MadryCNN(1, width=0.25) for _ in range(10)]).eval()
    x, y = torch.rand(6, 1, 28, 28), torch.randint(0, 10, (6,))
    obj = objective(GatGenerative(bank), "gat detectors")
    start, _ = obj(x, y)
    res = attacks.attack(obj, x, y, eps=0.3, steps=10, step_size=0.03)
    assert bool((res.loss <= start.detach() + 1e-6).all())


def test_detector_aucs_match_a_direct_computation_and_sub_banks_agree():
    from advdetect.metrics import roc_auc

    torch.manual_seed(0)
    bank = DetectorBank([MadryCNN(1, width=0.25) for _ in range(10)]).eval()
    x, y = torch.rand(60, 1, 28, 28), torch.arange(60) % 10
    full = gat.detector_aucs(bank, x, y, None, n_negatives=20, seed=3)
    idx = gat.other_class_indices(y, range(10), 20, seed=3)
    with torch.no_grad():
        logits = bank(x)
    for k in range(10):
        assert full[k] == pytest.approx(roc_auc(logits[y == k, k], logits[idx[k], k]))
    part = gat.detector_aucs(bank, x, y, None, ks=[0, 1], n_negatives=20, seed=3)
    assert part[0] == pytest.approx(full[0]) and part[1] == pytest.approx(full[1])
    attacked = gat.detector_aucs(bank, x, y, dict(norm="linf", eps=0.3, steps=5, step_size=0.05), ks=[0, 1],
                                 n_negatives=20, seed=3)
    assert attacked[0] <= full[0] + 1e-9 and attacked[1] <= full[1] + 1e-9


def test_binary_search_finds_small_successful_perturbations_and_stops_where_none_exist():
    """A hand-made 'bank' on 2-pixel inputs: z_i = 10 * (x_i - 0.5); from x = (0.9, 0.1) (class 0) the
    generative classifier accepts class 1 once x_1 > x_0 and z_1 > T."""  # noqa: D401

    class Toy(nn.Module):
        k = 2

        def forward(self, x):
            return (x.flatten(1)[:, :2] - 0.5) * 10

    x = torch.tensor([[0.9, 0.1]]).view(1, 1, 1, 2)
    y = torch.tensor([0])
    l2, t = gat.min_l2_distortion(Toy(), x, y, threshold=0.0, rounds=12, steps=200, lr=0.05)
    assert t.tolist() == [1]
    # Eq. 15 only raises z_t: the cheapest false positive lifts x_1 just above x_0 = 0.9, an L2 of about 0.8
    assert 0.79 < float(l2[0]) < 0.85
    l2_none, _ = gat.min_l2_distortion(Toy(), x, y, threshold=100.0, rounds=3, steps=20, lr=0.05)
    assert torch.isinf(l2_none).all()


def test_cifar_detectors_start_as_the_classifiers_logits_and_train_on_cifar_format_data(tmp_path):
    """The CIFAR-10 path of the chapters (classifier, finetuned detectors, robustness test) on tiny data
    written in CIFAR-10's own python-batch format."""
    from advdetect import data

    from .conftest import write_tiny_cifar

    ds = data.load("cifar10", root=write_tiny_cifar(tmp_path, per_batch=40, test=20), val_size=20)
    cache = ArtefactCache(tmp_path / "c")
    trained = artefacts.cifar_classifier(cache, ds, arch="resnet18", width=1 / 16, epochs=2, lr=0.01, batch_size=16,
                                         lr_drops=[1], seed=0, device="cpu")
    clf, clf_hist = trained
    assert len(clf_hist) == 2 and all(math.isfinite(h["loss"]) for h in clf_hist)
    bank = bank_from_classifier(clf)
    with torch.no_grad():
        assert torch.allclose(bank(ds.x_test[:4]), clf(ds.x_test[:4]), atol=1e-4)
    attack = {**gat.CIFAR_TRAIN_ATTACK, "steps": 2, "step_size": 2 / 255}
    bank, hist = artefacts.cifar_detectors(cache, ds, trained, attack=attack, epochs=1, m=2, lr=1e-3, seed=0, device="cpu")
    assert math.isfinite(hist[0]["loss"])
    # batch norm stayed in inference mode: the running statistics are the classifier's
    bn = [n for n, _ in bank.named_buffers() if "running_mean" in n]
    assert bn and torch.equal(getattr(bank, bn[0])[3], dict(clf.named_buffers())[bn[0][5:].replace("__", ".")])
    aucs = artefacts.robustness(cache, bank, ds.x_test, ds.y_test, dict(norm="linf", eps=8 / 255, steps=2,
                          step_size=2 / 255, rule="sign"), ks=(0, 1), n_negatives=5)
    assert set(aucs) == {0, 1} and all(0.0 <= a <= 1.0 for a in aucs.values())
    table3, table17 = reports.cifar_robustness_tables(cache, bank, ds, n_negatives=4, attacks_255=((2, 2.0), (3, 0.5)),
                                                    table17_attack_255=(2, 0.5))
    assert list(table3.index) == ["2, 2", "3, 0.5"] and math.isnan(table3.loc["2, 2", "paper k=1"])  # no such attack in Table 3
    assert table17.shape == (2, 10) and table17.loc["ours"].between(0, 1).all()


def test_each_detector_keeps_its_best_epoch_by_validation_score(mnist_small, tmp_path):
    torch.manual_seed(0)
    bank = DetectorBank([MadryCNN(1, width=0.25) for _ in range(10)])
    scores = iter([torch.arange(10.0), torch.arange(10.0) * 0 + 5, torch.arange(10.0) * 0 + 4])
    snapshots = []

    def select(b):
        snapshots.append(b.stacked["fc2__bias"].detach().clone())
        return next(scores)

    entry = ArtefactCache(tmp_path).entry("sel", {"t": 1})
    x, y = mnist_small.x_train, mnist_small.y_train
    hist = train_gat(entry, bank, x, y, epochs=3, m=4, lr=1e-2, attack_kwargs=None, select_fn=select,
                     progress=False)
    best = [hist[-1][f"best epoch {k}"] for k in range(10)]
    assert best == [2, 2, 2, 2, 2, 1, 1, 1, 1, 1]   # epoch 1 scores k; epoch 2 scores 5 (ties keep the first)
    bias = bank.stacked["fc2__bias"]
    assert torch.equal(bias[0], snapshots[1][0]) and torch.equal(bias[9], snapshots[0][9])
    again = DetectorBank([MadryCNN(1, width=0.25) for _ in range(10)])
    train_gat(entry, again, x, y, epochs=3, m=4, lr=1e-2, attack_kwargs=None, select_fn=select, progress=False)
    assert torch.equal(again.stacked["fc2__bias"], bias)   # reloaded from the cache with the selection applied


def test_perturbing_negatives_in_chunks_equals_one_batch():
    torch.manual_seed(0)
    bank = DetectorBank([MadryCNN(1, width=0.25) for _ in range(3)]).eval()
    neg = torch.rand(3, 7, 1, 28, 28)
    kw = dict(norm="linf", eps=0.3, steps=4, step_size=0.05)
    whole = gat.perturb_negatives(bank, neg, kw)
    chunked = gat.perturb_negatives(bank, neg, {**kw, "batch_size": 6})  # 2 columns (6 inputs) per chunk
    assert torch.allclose(whole, chunked, atol=1e-6)


@pytest.fixture(scope="module")
def linear_classifier(mnist_small):
    """An undefended linear MNIST classifier (100 full-batch Adam steps) as a defence."""
    torch.manual_seed(0)
    x, y = mnist_small.x_train[:1000], mnist_small.y_train[:1000]
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval().num_outputs = 10
    for p in model.parameters():
        p.requires_grad_(False)
    return ClassifierDefence("linear", model)


def test_robust_accuracy_is_clean_accuracy_at_eps_zero_falls_under_attack_and_is_cached(linear_classifier,
                                                                                         mnist_small, tmp_path):
    model = linear_classifier
    cache = ArtefactCache(tmp_path)
    xt, yt = mnist_small.x_test[:200], mnist_small.y_test[:200]
    clean = float((model.decide(xt)[0] == yt).float().mean())
    assert clean > 0.8
    assert reports.robust_accuracy(cache, model, xt, yt, eps=0.0, steps=5, step_size=0.01) == pytest.approx(clean)
    attacked = reports.robust_accuracy(cache, model, xt, yt, eps=0.3, steps=20, step_size=0.05)
    assert attacked < 0.1
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert reports.robust_accuracy(cache, model, xt, yt, eps=0.3, steps=20, step_size=0.05) == attacked
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == files


def test_autoattack_on_a_classifier_breaks_an_undefended_one_and_is_cached(linear_classifier, mnist_small, tmp_path,
                                                                          monkeypatch):
    from advdetect import blackbox

    d = linear_classifier
    cache = ArtefactCache(tmp_path)
    xt, yt = mnist_small.x_test[:40], mnist_small.y_test[:40]
    assert float((d.decide(xt)[0] == yt).float().mean()) > 0.8
    assert reports.autoattack_accuracy(cache, d, xt, yt, eps=0.3) < 0.05
    monkeypatch.setattr(blackbox, "autoattack_classifier", lambda *a, **k: pytest.fail("not cached"))
    assert reports.autoattack_accuracy(cache, d, xt, yt, eps=0.3) < 0.05
    monkeypatch.undo()
    table = reports.classifier_table(cache, {"linear": d}, mnist_small, n_attacked=40, n_autoattack=20)
    assert table.loc["linear", "n AutoAttack"] == 20 and table.loc["linear", "AutoAttack"] <= 0.05
    lo, hi = (float(v) for v in table.loc["linear", "PGD-100 95% CI"].split("-"))
    assert lo <= table.loc["linear", "PGD-100"] <= hi
    assert table.loc["linear", "reference: clean / PGD-100 / best attack"] == "-"
    note = reports.autoattack_checks_note(table)
    assert note == "AutoAttack's own checks raised no warning." or note.startswith("AutoAttack's own checks warned")
    table.loc["linear", "AutoAttack's own checks"] = "Square found more"
    assert reports.autoattack_checks_note(table).endswith("* **linear**: Square found more")


def test_classifier_references_follow_the_training_recipe_not_the_name(linear_classifier):
    from advdetect.defences import ClassifierDefence

    model = linear_classifier.classifier
    named_madry = ClassifierDefence("Madry", model, kind="robust classifier", recipe="trades")
    assert reports._classifier_reference(named_madry).startswith("TRADES' small CNN")
    assert "challenge" in reports._classifier_reference(ClassifierDefence("TRADES?", model, recipe="madry"))
    assert reports._classifier_reference(ClassifierDefence("TRADES", model)) == "-"
