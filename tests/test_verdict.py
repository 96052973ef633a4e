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


def test_one_figure_against_another_holds_only_outside_both_intervals():
    from advdetect.verdict import compare

    assert compare(0.05, (0.03, 0.08), 0.30, (0.25, 0.35), better="lower") == HOLDS
    assert compare(0.30, (0.25, 0.35), 0.05, (0.03, 0.08), better="lower") == FAILS
    assert compare(0.10, (0.05, 0.16), 0.14, (0.09, 0.20), better="lower") == UNDECIDED
    assert compare(0.95, (0.9, 0.98), 0.5, (0.4, 0.6), better="higher") == HOLDS
    assert compare(0.95, (0.9, 0.98), 0.5, (0.4, 0.6), better="higher", strong_enough=False) == UNDECIDED


def test_claims_are_judged_from_glued_figures_with_their_intervals():
    from advdetect.verdict import Claim, judge, verdict_table

    glued = {"ch": {"asr": 0.24, "asr_ci": [0.21, 0.28], "other": 0.09, "other_ci": [0.06, 0.12],
                    "err": 0.04, "err_n": 200, "auc": 0.999}}
    paper = Claim("P", "ASR is 1%", "Table 2", "ch", "asr", "lower", paper=0.01, interval="asr_ci")
    row = judge(paper, glued)
    assert row["verdict"] == FAILS and row["95% CI"] == "0.210-0.280" and row["the paper / the claim"] == "0.01"
    beats = Claim("P", "ours beats the ablation", "Table 2", "ch", "asr", "lower", interval="asr_ci",
                  versus="other", versus_interval="other_ci")
    assert judge(beats, glued)["verdict"] == FAILS
    wilson = judge(Claim("P", "few errors", "Fig", "ch", "err", "lower", paper=0.10, n="err_n"), glued)
    lo, hi = (float(v) for v in wilson["95% CI"].split("-"))
    assert lo < 0.04 < hi < 0.10 and wilson["verdict"] == HOLDS
    # a claim whose models miss the book's aims stays open, and says why
    needs = Claim("P", "robust", "Table 11", "ch", "auc", "higher", paper=0.99, needs=("an aim",))
    assert judge(needs, glued, {"an aim": True})["verdict"] == HOLDS
    weak = judge(needs, glued, {"an aim": False})["verdict"]
    assert weak.startswith(UNDECIDED) and "miss the book's aims" in weak
    # a figure no chapter glued cannot be decided
    missing = judge(Claim("P", "x", "T", "nowhere", "auc", "higher", paper=0.5), glued)
    assert missing["verdict"] == UNDECIDED and math.isnan(missing["ours"])
    table = verdict_table(glued, claims=(paper, beats))
    assert list(table.index) == [("P", "ASR is 1%"), ("P", "ours beats the ablation")]
    from advdetect.verdict import styled

    shown = styled(table).data
    assert list(shown["ours (95% CI)"]) == ["0.2400 (0.210-0.280)"] * 2
    assert shown["claim"].iloc[0] == "ASR is 1% (Table 2)"


def test_every_claim_names_a_figure_its_chapter_glues():
    """The book's claims read only names that the chapters' source notebooks glue."""
    import json
    import re
    from pathlib import Path

    from advdetect.reports import AIMS
    from advdetect.verdict import CLAIMS

    root = Path(__file__).resolve().parents[1] / "notebooks"
    for c in CLAIMS:
        src = "".join("".join(cell["source"]) for cell in json.loads((root / f"{c.chapter}.ipynb").read_text())["cells"])
        names = set(re.findall(r'glue\(f?"([a-z0-9_{}\[\]]+)"', src))
        patterns = [re.compile("^" + re.sub(r"\{[^}]*\}", r"[a-z0-9_.]+", n) + "$") for n in names]
        for name in (c.figure, c.interval, c.n, c.versus, c.versus_interval, c.versus_n, *c.requires,
                     *c.versus_requires):
            if name is not None:
                assert any(p.match(name) for p in patterns), f"{c.chapter} glues no {name}"
        assert set(c.needs) <= set(AIMS)


