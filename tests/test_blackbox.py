"""AutoAttack plumbing of advdetect.blackbox that needs no model."""
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
