import math

import pytest

from advdetect.verdict import FAILS, HOLDS, UNDECIDED, decide


def test_a_higher_is_better_claim_holds_fails_or_stays_open_by_its_interval():
    assert decide(0.995, 0.994, better="higher") == HOLDS
    assert decide(0.96, 0.994, better="higher", interval=(0.95, 0.97)) == FAILS
    assert decide(0.99, 0.994, better="higher", interval=(0.98, 0.999)) == UNDECIDED
    assert decide(0.99, 0.994, better="higher", tolerance=0.005) == HOLDS


def test_a_lower_is_better_claim_reads_the_interval_the_other_way():
    assert decide(0.01, 0.01, better="lower", interval=(0.0, 0.01)) == HOLDS
    assert decide(0.30, 0.01, better="lower", interval=(0.25, 0.35)) == FAILS
    assert decide(0.03, 0.01, better="lower", interval=(0.005, 0.06)) == UNDECIDED


def test_weak_models_or_missing_figures_leave_a_claim_open():
    assert decide(0.999, 0.99, better="higher", strong_enough=False) == UNDECIDED
    assert decide(math.nan, 0.99, better="higher") == UNDECIDED
    with pytest.raises(ValueError, match="higher"):
        decide(0.5, 0.5, better="up")
    with pytest.raises(ValueError, match="contain"):
        decide(0.5, 0.5, better="higher", interval=(0.6, 0.7))
