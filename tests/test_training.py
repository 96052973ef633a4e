import pytest
import torch

from advdetect import arclu, artefacts, attacks, models, reports
from advdetect.cache import ArtefactCache, identity
from advdetect.training import eps_scale, scaled_attack, train_classifier


def test_the_warm_up_ramps_linearly_from_its_start_to_the_full_budget():
    assert eps_scale(0.0, 1.5, 0.3) == pytest.approx(0.3)
    assert eps_scale(0.75, 1.5, 0.3) == pytest.approx(0.65)
    assert eps_scale(1.5, 1.5, 0.3) == 1.0 and eps_scale(7.0, 1.5, 0.3) == 1.0
    assert eps_scale(0.0, 0.0, 0.3) == 1.0   # no warm-up: the full budget from the first batch
    kw = {"norm": "linf", "eps": 0.3, "steps": 5, "step_size": 0.15, "rule": "sign"}
    half = scaled_attack(kw, 0.5)
    assert half == {**kw, "eps": 0.15, "step_size": 0.075} and kw["eps"] == 0.3   # a copy
    assert scaled_attack(kw, 1.0) == kw


def _record_budgets(monkeypatch):
    seen = []
    real = attacks.attack

    def spy(objective, x, y, **kw):
        seen.append(kw["eps"])
        return real(objective, x, y, **kw)

    monkeypatch.setattr(attacks, "attack", spy)
    return seen


def test_adversarial_training_warms_its_budget_up_and_drops_the_learning_rate(mnist_small, monkeypatch):
    seen = _record_budgets(monkeypatch)
    torch.manual_seed(0)
    model = models.MadryCNN(10, width=0.25)
    x, y = mnist_small.x_train[:200], mnist_small.y_train[:200]
    attack = {"norm": "linf", "eps": 0.3, "steps": 1, "step_size": 0.3, "rule": "sign", "random_start": True}
    hist = train_classifier(None, model, x, y, epochs=2, lr=1e-3, batch_size=50, attack_kwargs=attack, warmup=1.0,
                            warmup_from=0.2, lr_drops=[1], progress=False)
    # 4 batches per epoch: 0.2, 0.4, 0.6, 0.8 of the budget in the first epoch, then all of it
    assert seen == pytest.approx([0.06, 0.12, 0.18, 0.24, 0.3, 0.3, 0.3, 0.3])
    assert len(hist) == 2


def test_algorithm1_warms_its_attack_up_too(mnist_small, monkeypatch):
    seen = _record_budgets(monkeypatch)
    torch.manual_seed(0)
    enc = models.ArcluEncoder(10, width=0.25)
    means = arclu.class_means(10, l=1, magnitude=10.0)
    x, y = mnist_small.x_train[:200], mnist_small.y_train[:200]
    arclu.train_arclu(None, enc, x, y, means, epochs=2, batch_size=100, tau_n=100, warmup=1.0, warmup_from=0.5,
                      lr_drops=[1], attack_kwargs={"norm": "linf", "eps": 0.3, "steps": 1, "step_size": 0.1,
                                                   "rule": "sign"}, progress=False)
    assert seen == pytest.approx([0.15, 0.225, 0.3, 0.3])


def test_detectors_started_from_a_classifier_are_its_logits_and_are_cached_apart(mnist_small, tmp_path):
    cache = ArtefactCache(tmp_path)
    clf = artefacts.natural_classifier(cache, mnist_small, width=0.25, epochs=1, lr=1e-3, batch_size=100, seed=0,
                                       device="cpu")
    attack = {"norm": "linf", "eps": 0.3, "steps": 1, "step_size": 0.1}
    common = dict(attack=attack, width=0.25, epochs=0, m=4, lr=1e-3, seed=0, device="cpu", monitor=0)
    started = artefacts.gat_detectors(cache, mnist_small, init=clf, **common)
    x = mnist_small.x_test[:8]
    assert torch.allclose(started.model(x), clf.model(x), atol=1e-5)
    scratch = artefacts.gat_detectors(cache, mnist_small, **common)
    assert not torch.allclose(scratch.model(x), clf.model(x), atol=1e-2)
    assert started.config["init"] == identity(clf.model) and "init" not in scratch.config
    continued = artefacts.gat_detectors(cache, mnist_small, init=scratch, **common)
    assert torch.allclose(continued.model(x), scratch.model(x)) and continued.config["init"] == identity(scratch.model)
    trained = artefacts.gat_detectors(cache, mnist_small, init=scratch, **{**common, "epochs": 1})
    assert not torch.allclose(trained.model(x), scratch.model(x), atol=1e-4)