def test_chapters_and_their_aims_are_read_from_executed_notebooks(tmp_path):
    import json

    from advdetect.verdict import aims_met_from, read_chapters

    def glue_output(name, value):
        return {"output_type": "display_data", "metadata": {"scrapbook": {"name": name, "mime_prefix": ""}},
                "data": {"text/plain": repr(value)}}

    nb = {"cells": [{"cell_type": "code", "source": "", "metadata": {},
                     "outputs": [glue_output("x", 0.5), glue_output("aims_met_a", {"aim one": True}),
                                 glue_output("aims_met_b", {"aim two": False})]}]}
    (tmp_path / "02_chapter.ipynb").write_text(json.dumps(nb))
    (tmp_path / "notes.ipynb").write_text(json.dumps(nb))       # not a chapter
    chapters = read_chapters(tmp_path)
    assert list(chapters) == ["02_chapter"] and chapters["02_chapter"]["x"] == 0.5
    assert aims_met_from(chapters) == {"aim one": True, "aim two": False}
    with pytest.raises(FileNotFoundError, match="build the book first"):
        read_chapters(tmp_path / "missing")


def test_a_figure_from_an_unsound_suite_refutes_but_never_confirms():
    from advdetect.verdict import FAILS, HOLDS, UNDECIDED, Claim, judge

    low = Claim("P", "ASR is at most 0.5", "T", "ch", "asr", "lower", paper=0.5, interval="asr_ci",
                requires=("sound",))
    beats = Claim("P", "ours beats theirs", "T", "ch", "asr", "lower", interval="asr_ci", versus="other",
                  versus_interval="other_ci", requires=("sound",))
    values = {"asr": 0.2, "asr_ci": [0.15, 0.25], "other": 0.8, "other_ci": [0.75, 0.85]}
    assert judge(low, {"ch": {**values, "sound": True}})["verdict"] == HOLDS
    unsound = judge(low, {"ch": {**values, "sound": False}})["verdict"]
    assert unsound.startswith(UNDECIDED) and "lower bound" in unsound      # a lower bound under 0.5 proves nothing
    high = {**values, "asr": 0.7, "asr_ci": [0.65, 0.75], "sound": False}
    assert judge(low, {"ch": high})["verdict"] == FAILS                    # ... but one above 0.5 refutes
    assert judge(beats, {"ch": {**values, "sound": True}})["verdict"] == HOLDS
    assert judge(beats, {"ch": values})["verdict"].startswith(UNDECIDED)   # not glued: not shown sound


def test_a_comparison_needs_only_the_lower_figure_sound():
    from advdetect.verdict import FAILS, HOLDS, UNDECIDED, Claim, judge

    claim = Claim("P", "ours is attacked less than theirs", "T", "ch", "ours", "lower", interval="ours_ci",
                  versus="theirs", versus_interval="theirs_ci", requires=("ours_sound",),
                  versus_requires=("theirs_sound",))
    low = {"ours": 0.05, "ours_ci": [0.03, 0.07], "theirs": 0.3, "theirs_ci": [0.25, 0.35]}
    assert judge(claim, {"ch": {**low, "ours_sound": True, "theirs_sound": False}})["verdict"] == HOLDS
    assert judge(claim, {"ch": {**low, "ours_sound": False, "theirs_sound": True}})["verdict"].startswith(UNDECIDED)
    high = {"ours": 0.3, "ours_ci": [0.25, 0.35], "theirs": 0.05, "theirs_ci": [0.03, 0.07]}
    # ours failed its checks, but its lower bound already lies above theirs, which passed: refuted
    assert judge(claim, {"ch": {**high, "ours_sound": False, "theirs_sound": True}})["verdict"] == FAILS
    assert judge(claim, {"ch": {**high, "ours_sound": True, "theirs_sound": False}})["verdict"].startswith(UNDECIDED)


def test_plain_strings_glue_without_quotes():
    from IPython.lib.pretty import pretty

    from advdetect.reports import Plain

    assert pretty(Plain("cpu")) == "cpu" and repr(Plain("CPU, 2 threads")) == "CPU, 2 threads" and Plain("a") == "a"
