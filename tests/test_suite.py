import math
import re

import numpy as np
import pandas as pd
import pytest
import torch

from advdetect import (attacks, blackbox, chapters, defences, evaluation, metrics, models, objectives, profiles,
                       reports, suite)
from advdetect.cache import ArtefactCache
from advdetect.training import train_classifier


@pytest.fixture(scope="module")
def trained(mnist_small, tmp_path_factory):
    """An undefended MNIST classifier (a few seconds of training) as a defence with a confidence score."""
    torch.manual_seed(0)
    model = models.MadryCNN(10, width=0.25)
    train_classifier(None, model, mnist_small.x_train[:2000], mnist_small.y_train[:2000],
                     epochs=2, lr=2e-3, batch_size=64, progress=False)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return defences.ClassifierDefence("Vanilla", model)


def _arena(defence, mnist_small, n=30):
    x, y, xh = evaluation.attacked_points(mnist_small, n, seed=0)
    return evaluation.Arena(defence, x, y, xh[:400], ps=(1, 5))


class _Toy(defences.Defence):
    """Logits and scores given directly by the input's first four features (for the composite wrapper)."""

    def __init__(self):
        super().__init__("toy", 3)

    def outputs(self, x):
        return defences.Outputs(x[:, :3], x[:, 3])


def test_composite_classifier_folds_rejection_into_the_true_class():
    tau = torch.tensor([0.0, 0.0, 0.0])
    d = _Toy()
    x = torch.tensor([[1.0, 2.0, 0.0, -1.0],    # predicted 1, accepted        -> misclassified (success)
                      [1.0, 2.0, 0.0, 0.5],     # predicted 1, rejected        -> counted as the label 0
                      [3.0, 2.0, 0.0, 0.5],     # predicted 0 = label, rejected -> label
                      [3.0, 2.0, 0.0, -0.5],    # predicted 0 = label, accepted -> label
                      [0.0, 1.0, 5.0, -2.0]])   # predicted 2, accepted        -> misclassified
    g = blackbox.CompositeClassifier(d, objectives.Criterion(tau), label=0, kappa=1.0)(x)
    z, s = d(x)
    success = objectives.Criterion(tau).success(z, s, torch.zeros(5, dtype=torch.long))
    assert (g.argmax(1) != 0).tolist() == success.tolist() == [True, False, False, False, True]
    keep = torch.tensor([0, 2])
    assert torch.equal(g[:, 1:], z[:, 1:])                 # only the label's logit changes
    assert torch.equal(g[keep][:, 0], z[keep][:, 0])


def test_white_box_attacks_break_an_undefended_model_inside_the_ball(trained, mnist_small, tmp_path):
    cache = ArtefactCache(tmp_path / "c")
    arena = _arena(trained, mnist_small)
    for norm, eps, size in (("linf", 0.3, 0.02), ("l2", 2.0, 0.2)):
        by_p = suite.white_box(cache, arena, method="pgd", norm=norm, eps=eps, steps=30, step_sizes=[size])
        assert set(by_p) == set(arena.ps)
        for x_adv in by_p.values():
            assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
            assert bool((attacks.norms(x_adv - arena.x, norm) <= eps * (1 + 1e-5) + 1e-6).all())
        assert arena.evaluate(by_p)["ASR-1"] > 0.6
    again = suite.white_box(cache, arena, method="pgd", norm="linf", eps=0.3, steps=30, step_sizes=[0.02])
    assert torch.equal(again[1], suite.white_box(cache, arena, method="pgd", norm="linf", eps=0.3, steps=30,
                                                 step_sizes=[0.02])[1])   # from the cache
    for method in ("fgsm", "mim"):                            # the engine's own FGSM and MIM
        by_p = suite.white_box(cache, arena, method=method, norm="linf", eps=0.3, steps=10, step_sizes=[0.05])
        assert bool((attacks.norms(by_p[5] - arena.x, "linf") <= 0.3 + 1e-6).all())
        assert arena.evaluate(by_p)["ASR-1"] > 0.3


def test_multi_targeted_succeeds_and_beats_each_single_target(trained, mnist_small, tmp_path):
    cache = ArtefactCache(tmp_path / "c")
    arena = _arena(trained, mnist_small, n=20)
    x_mt = suite.multi_targeted(cache, arena, norm="linf", eps=0.15, steps=15, step_size=0.02)[1]
    assert bool((attacks.norms(x_mt - arena.x, "linf") <= 0.15 + 1e-6).all())
    assert float(x_mt.min()) >= 0 and float(x_mt.max()) <= 1
    mt = arena.evaluate(x_mt)["success"]
    single = suite.pgd_run(cache, arena, loss="composite", norm="linf", eps=0.15, steps=15, step_size=0.02,
                           targeted=True, random_start=True)["x_adv"]
    assert int(mt.sum()) >= int(arena.evaluate(single)["success"].sum())
    assert arena.evaluate(x_mt)["ASR-1"] > 0.5


def test_multi_targeted_with_the_paper_objective_too_is_at_least_as_strong(trained, mnist_small, tmp_path):
    cache = ArtefactCache(tmp_path / "c")
    arena = _arena(trained, mnist_small, n=20)
    kw = dict(norm="linf", eps=0.1, steps=5, step_size=0.02)
    alone = arena.evaluate(suite.multi_targeted(cache, arena, **kw)[1])["success"]
    both = arena.evaluate(suite.multi_targeted(cache, arena, losses=["composite", "paper"], **kw)[1])["success"]
    assert bool((both >= alone).all())
    named = suite.multi_targeted(cache, arena, more_losses={arena.defence.name: ["paper"]}, **kw)[1]
    assert torch.equal(arena.evaluate(named)["success"], both)      # the paper objective added on this defence
    paper_only = suite.multi_targeted(cache, arena, losses=["paper"], **kw)[1]
    direct = suite.pgd_run(cache, arena, loss=trained.paper_objective, targeted=True, random_start=True,
                           target_offset=1, **kw)["x_adv"]   # the paper objective's run at offset 1 is one candidate
    assert int(arena.evaluate(paper_only)["success"].sum()) >= int(arena.evaluate(direct)["success"].sum())


def test_multi_targeted_fixed_steps_add_each_targets_paper_objective_on_the_defences_named(trained, mnist_small,
                                                                                          tmp_path):
    cache = ArtefactCache(tmp_path / "c")
    arena = _arena(trained, mnist_small, n=20)
    kw = dict(norm="linf", eps=0.1, steps=5, step_size=0.02)
    alone = suite.multi_targeted(cache, arena, **kw)[1]
    assert torch.equal(suite.multi_targeted(cache, arena, fixed_step=0.01, fixed_for=["other"], **kw)[1], alone)
    fixed = arena.evaluate(suite.multi_targeted(cache, arena, fixed_step=0.01, fixed_steps=8,
                                                fixed_for=[arena.defence.name], **kw)[1])["success"]
    assert bool((fixed >= arena.evaluate(alone)["success"]).all())
    for r in (1, 5):   # each target's fixed-step run was made (cached), from the clean image, with its own steps
        run = suite.pgd_run(cache, arena, loss=trained.paper_objective, norm="linf", eps=0.1, steps=8, step_size=0.01,
                            targeted=True, target_offset=r, rule="steepest")
        assert bool((fixed >= arena.evaluate(run["x_adv"])["success"]).all())
    more = suite.multi_targeted(cache, arena, more_losses={"other": ["paper"]}, **kw)[1]   # another defence's
    assert torch.equal(more, alone)
    runs = len(list((tmp_path / "c" / "suite_attack").iterdir()))
    assert runs == 2 * 9 * len(arena.attack_ps)   # two kinds of run per target and aimed operating point


def test_fixed_step_adds_the_paper_objective_from_the_clean_input(trained, mnist_small, tmp_path):
    cache = ArtefactCache(tmp_path / "c")
    arena = _arena(trained, mnist_small, n=20)
    kw = dict(method="pgd", norm="linf", eps=0.1, steps=5, step_sizes=[0.2], rule="apgd")
    plain = suite.white_box(cache, arena, **kw)
    with_fixed = suite.white_box(cache, arena, fixed_step=0.01, **kw)
    fixed = suite.pgd_run(cache, arena, loss=trained.paper_objective, norm="linf", eps=0.1, steps=5, step_size=0.01,
                          targeted=False, rule="steepest", p=5)["x_adv"]
    runs = suite.white_box_runs(arena, fixed_step=0.01, fixed_steps=8, **kw)
    assert [r["steps"] for r in runs] == [5] * (len(runs) - 1) + [8] and runs[-1]["rule"] == "steepest"
    got = arena.evaluate(with_fixed)["success"]
    assert bool((got >= arena.evaluate(plain)["success"]).all())
    assert bool((got >= arena.evaluate(fixed)["success"]).all())
    assert bool((attacks.norms(with_fixed[1] - arena.x, "linf") <= 0.1 + 1e-6).all())
    name = arena.defence.name   # with fixed_for, the fixed-step run goes to the defences it names only
    assert suite.white_box_runs(arena, fixed_step=0.01, fixed_for=[name, "other"], **kw) == suite.white_box_runs(
        arena, fixed_step=0.01, **kw)
    assert suite.white_box_runs(arena, fixed_step=0.01, fixed_for=["other"], **kw) == suite.white_box_runs(arena, **kw)
    with pytest.raises(ValueError, match="second step rule for PGD"):
        suite.white_box(cache, arena, method="mim", norm="linf", eps=0.1, steps=2, step_sizes=[0.05], fixed_step=0.01)