def test_larger_budgets_continue_from_the_smaller_budgets_detectors(mnist_small, tmp_path, monkeypatch):
    from advdetect import chapters, profiles

    s = dict(profiles.defaults("gat_detectors", "smoke"))
    assert s["GAT_CONTINUE"]["Linf 0.5"] == "Linf 0.3"
    seen = []
    real = artefacts.gat_detectors
    monkeypatch.setattr(artefacts, "gat_detectors", lambda cache, ds, **k: seen.append(k) or real(cache, ds, **k))
    s.update(WIDTH=0.25, GAT_EPOCHS={"Linf 0.3": 0, "Linf 0.5": 0}, GAT_INIT="scratch", MONITOR=0)
    cache = ArtefactCache(tmp_path)
    large = chapters.table6_detectors(cache, mnist_small, "Linf 0.5", s, "cpu")
    small = chapters.table6_detectors(cache, mnist_small, "Linf 0.3", s, "cpu")
    assert [k["attack"]["eps"] for k in seen] == [0.3, 0.5, 0.3]      # the smaller budget's detectors first
    assert large.config["init"] == identity(small.model)
    assert chapters.for_configuration(s, "GAT_EPOCHS", "Linf 0.5") == 0
    assert chapters.for_configuration({"GAT_LR": 1e-3}, "GAT_LR", "L2 5.0") == 1e-3
    with pytest.raises(ValueError, match="no value for the configuration 'L2 5.0'"):
        chapters.for_configuration(s, "GAT_EPOCHS", "L2 5.0")
    with pytest.raises(ValueError, match="another configuration"):
        chapters.table6_detectors(cache, mnist_small, "Linf 0.5", {**s, "GAT_CONTINUE": {"Linf 0.5": "Linf 0.7"}},
                                  "cpu")


def test_aims_are_reported_met_missed_or_not_measured():
    text = reports.against_aims({"a": 0.926, "b": 0.87, "c": float("nan")}, {"a": 0.91, "b": 0.88, "c": 0.5, "d": 0.9})
    lines = text.splitlines()
    assert lines[0] == "* a: 0.926 (aim >= 0.91: met)"
    assert lines[1] == "* b: 0.870 (aim >= 0.88: **missed** by 0.010)"
    assert lines[2].startswith("* c: not measured") and lines[3].startswith("* d: not measured")
    upper = reports.against_aims({"asr": 0.10, "asr2": 0.15}, {"asr": ("<=", 0.12), "asr2": ("<=", 0.12)})
    assert upper.splitlines() == ["* asr: 0.100 (aim <= 0.12: met)", "* asr2: 0.150 (aim <= 0.12: **missed** by 0.030)"]
    # a miss smaller than the digits shown gets the digits it needs, never "missed by 0.000"
    assert reports.against_aims({"e": 0.9899}, {"e": 0.99}) == "* e: 0.9899 (aim >= 0.99: **missed** by 0.0001)"


def test_the_books_aims_are_stated_once_and_unknown_figures_are_refused():
    text = reports.against_aims({"Madry robust, PGD-100": 0.90, "ARCLU own check, ASR-5": 0.10})
    assert text.splitlines() == ["* Madry robust, PGD-100: 0.900 (aim >= 0.91: **missed** by 0.010)",
                                 "* ARCLU own check, ASR-5: 0.100 (aim <= 0.1228: met)"]
    with pytest.raises(KeyError, match="no aim"):
        reports.against_aims({"Madry robust, PGD-1000": 0.9})
    assert reports.aims_met({"Madry robust, PGD-100": 0.93, "ARCLU own check, ASR-5": 0.2,
                             "TRADES, AutoAttack": float("nan")}) == {
        "Madry robust, PGD-100": True, "ARCLU own check, ASR-5": False, "TRADES, AutoAttack": False}


