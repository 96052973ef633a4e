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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping

import pandas as pd

from .executed import glued, repo_root
from .metrics import interval_order, proportion_ci, sound_order
from .paper import ARCLU_OWN_CHECK, ARCLU_TABLE2_MNIST, GAT_TABLE2, GAT_TABLE11_12

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


def compare(ours: float, ours_interval: tuple[float, float], other: float, other_interval: tuple[float, float], *,
            better: str, strong_enough: bool = True) -> str:
    """The verdict on a claim that one of our figures beats another of ours (``better``: ``"higher"`` or
    ``"lower"`` is the claimed direction): **holds** when the two 95% intervals do not overlap on the claimed
    side, **does not hold** when they do not overlap on the other side, otherwise undecided."""
    if better not in ("higher", "lower"):
        raise ValueError(f"better must be 'higher' or 'lower', got {better!r}")
    if any(isinstance(v, float) and math.isnan(v) for v in (ours, other, *ours_interval, *other_interval)) \
            or not strong_enough:
        return UNDECIDED
    order = interval_order(ours_interval, other_interval) * (1 if better == "higher" else -1)
    return HOLDS if order == 1 else FAILS if order == -1 else UNDECIDED


@dataclass(frozen=True)
class Claim:
    """One headline claim of a paper, and where the book measures it.

    ``figure`` names the glued value (chapter ``chapter``) and ``interval`` the glued ``[lo, hi]`` of its 95%
    interval, or ``n`` the glued number of trials behind a proportion (a Wilson interval then); ``paper`` is the
    paper's number, or ``versus`` names another glued figure (with ``versus_interval`` / ``versus_n``) that
    ours is claimed to beat. ``better`` says which way the claim points. ``needs`` names the book's aims
    (:data:`advdetect.reports.AIMS`) that the claim presupposes: a model trained far less than the paper's and
    short of the book's aim for it cannot refute a claim about the paper's model (a claim about robustness
    after training names the aim for that very model). ``requires`` names glued booleans of the same chapter
    saying that the attacks behind the figure passed the suite's sanity, convergence and independent checks
    (``versus_requires``: the same for the other figure); where one is not true, an attack success ratio is
    only a lower bound: it can refute a claim that the ratio is low, never confirm it, and in a comparison it
    can lie clearly above the other figure but never clearly below it (:func:`judge`)."""

    source: str
    claim: str
    where: str
    chapter: str
    figure: str
    better: str
    paper: float | None = None
    interval: str | None = None
    n: str | None = None
    versus: str | None = None
    versus_interval: str | None = None
    versus_n: str | None = None
    tolerance: float = 0.0
    needs: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    versus_requires: tuple[str, ...] = ()


def _interval(values: Mapping, value: float, interval: str | None, n: str | None) -> tuple[float, float]:
    if interval is not None and isinstance(values.get(interval), (list, tuple)) and len(values[interval]) == 2:
        return tuple(float(v) for v in values[interval])
    if n is not None and isinstance(values.get(n), (int, float)) and values[n] > 0:
        return proportion_ci(round(value * values[n]), int(values[n]))
    return (value, value)


def _number(v) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else float("nan")


def judge(claim: Claim, glued: Mapping[str, Mapping], met: Mapping[str, bool] | None = None) -> dict:
    """One row of the verdict table: the claim, the paper's figure, ours with its interval, the verdict and the
    chapter it comes from. ``glued``: chapter -> its glued values (:func:`advdetect.book.glued`); ``met``: aim
    name -> whether the book's run met it."""
    values = glued.get(claim.chapter, {})
    ours = _number(values.get(claim.figure))
    lo, hi = _interval(values, ours, claim.interval, claim.n) if not math.isnan(ours) else (math.nan, math.nan)
    strong = all((met or {}).get(a, False) for a in claim.needs)
    if claim.versus is not None:
        other = _number(values.get(claim.versus))
        olo, ohi = (_interval(values, other, claim.versus_interval, claim.versus_n) if not math.isnan(other)
                    else (math.nan, math.nan))
        verdict = compare(ours, (lo, hi), other, (olo, ohi), better=claim.better, strong_enough=strong)
        reference = f"beats ours of {other:.3f} ({olo:.3f}-{ohi:.3f})" if not math.isnan(other) else "not measured"
    else:
        verdict = decide(ours, claim.paper, better=claim.better,
                         interval=None if math.isnan(ours) else (min(lo, ours), max(hi, ours)),
                         tolerance=claim.tolerance, strong_enough=strong)
        reference = f"{claim.paper:g}"
    def sound(names):
        return all(values.get(r) is True for r in names)

    why = ""
    if claim.versus is not None and verdict != UNDECIDED:
        # ours above the other (+1) or below it (-1), kept only where the lower figure is sound (sound_order)
        order = 1 if (verdict == HOLDS) == (claim.better == "higher") else -1
        if sound_order(order, sound(claim.requires), sound(claim.versus_requires)) == 0:
            verdict, why = UNDECIDED, (" (the attacks behind the lower figure failed the suite's checks: "
                                       "it is only a lower bound)")
    if not strong and verdict == UNDECIDED and claim.needs:
        why = " (the models behind it miss the book's aims)"
    elif claim.versus is None and verdict == HOLDS and not sound(claim.requires):
        verdict, why = UNDECIDED, " (the attacks behind it failed the suite's checks: a lower bound)"
    return {"paper": claim.source, "claim": claim.claim, "where": claim.where,
            "the paper / the claim": reference, "ours": ours,
            "95% CI": "-" if math.isnan(lo) or lo == hi else f"{lo:.3f}-{hi:.3f}",
            "verdict": verdict + why, "chapter": claim.chapter}