def test_pgd_run_with_a_target_offset_aims_at_y_plus_r(trained, mnist_small, tmp_path):
    cache = ArtefactCache(tmp_path / "c")
    arena = _arena(trained, mnist_small, n=20)
    kw = dict(norm="linf", eps=0.3, steps=20, step_size=0.03)
    out = suite.pgd_run(cache, arena, loss="composite", targeted=True, target_offset=3, **kw)["x_adv"]
    assert arena.evaluate(out)["ASR-1"] > 0.5
    aimed = objectives.objective(arena.defence, "composite", arena.criterion(), targeted=True)
    for r, same in ((3, True), (4, False)):
        direct = attacks.attack(aimed, arena.x, (arena.y, (arena.y + r) % 10), early_stop=True,
                                generator=torch.Generator().manual_seed(arena.seed), **kw).x_adv
        assert torch.allclose(out, direct, atol=1e-6) == same


def test_suite_in_two_processes_equals_the_serial_run_and_caches_the_follow_up(trained, mnist_small, tmp_path):
    x, y, xh = evaluation.attacked_points(mnist_small, 20, seed=0)
    squeezed = defences.FeatureSqueezing(trained.classifier, size=2)
    both = {"Vanilla": trained, "FS": squeezed}
    specs = [{"name": "PGD Linf 0.1, U", "table": 2, "method": "pgd", "norm": "linf", "eps": 0.1, "targeted": False,
              "steps": 4, "step_sizes": [0.03]},
             {"name": "FGSM Linf 0.1", "table": 4, "method": "fgsm", "norm": "linf", "eps": 0.1}]
    kw = dict(surrogate_x={}, ps=(1, 5), progress=False)
    serial = suite.run_suite(ArtefactCache(tmp_path / "a"), both, x, y, xh[:400], specs, **kw)
    cache = ArtefactCache(tmp_path / "b")
    follow = dict(n=8, steps=4, size_steps=2, step_sizes=[0.5], protocol_steps=2, budget=("linf", 0.1))
    parallel = suite.run_suite(cache, both, x, y, xh[:400], specs, workers=2, follow_up=follow, **kw)
    assert set(parallel.results) == set(serial.results)
    for key, r in serial.results.items():                  # evaluated in the workers, sent back
        assert parallel.results[key]["ASR-1"] == r["ASR-1"] and parallel.results[key]["seconds"] > 0
        assert parallel.results[key]["counts"] == r["counts"] and parallel.results[key]["n"] == r["n"]
        assert torch.equal(parallel.results[key]["x_adv"], r["x_adv"])
    assert len(list((tmp_path / "b" / "heldout_decisions").iterdir())) == 2   # one per defence, shared
    entries = len(list((tmp_path / "b" / "suite_attack").iterdir()))
    suite.convergence_study(cache, parallel, "FS", n=8, steps=4, size_steps=2, step_sizes=[0.5], norm="linf", eps=0.1)
    assert len(list((tmp_path / "b" / "suite_attack").iterdir())) == entries   # the workers computed it


def test_one_defence_s_attacks_are_shared_out_among_the_processes(trained, mnist_small, tmp_path):
    x, y, xh = evaluation.attacked_points(mnist_small, 20, seed=0)
    specs = [{"name": f"PGD Linf {e:g}, U", "table": 2, "method": "pgd", "norm": "linf", "eps": e, "targeted": False,
              "steps": 3, "step_sizes": [0.03]} for e in (0.1, 0.2)]
    kw = dict(surrogate_x={}, ps=(1, 5), progress=False)
    serial = suite.run_suite(ArtefactCache(tmp_path / "a"), {"Vanilla": trained}, x, y, xh[:400], specs, **kw)
    parallel = suite.run_suite(ArtefactCache(tmp_path / "b"), {"Vanilla": trained}, x, y, xh[:400], specs,
                               workers=2, **kw)
    for key, r in serial.results.items():
        assert parallel.results[key]["ASR-1"] == r["ASR-1"]
    assert len(list((tmp_path / "b" / "suite_attack").iterdir())) == len(list((tmp_path / "a" / "suite_attack").iterdir()))


def test_task_cost_orders_the_costly_attacks_first():
    deep = {"method": "pgd", "steps": 100, "losses": ["paper", "composite"], "fixed_step": 0.01, "step_sizes": [0.6]}
    short = {"method": "pgd", "steps": 10, "step_sizes": [0.2]}
    mt = {"method": "multi-targeted", "steps": 100, "losses": ["composite", "paper"], "n": 100}
    cost = lambda s: suite._task_cost(s, 500, 10, 1)
    assert cost(deep) == 500 * 100 * 3 and cost(short) == 500 * 10 * 2
    assert cost({**deep, "fixed_steps": 200}) == 500 * (100 * 2 + 200)
    assert cost(mt) == 100 * 100 * 9 * 2 > cost(short) and cost({"method": "fgsm"}) < cost(short)
    assert suite._task_cost(deep, 500, 10, 2) == 2 * cost(deep)   # a run per attacked operating point
    mt_a = {**mt, "fixed_step": 0.01, "fixed_steps": 50, "fixed_for": ["A"]}
    assert suite._task_cost(mt_a, 500, 10, 1, defence="A") == 100 * (100 * 2 + 50) * 9
    assert suite._task_cost(mt_a, 500, 10, 1, defence="B") == cost(mt)
    assert suite._task_cost({**mt, "more_losses": {"B": ["x"]}}, 500, 10, 1, defence="B") == cost(mt) * 3 // 2
    only_a = {**deep, "fixed_for": ["A"]}                           # the fixed-step run on defence A only
    assert suite._task_cost(only_a, 500, 10, 1, defence="A") == cost(deep)
    assert suite._task_cost(only_a, 500, 10, 1, defence="B") == 500 * 100 * 2


def test_suite_run_gives_curves_for_the_views(trained, mnist_small, tmp_path):
    x, y, xh = evaluation.attacked_points(mnist_small, 20, seed=0)
    specs = [{"name": "PGD Linf 0.3, U", "table": 2, "method": "pgd", "norm": "linf", "eps": 0.3, "targeted": False,
              "steps": 10, "step_sizes": [0.05]},
             {"name": "FGSM Linf 0.3", "table": 4, "method": "fgsm", "norm": "linf", "eps": 0.3}]
    res = suite.run_suite(ArtefactCache(tmp_path / "c"), {"Vanilla": trained}, x, y, xh[:400], specs,
                          surrogate_x={}, ps=(1, 5), progress=False)
    curves = reports.classification_curves(res, "linf", 0.3)
    c = curves["Vanilla"]
    assert len(c.x) == len(c.y) and 0 <= c.x.min() and c.x.max() <= 1 and c.y.max() <= 1
    assert c.y.max() == pytest.approx(res.arenas["Vanilla"].accuracy())   # accepting everything: clean accuracy
    views, erocs = reports.asr_curves(res)
    (label,) = views
    assert label == f"Vanilla ({reports.worst_attack(res, 'Vanilla', full_only=True)})"
    fprs, asrs = views[label]
    assert len(fprs) == len(asrs) and np.all((asrs >= 0) & (asrs <= 1))
    worst = res.results[("Vanilla", reports.worst_attack(res, "Vanilla", full_only=True))]
    for p in (1, 5):   # the curve passes through the table's ASR-p
        assert asrs[np.argmin(np.abs(fprs - p / 100))] == pytest.approx(worst[f"ASR-{p}"])
    assert label in erocs


def test_best_of_prefers_successes_that_are_deepest_under_the_threshold(trained, mnist_small, tmp_path):
    cache = ArtefactCache(tmp_path / "c")
    arena = _arena(trained, mnist_small, n=10)
    strong = suite.white_box(cache, arena, method="pgd", norm="linf", eps=0.3, steps=20, step_sizes=[0.03])[1]
    combined = evaluation.best_of(arena, [arena.x, strong])
    assert int(arena.evaluate(combined)["success"].sum()) == int(arena.evaluate(strong)["success"].sum())
    assert torch.equal(evaluation.best_of(arena, [arena.x]), arena.x)


def test_cw_keeps_only_successes_within_the_budget(trained, mnist_small, tmp_path):
    cache = ArtefactCache(tmp_path / "c")
    arena = _arena(trained, mnist_small, n=10)
    x_cw = suite.cw_l2(cache, arena, eps=2.0, searches=3, steps=40, lr=0.05)
    for x_adv in x_cw.values():
        assert bool((attacks.norms(x_adv - arena.x, "l2") <= 2.0 + 1e-4).all())
    assert arena.evaluate(x_cw)["ASR-1"] > 0.3
    tight = suite.cw_l2(cache, arena, eps=0.05, searches=3, steps=40, lr=0.05)
    assert arena.evaluate(tight)["ASR-1"] <= arena.evaluate(x_cw)["ASR-1"]


def test_cw_with_a_margin_lands_under_the_threshold_not_on_it(trained, mnist_small, tmp_path):
    cache = ArtefactCache(tmp_path / "c")
    arena = _arena(trained, mnist_small, n=20)
    plain = arena.evaluate(suite.cw_l2(cache, arena, eps=3.0, searches=3, steps=60, lr=0.05))
    margin = arena.evaluate(suite.cw_l2(cache, arena, eps=3.0, searches=3, steps=60, lr=0.05, kappa=0.5))
    crit = arena.criterion()
    room = {name: (crit.threshold(r["pred"]) - r["score"])[r["success"]] for name, r in (("plain", plain),
                                                                                        ("margin", margin))}
    assert float(room["margin"].median()) > float(room["plain"].median())
    # a run aimed at 5% alone keeps only examples misclassified with a score under 5%'s target
    strict = evaluation.Arena(arena.defence, arena.x, arena.y, arena.x_heldout, ps=(1, 5), attack_ps=(5,))
    x_adv = suite.cw_l2(cache, strict, eps=3.0, searches=3, steps=60, lr=0.05, kappa=0.5)[5]
    kept = (x_adv != arena.x).flatten(1).any(1)
    z, score = arena.defence(x_adv[kept])
    pred = z.argmax(1)
    assert int(kept.sum()) > 0 and bool((pred != arena.y[kept]).all())
    assert bool((score <= suite.cw_target(arena, 5, 0.5)[pred] + 1e-5).all())