def test_training_costs_sum_each_models_epochs():
    from types import SimpleNamespace

    costs = reports.training_costs({"a": SimpleNamespace(history=[{"seconds": 2.0}, {"seconds": 4.0}]),
                                    "b": SimpleNamespace(history=[{"loss": 1.0}])})
    assert costs.loc["a", "epochs"] == 2 and costs.loc["a", "training time (s)"] == 6.0
    assert costs.loc["a", "per epoch (s)"] == 3.0 and costs.loc["b", "training time (s)"] == 0.0


def test_bf16_training_runs_its_forward_passes_in_bfloat16_and_keeps_float32_weights(mnist_small):
    torch.manual_seed(0)
    model = models.MadryCNN(10, width=0.25)
    seen = []
    model.fc2.register_forward_hook(lambda module, inputs, out: seen.append(out.dtype))
    x, y = mnist_small.x_train[:100], mnist_small.y_train[:100]
    attack = {"norm": "linf", "eps": 0.3, "steps": 2, "step_size": 0.15, "rule": "sign", "random_start": True}
    hist = train_classifier(None, model, x, y, epochs=1, lr=1e-3, batch_size=50, attack_kwargs=attack,
                            precision="bf16", progress=False)
    # per batch: the attack's 2 steps and its last evaluation, then the update's forward pass
    assert seen == [torch.bfloat16] * 8 and len(hist) == 1
    assert all(p.dtype == torch.float32 for p in model.parameters())
    seen.clear()
    train_classifier(None, model, x, y, epochs=1, lr=1e-3, batch_size=50, progress=False)
    assert seen == [torch.float32] * 2


def test_an_unknown_precision_fails_before_training(mnist_small):
    model = models.MadryCNN(10, width=0.25)
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        train_classifier(None, model, mnist_small.x_train[:50], mnist_small.y_train[:50], epochs=1,
                         precision="fp16", progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_the_precision_enters_the_cache_key_only_where_it_is_not_float32(mnist_small, tmp_path):
    cache = ArtefactCache(tmp_path)
    common = dict(width=0.25, epochs=0, lr=1e-3, batch_size=50, seed=0, device="cpu",
                  attack={"norm": "linf", "eps": 0.3, "steps": 1, "step_size": 0.3})
    fp32 = artefacts.madry_classifier(cache, mnist_small, **common)
    bf16 = artefacts.madry_classifier(cache, mnist_small, precision="bf16", **common)
    assert "precision" not in fp32.config and bf16.config["precision"] == "bf16"
    assert len(list((tmp_path / "madry_classifier").iterdir())) == 2


def test_gat_and_algorithm1_train_in_bf16_with_float32_weights_and_refuse_unknown_precisions(mnist_small, tmp_path):
    cache = ArtefactCache(tmp_path)
    attack = {"norm": "linf", "eps": 0.3, "steps": 1, "step_size": 0.1}
    common = dict(attack=attack, width=0.25, epochs=1, m=4, lr=1e-3, seed=0, device="cpu", monitor=0)
    bank = artefacts.gat_detectors(cache, mnist_small, precision="bf16", **common)
    assert bank.config["precision"] == "bf16" and "precision" not in artefacts.gat_detectors(
        cache, mnist_small, **{**common, "epochs": 0}).config
    assert all(p.dtype == torch.float32 for p in bank.model.parameters())
    x, y = mnist_small.x_train[:100], mnist_small.y_train[:100]
    enc = models.ArcluEncoder(10, width=0.25)
    means = arclu.class_means(10, l=1, magnitude=10.0)
    kw = dict(epochs=1, batch_size=50, tau_n=50, attack_kwargs={**attack, "rule": "sign"}, progress=False)
    hist = arclu.train_arclu(None, enc, x, y, means, precision="bf16", **kw)
    assert len(hist) == 1 and all(p.dtype == torch.float32 for p in enc.parameters())
    with pytest.raises(ValueError, match="unknown precision"):
        arclu.train_arclu(None, enc, x, y, means, precision="half", **kw)
    with pytest.raises(ValueError, match="unknown precision"):
        artefacts.gat_detectors(ArtefactCache(tmp_path / "other"), mnist_small, precision="half", **common)
