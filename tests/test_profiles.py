import pytest

from advdetect import profiles
from advdetect.errors import ProfileError


def test_active_defaults_to_cpu_and_follows_the_environment(monkeypatch):
    assert profiles.active() == "cpu"
    monkeypatch.setenv("ADVDETECT_PROFILE", "smoke")
    assert profiles.active() == "smoke"


def test_unknown_profile_lists_the_choices(monkeypatch):
    monkeypatch.setenv("ADVDETECT_PROFILE", "huge")
    with pytest.raises(ProfileError, match="smoke, cpu, paper"):
        profiles.active()
    with pytest.raises(ProfileError, match="unknown chapter"):
        profiles.defaults("no-such-chapter", "cpu")


def test_settle_takes_every_setting_from_the_profile_and_puts_it_in_the_namespace():
    ns = {"PROFILE": "cpu"}          # what a parameters cell leaves behind: the profile only
    s = profiles.settle("density", ns)
    assert s.profile == "cpu"
    assert s["STEPS_1D"] == ns["STEPS_1D"] == profiles.TABLE["density"]["STEPS_1D"]["cpu"]
    assert set(s.sources.values()) == {"profile cpu"} and set(s.params) == set(profiles.TABLE["density"])


def test_papermill_parameters_override_and_a_rerun_with_another_profile_rereads_the_rest():
    ns = {"PROFILE": "smoke", "HIDDEN_1D": 7}    # injected by papermill after the parameters cell
    s = profiles.settle("density", ns)
    assert s["STEPS_1D"] == profiles.TABLE["density"]["STEPS_1D"]["smoke"]
    assert s["HIDDEN_1D"] == 7 and s.sources["HIDDEN_1D"] == "override"
    assert "HIDDEN_1D" in s.differences_from_paper()
    ns["PROFILE"] = "cpu"                         # the reader changes the profile and runs the notebook again
    s = profiles.settle("density", ns)
    assert s["STEPS_1D"] == profiles.TABLE["density"]["STEPS_1D"]["cpu"] and s.sources["STEPS_1D"] == "profile cpu"
    assert s["HIDDEN_1D"] == profiles.TABLE["density"]["HIDDEN_1D"]["cpu"]   # what settle put there is no override
    ns["SETS_2D"] = ["ring"]                       # the reader sets one value
    assert profiles.settle("density", ns).sources["SETS_2D"] == "override"


def test_settle_checks_types_against_the_profiles_values_and_converts_ints_to_floats():
    ns = {"PROFILE": "cpu", "LR": 1}     # papermill passes -p LR 1 as an int
    assert profiles.settle("density", ns)["LR"] == 1.0 and isinstance(ns["LR"], float)
    with pytest.raises(ProfileError, match="STEPS_1D of chapter 'density' must be int"):
        profiles.settle("density", {"PROFILE": "cpu", "STEPS_1D": "many"})
    with pytest.raises(ProfileError, match="must be"):
        profiles.settle("density", {"PROFILE": "cpu", "STEPS_1D": True})
    assert profiles.settle("motivation", {"PROFILE": "cpu", "TRAIN_SUBSET": 300})["TRAIN_SUBSET"] == 300
    assert profiles.settle("motivation", {"PROFILE": "smoke", "TRAIN_SUBSET": None})["TRAIN_SUBSET"] is None


def test_settle_rejects_unknown_parameters():
    with pytest.raises(ProfileError, match="STEPZ_1D"):
        profiles.settle("density", {"PROFILE": "cpu", "STEPZ_1D": 3})


def test_every_chapter_defines_every_profile():
    for chapter, params in profiles.TABLE.items():
        for name, column in params.items():
            assert set(column) == set(profiles.PROFILES), (chapter, name)


def test_the_settings_block_lists_only_what_differs_from_the_paper_and_what_the_run_set():
    paper = profiles.settle("density", {"PROFILE": "paper"}).table()
    assert len(paper.rows()) == 0 and "0 of" in paper.summary() and "Every setting is the paper's" in paper._repr_html_()
    ns = {"PROFILE": "cpu", "SEED": profiles.TABLE["density"]["SEED"]["cpu"] + 1}
    view = profiles.settle("density", ns).table()
    rows = view.rows()
    cpu = profiles.settle("density", {"PROFILE": "cpu"})
    assert set(rows.index) == set(cpu.differences_from_paper()) | {"SEED"}
    assert rows.loc["SEED", "set here"] == "yes" and list(rows.columns) == ["this run", "the paper's", "set here"]
    html = view._repr_html_()
    assert html.startswith("<details>") and "1 set in this run" in html and html.count("<tr>") == len(rows) + 1