def test_cw_target_lies_between_the_threshold_and_the_class_median():
    """Hand-computed: class 0's held-out scores 0..3 and 10 with tau 3 (median 2): half-way is 2.5; class 1 has
    no held-out image and keeps tau = inf; class 2's median is above its tau, so the margin is 0."""
    arena = type("A", (), {})()
    arena.heldout = (torch.tensor([0, 0, 0, 0, 0, 2, 2, 2]),
                     torch.tensor([0.0, 1.0, 2.0, 3.0, 10.0, 5.0, 5.0, 5.0]))
    arena.tau = {5: torch.tensor([3.0, math.inf, 4.0])}
    t = suite.cw_target(arena, 5, 0.5)
    assert t[0].item() == pytest.approx(2.5) and math.isinf(t[1].item()) and t[2].item() == pytest.approx(4.0)
    assert suite.cw_target(arena, 5, 0.0).tolist()[0] == 3.0 and suite.cw_target(arena, 5, 1.0).tolist()[0] == 2.0


def test_cw_target_stays_reachable_when_the_scores_are_skewed():
    """A confident classifier's -log max softmax piles up near 0: 95 of 100 held-out images at 1e-4, five at 2.
    tau_5 is then 1e-4, and a margin of half a pooled standard deviation would aim below 0, where no input can
    go (the defect that gave CW 0.00 on the book's Vanilla classifier). The target stays at a score that 95% of
    the class's benign images have."""
    scores = torch.tensor([1e-4] * 95 + [2.0] * 5)
    pred = torch.zeros(100, dtype=torch.long)
    tau5 = float(metrics.thresholds_at_fpr(scores, pred, 0.05, 1)[0])
    assert tau5 == pytest.approx(1e-4) and tau5 - 0.5 * float(scores.std()) < 0
    arena = type("A", (), {})()
    arena.heldout, arena.tau = (pred, scores), {5: torch.tensor([tau5])}
    target = suite.cw_target(arena, 5, 0.5)[0]
    assert int((scores <= target).sum()) == 95 and float(target) == pytest.approx(1e-4)


def test_each_operating_point_gets_examples_aimed_at_it(trained, mnist_small, tmp_path):
    """At p = 5% the thresholds are stricter than at 1%: the examples aimed at 5% succeed there at least as
    often as those aimed at 1%, and an arena that attacks only at 1% reuses its examples for 5%."""
    cache = ArtefactCache(tmp_path / "c")
    arena = _arena(trained, mnist_small, n=30)
    kw = dict(method="pgd", norm="linf", eps=0.05, steps=20, step_sizes=[0.01])
    by_p = suite.white_box(cache, arena, **kw)
    aimed, reused = arena.evaluate(by_p), arena.evaluate(by_p[1])
    assert aimed["ASR-5"] >= reused["ASR-5"] and aimed["ASR-1"] == reused["ASR-1"]
    only1 = evaluation.Arena(arena.defence, arena.x, arena.y, arena.x_heldout, ps=(1, 5), attack_ps=(1,))
    one = suite.white_box(cache, only1, **kw)
    assert torch.equal(one[1], by_p[1]) or arena.evaluate(one[1])["ASR-1"] == aimed["ASR-1"]
    with pytest.raises(ValueError, match="subset"):
        evaluation.Arena(arena.defence, arena.x, arena.y, arena.x_heldout, ps=(1, 5), attack_ps=(2,))


def test_runs_aimed_at_the_strictest_threshold_serve_every_looser_one(trained, mnist_small, tmp_path):
    """The cpu profile aims every white-box run at tau_5 only: each image that succeeds at 5% succeeds at 1%, so
    ASR-1 from those runs is at least the share that succeeded at 5% on the same eligible images, and it matches
    runs aimed at 1% up to the per-class offsets of the thresholds (here: within one image in ten)."""
    cache = ArtefactCache(tmp_path / "c")
    arena = _arena(trained, mnist_small, n=30)
    strict = evaluation.Arena(arena.defence, arena.x, arena.y, arena.x_heldout, ps=(1, 5), attack_ps=(5,))
    kw = dict(method="pgd", norm="linf", eps=0.05, steps=20, step_sizes=[0.01], losses=["composite"])
    by_p = suite.white_box(cache, strict, **kw)
    r = strict.evaluate(by_p)
    succ5 = strict.eligible(5) & strict.criterion(5).success_of(*strict.defence.decide(by_p[5]), strict.y)
    succ1 = r["success"]
    assert bool((succ1 | ~succ5 | ~strict.eligible()).all())          # success under tau_5 => under tau_1
    aimed1 = arena.evaluate(suite.white_box(cache, arena, **kw))
    assert abs(r["ASR-1"] - aimed1["ASR-1"]) <= 0.1 and r["ASR-1"] >= r["ASR-5"] - 1e-9


def test_nes_estimates_the_gradient_of_a_smooth_loss():
    w = torch.randn(1, 1, 4, 4)

    def loss(x):
        return (x * w).flatten(1).sum(1) + (x ** 2).flatten(1).sum(1)

    x = torch.rand(3, 1, 4, 4, requires_grad=True)
    est = blackbox._NesGradient.apply(x, loss, 1e-3, 400, torch.Generator().manual_seed(0))
    (g_est,) = torch.autograd.grad(est.sum(), x)
    g_true = w + 2 * x.detach()
    cos = torch.nn.functional.cosine_similarity(g_est.flatten(1), g_true.flatten(1))
    assert bool((cos > 0.9).all()), cos


def test_black_box_attacks_run_within_the_budget(trained, mnist_small, tmp_path):
    arena = _arena(trained, mnist_small, n=6)
    x_nes = blackbox.nes(arena, norm="linf", eps=0.3, steps=10, step_size=0.03, sigma=0.01, samples=10)
    assert bool((attacks.norms(x_nes - arena.x, "linf") <= 0.3 + 1e-6).all())
    start = blackbox.starting_points(arena)
    pred, score = trained.decide(start)
    assert bool((pred != arena.y).all()) and bool((score <= arena.tau[1][pred]).all())
    x_hsj = suite.hsj(ArtefactCache(tmp_path / "c"), arena, norm="l2", eps=4.0, steps=3, initial_evals=20)
    assert bool((attacks.norms(x_hsj - arena.x, "l2") <= 4.0 + 1e-4).all())
    assert arena.evaluate(x_hsj)["ASR-1"] > 0.0
    out = suite.run_spec(ArtefactCache(tmp_path / "c"), arena, {"name": "HopSkipJump L2 4.0", "table": 3,
                                                                "method": "hsj", "norm": "l2", "eps": 4.0, "steps": 3,
                                                                "initial_evals": 20})
    assert out["arithmetic"] == "float32" and torch.equal(out["x_adv"], x_hsj)      # the same cached run


def test_hopskipjump_falls_back_to_float64_and_the_result_says_so(trained, mnist_small, tmp_path, monkeypatch):
    arena = _arena(trained, mnist_small, n=4)
    asked = []

    def boundary_check_fails_in_float32(arena, *, precision, **kwargs):
        asked.append(precision)
        if precision == "float32":
            raise AssertionError("a decision changed on a second look")
        return arena.x.clone()

    monkeypatch.setattr(suite.blackbox, "hsj", boundary_check_fails_in_float32)
    spec = {"name": "HopSkipJump L2 4.0", "table": 3, "method": "hsj", "norm": "l2", "eps": 4.0, "steps": 3,
            "initial_evals": 20}
    r = suite._evaluate_one(ArtefactCache(tmp_path / "c"), arena, spec, None)
    assert asked == ["float32", "float64"] and r["arithmetic"] == "float64"


def test_autoattack_runs_on_the_composite_classifier(trained, mnist_small, tmp_path):
    arena = _arena(trained, mnist_small, n=10)
    out = suite.autoattack(ArtefactCache(tmp_path / "c"), arena, norm="linf", eps=0.3, version="custom",
                           attacks_to_run=["apgd-ce"], n_iter=10)
    x_aa = out["x_adv"]
    assert isinstance(out["checks"], list)                 # AutoAttack's own warnings, kept for the table
    assert bool((attacks.norms(x_aa - arena.x, "linf") <= 0.3 + 1e-5).all())
    assert arena.evaluate(x_aa)["ASR-1"] > 0.5


def _fake_suite(success_by_attack, specs, n=10):
    """A SuiteResult whose per-sample successes are given; every point is eligible."""
    y = torch.zeros(n, dtype=torch.long)

    class A:
        ps = (1,)
        tau = {1: torch.full((10,), math.inf)}
        clean = (y, torch.zeros(n))

        def __init__(self):
            self.y = y
            self.x = torch.zeros(n, 1, 1, 1)

        def accuracy(self):
            return 1.0

        def eligible(self):
            return objectives.Criterion(self.tau[1]).eligible(self.clean[0], self.clean[1], self.y)

    results = {}
    for name, succ in success_by_attack.items():
        succ = torch.as_tensor(succ, dtype=torch.bool)
        counts = (int(succ.sum()), len(succ))
        results[("D", name)] = {"success": succ, "ASR-1": counts[0] / counts[1], "EROC": 0.5, "n": len(succ),
                                "counts": {1: counts}}
    return suite.SuiteResult(results, {"D": A()}, specs)


SPECS = [{"name": "PGD Linf 0.3, U", "table": 2, "method": "pgd", "norm": "linf", "eps": 0.3},
         {"name": "PGD Linf 0.4, U", "table": 2, "method": "pgd", "norm": "linf", "eps": 0.4},
         {"name": "PGD Linf 1, U", "table": "sanity", "method": "pgd", "norm": "linf", "eps": 1.0},
         {"name": "NES Linf 0.3", "table": 3, "method": "nes", "norm": "linf", "eps": 0.3},
         {"name": "AutoAttack Linf 0.3", "table": "aa", "method": "autoattack", "norm": "linf", "eps": 0.3}]


