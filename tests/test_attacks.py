import math

import pytest
import torch

from advdetect import attacks, data, models
from advdetect.defences import ClassifierDefence
from advdetect.objectives import Criterion, objective, raise_logit
from advdetect.training import accuracy, train_classifier

TOL = 1e-5


def untargeted_margin(model):
    """CW's margin on a plain classifier; success = misclassified."""
    return objective(ClassifierDefence("undefended", model), "margin")


def _toy_classifier():
    torch.manual_seed(0)
    return models.MadryCNN(10, width=0.25).eval()


BUDGETS = {"linf": 0.3, "l2": 2.0, "l1": 15.0, "l0": 25}


@pytest.mark.parametrize("norm", attacks.NORMS)
@pytest.mark.parametrize("rule", ["steepest", "adam", "momentum", "apgd"])
@pytest.mark.parametrize("start", [False, True])
def test_iterates_stay_in_the_eps_ball_and_the_box(norm, rule, start):
    model = _toy_classifier()
    x = torch.rand(8, 1, 28, 28)
    y = torch.randint(0, 10, (8,))
    eps = BUDGETS[norm]
    res = attacks.attack(untargeted_margin(model), x, y, norm=norm, eps=eps, steps=5,
                         step_size=eps / 4 if norm != "l0" else 1.0, rule=rule, random_start=start)
    delta = res.x_adv - x
    assert float(res.x_adv.min()) >= 0.0 and float(res.x_adv.max()) <= 1.0
    assert bool((attacks.norms(delta, norm) <= eps * (1 + TOL) + TOL).all()), attacks.norms(delta, norm)
    assert res.x_adv.shape == x.shape and res.loss.shape == (8,) and res.success.dtype == torch.bool


def test_reported_loss_is_the_objective_at_the_returned_point():
    model = _toy_classifier()
    x, y = torch.rand(6, 1, 28, 28), torch.randint(0, 10, (6,))
    obj = untargeted_margin(model)
    res = attacks.attack(obj, x, y, eps=0.1, steps=7, step_size=0.02, random_start=True, restarts=3)
    with torch.no_grad():
        again, succ = obj(res.x_adv, y)
    assert torch.allclose(again, res.loss, atol=1e-5) and torch.equal(succ, res.success)
    assert res.gradient_evaluations == 21


def test_more_restarts_never_hurt_and_early_stop_saves_work():
    model = _toy_classifier()
    x, y = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
    obj = untargeted_margin(model)
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    one = attacks.attack(obj, x, y, eps=0.05, steps=3, step_size=0.01, random_start=True, generator=g())
    three = attacks.attack(obj, x, y, eps=0.05, steps=3, step_size=0.01, random_start=True, restarts=3,
                           generator=g())
    assert bool(((three.loss <= one.loss + 1e-6) | (three.success & ~one.success)).all())
    full = attacks.attack(obj, x, y, eps=1.0, steps=50, step_size=0.1)
    early = attacks.attack(obj, x, y, eps=1.0, steps=50, step_size=0.1, early_stop=True)
    assert bool(early.success.all()) and early.gradient_evaluations < full.gradient_evaluations


@pytest.mark.parametrize("rule", ["steepest", "adam", "momentum", "apgd"])
def test_early_stop_drops_succeeded_samples_and_keeps_the_same_outcome(rule):
    """With early_stop a sample that has succeeded leaves the batch: the samples still attacked follow the very
    path they follow without it, so the success flags and the trace agree, and fewer samples are evaluated."""
    torch.manual_seed(0)
    model = _toy_classifier()
    x, y = torch.rand(24, 1, 28, 28), torch.randint(0, 10, (24,))
    base = untargeted_margin(model)
    seen = []

    def obj(x_adv, labels):
        seen.append(len(x_adv))
        return base(x_adv, labels)

    kw = dict(eps=0.03, steps=12, step_size=0.006, rule=rule, random_start=True, trace=True)
    full = attacks.attack(obj, x, y, generator=torch.Generator().manual_seed(3), **kw)
    evaluated_full, seen[:] = sum(seen), []
    early = attacks.attack(obj, x, y, early_stop=True, generator=torch.Generator().manual_seed(3), **kw)
    assert 0 < int(full.success.sum()) < len(x), "the test needs some samples to succeed and some to resist"
    assert torch.equal(early.success, full.success) and torch.equal(early.trace, full.trace)
    resisted = ~full.success
    assert torch.allclose(early.x_adv[resisted], full.x_adv[resisted], atol=1e-6)
    assert sum(seen) < evaluated_full
    again, succ = base(early.x_adv, y)
    assert torch.equal(succ, early.success)


