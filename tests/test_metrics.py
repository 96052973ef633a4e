import math

import numpy as np
import pytest

from advdetect import metrics


def test_roc_auc_hand_computed():
    # pairs (pos, neg): 3>1 yes, 3>2 yes, 0>1 no, 0>2 no -> 2 of 4
    assert metrics.roc_auc([3, 0], [1, 2]) == 0.5
    assert metrics.roc_auc([5, 6], [1, 2]) == 1.0
    with pytest.raises(ValueError):
        metrics.roc_auc([], [1])


def test_detection_curve_counts_only_fooled_and_accepted_inputs():
    clean = np.array([1.0, 2.0, 3.0, 4.0])
    adv_scores = np.array([5.0, 5.0, 0.5, 2.5])
    adv_pred = np.array([1, 0, 1, 1])
    y = np.array([0, 0, 0, 0])          # the second perturbed input is not misclassified
    c = metrics.detection_curve(clean, adv_scores, adv_pred, y, thresholds=[2.0])
    assert c.y[0] == 0.75               # 3 of 4 clean scores >= 2
    assert c.x[0] == 0.5                # inputs 0 and 3: fooled and accepted; input 1 accepted but not fooled


def test_classification_curve_hand_computed():
    c = metrics.classification_curve(clean_scores=[1, 3], clean_pred=[0, 1], clean_y=[0, 0],
                                      adv_scores=[3, 3], adv_pred=[1, 0], adv_y=[0, 0], thresholds=[0, 2])
    assert list(c.y) == [0.5, 0.0]      # accuracy: correct and accepted
    assert list(c.x) == [0.5, 0.5]      # error: misclassified and accepted


def test_threshold_at_tpr():
    assert metrics.threshold_at_tpr([1, 2, 3, 4], 0.5) == 3.0
    assert metrics.threshold_at_tpr([1, 2, 3, 4], 0.95) == 1.0


def test_thresholds_at_fpr_per_class():
    scores = np.arange(100, dtype=float)
    pred = np.zeros(100, dtype=int)
    tau = metrics.thresholds_at_fpr(scores, pred, 0.05, num_classes=2)
    assert (scores > tau[0]).mean() <= 0.05 and (scores >= tau[0]).mean() >= 0.05
    assert math.isinf(tau[1])


def test_attack_success_ratio_hand_computed():
    y = [0, 0, 1, 1]
    clean_pred = [0, 0, 1, 0]            # the last input is misclassified before the attack: not eligible
    clean_scores = [0.1, 0.9, 0.1, 0.1]  # the second is detected before the attack (0.9 > 0.5): not eligible
    adv_pred = [1, 1, 0, 1]
    adv_scores = [0.2, 0.2, 0.7, 0.1]    # the third is fooled but detected
    asr, succ, n = metrics.attack_success_ratio(y, clean_pred, clean_scores, adv_pred, adv_scores, [0.5, 0.5])
    assert (asr, succ, n) == (0.5, 1, 2)


def test_asr_p_uses_thresholds_from_heldout_data():
    held = np.linspace(0, 1, 101)
    pred = np.zeros(101, dtype=int)
    # at 10% FPR, tau is the 0.9 quantile of the held-out scores; an adversarial score of 0.95 is detected
    got = metrics.asr_p(10, held, pred, y=[1], clean_pred=[1], clean_scores=[0.0], adv_pred=[0],
                        adv_scores=[0.95], num_classes=2)
    assert got == 0.0
    got = metrics.asr_p(10, held, pred, y=[1], clean_pred=[1], clean_scores=[0.0], adv_pred=[0],
                        adv_scores=[0.5], num_classes=2)
    assert got == 1.0


def test_weighted_auc_weights_per_class_aucs_by_adversarial_share():
    benign_scores = [0.0, 1.0, 0.0, 1.0]
    benign_pred = [0, 0, 1, 1]
    adv_scores = [2.0, 2.0, 0.5]         # class 0: both above every benign -> AUC 1; class 1: 0.5 -> AUC 0.5
    adv_pred = [0, 0, 1]
    got = metrics.weighted_auc(benign_scores, benign_pred, adv_scores, adv_pred)
    assert got == pytest.approx(2 / 3 * 1.0 + 1 / 3 * 0.5)