def _converged(gain):
    """A convergence study (as :func:`advdetect.suite.convergence_study` returns it) whose last doubling adds ``gain``."""
    return {"D": {"attack": "PGD Linf 0.4, U", "steps": [1, 2, 4, 8], "asr": [0.3, 0.4, 0.5, 0.5 + gain],
                  "gain": gain, "converged": gain <= 0.02}}


def _checks(succ, convergence=None):
    table = reports.sanity_checks(_fake_suite(succ, SPECS), convergence)
    return dict(zip(table["check"], table["passed"]))


def _passed(checks, start):
    (value,) = [v for k, v in checks.items() if k.startswith(start)]
    return value


def test_an_attack_that_broke_every_image_has_converged():
    assert suite.converged(0.02, 0.5) and not suite.converged(0.03, 0.5) and suite.converged(0.16, 1.0)
    curve = torch.tensor([1.0] * 28 + [0.0] * 72)   # 28, then 30 of 100 images broken: ASRs as float32 means
    later = torch.tensor([1.0] * 30 + [0.0] * 70)
    gain = float(later.mean() - curve.mean())
    assert gain > 0.02 and suite.converged(gain, 0.3)                   # 2 points exactly: at most the tolerance
    assert not suite.converged(float(torch.tensor(0.31) - torch.tensor(0.28)), 0.31)
    saturated = {"D": {**_converged(0.5)["D"], "asr": [0.2, 0.3, 0.5, 1.0], "converged": True}}
    every = {s["name"]: [1] * 10 for s in SPECS}
    assert _passed(_checks(every, saturated), "PGD Linf 0.4, U converged") is True
    assert _passed(_checks(every, _converged(0.3)), "PGD Linf 0.4, U converged") is False


def test_sanity_checks_pass_a_consistent_suite_and_catch_each_failure():
    ok = {"PGD Linf 0.3, U": [1] * 5 + [0] * 5, "PGD Linf 0.4, U": [1] * 7 + [0] * 3,
          "PGD Linf 1, U": [1] * 10, "NES Linf 0.3": [1] * 3 + [0] * 7, "AutoAttack Linf 0.3": [1] * 5 + [0] * 5}
    checks = _checks(ok, _converged(0.01))
    assert all(checks.values()), checks
    bad = dict(ok)
    bad["PGD Linf 1, U"] = [1] * 6 + [0] * 4              # unbounded attack stuck at 0.6
    bad["NES Linf 0.3"] = [1] * 8 + [0] * 2               # black-box beats white-box
    bad["AutoAttack Linf 0.3"] = [1] * 8 + [0] * 2        # AutoAttack finds 3 more
    bad["PGD Linf 0.4, U"] = [1] * 2 + [0] * 8            # a larger budget that finds less
    checks = _checks(bad, _converged(0.1))
    assert len(checks) == 5                               # no L2 attack: no L2 chain
    assert _passed(checks, "PGD Linf 1, U reaches") is False
    assert _passed(checks, "NES Linf 0.3 <= white-box") is False
    assert _passed(checks, "AutoAttack Linf 0.3 adds") is False
    assert _passed(checks, "ASR-1 grows with linf eps") is False   # 0.5 -> 0.2 -> 0.6
    assert _passed(checks, "PGD Linf 0.4, U converged") is False  # doubling the steps still adds 0.1


def test_worst_case_names_the_attack_and_results_table_sits_beside_the_paper():
    s = _fake_suite({"PGD Linf 0.3, U": [1] * 2 + [0] * 8, "PGD Linf 0.4, U": [1] * 6 + [0] * 4,
                     "PGD Linf 1, U": [1] * 10, "NES Linf 0.3": [0] * 10, "AutoAttack Linf 0.3": [0] * 10}, SPECS)
    w = reports.worst_case(s)
    assert w.loc["D", "its attack"] == "PGD Linf 0.4, U" and w.loc["D", "worst-case ASR-1"] == pytest.approx(0.6)
    assert w.loc["D", "ASR-1 within Linf 0.3"] == pytest.approx(0.2) and w.loc["D", "eligible"] == 10
    assert reports.interval_bounds(w.loc["D", "95% CI"]) == pytest.approx(metrics.proportion_ci(2, 10), abs=0.005)
    assert reports.worst_case(s, budget=("linf", 0.4)).loc["D", "ASR-1 within Linf 0.4"] == pytest.approx(0.6)
    assert np.isnan(w.loc["D", "paper ASR-1 within Linf 0.3"])            # no paper column for an unknown defence
    t = reports.results_table(s, ["PGD Linf 0.3, U", "PGD Linf 0.4, U"],
                              paper={"PGD Linf 0.3, U": {"Vanilla": {"ASR-1": 0.86}}})
    row = t.loc[("PGD Linf 0.3, U", "D")]
    assert row["ASR-1"] == pytest.approx(0.2) and row["eligible images"] == 10 and np.isnan(row["paper ASR-1"])
    assert "arithmetic" not in t                       # only where an attack's result says how it ran
    s.results[("D", "NES Linf 0.3")]["arithmetic"] = "float64"
    mixed = reports.results_table(s, ["PGD Linf 0.3, U", "NES Linf 0.3"])
    assert list(mixed["arithmetic"]) == ["-", "float64"]
    lo, hi = reports.interval_bounds(row["ASR-1 95% CI"])
    assert lo < 0.2 < hi and (lo, hi) == pytest.approx(metrics.proportion_ci(2, 10), abs=0.005)
    worst = reports.worst_rows(t).loc["D"]
    assert worst["attack"] == "PGD Linf 0.4, U" and worst["ASR-1"] == pytest.approx(0.6)


def test_comparison_tables_and_worst_attack():
    specs = SPECS + [{"name": "PGD Linf 0.3, T", "table": 2, "method": "pgd", "norm": "linf", "eps": 0.3},
                     {"name": "Multi-targeted Linf 0.3", "table": "mt", "method": "multi-targeted", "norm": "linf",
                      "eps": 0.3},
                     {"name": "APGD Linf 0.3", "table": "apgd", "method": "pgd", "norm": "linf", "eps": 0.3}]
    s = _fake_suite({"PGD Linf 0.3, U": [1] * 2 + [0] * 8, "PGD Linf 0.3, T": [0] * 9 + [1],
                     "Multi-targeted Linf 0.3": [0, 1, 1, 1] + [0] * 6, "PGD Linf 0.4, U": [1] * 6 + [0] * 4,
                     "PGD Linf 1, U": [1] * 10, "NES Linf 0.3": [0] * 10,
                     "AutoAttack Linf 0.3": [1, 0, 0, 0, 0, 1, 1, 0, 0, 0],
                     "APGD Linf 0.3": [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]}, specs)
    mt = reports.multi_targeted_comparison(s)
    row = mt.loc[("D", "Linf 0.3")]
    assert (row["PGD targeted"], row["PGD untargeted"], row["multi-targeted"]) == pytest.approx((0.1, 0.2, 0.3))
    aa = reports.autoattack_comparison(s).loc[("D", "AutoAttack Linf 0.3")]
    # our L-inf 0.3 union: samples 0-3 and 9; AutoAttack: 0, 5, 6
    assert aa["our suite ASR-1"] == pytest.approx(0.5) and aa["AutoAttack ASR-1"] == pytest.approx(0.3)
    assert aa["found only by AutoAttack"] == 2 and aa["found only by our suite"] == 4
    ap = reports.apgd_comparison(s).loc[("D", "APGD Linf 0.3")]
    # APGD: samples 0-4; it alone found sample 4, our suite alone sample 9
    assert ap["APGD ASR-1"] == pytest.approx(0.5) and ap["found only by APGD"] == 1
    assert ap["found only by our suite"] == 1
    assert reports.worst_attack(s, "D") == "PGD Linf 0.4, U"
    assert reports.worst_attack(s, "D", exclude_tables=()) == "PGD Linf 1, U"


def test_attacked_points_are_stratified_and_disjoint_from_the_heldout(mnist_small):
    x, y, xh = evaluation.attacked_points(mnist_small, 50, seed=0)
    share = torch.bincount(mnist_small.y_test, minlength=10) / len(mnist_small.y_test)
    assert len(x) == 50 and (torch.bincount(y, minlength=10) - share * 50).abs().max() <= 1
    assert len(xh) == len(mnist_small.y_val) + len(mnist_small.y_test) - 50
    flat = {v.numpy().tobytes() for v in x}
    assert not any(v.numpy().tobytes() in flat for v in mnist_small.x_val[:200])


def test_attack_specs_cover_the_tables():
    specs = suite.attack_specs(profiles.defaults("adaptive", "cpu"))
    names = [s["name"] for s in specs]
    assert "PGD Linf 0.3, T" in names and "PGD L0 25, U" in names and "CW L2 2.0" in names
    assert {s["table"] for s in specs} == {2, 3, 4, "mt", "sanity", "apgd", "aa"}
    assert len(names) == len(set(names))


def test_convergence_reads_asr_against_steps_from_one_traced_run(trained, mnist_small, tmp_path):
    cache = ArtefactCache(tmp_path)
    arena = _arena(trained, mnist_small, n=20)
    long = suite.convergence(cache, arena, loss="margin", norm="linf", eps=0.3, steps=64, step_size=0.02)
    assert long["steps"] == [1, 2, 4, 8, 16, 32, 64]
    assert all(b >= a for a, b in zip(long["asr"], long["asr"][1:]))   # best so far never falls
    assert long["asr"][-1] > 0.9 and long["converged"] and long["n"] == int(arena.eligible().sum())
    short = suite.convergence(cache, arena, loss="margin", norm="linf", eps=0.3, steps=8, step_size=0.005)
    assert not short["converged"] and short["gain"] > 0.02   # 8 tiny steps: still gaining when doubled