def test_l1_projection_matches_the_soft_threshold_by_bisection():
    torch.manual_seed(1)
    d = torch.randn(5, 50) * 3
    p = attacks.project_l1_ball(d, 4.0)
    for row, prow in zip(d, p):
        lo, hi = 0.0, float(row.abs().max())
        for _ in range(100):
            theta = (lo + hi) / 2
            if float((row.abs() - theta).clamp_min(0).sum()) > 4.0:
                lo = theta
            else:
                hi = theta
        expect = torch.sign(row) * (row.abs() - hi).clamp_min(0)
        assert torch.allclose(prow, expect, atol=1e-4)
    inside = torch.full((1, 10), 0.1)
    assert torch.equal(attacks.project_l1_ball(inside, 4.0), inside)


def test_l0_projection_keeps_the_k_largest():
    d = torch.tensor([[0.1, -0.9, 0.5, 0.0, 0.3]])
    assert torch.equal(attacks.project_l0_ball(d, 2), torch.tensor([[0.0, -0.9, 0.5, 0.0, 0.0]]))


def test_fgsm_is_one_signed_step_of_size_eps():
    w = torch.tensor([1.0, -2.0, 3.0])
    x = torch.full((2, 3), 0.5)
    res = attacks.fgsm(lambda z, _: -(z @ w), x, None, eps=0.1)   # raise w.z: step along sign(w)
    assert torch.allclose(res.x_adv - x, 0.1 * torch.sign(w).expand(2, 3), atol=1e-6)
    assert res.gradient_evaluations == 1


def test_unconstrained_attack_only_clips_to_the_box():
    model = models.MLP(2, (16,), 1)
    x = torch.zeros(4, 2)
    res = attacks.attack(lambda z, _: -model(z).squeeze(1), x, None, norm="l2", eps=math.inf, steps=20,
                         step_size=1.0, bounds=(-2.0, 2.0))
    assert float(res.x_adv.abs().max()) <= 2.0


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="linf, l2, l1, l0"):
        attacks.attack(lambda z, _: z.sum(1), torch.rand(2, 3), norm="l3", eps=1, steps=1, step_size=1)
    with pytest.raises(ValueError, match="step rule"):
        attacks.attack(lambda z, _: z.sum(1), torch.rand(2, 3), rule="newton", eps=1, steps=1, step_size=1)


def test_chunked_attack_equals_one_batch():
    model = _toy_classifier()
    x, y = torch.rand(10, 1, 28, 28), torch.randint(0, 10, (10,))
    obj = untargeted_margin(model)
    whole = attacks.attack(obj, x, y, eps=0.2, steps=4, step_size=0.05)
    parts = attacks.attack(obj, x, y, eps=0.2, steps=4, step_size=0.05, batch_size=3)
    assert torch.allclose(whole.x_adv, parts.x_adv, atol=1e-6)


def test_engine_breaks_an_undefended_mnist_cnn(mnist_small, tmp_path):
    """Smoke scale: one epoch of a natural Madry CNN on mnist_small, then 20-step L-inf 0.3 PGD."""
    torch.manual_seed(0)
    model = models.MadryCNN(10, width=0.5)
    train_classifier(None, model, mnist_small.x_train, mnist_small.y_train,
                     epochs=1, lr=1e-3, batch_size=64, progress=False)
    x, y = data.subset(mnist_small.x_test, mnist_small.y_test, 200, seed=0)
    assert accuracy(model, x, y) > 0.85
    model.eval()
    res = attacks.attack(untargeted_margin(model), x, y, eps=0.3, steps=20, step_size=0.03,
                         random_start=True)
    assert accuracy(model, res.x_adv, y) < 0.05
    assert float((res.x_adv - x).abs().max()) <= 0.3 + 1e-6


def test_mim_and_targeted_and_logit_objectives_drive_an_undefended_model():
    """MIM (decay 0.9) with the targeted CW loss reaches the target; raising a logit raises it."""
    torch.manual_seed(0)
    model = models.MLP(4, (16, 16), 3).eval()
    x = torch.rand(32, 4)
    target = torch.full((32,), 2)
    start_logit = model(x)[:, 2].detach()
    model.num_outputs = 3
    targeted = objective(ClassifierDefence("undefended", model), "margin", Criterion(targeted=True), targeted=True)
    res = attacks.mim(targeted, x, (target, target), norm="linf", eps=1.0, steps=50, step_size=0.05)
    assert float((res.x_adv - x).abs().max()) <= 1.0 + 1e-6
    with torch.no_grad():
        hit = model(res.x_adv).argmax(1) == 2
    assert torch.equal(hit, res.success) and float(hit.float().mean()) > 0.5
    raised = attacks.attack(raise_logit(model), x, target, eps=0.2, steps=10, step_size=0.05)
    with torch.no_grad():
        assert bool((model(raised.x_adv)[:, 2] >= start_logit - 1e-6).all())


