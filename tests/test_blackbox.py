"""Plumbing of advdetect.blackbox that needs no trained model: AutoAttack's checks, the decision model of
HopSkipJump."""
import pytest
import torch

from advdetect import blackbox


def test_autoattacks_own_checks_are_collected_not_printed(capsys):
    import logging

    from pyautoattack import checks

    x = torch.rand(4, 3)
    found = []
    with blackbox.autoattack_checks(found):
        checks.check_range_output(lambda v: torch.softmax(v, 1), x)                       # warnings.warn
        checks.check_range_output(lambda v: torch.softmax(v, 1), x, logger=logging.getLogger("auto-attack"))
    assert len(found) == 2 and all("probability distribution" in m for m in found)
    assert "probability" not in capsys.readouterr().err
    assert not logging.getLogger("auto-attack").handlers and logging.getLogger("auto-attack").propagate


class _BatchDependent(torch.nn.Module):
    """A 'defence' whose outputs move with the size of the batch, as a CPU's rounding does (exaggerated)."""

    num_classes = 2

    def forward(self, x):
        z = torch.stack([x.flatten(1).sum(1), -x.flatten(1).sum(1)], 1) + 1e-3 * len(x)
        return z, x.flatten(1).mean(1) + 1e-3 * len(x)


def test_a_remembering_decision_model_answers_the_same_input_the_same_way_in_any_batch():
    x = torch.rand(5, 1, 2, 2)
    plain, remembering = blackbox.DecisionModel(_BatchDependent()), blackbox.DecisionModel(_BatchDependent(), True)
    assert not torch.equal(plain(x[:2]), plain(x)[:2])                     # the batch changes the answer
    first = remembering(x[:2])
    full = remembering(x)
    assert torch.equal(full[:2], first)                                    # remembered, not recomputed
    assert torch.equal(full[2:], plain(x[2:]))                             # new inputs: computed together once
    assert torch.equal(remembering(x[[4, 0, 4]]), full[[4, 0, 4]])
    y = torch.rand(1, 1, 2, 2)
    assert torch.equal(remembering(torch.cat([y, y])), plain(y).repeat(2, 1))   # a repeat in one batch: once
    assert first.shape == (2, 3)                                           # K logits and the score

def test_hsj_refuses_an_unknown_precision():
    with pytest.raises(ValueError, match="precision"):
        blackbox.hsj(None, norm="l2", eps=1.0, steps=1, precision="bf16")
