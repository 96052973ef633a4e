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


def _notebook_namespace(profile):
    """What a parameters cell leaves behind: PROFILE, the values and their annotations."""
    ns = {"PROFILE": profile, "__annotations__": {"PROFILE": str}}
    for name, value in profiles.defaults("density", profile).items():
        ns[name] = value
        ns["__annotations__"][name] = type(value) if not isinstance(value, list) else list[str]
    return ns


def test_settle_keeps_the_profile_values():
    ns = _notebook_namespace("cpu")
    s = profiles.settle("density", ns)
    assert s.profile == "cpu"
    assert s["STEPS_1D"] == profiles.TABLE["density"]["STEPS_1D"]["cpu"]
    assert set(s.sources.values()) == {"profile cpu"}


def test_papermill_profile_override_rereads_defaults_but_keeps_explicit_overrides():
    ns = _notebook_namespace("cpu")
    ns["PROFILE"] = "smoke"          # injected by papermill after the parameters cell
    ns["HIDDEN_1D"] = 7              # an explicit override, too
    s = profiles.settle("density", ns)
    assert s["STEPS_1D"] == profiles.TABLE["density"]["STEPS_1D"]["smoke"]
    assert ns["STEPS_1D"] == s["STEPS_1D"]
    assert s["HIDDEN_1D"] == 7 and s.sources["HIDDEN_1D"] == "override"
    assert "HIDDEN_1D" in s.differences_from_paper()


def test_settle_checks_types_and_converts_ints_to_floats():
    ns = _notebook_namespace("cpu")
    ns["LR"] = 1                     # papermill passes -p LR 1 as an int
    assert profiles.settle("density", ns)["LR"] == 1.0 and isinstance(ns["LR"], float)
    ns["STEPS_1D"] = "many"
    with pytest.raises(ProfileError, match="STEPS_1D must be int"):
        profiles.settle("density", ns)


def test_settle_rejects_unknown_parameters():
    ns = _notebook_namespace("cpu")
    ns["STEPZ_1D"] = 3
    with pytest.raises(ProfileError, match="STEPZ_1D"):
        profiles.settle("density", ns)


def test_every_chapter_defines_every_profile():
    for chapter, params in profiles.TABLE.items():
        for name, column in params.items():
            assert set(column) == set(profiles.PROFILES), (chapter, name)