def test_eroc_counts_an_example_the_attack_did_not_move_across_as_detected():
    benign_scores, benign_pred = [0.3, 1.0, 0.0, 1.0], [0, 0, 1, 1]
    # class 0: a misclassified example (true 1) at 0.5 and a failed one (true 0) at 0.2, which takes the class's
    # highest adversarial score, 0.5: both sit between the benign 0.3 and 1.0 -> AUC 0.5; class 1: the attack
    # failed on its only example -> AUC 1. Weights 2/3 and 1/3.
    got = metrics.eroc(benign_scores, benign_pred, [0.5, 0.2, 0.1], [0, 0, 1], y=[1, 0, 1])
    assert got == pytest.approx(2 / 3 * 0.5 + 1 / 3 * 1.0)
    # the failed example's own low score does not count against the detector: raised to 0.5, not left at 0.2
    assert got > metrics.eroc(benign_scores, benign_pred, [0.5, 0.2, 0.1], [0, 0, 1], y=[1, 1, 1])
    # every attack failed: 1; nothing attacked: NaN
    assert metrics.eroc(benign_scores, benign_pred, [0.0, 0.0], [0, 1], y=[0, 1]) == 1.0
    assert np.isnan(metrics.eroc(benign_scores, benign_pred, [], [], y=[]))
    # over misclassified examples alone the two readings agree
    assert metrics.eroc(benign_scores, benign_pred, [2.0, 0.5], [0, 1], y=[1, 0]) == pytest.approx(
        metrics.weighted_auc(benign_scores, benign_pred, [2.0, 0.5], [0, 1]))


def test_mean_interval_brackets_the_mean():
    v = np.random.default_rng(1).normal(4.0, 1.0, 400)
    lo, hi = metrics.mean_interval(v)
    assert lo < v.mean() < hi and hi - lo < 0.3 and lo < 4.0 < hi
    assert all(np.isnan(metrics.mean_interval([1.0])))


def test_weighted_auc_interval_brackets_the_estimate_and_narrows_with_more_points():
    rng = np.random.default_rng(0)
    widths = []
    for n in (40, 400):
        b, a = rng.normal(size=n), rng.normal(1.0, 1.0, size=n)
        zeros = np.zeros(n, dtype=int)
        est = metrics.weighted_auc(b, zeros, a, zeros)
        lo, hi = metrics.weighted_auc_interval(b, zeros, a, zeros, resamples=200)
        assert lo <= est <= hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2
    assert all(np.isnan(metrics.weighted_auc_interval([0.0], [0], [1.0], [0])))


def test_wilson_interval_and_distances():
    lo, hi = metrics.proportion_ci(5, 10)
    assert lo < 0.5 < hi and lo == pytest.approx(0.2366, abs=1e-3) and hi == pytest.approx(0.7634, abs=1e-3)
    p = np.array([1.0, 1.0, 0.0, 0.0])
    q = np.array([0.0, 0.0, 1.0, 1.0])
    assert metrics.total_variation(p, q, 0.5) == 1.0 and metrics.total_variation(p, p, 0.5) == 0.0
    assert metrics.hellinger(p, q, 0.5) == 1.0 and metrics.hellinger(p, p, 0.5) == 0.0


def test_shares_are_ranked_only_when_their_intervals_do_not_overlap():
    from advdetect.reports import clear_leader, clearly_above

    assert clearly_above((0.9, 200), (0.5, 200)) and not clearly_above((0.5, 200), (0.9, 200))
    assert not clearly_above((0.04, 200), (0.005, 200))       # 0.02-0.07 against 0.00-0.03: they overlap
    assert clear_leader({"a": (1.0, 100), "b": (0.99, 100), "c": (0.98, 100)}) is None
    assert clear_leader({"a": (0.8, 100), "b": (0.3, 100), "c": (0.1, 100)}) == "a"
    assert clear_leader({}) is None


def test_interval_order_ranks_only_disjoint_intervals():
    from advdetect.metrics import interval_order

    assert interval_order((0.5, 0.6), (0.1, 0.4)) == 1 and interval_order((0.1, 0.4), (0.5, 0.6)) == -1
    assert interval_order((0.1, 0.5), (0.4, 0.6)) == 0 and interval_order((0.1, 0.4), (0.4, 0.6)) == 0
    assert interval_order((float("nan"), 0.4), (0.5, 0.6)) == 0


def test_a_lower_bound_ranks_above_a_sound_figure_but_never_below():
    from advdetect.metrics import sound_order

    assert sound_order(1, a_sound=False, b_sound=True) == 1      # a's lower bound already lies above b
    assert sound_order(1, a_sound=True, b_sound=False) == 0      # b, the lower, may be higher in truth
    assert sound_order(-1, a_sound=True, b_sound=False) == -1 and sound_order(-1, a_sound=False) == 0
    assert sound_order(0) == 0 and sound_order(1) == 1