def test_trace_records_success_so_far_after_every_step():
    model = _toy_classifier()
    x, y = torch.rand(6, 1, 28, 28), torch.randint(0, 10, (6,))
    res = attacks.attack(untargeted_margin(model), x, y, norm="linf", eps=0.3, steps=7, step_size=0.05,
                         trace=True, batch_size=4)
    assert res.trace.shape == (7, 6) and res.trace.dtype == torch.bool
    assert bool((res.trace[1:].int() >= res.trace[:-1].int()).all())      # once successful, always
    assert torch.equal(res.trace[-1], res.success)
    assert attacks.attack(untargeted_margin(model), x, y, norm="linf", eps=0.3, steps=2,
                          step_size=0.05).trace is None


def test_apgd_checkpoints_follow_croce_and_hein():
    assert attacks.apgd_checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert attacks.apgd_checkpoints(10) == [2, 3, 4, 5, 6, 7, 8, 9]
    assert attacks.apgd_checkpoints(1) == []


def test_apgd_halves_a_step_that_overshoots_and_converges_where_fixed_steps_oscillate():
    """A quadratic bowl with its minimum inside the ball: fixed sign steps of 2 eps keep jumping across it;
    APGD halves its step at the checkpoints and ends close to the minimum."""
    centre = torch.full((4, 1, 2, 2), 0.55)

    def bowl(x_adv, y):
        return ((x_adv - centre) ** 2).flatten(1).sum(1)

    x = torch.full((4, 1, 2, 2), 0.5)
    kw = dict(norm="linf", eps=0.3, steps=100, step_size=0.6)
    fixed = attacks.attack(bowl, x, None, rule="sign", **kw)
    apgd = attacks.attack(bowl, x, None, rule="apgd", **kw)
    assert float(fixed.loss.max()) > 1e-3
    assert float(apgd.loss.max()) < 1e-5
    assert torch.allclose(apgd.x_adv, centre, atol=2e-3)


def test_apgd_breaks_an_undefended_model_at_least_as_often_as_pgd():
    model = _toy_classifier()
    torch.manual_seed(1)
    x, y = torch.rand(32, 1, 28, 28), torch.randint(0, 10, (32,))
    kw = dict(norm="linf", eps=0.05, steps=20, random_start=False)
    pgd = attacks.attack(untargeted_margin(model), x, y, rule="sign", step_size=0.0125, **kw)
    apgd = attacks.attack(untargeted_margin(model), x, y, rule="apgd", step_size=0.1, **kw)
    assert int(apgd.success.sum()) >= int(pgd.success.sum())
    assert float(apgd.loss.mean()) <= float(pgd.loss.mean()) + 1e-6


@pytest.mark.parametrize("early_stop", [False, True])
def test_a_run_aimed_at_one_criterion_keeps_the_first_iterate_that_met_each_other(early_stop):
    """Minimise sum(x) from x = 1 with steps of 0.1 (the box keeps it in [0, 1]): success means sum(x) below
    1.0 (aimed at; never reached by sample 1, which may only move one coordinate) and, watched on the way,
    below 3.5 and below 0.5."""
    x = torch.ones(2, 4)
    movable = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0]])

    def fn(xa, rows_mask):
        total = xa.sum(1)
        return (xa * rows_mask).sum(1), torch.stack([total < 1.0, total < 3.5, total < 0.5], 1)

    res = attacks.attack(fn, x, movable, norm="linf", eps=1.0, steps=30, step_size=0.1, rule="steepest",
                         early_stop=early_stop)
    assert res.success.tolist() == [True, False] and res.also.shape == (2, 2, 4)
    assert res.also_success.tolist() == [[True, early_stop is False], [True, False]]
    sums = res.also.sum(2)
    assert sums[0, 0] < 3.5 and sums[0, 0] > 3.5 - 0.4 - TOL          # the first iterate under 3.5, not a later one
    assert sums[0, 1] < 3.5 and sums[0, 1] > 3.5 - 0.1 - TOL
    assert torch.allclose(res.also[1, 1], res.x_adv[1])                # never under 0.5: the best iterate
    if early_stop:   # sample 0 stopped on meeting the aim (< 1.0), before < 0.5: its best iterate stands in
        assert torch.allclose(res.also[1, 0], res.x_adv[0])