def test_sanity_checks_compare_cw_multi_targeted_and_apgd_with_the_suite():
    specs = SPECS + [
        {"name": "PGD L2 2.0, U", "table": 2, "method": "pgd", "norm": "l2", "eps": 2.0},
        {"name": "CW L2 2.0", "table": 4, "method": "cw", "eps": 2.0},
        {"name": "Multi-targeted Linf 0.3", "table": "mt", "method": "multi-targeted", "norm": "linf", "eps": 0.3},
        {"name": "APGD Linf 0.3, U", "table": "apgd", "method": "pgd", "norm": "linf", "eps": 0.3, "rule": "apgd"}]
    base = {"PGD Linf 0.3, U": [1] * 5 + [0] * 5, "PGD Linf 0.4, U": [1] * 7 + [0] * 3, "PGD Linf 1, U": [1] * 10,
            "NES Linf 0.3": [0] * 10, "AutoAttack Linf 0.3": [1] * 5 + [0] * 5, "PGD L2 2.0, U": [1] * 4 + [0] * 6}
    good = {**base, "CW L2 2.0": [1] * 5 + [0] * 5, "Multi-targeted Linf 0.3": [1] * 6 + [0] * 4,
            "APGD Linf 0.3, U": [1] * 5 + [0] * 5}
    table = reports.sanity_checks(_fake_suite(good, specs))
    checks = dict(zip(table["check"], table["passed"]))
    assert checks["CW L2 2.0 >= PGD L2 2.0, U"] and checks["Multi-targeted Linf 0.3 >= PGD Linf 0.3, U"]
    assert checks["APGD Linf 0.3, U adds <= 0.02 to the suite"]
    bad = {**base, "CW L2 2.0": [1] * 2 + [0] * 8, "Multi-targeted Linf 0.3": [1] * 3 + [0] * 7,
           "APGD Linf 0.3, U": [0] * 5 + [1] * 3 + [0] * 2}   # APGD breaks three images the suite did not
    table = reports.sanity_checks(_fake_suite(bad, specs))
    checks = dict(zip(table["check"], table["passed"]))
    assert not checks["CW L2 2.0 >= PGD L2 2.0, U"] and not checks["Multi-targeted Linf 0.3 >= PGD Linf 0.3, U"]
    assert not checks["APGD Linf 0.3, U adds <= 0.02 to the suite"]


def test_cw_on_fewer_images_is_compared_with_pgd_on_the_same_ones():
    specs = SPECS + [{"name": "PGD L2 2.0, U", "table": 2, "method": "pgd", "norm": "l2", "eps": 2.0},
                     {"name": "CW L2 2.0", "table": 4, "method": "cw", "eps": 2.0, "n": 4}]
    base = {"PGD Linf 0.3, U": [1] * 5 + [0] * 5, "PGD Linf 0.4, U": [1] * 7 + [0] * 3, "PGD Linf 1, U": [1] * 10,
            "NES Linf 0.3": [0] * 10, "AutoAttack Linf 0.3": [1] * 5 + [0] * 5,
            "PGD L2 2.0, U": [1] * 4 + [0] * 6}   # on the first four images PGD breaks all four
    for cw, ok in (([1] * 4, True), ([1] * 3 + [0], True), ([1] * 2 + [0] * 2, False)):   # one image of slack
        table = reports.sanity_checks(_fake_suite({**base, "CW L2 2.0": cw}, specs))
        (row,) = table[table["check"] == "CW L2 2.0 >= PGD L2 2.0, U"].itertuples()
        assert row.passed == ok and "first 4" in row.value


def test_the_suite_lists_the_apgd_check_from_the_profile():
    specs = suite.attack_specs(profiles.defaults("adaptive", "cpu"))
    (apgd,) = [s for s in specs if s["table"] == "apgd"]
    assert apgd["rule"] == "apgd" and apgd["step_sizes"] == [0.6] and apgd["name"] == "APGD Linf 0.3, U"


def test_the_papers_protocols_run_beside_the_suite_on_the_same_arena(trained, mnist_small, tmp_path):
    x, y, xh = evaluation.attacked_points(mnist_small, 20, seed=0)
    specs = [{"name": "PGD Linf 0.3, U", "table": 2, "method": "pgd", "norm": "linf", "eps": 0.3, "targeted": False,
              "steps": 10, "step_sizes": [0.05]}]
    cache = ArtefactCache(tmp_path / "c")
    # the classifier's logits as an ARCLU-style space (one-hot means and the origin): a distance defence
    means = torch.cat([torch.eye(10) * 10, torch.zeros(1, 10)])
    arclu_like = defences.DistanceDefence("ARCLU", trained.classifier, means)
    res = suite.run_suite(cache, {"ARCLU": arclu_like, "Vanilla": trained}, x, y, xh[:400], specs,
                          surrogate_x={}, ps=(1, 5), progress=False)
    table = reports.protocol_comparison(cache, res, steps=10)
    assert list(table.index.get_level_values(0)) == ["ARCLU", "ARCLU"]      # Vanilla has no paper protocol
    labels = list(table.index.get_level_values(1))
    assert labels == ["nearest wrong, sign 10 x 0.01", "nearest wrong, sign 10 x 0.01, targeted"]
    assert table["its ASR-1"].between(0, 1).all()
    assert (table["all our L-inf 0.3 attacks"] == res.get("ARCLU", "PGD Linf 0.3, U")).all()


def test_a_subset_arena_shares_the_thresholds_and_slices_the_points(trained, mnist_small):
    arena = _arena(trained, mnist_small, n=20)
    sub = arena.subset(8)
    assert len(sub.x) == 8 and torch.equal(sub.x, arena.x[:8]) and torch.equal(sub.targets, arena.targets[:8])
    assert sub.tau is arena.tau and sub.heldout is arena.heldout          # thresholds shared, not recomputed
    assert torch.equal(sub.eligible(), arena.eligible()[:8])
    assert arena.subset(100) is arena and len(arena.x) == 20


def test_profile_specs_aim_short_apgd_runs_and_send_expensive_attacks_to_subsets():
    p = profiles.defaults("adaptive", "cpu")
    specs = {s["name"]: s for s in suite.attack_specs(p)}
    t2 = specs["PGD L2 2.0, U"]
    assert t2["rule"] == "apgd" and t2["step_sizes"] == [pytest.approx(4.0)] and t2["losses"] == ["composite"]
    assert t2["steps"] == p["STEPS"]
    assert specs["PGD Linf 0.4, U"]["step_sizes"] == [pytest.approx(0.8)]
    for deep in ("PGD Linf 0.3, U", "PGD Linf 0.3, T", "PGD Linf 0.4, U", "PGD Linf 0.4, T"):   # deep: both losses, DEEP_STEPS, every image
        s = specs[deep]
        assert s["rule"] == "apgd" and s["losses"] == ["paper", "composite"] and s["steps"] == p["DEEP_STEPS"] >= 50
        assert "n" not in s
    fixed = specs["PGD Linf 0.3, U"]               # the fixed-step run: L-inf 0.3, untargeted, the protocol's steps
    assert fixed["fixed_step"] == pytest.approx(0.01) and fixed["fixed_steps"] == p["PROTOCOL_STEPS"] == 100
    assert fixed["fixed_for"] == p["DEEP_FIXED_DEFENCES"] and "ARCLU" in fixed["fixed_for"]   # where it finds images
    assert "fixed_step" not in specs["PGD Linf 0.3, T"]
    assert "fixed_step" not in specs["PGD Linf 0.4, U"] and "fixed_step" not in specs["PGD Linf 0.4, T"]
    assert "fixed_step" not in specs["PGD L2 2.0, U"]
    assert "rule" not in specs["PGD L1 15, U"]                            # L1 and L0 keep steepest descent
    assert "rule" not in specs["PGD Linf 1, U"] and specs["PGD L2 6.0, U"]["step_sizes"] == p["SANITY_STEP_SIZES"]["l2"]
    assert specs["NES Linf 0.3"]["n"] == p["N_BLACKBOX"] and specs["AutoAttack Linf 0.3"]["n"] == p["AA_N"]
    assert specs["APGD Linf 0.3, U"]["n"] == p["N_SUBSET"] and specs["APGD Linf 0.3, U"]["random_start"]
    assert specs["CW L2 2.0"]["kappa"] == p["CW_KAPPA"] > 0 and specs["CW L2 2.0"]["n"] == p["CW_N"]
    # the multi-targeted attack as Tramer et al. run it (100 steps per target, their targeted composite loss) and
    # the unbounded budgets at least as deep as the deep rows, on the subset
    mt = specs["Multi-targeted Linf 0.3"]
    assert mt["steps"] == 100 >= p["DEEP_STEPS"] and mt["n"] == p["MT_N"] == p["N_SUBSET"]
    assert mt["losses"] == ["composite"] and specs["AutoAttack Linf 0.3"]["n"] >= 100
    assert mt["fixed_for"] == p["MT_FIXED_DEFENCES"] == ["ARCLU"] and mt["fixed_step"] == pytest.approx(0.01)
    assert mt["more_losses"] == p["MT_MORE_LOSSES"] == {"L-Ben": ["paper"]}
    for name in ("PGD Linf 1, U", "PGD L2 6.0, U"):
        assert specs[name]["steps"] == p["SANITY_STEPS"] >= p["DEEP_STEPS"] and specs[name]["n"] == p["SANITY_N"]
    assert p["N_TEST"] >= 500 and p["CONV_STEPS"] >= 1000 and p["N_SUBSET"] >= 100