#: the headline claims the book measures on MNIST, by the chapter that glues each figure
CLAIMS: tuple[Claim, ...] = (
    Claim("GAT", "Every L-inf 0.3 detector resists a 200-step PGD attack within its budget", "Table 11 (worst of ten)",
          "02_gat_detectors", "gat_linf03_auc_min", "higher", paper=min(GAT_TABLE11_12["Linf 0.3"]),
          tolerance=0.005, needs=("L-inf 0.3 detectors, worst of ten",)),
    Claim("GAT", "Every L-inf 0.5 detector resists a 200-step PGD attack within its budget", "Table 12 (worst of ten)",
          "02_gat_detectors", "gat_linf05_auc_min", "higher", paper=min(GAT_TABLE11_12["Linf 0.5"]),
          tolerance=0.005, needs=("L-inf 0.5 detectors, worst of ten",)),
    Claim("GAT", "Generative detection beats integrated detection against each one's strongest attack",
          "Fig 2a (FPR at 95% TPR)", "03_gat_detection_classification", "gat_generative_fpr95", "lower",
          n="classification_n", versus="gat_integrated_fpr95", versus_n="classification_n"),
    Claim("GAT", "The generative classifier with a reject option errs less under L-inf 0.3 than Madry's "
          "robust classifier", "Fig 2b (error at a <= 5-point accuracy drop)", "03_gat_detection_classification",
          "gat_generative_error_linf03_at_drop", "lower", n="classification_n", versus="madry_error_linf03",
          versus_n="classification_n"),
    Claim("GAT", "Fooling generative detection at 95% TPR takes a mean L2 distortion of 4.40 (L-inf 0.3 detectors)",
          "Table 2", "03_gat_detection_classification", "gat_mean_l2_linf_0_3", "higher",
          paper=GAT_TABLE2["GAT, Linf 0.3 detectors"], interval="gat_mean_l2_linf_0_3_ci"),
    Claim("GAT", "Images synthesised through the generative classifier are recognisable as their class, more than "
          "through a robust classifier", "Section 3.2, Fig 5 (kNN judge)", "06_image_synthesis", "synthesis_knn_gat",
          "higher", n="synthesis_n", versus="synthesis_knn_madry", versus_n="synthesis_n"),
    Claim("ARCLU", "In a softmax classifier's logit space, successful adversarial examples overlap the benign "
          "clusters (a distance to the class centre cannot tell them apart: centre AUC below 0.6)",
          "Fig 2 (2)", "01_motivation", "overlap_softmax_centre_auc", "lower", paper=0.6,
          interval="overlap_softmax_centre_auc_ci"),
    Claim("ARCLU", "The authors' own check: ASR 0.12 at 5% false positives under Eq. 17 PGD, L-inf 0.3",
          "ARCLU repository", "04_cluster_separation", "arclu_own_check_asr5", "lower",
          paper=ARCLU_OWN_CHECK["ASR"], interval="arclu_own_check_asr5_ci"),
    Claim("ARCLU", "Untargeted adaptive PGD within L-inf 0.3 succeeds on 1% of ARCLU's test images at 1% FPR",
          "Table 2", "04_cluster_separation", "arclu_table2_u_asr1", "lower",
          paper=ARCLU_TABLE2_MNIST["PGD Linf 0.3, U"]["Ours"]["ASR-1"], interval="arclu_table2_u_asr1_ci",
          needs=("ARCLU own check, EROC",)),
    Claim("ARCLU", "Separating an adversarial cluster makes the detector more robust than its ablation L-Ben "
          "(untargeted PGD, L-inf 0.3, ASR-1)", "Table 2", "04_cluster_separation", "arclu_table2_u_asr1", "lower",
          interval="arclu_table2_u_asr1_ci", versus="lben_table2_u_asr1", versus_interval="lben_table2_u_asr1_ci"),
    Claim("ARCLU", "ARCLU's worst case over the adaptive white-box PGD attacks of Table 2 is an ASR-1 of 0.51",
          "Table 2 (worst case)", "05_adaptive_attacks", "table2_worst_asr1_arclu", "lower",
          paper=ARCLU_TABLE2_MNIST["Worst case"]["Ours"]["ASR-1"], interval="table2_worst_asr1_arclu_ci",
          needs=("ARCLU own check, EROC",), requires=("suite_sound_arclu",)),
    Claim("ARCLU", "ARCLU's worst case over Table 2's attacks is lower than adversarial training's (Madry)",
          "Table 2 (worst case)", "05_adaptive_attacks", "table2_worst_asr1_arclu", "lower",
          interval="table2_worst_asr1_arclu_ci", versus="table2_worst_asr1_madry",
          versus_interval="table2_worst_asr1_madry_ci", requires=("suite_sound_arclu",),
          versus_requires=("suite_sound_madry",)),
    Claim("ARCLU", "Within L-inf 0.3, the budget both were trained for, ARCLU is attacked less successfully than "
          "adversarial training (Madry): every attack of the suite together", "Table 2 (L-inf 0.3 rows)",
          "05_adaptive_attacks", "h2h_linf03_asr1_arclu", "lower", interval="h2h_linf03_asr1_arclu_ci",
          versus="h2h_linf03_asr1_madry", versus_interval="h2h_linf03_asr1_madry_ci",
          needs=("ARCLU own check, EROC", "Madry robust, PGD-100"),
          requires=("suite_sound_linf_arclu",), versus_requires=("suite_sound_linf_madry",)),
    Claim("GAT", "Within L-inf 0.3, the generative classifier with a reject option is attacked less successfully "
          "than Madry's robust classifier: every attack of the suite together", "Fig 2b, under the full suite",
          "05_adaptive_attacks", "h2h_linf03_asr1_gat_generative", "lower",
          interval="h2h_linf03_asr1_gat_generative_ci", versus="h2h_linf03_asr1_madry",
          versus_interval="h2h_linf03_asr1_madry_ci",
          needs=("L-inf 0.3 detectors, worst of ten", "Madry robust, PGD-100"),
          requires=("suite_sound_linf_gat_generative",), versus_requires=("suite_sound_linf_madry",)),
    Claim("Tramer et al.", "A multi-targeted attack breaks GAT's integrated classifier more often than GAT's own "
          "combined attack (Eq. 12, Adam, 100 steps)", "Section 5 (GAT)", "05_adaptive_attacks",
          "gat_integrated_mt_asr1", "higher", interval="gat_integrated_mt_asr1_ci",
          versus="gat_integrated_protocol_asr1", versus_interval="gat_integrated_protocol_asr1_ci"),
)


