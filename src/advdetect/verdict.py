"""The book's verdict on the papers' claims (book layer): each claim, the paper's number, ours with its interval
read back from the executed chapters (:func:`advdetect.book.glued`), and whether the claim holds at this scale.

A claim compares one of our measured figures with the paper's. :func:`decide` says:

* **holds** - the whole interval of our figure lies on the paper's side of its number (within ``tolerance``);
* **does not hold** - the whole interval lies on the other side;
* **cannot be decided at this scale** - the interval straddles it, or the models behind the figure did not reach
  the strength the claim presupposes (``strong_enough=False``: the aims of the model-strength checks).
"""

from __future__ import annotations

import math

HOLDS, FAILS, UNDECIDED = "holds", "does not hold", "cannot be decided at this scale"


def decide(ours: float, paper: float, *, better: str, interval: tuple[float, float] | None = None,
           tolerance: float = 0.0, strong_enough: bool = True) -> str:
    """The verdict on one claim: the paper reports ``paper``; we measured ``ours`` (with its 95% ``interval``,
    or a point where there is none); ``better`` is ``"higher"`` (an AUC, an accuracy) or ``"lower"`` (an attack's
    success ratio) for the defence; a figure within ``tolerance`` of the paper's on the paper's side counts as
    agreeing."""
    if better not in ("higher", "lower"):
        raise ValueError(f"better must be 'higher' or 'lower', got {better!r}")
    if ours is None or (isinstance(ours, float) and math.isnan(ours)) or not strong_enough:
        return UNDECIDED
    lo, hi = interval if interval is not None else (ours, ours)
    if not lo <= ours <= hi:
        raise ValueError(f"the interval ({lo}, {hi}) must contain the estimate {ours}")
    if better == "higher":
        bar = paper - tolerance
        return HOLDS if lo >= bar else FAILS if hi < bar else UNDECIDED
    bar = paper + tolerance
    return HOLDS if hi <= bar else FAILS if lo > bar else UNDECIDED