def test_paper_stands_for_each_defences_own_objective(trained, mnist_small, tmp_path):
    cache = ArtefactCache(tmp_path)
    arena = _arena(trained, mnist_small, n=10)
    a = suite.white_box(cache, arena, method="fgsm", norm="linf", eps=0.3, losses=["paper"])
    b = suite.white_box(cache, arena, method="fgsm", norm="linf", eps=0.3, losses=[trained.paper_objective])
    assert torch.equal(a[arena.ps[0]], b[arena.ps[0]])


def test_convergence_study_reruns_the_worst_attack_on_the_subset(trained, mnist_small, tmp_path):
    cache = ArtefactCache(tmp_path / "c")
    x, y, xh = evaluation.attacked_points(mnist_small, 20, seed=0)
    specs = [{"name": "PGD Linf 0.1, U", "table": 2, "method": "pgd", "norm": "linf", "eps": 0.1, "targeted": False,
              "steps": 4, "step_sizes": [0.02]},
             {"name": "PGD Linf 0.3, U", "table": 2, "method": "pgd", "norm": "linf", "eps": 0.3, "targeted": False,
              "steps": 4, "step_sizes": [0.05]}]
    res = suite.run_suite(cache, {"Vanilla": trained}, x, y, xh[:400], specs, surrogate_x={}, ps=(1, 5),
                          progress=False)
    c = suite.convergence_study(cache, res, "Vanilla", n=10, steps=32, size_steps=8, step_sizes=[0.1, 0.2])
    assert c["attack"] == "PGD Linf 0.3, U" and c["eps"] == 0.3 and len(c["curve"]) == 32
    assert c["n"] == int(res.arenas["Vanilla"].eligible()[:10].sum())
    assert c["at suite steps"] == pytest.approx(float(c["curve"][3]))
    assert sorted(c["sizes"]) == pytest.approx([0.03, 0.06]) and c["converged"]
    assert c["result"]["ASR-1"] == pytest.approx(c["asr"][-1])          # the traced run's examples, scored
    assert c["loss"] in ("margin", "composite") and c["run"] == f"{c['loss']}, steepest 0.05"
    w = reports.worst_case(res, convergence={"Vanilla": c})
    assert w.loc["Vanilla", "converged"] and "converged 95% CI" in w.columns
    with pytest.raises(ValueError, match="within L2 2.0"):
        suite.convergence_study(cache, res, "Vanilla", n=10, steps=4, size_steps=2, step_sizes=[0.1], norm="l2",
                                eps=2.0)


def test_worst_run_is_the_strongest_single_run_of_the_budget(trained, mnist_small, tmp_path):
    cache = ArtefactCache(tmp_path / "c")
    x, y, xh = evaluation.attacked_points(mnist_small, 20, seed=0)
    specs = [{"name": f"PGD Linf 0.3, {'T' if t else 'U'}", "table": 2, "method": "pgd", "norm": "linf", "eps": 0.3,
              "targeted": t, "steps": 3, "step_sizes": [0.01], "losses": ["paper", "composite"], "fixed_step": 0.005}
             for t in (True, False)]
    res = suite.run_suite(cache, {"Vanilla": trained}, x, y, xh[:400], specs, surrogate_x={}, ps=(1, 5),
                          attack_ps=(5,), progress=False)                  # the suite aims at 5% only
    arena = res.arenas["Vanilla"]
    entries = len(list((tmp_path / "c" / "suite_attack").iterdir()))
    runs = [run for s in specs
            for run in suite.white_box_runs(arena, p=5, **{k: v for k, v in s.items() if k not in ("name", "table")})]
    found = [evaluation.best_per_p(arena, {5: suite.candidates(suite.pgd_run(cache, arena, **run))}) for run in runs]
    every = [(run, arena.evaluate(f)["ASR-1"]) for run, f in zip(runs, found)]
    assert len(every) == 6 and len({r["step_size"] for r, _ in every}) == 2     # two losses and the fixed step, x2
    assert len(list((tmp_path / "c" / "suite_attack").iterdir())) == entries   # every run was the suite's own
    spec, run, asr = suite.worst_run(cache, res, "Vanilla", "linf", 0.3)
    assert asr == max(a for _, a in every) and run in [r for r, a in every if a == asr]
    assert spec["targeted"] == run["targeted"] and run["p"] == 5
    assert len(list((tmp_path / "c" / "suite_attack").iterdir())) == entries   # choosing it computed nothing
    c = suite.convergence_study(cache, res, "Vanilla", n=10, steps=8, size_steps=2, step_sizes=[0.1])
    assert c["loss"] == run["loss"] and c["run"] == suite.run_label(run) and c["attack"] == spec["name"]


def test_ranking_phrase_ranks_only_outside_the_intervals():
    text = reports.ranking_phrase({"A": (0.05, 500), "B": (0.07, 500), "C": (0.5, 500)}, [("A", "B"), ("A", "C")])
    assert "lowest worst-case ASR-1 is **A**" in text and "overlaps those of B" in text
    assert "C lie clearly above" in text
    assert "A 0.05" in text and "cannot be ranked" in text and "is clearly lower than C" in text
    assert text.startswith("The lowest")
    among = reports.ranking_phrase({"A": (0.05, 500), "B": (0.07, 500)}, among="Of the defences that passed (A, B)")
    assert among.startswith("Of the defences that passed (A, B), the lowest worst-case ASR-1 is **A**'s")


def test_a_figure_that_failed_a_check_ranks_only_above_a_sound_one():
    shares = {"A": (0.05, 500), "B": (0.5, 500), "C": (0.2, 500)}
    # B failed a check: its 0.5 is a lower bound, so it can still lie clearly above A, whose figure is sound
    assert reports.rank_pair("A", "B", shares, {"A": True, "B": False}) == -1
    assert reports.rank_pair("B", "A", shares, {"A": True, "B": False}) == 1
    # but a lower bound never lies clearly below anything: A unsound cannot be ranked below B
    assert reports.rank_pair("A", "B", shares, {"A": False, "B": True}) == 0
    assert reports.rank_pair("A", "B", shares) == -1                        # no soundness given: all sound
    text = reports.ranking_phrase(shares, [("A", "B"), ("C", "A")], sound={"A": False, "B": True, "C": True})
    assert "lowest worst-case ASR-1 is **C**" in text and "B lie clearly above" in text
    assert "lower bounds of A (checks failed)" in text
    assert "cannot be ranked (A's figure, the lower one, failed a check" in text
    assert "A 0.05 (0.03-0.07) and B" in text
    none = reports.ranking_phrase(shares, sound={k: False for k in shares})
    assert "none is ranked" in none


def test_soundness_by_norm_reads_only_the_checks_of_that_norm():
    checks = pd.DataFrame([{"defence": "D", "check": "PGD L2 6.0, U reaches", "passed": False, "norm": "l2"},
                           {"defence": "D", "check": "PGD Linf 1, U reaches", "passed": True, "norm": "linf"},
                           {"defence": "E", "check": "PGD Linf 1, U reaches", "passed": False, "norm": "linf"}])
    assert reports.suite_soundness(checks) == {"D": False, "E": False}
    assert reports.suite_soundness(checks, norm="linf") == {"D": True, "E": False}
    assert reports.suite_soundness(checks, norm="l2") == {"D": False, "E": True}    # E has no L2 check
    assert reports.glue_name("GAT integrated") == "gat_integrated" and reports.glue_name("L-Ben") == "l_ben"


def test_beside_paper_shades_the_cells_worse_than_the_paper():
    t = pd.DataFrame({"ASR-1": [0.2, 0.05, 0.3], "paper ASR-1": [0.1, 0.1, np.nan], "EROC": [0.9, 0.99, 0.5],
                      "paper EROC": [0.95, 0.9, np.nan]}, index=["a", "b", "c"])
    styler = reports.beside_paper(t)
    html = styler.to_html()
    styles = styler._compute().ctx                           # (row, col) -> [(property, value)]
    shaded = {(t.index[r], t.columns[c]) for (r, c), props in styles.items() if props}
    assert shaded == {("a", "ASR-1"), ("a", "EROC")}        # higher ASR and lower EROC than the paper's
    assert "0.200" in html and "worse than the paper" in html


def test_checks_overview_groups_checks_into_families_and_counts_failures():
    checks = pd.DataFrame([
        {"defence": "A", "check": "PGD Linf 1, U reaches ASR-1 >= 0.9", "value": "0.95", "passed": True},
        {"defence": "A", "check": "PGD L2 6.0, U reaches ASR-1 >= 0.9", "value": "0.50", "passed": False},
        {"defence": "A", "check": "CW L2 2.0 >= PGD L2 2.0, U", "value": "0.4 vs 0.5", "passed": False},
        {"defence": "B", "check": "PGD Linf 1, U reaches ASR-1 >= 0.9", "value": "1.00", "passed": True},
        {"defence": "B", "check": "PGD L2 6.0, U reaches ASR-1 >= 0.9", "value": "1.00", "passed": True},
        {"defence": "B", "check": "NES Linf 0.3 <= white-box", "value": "0.1 vs 0.5", "passed": True}])
    table = reports.checks_overview(checks)
    assert list(table.index) == ["A", "B"] and len(table.columns) == 3
    assert table.loc["A", "unbounded budgets reach 0.9"] == "FAIL (1 of 2)"
    assert table.loc["B", "unbounded budgets reach 0.9"] == "pass"
    assert table.loc["A", "CW >= PGD"] == "FAIL (1 of 1)" and table.loc["B", "CW >= PGD"] == "-"
    assert table.loc["A", "black-box <= white-box"] == "-" and table.loc["B", "black-box <= white-box"] == "pass"