def verdict_table(glued: Mapping[str, Mapping], met: Mapping[str, bool] | None = None,
                  claims: tuple[Claim, ...] = CLAIMS, tolerance: float = 0.0):
    """Every claim of ``claims`` judged (:func:`judge`) as one DataFrame, indexed by paper and claim;
    ``tolerance`` is added to every claim's own."""
    rows = [judge(replace(c, tolerance=c.tolerance + tolerance), glued, met) for c in claims]
    return pd.DataFrame(rows).set_index(["paper", "claim"])


def read_chapters(folder) -> dict[str, dict]:
    """Every executed chapter ``NN_name.ipynb`` of ``folder`` (relative to the checkout unless absolute) by name,
    with what it glued (:func:`advdetect.executed.glued`)."""
    folder = Path(folder)
    if not folder.is_absolute():
        folder = repo_root(Path(__file__).parent) / folder
    if not folder.is_dir():
        raise FileNotFoundError(f"no executed chapters in {folder}: build the book first (python -m advdetect.book "
                                "execute), or point CHAPTERS at the folder that holds them")
    return {p.stem: glued(p) for p in sorted(folder.glob("[0-9][0-9]_*.ipynb"))}


def aims_met_from(chapters: Mapping[str, Mapping]) -> dict[str, bool]:
    """Whether each of the book's aims was met, merged from the ``aims_met_*`` dicts the chapters glue
    (:func:`advdetect.reports.aims_met`)."""
    met: dict[str, bool] = {}
    for values in chapters.values():
        for name, v in values.items():
            if name.startswith("aims_met") and isinstance(v, dict):
                met.update({str(k): bool(x) for k, x in v.items()})
    return met


def styled(table: pd.DataFrame):
    """The verdict table as the chapter shows it: one row per claim (the place in the paper in brackets), the
    paper's figure, ours with its interval in one cell, left-aligned, without the index."""
    t = table.reset_index()
    ours = [("not measured" if pd.isna(v) else f"{v:.4f}") + ("" if ci == "-" else f" ({ci})")
            for v, ci in zip(t["ours"], t["95% CI"])]
    shown = pd.DataFrame({"paper": t["paper"], "claim": t["claim"] + " (" + t["where"] + ")",
                          "the paper's figure": t["the paper / the claim"], "ours (95% CI)": ours,
                          "verdict": t["verdict"], "chapter": t["chapter"]})
    return shown.style.hide(axis="index").set_properties(**{"text-align": "left", "vertical-align": "top"})