def test_convergence_table_names_step_sizes_by_their_fraction_of_eps():
    conv = {d: {"attack": "PGD Linf 0.3, U", "run": "composite, apgd 0.6", "rule": "apgd",
                "n": 90, "suite steps": 100, "at suite steps": 0.5,
                "steps": [1, 2, 500, 1000], "asr": [0.1, 0.2, 0.55, 0.56], "gain": 0.01, "converged": True,
                "eps": eps, "size steps": 50, "sizes": {eps / 30: 0.4, eps / 6: 0.3}}
            for d, eps in (("A", 0.3), ("B", 15.0))}
    table = reports.convergence_table(conv)
    assert list(table.columns[-2:]) == ["50 steps of eps/30", "50 steps of eps/6"]   # one column per fraction
    assert table.loc["B", "50 steps of eps/30"] == 0.4 and table.loc["A", "ASR-1 at 1000"] == 0.56
    assert table.loc["A", "attack"] == "PGD Linf 0.3, U" and table.loc["A", "strongest run"].startswith("composite")
    assert len(table.columns) <= 10


def test_beside_paper_shades_worse_cells_and_prints_counts_without_decimals():
    table = pd.DataFrame({"ASR-1": [0.2, 0.05], "paper ASR-1": [0.1, 0.1], "EROC": [0.9, 0.99],
                          "paper EROC": [0.95, 0.95], "n found": [40.0, np.nan]}, index=["A", "B"])
    html = reports.beside_paper(table).to_html()
    style = html.split("</style>")[0]
    assert "background-color: #f6d5d5" in style
    shaded = re.findall(r"#T_\w+?_(row\d+_col\d+)", style)
    assert sorted(shaded) == ["row0_col0", "row0_col2"]   # A's ASR-1 (higher) and A's EROC (lower) are worse
    assert ">40<" in html and ">0.200<" in html


def test_beside_paper_tables_take_the_books_dataframe_style():
    table = pd.DataFrame({"ASR-1": [0.2], "paper ASR-1": [0.1]}, index=["A"])
    assert 'class="dataframe"' in reports.beside_paper(table).to_html()


def test_checks_and_tables_compare_a_subset_attack_on_its_own_images():
    """The unbounded budget and the multi-targeted attack ran on the first 4 of 10 images: the eps chain and the
    multi-targeted table compare every attack on those 4 only. On them L-inf 0.3 breaks 3 and 0.4 all 4, so an
    unbounded attack that breaks all 4 does not fall as eps grows (on all ten images 0.4 breaks 0.5)."""
    specs = SPECS + [{"name": "PGD Linf 0.3, T", "table": 2, "method": "pgd", "norm": "linf", "eps": 0.3},
                     {"name": "Multi-targeted Linf 0.3", "table": "mt", "method": "multi-targeted", "norm": "linf",
                      "eps": 0.3}]
    succ = {"PGD Linf 0.3, U": [1, 1, 1, 0] + [0] * 6, "PGD Linf 0.3, T": [0, 1, 0, 0] + [0] * 6,
            "PGD Linf 0.4, U": [1] * 4 + [1] + [0] * 5, "PGD Linf 1, U": [1] * 4,
            "Multi-targeted Linf 0.3": [1, 1, 1, 1], "NES Linf 0.3": [0] * 10, "AutoAttack Linf 0.3": [0] * 10}
    s = _fake_suite(succ, specs)
    table = reports.sanity_checks(s)
    chain = table[table["check"].str.startswith("ASR-1 grows with linf")].iloc[0]
    assert chain["passed"] and chain["value"] == "1.00 -> 1.00 -> 1.00 (first 4)"
    mt = reports.multi_targeted_comparison(s).loc[("D", "Linf 0.3")]
    assert mt["images"] == 4 and (mt["PGD targeted"], mt["PGD untargeted"]) == pytest.approx((0.25, 0.75))
    assert mt["multi-targeted"] == pytest.approx(1.0)
    s.results[("D", "PGD Linf 1, U")]["success"] = torch.tensor([1, 0, 0, 0], dtype=torch.bool)
    chain = reports.sanity_checks(s)
    assert not chain[chain["check"].str.startswith("ASR-1 grows with linf")].iloc[0]["passed"]


def test_strongest_lets_a_subset_attack_compete_only_on_its_images(trained, mnist_small, tmp_path):
    x, y, xh = evaluation.attacked_points(mnist_small, 12, seed=0)
    specs = [{"name": "PGD Linf 0.1, U", "table": 2, "method": "pgd", "norm": "linf", "eps": 0.1, "targeted": False,
              "steps": 3, "step_sizes": [0.03]},
             {"name": "Multi-targeted Linf 0.1", "table": "mt", "method": "multi-targeted", "norm": "linf",
              "eps": 0.1, "steps": 3, "step_size": 0.03, "n": 5}]
    res = suite.run_suite(ArtefactCache(tmp_path / "c"), {"Vanilla": trained}, x, y, xh[:400], specs,
                          surrogate_x={}, ps=(1, 5), progress=False)
    assert res.results[("Vanilla", "Multi-targeted Linf 0.1")]["n"] == 5
    best = reports.strongest(res, "Vanilla", "linf", 0.1)
    assert best.shape == x.shape
    assert torch.equal(best[5:], res.results[("Vanilla", "PGD Linf 0.1, U")]["x_adv"][5:])
    curves = reports.classification_curves(res, "linf", 0.1)
    assert set(curves) == {"Vanilla"}


def test_sanity_checks_fail_where_a_papers_own_attack_beats_the_suite():
    ok = {"PGD Linf 0.3, U": [1] * 5 + [0] * 5, "PGD Linf 0.4, U": [1] * 7 + [0] * 3,
          "PGD Linf 1, U": [1] * 10, "NES Linf 0.3": [0] * 10, "AutoAttack Linf 0.3": [1] * 5 + [0] * 5}
    protocols = pd.DataFrame([
        {"defence": "D", "paper's attack": "nearest wrong, sign 100 x 0.01", "images": 10, "its ASR-1": 0.6,
         "all our L-inf 0.3 attacks": 0.5, "found only by it": 1, "eligible": 10},
        {"defence": "D", "paper's attack": "nearest wrong, sign 100 x 0.01, targeted", "images": 10, "its ASR-1": 0.2,
         "all our L-inf 0.3 attacks": 0.5, "found only by it": 0, "eligible": 10}]).set_index(
        ["defence", "paper's attack"])
    table = reports.sanity_checks(_fake_suite(ok, SPECS), protocols=protocols)
    mine = table[table["check"].str.startswith("the paper's own attack")]
    assert list(mine["passed"]) == [False, True]
    assert mine.iloc[0]["value"] == "0.60 vs 0.50 (1 of 10 found only by it)"
    assert {reports.check_family(c) for c in mine["check"]} == {"AutoAttack, APGD, the papers' attacks add <= 2 points"}
    assert len(reports.sanity_checks(_fake_suite(ok, SPECS))) == len(table) - 2      # no table, no such check


def test_score_unit_is_the_spread_of_the_finite_held_out_scores():   # AutoAttack's composite classifier
    assert evaluation.score_unit(torch.tensor([1.0, 3.0, float("inf")])) == pytest.approx(2 ** 0.5)
    assert evaluation.score_unit(torch.zeros(5)) == 1.0 and evaluation.score_unit(torch.ones(1)) == 1.0


def test_suite_costs_sum_each_defences_seconds_by_kind_of_attack():
    specs = SPECS[:2] + [{"name": "PGD Linf 0.3, T", "table": 2, "method": "pgd", "norm": "linf", "eps": 0.3},
                         {"name": "CW L2 2.0", "table": 4, "method": "cw", "eps": 2.0}] + SPECS[2:]
    result = _fake_suite({s["name"]: [1] * 10 for s in specs}, specs)
    result.arenas["E"] = result.arenas["D"]
    for i, s in enumerate(specs):
        result.results[("D", s["name"])]["seconds"] = float(i + 1)
        result.results[("E", s["name"])] = {**result.results[("D", s["name"])], "seconds": 10.0}
    with pytest.raises(ValueError, match="measure"):
        reports.suite_costs(result, measure="wall")
    unknown = reports.suite_costs(result)                                 # nothing recorded its compute time
    assert unknown.isna().all().all()
    for key, r in result.results.items():
        r["compute seconds"] = r["seconds"] * 2
    compute = reports.suite_costs(result, convergence={"D": {"compute seconds": 5.0}})
    assert compute.loc["D", "PGD Linf 0.3"] == 2 * (1 + 3) and compute.loc["D", "convergence study"] == 5.0
    assert np.isnan(compute.loc["E", "convergence study"]) and np.isnan(compute.loc["total", "total"])
    table = reports.suite_costs(result, measure="this run")
    assert list(table.index) == ["D", "E", "total"]
    assert list(table.columns) == ["PGD Linf 0.3", "PGD Linf 0.4", "CW L2 2.0", "unbounded budgets", "black-box",
                                   "AutoAttack", "total"]
    assert table.loc["D", "PGD Linf 0.3"] == 1 + 3                       # targeted and untargeted together
    assert table.loc["D", "total"] == sum(range(1, len(specs) + 1))
    assert table.loc["E", "PGD Linf 0.3"] == 20 and table.loc["total", "total"] == table.loc[["D", "E"], "total"].sum()


def test_attack_overview_lists_each_attack_with_its_fixed_step_run_and_seconds():
    specs = [{**SPECS[0], "rule": "apgd", "steps": 50, "fixed_step": 0.01, "fixed_steps": 100},
             {**SPECS[1], "rule": "apgd", "steps": 10, "fixed_step": 0.01, "fixed_for": ["D", "E"]}, SPECS[3]]
    result = _fake_suite({s["name"]: [1] * 10 for s in specs}, specs)
    result.arenas["E"] = result.arenas["D"]
    for i, s in enumerate(specs):
        result.results[("D", s["name"])]["seconds"] = float(i + 1)
        result.results[("E", s["name"])] = {**result.results[("D", s["name"])], "seconds": 10.0}
    table = reports.attack_overview(result)
    assert list(table.index) == [s["name"] for s in specs]
    assert table.loc["PGD Linf 0.3, U", "steps"] == 50 and table.loc["PGD Linf 0.3, U", "fixed-step run"] == "100 x 0.01"
    assert table.loc["PGD Linf 0.4, U", "fixed-step run"] == "10 x 0.01 (D, E)"
    assert table.loc["NES Linf 0.3", "fixed-step run"] == "-" and table.loc["NES Linf 0.3", "step rule"] == "-"
    assert table.loc["PGD Linf 0.4, U", "threat model"] == ("linf", 0.4) and table["images"].eq(10).all()
    assert table.loc["PGD Linf 0.3, U", "seconds this run (all defences)"] == 1 + 10


def test_a_cached_attack_keeps_the_seconds_it_took_to_compute(trained, mnist_small, tmp_path):
    cache = ArtefactCache(tmp_path / "c")
    arena = _arena(trained, mnist_small, n=10)
    kw = dict(loss="composite", norm="linf", eps=0.3, targeted=False, steps=5, step_size=0.05)
    first, spent = suite.metered(suite.pgd_run, cache, arena, **kw)
    again, loaded = suite.metered(suite.pgd_run, cache, arena, **kw)
    assert spent > 0 and loaded == pytest.approx(spent)          # read back from the cache: the same cost
    assert torch.equal(first["x_adv"], again["x_adv"])
    both, total = suite.metered(lambda: [suite.pgd_run(cache, arena, **kw), suite.pgd_run(cache, arena, **kw)])
    assert total == pytest.approx(2 * spent)
    _, nothing = suite.metered(lambda: None)
    assert nothing == 0.0


def test_decision_attacks_start_only_from_points_that_stay_adversarial_in_the_batch_they_are_given():
    def model(x):   # a decision that moves with the batch size, as a CPU's rounding can
        return x.flatten(1)[:, 0] + 0.01 * len(x)

    def adversarial(labels):
        return lambda inputs, outputs: outputs > 0.5

    start = torch.tensor([0.47, 0.2, 0.49, 0.6]).reshape(4, 1, 1, 1)
    labels = torch.zeros(4, dtype=torch.long)
    assert (model(start) > 0.5).tolist() == [True, False, True, True]          # the whole batch: three pass
    valid = blackbox.usable_starts(model, adversarial, start, labels)
    assert valid.tolist() == [False, False, True, True]                        # in their own batch, two stay
    assert bool((model(start[valid]) > 0.5).all())
    assert not blackbox.usable_starts(model, adversarial, start[:2] * 0, labels[:2]).any()


def test_judges_verdict_needs_intervals_apart_and_names_a_split():
    claim = "the claim"
    assert reports.judges_verdict({"kNN": (0.5, 0.1), "CNN": (0.6, 0.1)}, 200, claim) == "Every judge agrees with the claim"
    assert reports.judges_verdict({"kNN": (0.1, 0.5)}, 200, claim) == "Every judge goes against the claim"
    assert "does not decide" in reports.judges_verdict({"kNN": (0.04, 0.02), "CNN": (0.05, 0.03)}, 200, claim)
    split = reports.judges_verdict({"kNN": (0.04, 0.02), "CNN": (0.14, 0.03)}, 200, claim)   # chapter 06's case
    assert split.startswith("The judges differ") and "for the kNN judge the two 95% intervals overlap" in split
    assert "for the CNN judge the first shows it more often" in split


class _Tied(torch.nn.Module):
    """Two logits that differ by 1e-3 of ~400 in float32 (class 1 ahead) and tie once rounded to bfloat16,
    where the argmax then says class 0."""

    num_outputs = 2

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(784, 2, bias=False)
        with torch.no_grad():
            self.linear.weight.fill_(1.0)
            self.linear.weight[1] += 1e-3

    def forward(self, x):
        return self.linear(x.flatten(1))


def test_a_bfloat16_objective_judges_success_in_float32():
    d = defences.ClassifierDefence("tied", _Tied())
    x, y = torch.full((3, 1, 28, 28), 0.5), torch.ones(3, dtype=torch.long)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert d.outputs(x).logits.argmax(1).tolist() == [0, 0, 0]   # rounded, the label looks beaten
    exact_loss, exact = objectives.objective(d, "margin", objectives.Criterion())(x, y)
    fast = objectives.objective(d, "margin", objectives.Criterion(), also=[objectives.Criterion()],
                                precision="bf16")
    xa = x.clone().requires_grad_(True)
    loss, success = fast(xa, y)
    assert not exact.any() and success.shape == (3, 2) and not success.any()   # float32 decides: not fooled
    assert loss.dtype == torch.float32
    (g,) = torch.autograd.grad(loss.sum(), xa)                                  # the gradient still flows
    assert g.shape == x.shape and torch.isfinite(g).all()
    with pytest.raises(ValueError, match="unknown precision"):
        objectives.objective(d, "margin", precision="fp16")


def test_bfloat16_attacks_break_the_undefended_model_and_are_cached_apart(trained, mnist_small, tmp_path):
    cache = ArtefactCache(tmp_path / "c")
    x, y, xh = evaluation.attacked_points(mnist_small, 20, seed=0)
    exact = evaluation.Arena(trained, x, y, xh[:400], ps=(1, 5))
    fast = evaluation.Arena(trained, x, y, xh[:400], ps=(1, 5), precision="bf16")
    kw = dict(loss="composite", norm="linf", eps=0.3, targeted=False, steps=10, step_size=0.05)
    a, b = suite.pgd_run(cache, exact, **kw), suite.pgd_run(cache, fast, **kw)
    assert len(list((tmp_path / "c" / "suite_attack").iterdir())) == 2
    assert fast.evaluate(b["x_adv"])["ASR-1"] >= 0.9 and exact.evaluate(a["x_adv"])["ASR-1"] >= 0.9
    assert (b["x_adv"] - x).abs().max() <= 0.3 + 1e-6
    with pytest.raises(ValueError, match="unknown precision"):
        evaluation.Arena(trained, x, y, xh[:400], ps=(1, 5), precision="half")


def test_the_suite_takes_a_precision_per_defence_and_names_unknown_ones(trained, mnist_small, tmp_path):
    x, y, xh = evaluation.attacked_points(mnist_small, 10, seed=0)
    both = {"Vanilla": trained, "FS": defences.FeatureSqueezing(trained.classifier, size=2)}
    specs = [{"name": "FGSM Linf 0.1", "table": 4, "method": "fgsm", "norm": "linf", "eps": 0.1}]
    kw = dict(surrogate_x={}, ps=(1, 5), progress=False)
    out = suite.run_suite(ArtefactCache(tmp_path / "c"), both, x, y, xh[:300], specs, precision={"FS": "bf16"}, **kw)
    assert {n: a.precision for n, a in out.arenas.items()} == {"Vanilla": "fp32", "FS": "bf16"}
    with pytest.raises(ValueError, match="does not attack: GAT"):
        suite.run_suite(ArtefactCache(tmp_path / "c"), both, x, y, xh[:300], specs, precision={"GAT": "bf16"}, **kw)


def test_the_apgd_check_runs_in_float32_whatever_the_suite_s_precision():
    specs = suite.attack_specs(profiles.defaults("adaptive", "cpu"))
    assert all(s["precision"] == "fp32" for s in specs if s["table"] == "apgd")
    assert not any("precision" in s for s in specs if s["table"] != "apgd")


def test_evaluating_the_best_examples_reuses_their_candidates_decisions(trained, mnist_small, tmp_path):
    cache = ArtefactCache(tmp_path / "c")
    arena = _arena(trained, mnist_small, n=20)
    strong = suite.white_box(cache, arena, method="pgd", norm="linf", eps=0.3, steps=5, step_sizes=[0.05])[1]
    best = evaluation.best_per_p(arena, {1: [arena.x, strong]})
    fresh = evaluation.Arena(trained, arena.x, arena.y, arena.x_heldout, ps=(1, 5))   # remembers nothing
    remembered, decided = arena.evaluate(best), fresh.evaluate({p: v.clone() for p, v in best.items()})
    for key in ("ASR-1", "ASR-5", "EROC", "EROC, misclassified"):
        assert remembered[key] == decided[key]
    assert torch.equal(remembered["pred"], decided["pred"]) and torch.allclose(remembered["score"], decided["score"])
    changed = best[1].clone()
    changed[0] = arena.x[0]                          # other bytes: decided anew, not taken from the memory
    assert torch.equal(arena.decide(changed)[0], trained.decide(changed)[0])


def test_held_out_decisions_are_cached_and_checked(trained, mnist_small, tmp_path):
    cache = ArtefactCache(tmp_path / "c")
    x, y, xh = evaluation.attacked_points(mnist_small, 10, seed=0)
    pred, score = suite.heldout_decisions(cache, trained, xh[:300])
    assert torch.equal(pred, trained.decide(xh[:300])[0])
    again = suite.heldout_decisions(cache, trained, xh[:300])
    assert torch.equal(again[1], score) and len(list((tmp_path / "c" / "heldout_decisions").iterdir())) == 1
    arena = evaluation.Arena(trained, x, y, xh[:300], ps=(1, 5), decided_heldout=(pred, score))
    assert torch.equal(arena.tau[1], evaluation.Arena(trained, x, y, xh[:300], ps=(1, 5)).tau[1])
    with pytest.raises(ValueError, match="one prediction and one score per held-out input"):
        evaluation.Arena(trained, x, y, xh[:300], ps=(1, 5), decided_heldout=(pred[:10], score[:10]))


def test_the_benchmarks_inputs_refuse_an_unknown_defence_before_loading_anything(monkeypatch):
    monkeypatch.setattr(chapters, "book_defences", lambda *a, **k: pytest.fail("built the defences first"))
    with pytest.raises(ValueError, match="unknown defence.*Nope: choose among GAT integrated, GAT generative"):
        chapters.head_to_head_inputs("smoke", "Madry,Nope")
