"""Tables of the book (book layer): ours beside the paper's for the same cell, from the runs of the chapters.

* GAT (chapters 02-03): the robustness Tables 1, 8-12 and 18 on MNIST and Tables 3, 17 on CIFAR-10; detection,
  classification with a reject option and the mean L2 distortion (Table 2).
* ARCLU (chapter 04): Table 2 for the distance detectors, through :class:`~advdetect.evaluation.Arena`.
* The suite (chapter 05): ARCLU's table layout for every defence, worst cases, sanity checks, comparisons.
"""

from __future__ import annotations

import re
from typing import Mapping

import numpy as np
import pandas as pd
import torch

from . import blackbox, gat
from .artefacts import attack_examples, memo, robustness
from .data import subset
from .defences import Defence
from .evaluation import Arena, best_of
from .metrics import (
    classification_curve,
    detection_curve,
    interval_order,
    mean_interval,
    proportion_ci,
    sound_order,
    threshold_at_tpr,
)
from .objectives import Criterion
from .paper import (
    ARCLU_OWN_CHECK,
    ARCLU_TABLE2_ACCURACY,
    ARCLU_TABLE2_MNIST,
    GAT_ROBUST_CLASSIFIER,
    GAT_TABLE1_8,
    GAT_TABLE2,
    GAT_TABLE3_CIFAR,
    GAT_TABLE9,
    GAT_TABLE10,
    GAT_TABLE11_12,
    GAT_TABLE17_CIFAR,
    MADRY_CHALLENGE_BEST_ATTACK_ACCURACY,
    MADRY_CHALLENGE_PGD100_ACCURACY,
    PAPER_NAMES,
    TRADES_MNIST,
)
from .suite import SuiteResult, attack_name, paper_protocol, threat
from .training import accuracy

# ------------------------------------------------------------------------------------- GAT robustness (ch. 02)


def _table_attack(name: str, steps: int, step: float, rule: str) -> dict:
    cfg = gat.TABLE6[name]
    return dict(norm=cfg["norm"], eps=cfg["eps"], steps=steps, step_size=step, rule=rule, batch_size=2000)


def _small_step(name: str) -> float:
    return 0.01 if name.startswith("Linf") else 0.1


def gat_robustness_tables(cache, banks: Mapping, ds, *, n_negatives: int, eval_steps: int, strong_steps: int,
                          restarts: int, n_negatives_all: int | None = None, seed: int = 0) -> dict:
    """GAT Tables 1 and 8 (detectors 0, 1 under Adam and normalised-steepest-descent PGD, ``eval_steps`` and
    ``strong_steps`` steps), 9 (cross-norm attacks), 10 (fixed start against ``restarts`` random restarts) and
    11-12 (all ten detectors of the L-inf 0.3 and 0.5 systems on ``n_negatives_all`` attacked negatives each,
    default ``n_negatives``) for the
    detector systems ``banks`` (Table 6's names), each beside the paper's values. Returns ``{"1_8", "9", "10",
    "11_12"}`` DataFrames."""
    clean = {name: gat.generative_scores(bank, ds.x_test) for name, bank in banks.items()}

    def auc(name, attack, ks=(0, 1), restarts=1, n=n_negatives):
        return robustness(cache, banks[name], ds.x_test, ds.y_test, attack, ks=ks, n_negatives=n,
                          seed=seed, restarts=restarts, clean_logits=clean[name])

    rows = []
    for name in banks:
        small = _small_step(name)
        for steps, step in ((eval_steps, small), (strong_steps, small / 2)):
            for rule in ("adam", "steepest"):
                got = auc(name, _table_attack(name, steps, step, rule))
                key = (200 if steps == eval_steps else 2000, small if steps == eval_steps else small / 2, rule)
                ref = GAT_TABLE1_8[name].get(key, (np.nan, np.nan))
                rows.append({"detectors": name, "attack": f"{rule}, {steps} x {step:g}", "k=0": got[0],
                             "k=1": got[1], "paper k=0": ref[0], "paper k=1": ref[1]})
    out = {"1_8": pd.DataFrame(rows).set_index(["detectors", "attack"])}
    attacks_9 = {name: _table_attack(name, eval_steps, _small_step(name), "adam") for name in gat.TABLE6}
    rows = []
    for attack, kw in attacks_9.items():
        for name in banks:
            got = auc(name, kw)
            ref = GAT_TABLE9[attack][name]
            rows.append({"attack": attack, "detectors": name, "k=0": got[0], "k=1": got[1], "paper k=0": ref[0],
                         "paper k=1": ref[1]})
    out["9"] = pd.DataFrame(rows).set_index(["attack", "detectors"])
    rows = []
    for name in ("Linf 0.5", "L2 5.0"):
        kw = attacks_9[name]
        ref = GAT_TABLE10[name]
        rows.append({"detectors": name, "fixed start": auc(name, kw, ks=(0,))[0],
                     f"{restarts} random restarts": auc(name, {**kw, "random_start": True}, ks=(0,),
                                                        restarts=restarts)[0],
                     "paper fixed start": ref["fixed start"], "paper 50 restarts": ref["random restarts"]})
    out["10"] = pd.DataFrame(rows).set_index("detectors")
    rows = {}
    for name in ("Linf 0.3", "Linf 0.5"):   # one row per detector, ours beside the paper's (beside_paper)
        got = auc(name, attacks_9[name], ks=range(10), n=n_negatives_all or n_negatives)
        rows[name] = [got[k] for k in range(10)]
        rows[f"paper {name}"] = list(GAT_TABLE11_12[name])
    out["11_12"] = pd.DataFrame(rows, index=pd.Index([f"k={k}" for k in range(10)], name="detector"))
    return out


def gat_table18(cache, banks: Mapping, own: Mapping, ds, *, n_negatives: int, eval_steps: int,
                seed: int = 0) -> pd.DataFrame:
    """GAT Table 18 on MNIST: the mean and worst AUC of the ten detectors of each bank (``banks``: label ->
    bank; ``own``: label -> the (steps, step size) of its L-inf 0.3 training attack) against its own training
    attack (Adam, from the natural image) and against ``eval_steps`` steps of 0.01."""
    rows = {}
    for label, bank in banks.items():
        col = f"trained {own[label][0]} x {own[label][1]:g}"
        clean = gat.generative_scores(bank, ds.x_test)
        rows[col] = {}
        for which, (steps, step) in (("own attack", own[label]), (f"{eval_steps} x 0.01", (eval_steps, 0.01))):
            attack = dict(norm="linf", eps=0.3, steps=steps, step_size=step, rule="adam", batch_size=2000)
            got = robustness(cache, bank, ds.x_test, ds.y_test, attack, ks=range(10), n_negatives=n_negatives,
                             seed=seed, clean_logits=clean)
            rows[col][f"{which}, mean"] = float(np.mean(list(got.values())))
            rows[col][f"{which}, worst detector"] = float(min(got.values()))
    return pd.DataFrame(rows)


def classifier_table(cache, classifiers: Mapping, ds, *, n_attacked: int, n_autoattack: int = 0,
                     seed: int = 0) -> pd.DataFrame:
    """Clean accuracy (whole test set), accuracy under PGD-100 (L-inf 0.3, step 0.01, random start, CW margin)
    on a seeded subset of ``n_attacked`` test images and, for the first ``n_autoattack`` of them, under
    AutoAttack's standard version (each with its Wilson 95% interval, and AutoAttack's own checks of the run),
    for every classifier (name ->
    :class:`~advdetect.defences.ClassifierDefence`), beside the reference figures of the robust classifiers."""
    x, y = subset(ds.x_test, ds.y_test, n_attacked, seed=seed)
    rows = []
    for name, d in classifiers.items():
        row = {"classifier": name, "clean accuracy": accuracy(d.classifier, ds.x_test, ds.y_test)}
        pgd = robust_accuracy(cache, d, x, y, eps=0.3, steps=100, step_size=0.01)
        row.update({"PGD-100": pgd, "PGD-100 95% CI": _interval(pgd, len(y)), "n PGD": len(y)})
        if n_autoattack:
            found: list[str] = []
            aa = autoattack_accuracy(cache, d, x[:n_autoattack], y[:n_autoattack], eps=0.3, seed=seed, checks=found)
            row.update({"AutoAttack": aa, "AutoAttack 95% CI": _interval(aa, min(n_autoattack, len(y))),
                        "n AutoAttack": min(n_autoattack, len(y)),
                        "AutoAttack's own checks": "; ".join(found) if found else "no warning"})
        row["reference: clean / PGD-100 / best attack"] = _classifier_reference(d)
        rows.append(row)
    return pd.DataFrame(rows).set_index("classifier")


def autoattack_checks_note(table: pd.DataFrame) -> str:
    """The warnings AutoAttack's own checks raised, per classifier of :func:`classifier_table`, as a Markdown
    list under a sentence (or a sentence that there were none), for the text under the table."""
    col = "AutoAttack's own checks"
    if col not in table:
        return ""
    found = [(name, text) for name, text in table[col].items() if text != "no warning"]
    if not found:
        return "AutoAttack's own checks raised no warning."
    return "AutoAttack's own checks warned:\n\n" + "\n".join(f"* **{name}**: {text}" for name, text in found)


def clearly_above(a: tuple[float, int], b: tuple[float, int]) -> bool:
    """Whether proportion ``a`` = (share, n) is above ``b`` with room to spare: the Wilson 95% intervals do not
    overlap and ``a``'s lies higher. The book ranks two measured shares only then."""
    return interval_order(proportion_ci(round(a[0] * a[1]), a[1]), proportion_ci(round(b[0] * b[1]), b[1])) == 1


def judges_verdict(shares: Mapping[str, tuple[float, float]], n: int, claim: str) -> str:
    """What several judges say of ``claim`` ("A shows X more often than B"), from each judge's shares
    ``(A's, B's)`` on ``n`` images each: the claim gets support from a judge only where its Wilson 95% intervals do
    not overlap (:func:`clearly_above`). Returns a sentence: every judge agrees, goes against, cannot tell, or the
    judges differ (each one's finding named)."""
    calls = {j: "above" if clearly_above((a, n), (b, n)) else "below" if clearly_above((b, n), (a, n)) else "overlap"
             for j, (a, b) in shares.items()}
    said = {"above": "the first shows it more often (the 95% intervals do not overlap)",
            "below": "the second shows it more often (the 95% intervals do not overlap)",
            "overlap": "the two 95% intervals overlap"}
    found = set(calls.values())
    if found == {"above"}:
        return f"Every judge agrees with {claim}"
    if found == {"below"}:
        return f"Every judge goes against {claim}"
    if found == {"overlap"}:
        return f"For every judge the two 95% intervals overlap, so this does not decide {claim}"
    return (f"The judges differ, so this supports {claim} only in part: "
            + "; ".join(f"for the {j} judge {said[c]}" for j, c in calls.items()))


def clear_leader(shares: Mapping[str, tuple[float, int]]) -> str | None:
    """The name whose share lies clearly above every other's (:func:`clearly_above`), or None."""
    if not shares:
        return None
    top = max(shares, key=lambda k: shares[k][0])
    return top if all(clearly_above(shares[top], v) for k, v in shares.items() if k != top) else None


class Plain(str):
    """A string whose text form is itself, without quotes: what ``myst_nb.glue`` pastes into another page."""

    def __repr__(self) -> str:
        return str(self)


def glue_name(text: str) -> str:
    """A name fit for ``myst_nb.glue`` from a label: lower case, every run of other characters one underscore
    (``"GAT integrated"`` -> ``"gat_integrated"``, ``"L-Ben"`` -> ``"l_ben"``)."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def rank_pair(a: str, b: str, shares: Mapping[str, tuple[float, int]], sound: Mapping[str, bool] | None = None) -> int:
    """How two attack success ratios (``shares``: name -> (share, n)) rank: -1 when ``a``'s lies clearly below
    ``b``'s (the Wilson 95% intervals apart, :func:`clearly_above`), 1 when clearly above, 0 otherwise. With
    ``sound`` (name -> whether every check of the attacks behind the figure passed), a figure that failed a
    check is only a lower bound on what an attacker achieves: it can still lie clearly *above* a sound one
    (its true value is higher still), never clearly below, so the lower of the two must be sound."""
    ok = (lambda k: True) if sound is None else (lambda k: bool(sound.get(k, False)))
    order = 1 if clearly_above(shares[a], shares[b]) else -1 if clearly_above(shares[b], shares[a]) else 0
    return sound_order(order, ok(a), ok(b))


def ranking_phrase(shares: Mapping[str, tuple[float, int]], pairs=(), *, what: str = "worst-case ASR-1",
                   among: str | None = None, sound: Mapping[str, bool] | None = None) -> str:
    """The head-to-head prose, ranking only outside the Wilson 95% intervals (:func:`rank_pair`): which defence
    has the lowest ``what`` (``shares``: name -> (share, n)) among those whose figures are sound (``sound``;
    default: all), which defences lie clearly above it and which are not ranked against it, then each pair of
    ``pairs`` (present in ``shares``) as clearly lower, clearly higher or not ranked, and why. ``among`` names
    the set ranked at the start of the first sentence ("Of the defences that ..., the lowest ...")."""
    def ci(k):
        lo, hi = proportion_ci(round(shares[k][0] * shares[k][1]), shares[k][1])
        return f"{shares[k][0]:.2f} ({lo:.2f}-{hi:.2f})"

    def ok(k):
        return sound is None or bool(sound.get(k, False))

    candidates = sorted((k for k in shares if ok(k)), key=lambda k: shares[k][0])
    if not candidates:
        return (f"Every defence's {what} is a lower bound (each failed a check), so none is ranked: a lower bound "
                "can only lie above a figure that passed its checks.")
    best = candidates[0]
    others = sorted((k for k in shares if k != best), key=lambda k: shares[k][0])
    above = [k for k in others if rank_pair(best, k, shares, sound) == -1]
    tied = [k for k in others if k not in above and ok(k)]
    bounds = [k for k in others if k not in above and not ok(k)]
    text = (f"{among}, the" if among else "The") + f" lowest {what} is **{best}**'s, {ci(best)}. "
    if tied:
        text += ("Its interval overlaps every other's: none of them is ranked. " if len(tied) == len(others)
                 else f"Its interval overlaps those of {', '.join(tied)}, so these are not ranked against it. ")
    if above:
        text += f"{', '.join(above)} lie clearly above it. "
    if bounds:
        text += (f"The lower bounds of {', '.join(bounds)} (checks failed) do not lie clearly above it, so they are "
                 "not ranked against it. ")
    parts = []
    for a, b in pairs:
        if a not in shares or b not in shares:
            continue
        order = rank_pair(a, b, shares, sound)
        if order == -1:
            parts.append(f"{a} {ci(a)} is clearly lower than {b} {ci(b)}")
        elif order == 1:
            parts.append(f"{a} {ci(a)} is clearly higher than {b} {ci(b)}")
        elif clearly_above(shares[a], shares[b]) or clearly_above(shares[b], shares[a]):
            low = a if shares[a][0] < shares[b][0] else b
            parts.append(f"{a} {ci(a)} and {b} {ci(b)} cannot be ranked ({low}'s figure, the lower one, failed a "
                         "check and is only a lower bound)")
        else:
            parts.append(f"{a} {ci(a)} and {b} {ci(b)} cannot be ranked (the intervals overlap)")
    if parts:
        text += "Head to head: " + "; ".join(parts) + "."
    return text.strip()


def training_costs(models: Mapping[str, object]) -> pd.DataFrame:
    """The training cost of every model (anything with a per-epoch ``history`` whose entries carry ``seconds``:
    a :class:`~advdetect.artefacts.Trained`, a density fit): epochs, wall-clock seconds as measured when it was
    trained (kept when it comes from the cache) and seconds per epoch."""
    rows = {}
    for name, m in models.items():
        history = list(m.history)
        seconds = float(sum(h.get("seconds", 0.0) for h in history))
        rows[name] = {"epochs": len(history), "training time (s)": seconds,
                      "per epoch (s)": seconds / max(1, len(history))}
    return pd.DataFrame(rows).T.rename_axis("model").astype({"epochs": int})


#: the column of :func:`suite_costs` each kind of attack of the suite falls in (PGD rows of Table 2: their threat
#: model)
_FAMILIES = {"mt": "multi-targeted", 3: "black-box", "sanity": "unbounded budgets", "apgd": "APGD check",
             "aa": "AutoAttack"}


def attack_overview(result: SuiteResult) -> pd.DataFrame:
    """The suite's attacks as they ran, one row each: method, threat model, step rule and steps (where an attack
    adds a fixed-step run of the paper objective, that run's steps and step size beside them, and the defences it
    runs on where not every one), the images
    attacked and the seconds this run spent on them, over every defence (a result read from the cache: its
    loading time)."""
    first = result.defences[0]
    rows = []
    for s in result.specs:
        fixed = (f"{s.get('fixed_steps', s['steps'])} x {s['fixed_step']:.3g}" if s.get("fixed_step") else "-")
        if s.get("fixed_step") and s.get("fixed_for") is not None:
            fixed += f" ({', '.join(s['fixed_for']) or 'no defence'})"
        rows.append({"attack": s["name"], "method": s["method"], "threat model": threat(s),
                     "step rule": s.get("rule", "steepest" if s["method"] == "pgd" else "-"),
                     "steps": s.get("steps", 1), "fixed-step run": fixed,
                     "images": result.results[(first, s["name"])]["n"],
                     "seconds this run (all defences)": sum(result.results[(d, s["name"])]["seconds"]
                                                            for d in result.defences)})
    return pd.DataFrame(rows).set_index("attack")


def suite_costs(result: SuiteResult, *, measure: str = "compute", convergence: Mapping | None = None) -> pd.DataFrame:
    """Where a suite's time goes: seconds of each defence (rows, with a ``total`` row) on each kind of attack
    (columns: Table 2's PGD per threat model, targeted and untargeted together; Table 4's attacks by name; the
    multi-targeted attack, the black-box attacks, the unbounded budgets, the APGD check and AutoAttack; with
    ``convergence`` (defence -> :func:`advdetect.suite.convergence_study`) its runs; and ``total``).
    ``measure="compute"``: the seconds the attacks took when they were computed, which the cache keeps with them
    (:func:`advdetect.suite.metered`): what each costs from an empty cache, NaN where a result was cached before
    its time was recorded; ``"this run"``: what each (defence, attack) task took in this run (a task loaded from
    the cache: its loading time). The papers' own attacks are not included."""
    if measure not in ("compute", "this run"):
        raise ValueError(f"measure must be 'compute' or 'this run', got {measure!r}")
    field = "compute seconds" if measure == "compute" else "seconds"
    rows: dict[str, dict[str, float]] = {}
    for d in result.defences:
        row: dict[str, float] = {}
        for s in result.specs:
            col = (f"PGD {attack_name(s['norm'], s['eps'])}" if s["table"] == 2 else
                   s["name"] if s["table"] == 4 else _FAMILIES.get(s["table"], str(s["table"])))
            row[col] = row.get(col, 0.0) + float(result.results[(d, s["name"])].get(field, np.nan))
        if convergence is not None and measure == "compute":
            row["convergence study"] = float(convergence[d].get("compute seconds", np.nan)) if d in convergence \
                else np.nan
        rows[d] = row
    table = pd.DataFrame(rows).T
    table["total"] = table.sum(axis=1, skipna=False)
    table.loc["total"] = table.sum(axis=0, skipna=False)
    return table.rename_axis("defence")


#: The book's aims for its models at the cpu and paper profiles, stated once: a lower bound, or ``("<=", bound)``
#: for an attack's success ratio. The classifiers' aims are the field's figures for this network (Madry's
#: challenge, TRADES); the detectors' are GAT Tables 1, 11 and 12; ARCLU's is the authors' own quick check.
AIMS: dict[str, float | tuple[str, float]] = {
    "natural f, clean accuracy": 0.99,
    "Madry robust, clean accuracy": 0.98,
    "Madry robust, PGD-100": 0.91,
    "Madry robust, AutoAttack": 0.88,
    "TRADES, PGD-100": 0.92,
    "TRADES, AutoAttack": 0.90,
    "L-inf 0.3 detectors, worst of ten": 0.98,
    "L-inf 0.3 detectors, mean of ten": 0.99,
    "L-inf 0.5 detectors, worst of ten": 0.97,
    "L2 2.5 detectors, worse of k=0, 1": 0.97,
    "L2 5.0 detectors, worse of k=0, 1": 0.97,
    f"ARCLU own check, ASR-{ARCLU_OWN_CHECK['fpr']}": ("<=", ARCLU_OWN_CHECK["ASR"]),
    "ARCLU own check, EROC": ARCLU_OWN_CHECK["EROC"],
}


def against_aims(values: Mapping[str, float], aims: Mapping[str, float | tuple[str, float]] | None = None, *,
                 digits: int = 3) -> str:
    """One Markdown line per measured figure, each against the book's aim for it (:data:`AIMS` unless ``aims``
    is given): a lower bound, or ``("<=", bound)`` for an upper one (an attack's success ratio): ``"* Madry
    robust, PGD-100: 0.926 (aim >= 0.91: met)"``. Every figure needs an aim; an aim of ``aims`` without a figure
    is reported as not measured (with the default aims, only those named in ``values`` are reported)."""
    if aims is None:
        unknown = sorted(set(values) - set(AIMS))
        if unknown:
            raise KeyError(f"no aim for {unknown}; the book's aims are {sorted(AIMS)}")
        aims = {k: AIMS[k] for k in values}
    lines = []
    for name, aim in aims.items():
        op, bound = aim if isinstance(aim, tuple) else (">=", aim)
        if op not in (">=", "<="):
            raise ValueError(f"an aim is '>=' or '<=' a bound, got {op!r}")
        got = values.get(name)
        if got is None or (isinstance(got, float) and np.isnan(got)):
            lines.append(f"* {name}: not measured in this run (aim {op} {bound:g})")
            continue
        met = got >= bound if op == ">=" else got <= bound
        shown = digits   # enough digits that a miss never reads as "missed by 0.000"
        while not met and shown < 6 and round(abs(got - bound), shown) == 0:
            shown += 1
        verdict = "met" if met else f"**missed** by {abs(got - bound):.{shown}f}"
        lines.append(f"* {name}: {got:.{shown}f} (aim {op} {bound:g}: {verdict})")
    return "\n".join(lines)


def overlap_table(studies: Mapping[str, dict], *, accuracy: Mapping[str, float] | None = None) -> pd.DataFrame:
    """One row per representation space of :func:`advdetect.arclu.representation_study` results: the targeted
    attack's success, how many adversarial examples reached their target (the overlap numbers are measured on
    those), the centre AUC with its bootstrap 95% interval and the kNN accuracy; with ``accuracy`` (space ->
    clean accuracy) a first column of it."""
    rows = {}
    for name, st in studies.items():
        lo, hi = st["centre AUC 95% CI"]
        rows[name] = {**({"clean accuracy": accuracy[name]} if accuracy is not None else {}),
                      "attack success (classified as target)": st["success"],
                      "n successful": st["n successful"], "n attacked": st["n attacked"],
                      "centre AUC": st["centre AUC"],
                      "centre AUC 95% CI": "-" if np.isnan(lo) else f"{lo:.3f}-{hi:.3f}",
                      "kNN accuracy": st["kNN accuracy"]}
    return pd.DataFrame(rows).T.rename_axis("representation space").infer_objects()


def overlap_phrase(row: Mapping) -> str:
    """A row of :func:`overlap_table` in words, of its successful adversarial examples: ``"they have a centre AUC
    of 0.612 (0.550-0.670) and a kNN accuracy of 0.700"``, or that they are too few to measure either."""
    if np.isnan(row["centre AUC"]) or np.isnan(row["kNN accuracy"]):
        return f"they are too few ({row['n successful']}) to measure a centre AUC or a kNN accuracy"
    return (f"they have a centre AUC of {row['centre AUC']:.3f} ({row['centre AUC 95% CI']}) and a kNN accuracy "
            f"of {row['kNN accuracy']:.3f}")


def aims_met(values: Mapping[str, float]) -> dict[str, bool]:
    """Whether each measured figure meets the book's aim for it (:data:`AIMS`; a missing or NaN figure does
    not), by the aim's name: the form the chapters glue for the verdict chapter."""
    out = {}
    for name, got in values.items():
        op, bound = AIMS[name] if isinstance(AIMS[name], tuple) else (">=", AIMS[name])
        ok = got is not None and not (isinstance(got, float) and np.isnan(got))
        out[name] = bool(ok and (got >= bound if op == ">=" else got <= bound))
    return out


def _interval(share: float, n: int) -> str:
    lo, hi = proportion_ci(round(share * n), n)
    return f"{lo:.3f}-{hi:.3f}"


def _classifier_reference(d: Defence) -> str:
    """The field's figures for the recipe a robust classifier was trained with (``ClassifierDefence.recipe``)."""
    recipe = getattr(d, "recipe", None)
    if recipe == "trades":
        return (f"TRADES' small CNN: {TRADES_MNIST['clean']:.3f} / {TRADES_MNIST['PGD-40']:.3f} (PGD-40) / "
                f"{TRADES_MNIST['best attack']:.3f}")
    if recipe == "madry":
        lo, hi = MADRY_CHALLENGE_PGD100_ACCURACY
        return (f"GAT's Madry checkpoint: {GAT_ROBUST_CLASSIFIER['accuracy']:.3f} / "
                f"{1 - GAT_ROBUST_CLASSIFIER['error eps 0.3']:.2f} (GAT Fig 2b); challenge: {lo:.3f}-{hi:.3f} / "
                f"{MADRY_CHALLENGE_BEST_ATTACK_ACCURACY:.3f}")
    return "-"


def autoattack_accuracy(cache, defence: Defence, x: torch.Tensor, y: torch.Tensor, *, eps: float,
                        norm: str = "linf", seed: int = 0, checks: list | None = None) -> float:
    """Accuracy of a classifier (a :class:`~advdetect.defences.ClassifierDefence`) under AutoAttack's standard
    version (:func:`advdetect.blackbox.autoattack_classifier`), cached by weights and images; AutoAttack's own
    checks of the run (kept in the cache with it) are appended to ``checks`` where given."""
    key = {"model": defence.classifier, "x": x, "y": y, "norm": norm, "eps": eps, "version": "standard",
           "seed": seed, "checks kept": True}

    def run():
        found: list[str] = []
        adv = blackbox.autoattack_classifier(defence.classifier, x, y, norm=norm, eps=eps, seed=seed, checks=found)
        return {"x_adv": adv, "checks": "\n".join(found)}

    out = memo(cache, "autoattack_classifier", key, run)
    if checks is not None:
        checks.extend(m for m in out["checks"].split("\n") if m)
    return defence.accuracy(out["x_adv"], y)


def robust_accuracy(cache, defence: Defence, x: torch.Tensor, y: torch.Tensor, *, eps: float, steps: int,
                    step_size: float, batch_size: int = 500) -> float:
    """Accuracy of a classifier (a :class:`~advdetect.defences.ClassifierDefence`) under an untargeted L-inf PGD
    attack (CW margin, sign steps, random start; the evaluation of Madry et al.'s classifier), cached."""
    attack = dict(norm="linf", eps=eps, steps=steps, step_size=step_size, rule="sign", random_start=True,
                  batch_size=batch_size)
    device = next(defence.parameters()).device
    x_adv = attack_examples(cache, defence, "margin", x.to(device), y.to(device), attack)
    return defence.accuracy(x_adv, y)


def cifar_robustness_tables(cache, bank, ds, *, n_negatives: int, seed: int = 0,
                            attacks_255=gat.CIFAR_TABLE3_ATTACKS, table17_attack_255=(40, 0.5)):
    """GAT Tables 3 and 17 for CIFAR-10 detectors, each beside the paper's values: the AUC of detectors 0 and 1
    under L-inf 8/255 attacks of ``attacks_255`` (steps, step size in 0-255 units; normalised steepest descent
    from the natural image), and of all ten under ``table17_attack_255`` (paper: 40 x 0.5). Returns two
    DataFrames."""
    clean = gat.generative_scores(bank, ds.x_test)

    def run(steps, step, ks):
        attack = {"norm": "linf", "eps": 8 / 255, "steps": steps, "step_size": step / 255, "rule": "sign",
                  "batch_size": 500}
        return robustness(cache, bank, ds.x_test, ds.y_test, attack, ks=ks, n_negatives=n_negatives, seed=seed,
                          clean_logits=clean)

    rows = []
    for steps, step in attacks_255:
        got = run(steps, step, (0, 1))
        ref = GAT_TABLE3_CIFAR.get((steps, step), (np.nan, np.nan))
        rows.append({"attack (steps, step/255)": f"{steps}, {step:g}", "k=0": got[0], "k=1": got[1],
                     "paper k=0": ref[0], "paper k=1": ref[1]})
    table3 = pd.DataFrame(rows).set_index("attack (steps, step/255)")
    got = run(*table17_attack_255, range(bank.k))
    table17 = pd.DataFrame({"ours": [got[k] for k in range(bank.k)], "paper": list(GAT_TABLE17_CIFAR[:bank.k])},
                           index=[f"k={k}" for k in range(bank.k)]).T
    return table3, table17


# -------------------------------------------------------------------- GAT detection and classification (ch. 03)

#: chapter 03's attacks: label -> (defence, loss of :mod:`advdetect.objectives`)
GAT_ATTACKS = {
    "integrated, classifier attack (Eq. 8)": ("integrated", "margin"),
    "integrated, detectors attack (Eq. 9)": ("integrated", "gat detectors"),
    "integrated, combined attack (Eq. 12)": ("integrated", "gat combined"),
    "integrated, surrogate-logit attack (Eqs. 10-11)": ("integrated", "gat surrogate"),
    "generative, detectors attack (Eq. 9)": ("generative", "gat detectors"),
    "generative, cross-entropy": ("generative", "cross-entropy"),
    "generative, CW loss": ("generative", "margin"),
}


def _accept_scores(defence: Defence, x: torch.Tensor):
    """Predictions and GAT's acceptance scores (the detector logit; accept when >= T): minus the defence's
    rejection score."""
    pred, score = defence.decide(x)
    return pred, -score


def gat_detection(cache, systems: Mapping[str, Defence], x: torch.Tensor, y: torch.Tensor, attack: Mapping) -> dict:
    """GAT Figs 2a and 7a: every attack of :data:`GAT_ATTACKS` on the integrated or the generative classifier
    (``systems``: ``{"integrated": .., "generative": ..}``), cached; per attack the misclassification rate, the
    FPR at 95% TPR and the detection curve. Returns ``{"table", "curves", "adv"}``."""
    adv, curves, rows = {}, {}, []
    for name, (system, loss) in GAT_ATTACKS.items():
        d = systems[system]
        adv[name] = attack_examples(cache, d, loss, x, y, attack)
        pred, score = _accept_scores(d, adv[name])
        clean_pred, clean_score = _accept_scores(d, x)
        curves[name] = detection_curve(clean_score, score, pred, y.cpu())
        t95 = threshold_at_tpr(clean_score, 0.95)   # accept when the detector logit >= t95: reject above -t95
        at95 = Criterion(torch.full((d.num_classes,), -t95))
        rows.append({"attack": name, "misclassified": float((pred != y.cpu()).float().mean()),
                     "FPR at 95% TPR": float(at95.success_of(pred, -score, y.cpu()).float().mean())})
    table = pd.DataFrame(rows).set_index("attack")
    table["paper"] = "figure only"
    return {"table": table, "curves": curves, "adv": adv}


def gat_classification(cache, systems: Mapping[str, Defence], robust: Defence, x: torch.Tensor, y: torch.Tensor,
                       attacks: Mapping[float, Mapping], max_drop: float = 0.05) -> dict:
    """GAT Figs 2b and 7b: the integrated classifier under the combined attack (Eq. 12) and the generative one
    under the detectors attack (Eq. 9) at each eps (``attacks``: eps -> engine keywords), accuracy against error
    as the threshold moves, and the error where the clean accuracy has dropped by at most ``max_drop``; beside
    them Madry's robust classifier under PGD (CW margin) of the same keywords. Returns ``{"table", "curves",
    "robust error", "robust accuracy"}``."""
    chosen = {"integrated (Eq. 12)": ("integrated", "gat combined"),
              "generative (Eq. 9)": ("generative", "gat detectors")}
    curves, rows = {}, []
    for eps, attack in attacks.items():
        for label, (system, loss) in chosen.items():
            d = systems[system]
            pred, score = _accept_scores(d, attack_examples(cache, d, loss, x, y, attack))
            clean_pred, clean_score = _accept_scores(d, x)
            c = classification_curve(clean_score, clean_pred, y.cpu(), score, pred, y.cpu())
            curves[(label, eps)] = c
            err, acc = gat.error_at_accuracy_drop(c, max_drop)
            rows.append({"system": label, "eps": eps, "accuracy (no rejection)": float(c.y[0]),
                         "error (no rejection)": float(c.x[0]), "accuracy at <=5-point drop": acc,
                         "error there": err, "paper": "figure only"})
    robust_acc = robust.accuracy(x, y)
    robust_err = {}
    for eps, attack in attacks.items():
        kw = {**attack, "rule": "sign", "random_start": True}
        x_adv = attack_examples(cache, robust, "margin", x, y, kw)
        robust_err[eps] = 1 - robust.accuracy(x_adv, y)
        rows.append({"system": "Madry robust classifier", "eps": eps, "accuracy (no rejection)": robust_acc,
                     "error (no rejection)": robust_err[eps], "accuracy at <=5-point drop": robust_acc,
                     "error there": robust_err[eps],
                     "paper": f"acc {GAT_ROBUST_CLASSIFIER['accuracy']}, error "
                              f"{GAT_ROBUST_CLASSIFIER.get('error eps %g' % eps, np.nan)}"})
    return {"table": pd.DataFrame(rows).set_index(["system", "eps"]), "curves": curves, "robust error": robust_err,
            "robust accuracy": robust_acc}


def gat_mean_l2(cache, banks: Mapping, ds, x: torch.Tensor, y: torch.Tensor, *, rounds: int, steps: int, lr: float,
                seed: int = 0) -> pd.DataFrame:
    """GAT Table 2 (Appendix B): per detector system, the mean smallest L2 perturbation that the generative
    classifier accepts as a wrong class at its 95%-TPR threshold (:func:`advdetect.gat.min_l2_distortion`,
    cached), with a bootstrap 95% interval over the images where one was found, beside the paper's."""
    rows = []
    for name, b in banks.items():
        t95 = threshold_at_tpr(gat.generative_scores(b, ds.x_test).max(1).values, 0.95)
        result = memo(cache, "gat_min_l2", {"bank": b, "x": x, "y": y, "rounds": rounds, "steps": steps, "lr": lr,
                                            "threshold": round(t95, 6), "seed": seed},
                      lambda b=b, t95=t95: {"l2": gat.min_l2_distortion(b, x, y, t95, rounds=rounds, steps=steps,
                                                                        lr=lr, seed=seed, batch_size=500)[0]})
        l2 = result["l2"]
        ok = torch.isfinite(l2)
        lo, hi = mean_interval(l2[ok].numpy(), seed=seed)
        rows.append({"detection method": f"GAT, {name} detectors (ours)", "threshold (95% TPR)": t95,
                     "success rate (FPR)": float(ok.float().mean()), "n found": int(ok.sum()),
                     "mean L2 distortion": float(l2[ok].mean()) if int(ok.sum()) else np.nan,
                     "95% CI": "-" if np.isnan(lo) else f"{lo:.2f}-{hi:.2f}",
                     "paper mean L2 distortion": GAT_TABLE2[f"GAT, {name} detectors"]})
    rows.append({"detection method": "Carlini & Wagner 2017a's best detector", "threshold (95% TPR)": np.nan,
                 "success rate (FPR)": np.nan, "n found": np.nan, "mean L2 distortion": np.nan, "95% CI": "-",
                 "paper mean L2 distortion": GAT_TABLE2["Carlini & Wagner 2017a (best earlier detector)"]})
    return pd.DataFrame(rows).set_index("detection method")


# ------------------------------------------------------------------------------------------ ARCLU (ch. 04)

def arclu_evaluation(cache, defence: Defence, x_heldout: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                     attack: Mapping, *, targeted: bool, seed: int = 0, ps=(1, 2, 5, 10)) -> dict:
    """ARCLU's white-box evaluation of a distance detector: the adaptive PGD of Eq. 17 (the ``nearest wrong``
    loss; ``targeted``: toward a random wrong class per input) with sign steps from the natural image (engine
    keywords ``attack``, cached), then the :class:`~advdetect.evaluation.Arena`'s ASR-p at p% false positives of
    ``x_heldout``, EROC and the clean accuracy, plus the ASR-against-FPR curve for the threshold explorer."""
    arena = Arena(defence, x, y, x_heldout, ps, seed)
    dev = arena.device
    labels = (y.to(dev), arena.targets.to(dev)) if targeted else y.to(dev)
    x_adv = attack_examples(cache, defence, "nearest wrong", x.to(dev), labels, {"rule": "sign", **dict(attack)},
                            criterion=Criterion(targeted=targeted), targeted=targeted)
    out = arena.evaluate(x_adv)
    out["accuracy"] = arena.accuracy()
    out["asr curve"] = arena.asr_curve(out, np.unique(np.r_[np.geomspace(0.001, 0.5, 60), np.asarray(ps, float) / 100]))
    out["x_adv"] = x_adv
    return out


def arclu_table2(cache, defences: Mapping[str, Defence], x_heldout: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                 attack: Mapping, *, paper_rows: Mapping, paper_accuracy: Mapping = ARCLU_TABLE2_ACCURACY,
                 seed: int = 0):
    """ARCLU Table 2's rows for the distance detectors ``{name: defence}`` (``"ARCLU"``, the paper's "Ours", and
    ``"L-Ben"``) under the targeted and the untargeted adaptive PGD of ``attack`` (engine keywords with ``eps``):
    accuracy, ASR-1/2/5/10 with a Wilson interval for ASR-1, EROC (and over the misclassified examples alone),
    beside the paper's values from ``paper_rows``. Returns (DataFrame, ``{(name, row label): arclu_evaluation()
    result}``)."""
    results, rows = {}, []
    for name, d in defences.items():
        paper_name = PAPER_NAMES.get(name, name)
        for targeted in (True, False):
            r = arclu_evaluation(cache, d, x_heldout, x, y, attack, targeted=targeted, seed=seed)
            label = f"PGD Linf {attack['eps']:g}, {'T' if targeted else 'U'}"
            results[(name, label)] = r
            ref = paper_rows.get(label, {}).get(paper_name, {})
            lo, hi = proportion_ci(*r["counts"][1])
            rows.append({"model": name, "attack": label, "accuracy": r["accuracy"], "ASR-1": r["ASR-1"],
                         "ASR-1 95% CI": f"{lo:.3f}-{hi:.3f}", "ASR-2": r["ASR-2"], "ASR-5": r["ASR-5"],
                         "ASR-10": r["ASR-10"], "EROC": r["EROC"],
                         "paper accuracy": paper_accuracy.get(paper_name, np.nan),
                         "paper ASR-1": ref.get("ASR-1", np.nan), "paper EROC": ref.get("EROC", np.nan),
                         "EROC, misclassified": r["EROC, misclassified"]})
    return pd.DataFrame(rows).set_index(["model", "attack"]), results


# ------------------------------------------------------------------------------------- the suite (chapter 05)

def _paper_value(paper: Mapping | None, attack: str, defence: str, metric: str) -> float:
    if paper is None or defence not in PAPER_NAMES:
        return float("nan")
    return paper.get(attack, {}).get(PAPER_NAMES[defence], {}).get(metric, float("nan"))


def results_table(suite: SuiteResult, attacks: list[str], metrics=("ASR-1", "EROC"), paper: Mapping | None = None,
                  paper_rows: Mapping | None = None):
    """ARCLU's tables in long form, one row per (attack, defence): for each metric ours, the paper's value of
    the same cell beside it (``paper[attack][baseline][metric]``; ``paper_rows`` maps our attack name to the
    paper's row where they differ, e.g. HopSkipJump -> Boundary), and for every ASR its Wilson 95% interval and
    the number of eligible images behind it; where an attack's result says in which arithmetic it ran
    (HopSkipJump: float32, or float64 where its fallback ran), an ``arithmetic`` column ("-" for the others)."""
    rows = []
    for a in attacks:
        for d in suite.defences:
            r = suite.results[(d, a)]
            row = {"attack": a, "defence": d}
            for m in metrics:
                row[m] = r[m]
                row[f"paper {m}"] = _paper_value(paper, (paper_rows or {}).get(a, a), d, m)
                if m.startswith("ASR-"):
                    succ, n = r["counts"][float(m[4:]) if "." in m[4:] else int(m[4:])]
                    lo, hi = proportion_ci(succ, n)
                    row[f"{m} 95% CI"] = f"{lo:.2f}-{hi:.2f}"
            row["eligible images"] = r["counts"][suite.arenas[d].ps[0]][1]
            if "arithmetic" in r:
                row["arithmetic"] = r["arithmetic"]
            rows.append(row)
    table = pd.DataFrame(rows).set_index(["attack", "defence"])
    if "arithmetic" in table:
        table["arithmetic"] = table["arithmetic"].fillna("-")
    return table


def _lower_is_better(metric: str) -> bool:
    """Whether a smaller value of ``metric`` is better for the defence (an attack's success, an error, a false
    positive rate); AUCs, EROC and accuracies are better higher."""
    m = metric.lower()
    return "asr" in m or "error" in m or "fpr" in m or "success" in m


def beside_paper(table: pd.DataFrame, digits: int = 3):
    """A table of ours beside the paper's (columns ``X`` and ``paper X``) as the book shows it: numbers to
    ``digits`` places, and every cell of ours that is worse than the paper's value in the same row shaded (worse:
    higher for attack success ratios, errors and false-positive rates, lower for AUCs, EROC and accuracies)."""
    pairs = [(c, f"paper {c}") for c in table.columns if f"paper {c}" in table.columns]

    def shade(frame):
        out = pd.DataFrame("", index=frame.index, columns=frame.columns)
        for ours, paper in pairs:
            a = pd.to_numeric(frame[ours], errors="coerce")
            b = pd.to_numeric(frame[paper], errors="coerce")
            worse = (a > b) if _lower_is_better(ours) else (a < b)
            out.loc[worse.fillna(False).astype(bool), ours] = "background-color: #f6d5d5"
        return out

    numeric = [c for c in table.columns if pd.api.types.is_float_dtype(table[c])]
    counts = {c for c in numeric if str(c) == "n" or str(c).startswith(("n ", "eligible"))}   # counts: no decimals
    formats = {c: "{:.0f}" if c in counts else f"{{:.{digits}f}}" for c in numeric}
    return (table.style.apply(shade, axis=None).format(formats, na_rep="-")
            .set_table_attributes('class="dataframe"')   # the book's table style, as for a plain DataFrame
            .set_caption("shaded: ours is worse than the paper's value in the same row"))


def worst_rows(table: pd.DataFrame, paper_worst: Mapping | None = None, metric: str = "ASR-1") -> pd.DataFrame:
    """ARCLU's "Worst case" row per defence from a :func:`results_table`: the attack with the largest ``metric``
    (its interval), and the paper's worst case (``paper_worst[baseline][metric]``)."""
    rows = []
    for d, part in table.groupby(level="defence", sort=False):
        attack, _ = part[metric].idxmax()
        best = part.loc[(attack, d)]
        rows.append({"defence": d, "attack": attack, metric: best[metric],
                     f"{metric} 95% CI": best[f"{metric} 95% CI"],
                     f"paper {metric}": (paper_worst or {}).get(PAPER_NAMES.get(d, ""), {}).get(metric, float("nan"))})
    return pd.DataFrame(rows).set_index("defence")


def strongest(suite: SuiteResult, defence: str, norm: str, eps: float, tables=(2, 4, "mt")) -> torch.Tensor:
    """Per sample, the best adversarial example of all white-box attacks within (``norm``, ``eps``); an attack
    that ran on the first images only competes on those (the others keep their natural image there)."""
    x = suite.arenas[defence].x
    runs = [suite.results[(defence, s["name"])]["x_adv"] for s in suite.specs
            if s["table"] in tables and threat(s) == (norm, float(eps))]
    runs = [xa if len(xa) == len(x) else torch.cat([xa, x[len(xa):].to(xa.device)]) for xa in runs]
    return best_of(suite.arenas[defence], runs)


def union_success(suite: SuiteResult, defence: str, norm: str, eps: float, n: int | None = None,
                  tables=(2, 4, "mt")) -> torch.Tensor:
    """Per-sample success of any white-box attack of ``tables`` within (``norm``, ``eps``) (first ``n``); an
    attack that ran on the first images only counts on those."""
    masks = [suite.results[(defence, s["name"])]["success"] for s in suite.specs
             if s["table"] in tables and threat(s) == (norm, float(eps))]
    if not masks:
        return torch.zeros(0, dtype=torch.bool)
    size = max(len(v) for v in masks)
    m = torch.zeros(size, dtype=torch.bool)
    for v in masks:
        m[:len(v)] |= v.bool()
    return m if n is None else m[:n]


def _eligible(suite: SuiteResult, defence: str) -> torch.Tensor:
    return suite.arenas[defence].eligible()


def _share(success: torch.Tensor, eligible: torch.Tensor, m: int | None = None) -> float:
    """ASR on the first ``m`` points (default all): the share of the eligible ones among them that ``success``
    marks (NaN without an eligible point)."""
    m = len(eligible) if m is None else m
    e = eligible[:m]
    return float(success[:m][e].float().mean()) if int(e.sum()) else float("nan")


def worst_case(suite: SuiteResult, exclude_tables=("sanity",), convergence: Mapping | None = None,
               budget: tuple[str, float] = ("linf", 0.3)):
    """The head-to-head summary, per defence: its clean accuracy; the per-image union of every white-box attack
    within ``budget`` (``ASR-1 within <budget>``: an attacker who tries every attack of the suite there, the
    figure the chapter ranks by, with its Wilson 95% interval and the eligible images); with ``convergence`` (defence ->
    :func:`advdetect.suite.convergence_study` within ``budget``) the strongest single run there run to
    convergence on its subset (ASR-1, interval, eligible images, and whether the last doubling of steps added
    at most 2 points); and the worst case over every attack of every budget run on all attacked images
    (``worst-case ASR-1``, the attack that reached it, with its interval). Beside them the paper's figures where
    ARCLU's Table 2 has the defence (labelled ``paper ...``): its accuracy, the worse of its targeted and
    untargeted PGD rows within ``budget``, and its worst case. Sorted by the ranked figure."""
    label = attack_name(*budget)
    rows = []
    for d in suite.defences:
        elig = _eligible(suite, d)
        k = int(elig.sum())
        u = union_success(suite, d, *budget)
        hits = int(u[elig].sum()) if len(u) else 0
        ulo, uhi = proportion_ci(hits, k) if len(u) and k else (np.nan, np.nan)
        row = {"defence": d, "accuracy": suite.arenas[d].accuracy(),
               f"ASR-1 within {label}": hits / k if len(u) and k else float("nan"),
               "95% CI": f"{ulo:.2f}-{uhi:.2f}", "eligible": k}
        if convergence and d in convergence:
            c = convergence[d]
            p0 = suite.arenas[d].ps[0]
            clo, chi = proportion_ci(*c["result"]["counts"][p0])
            row.update({f"strongest run, {c['steps'][-1]} steps (first {len(c['result']['success'])})": c["asr"][-1],
                        "converged 95% CI": f"{clo:.2f}-{chi:.2f}", "converged eligible": c["n"],
                        "converged": c["converged"]})
        name = worst_attack(suite, d, exclude_tables, full_only=True)
        r = suite.results[(d, name)]
        lo, hi = proportion_ci(*r["counts"][suite.arenas[d].ps[0]])
        row.update({"worst-case ASR-1": r["ASR-1"], "its attack": name, "its 95% CI": f"{lo:.2f}-{hi:.2f}"})
        paper = PAPER_NAMES.get(d, "")
        rows_at = [ARCLU_TABLE2_MNIST.get(f"PGD {label}, {t}", {}).get(paper, {}).get("ASR-1") for t in "TU"]
        row.update({"paper accuracy": ARCLU_TABLE2_ACCURACY.get(paper, np.nan),
                    f"paper ASR-1 within {label}": max((v for v in rows_at if v is not None), default=np.nan),
                    "paper worst-case ASR-1": ARCLU_TABLE2_MNIST["Worst case"].get(paper, {}).get("ASR-1", np.nan)})
        rows.append(row)
    return pd.DataFrame(rows).set_index("defence").sort_values(f"ASR-1 within {label}")


def interval_bounds(text: str) -> tuple[float, float]:
    """The (low, high) of an interval written ``"0.12-0.34"`` by the tables of this module."""
    lo, hi = text.split("-")
    return float(lo), float(hi)


def sanity_checks(suite: SuiteResult, convergence: Mapping | None = None, *, protocols: pd.DataFrame | None = None,
                  unbounded_min: float = 0.9, aa_margin: float = 0.02):
    """Carlini et al. 2019's and Athalye et al. 2018's checks, per defence, as a table of (check, value, passed, norm: the
    norm of the attacks the check is about, for :func:`suite_soundness`): unbounded budgets (every ``sanity``
    attack) reach ASR-1 >= ``unbounded_min``; ASR-1 does not fall as eps grows (L-inf 0.3 -> 0.4 -> 1.0 and L2 2.0
    -> 6.0, per-sample unions, one sample of slack); each convergence study's run has converged (``convergence``:
    defence -> :func:`advdetect.suite.convergence_study`, whose ``converged`` it reports: the last doubling of its
    steps adds at most its tolerance, or it broke every eligible image); black-box ASR-1 does not exceed white-box ASR-1 on the same points;
    AutoAttack breaks at most a share ``aa_margin`` of the eligible images that the whole white-box suite at its
    budget did not, and so does the APGD check (``apgd`` attacks: Croce & Hein's step rule on each defence's own
    losses), and so does each paper's own attack on its defence (``protocols``: the table of
    :func:`protocol_comparison`); CW is no weaker than untargeted PGD of the same L2 budget; the multi-targeted
    attack (best of all targets) is no weaker than untargeted PGD of its budget.
    """
    rows = []

    def add(d, check, value, passed, norm):
        rows.append({"defence": d, "check": check, "value": value, "passed": bool(passed), "norm": norm})

    for d in suite.defences:
        elig = _eligible(suite, d)
        n = max(int(elig.sum()), 1)

        def asr(mask, m=None):
            return _share(mask, elig, m)

        for s in suite.specs:
            if s["table"] == "sanity":
                v = suite.get(d, s["name"])
                add(d, f"{s['name']} reaches ASR-1 >= {unbounded_min:g}", f"{v:.2f}", v >= unbounded_min,
                    threat(s)[0])
        sanity = {threat(s): suite.results[(d, s["name"])]["success"] for s in suite.specs if s["table"] == "sanity"}
        for norm, chain in (("linf", (0.3, 0.4)), ("l2", (2.0,))):
            masks = [(e, union_success(suite, d, norm, e)) for e in chain]
            masks += [(e, m) for (nn_, e), m in sanity.items() if nn_ == norm]
            masks = [(e, m) for e, m in masks if len(m)]
            common = min((len(m) for _, m in masks), default=0)   # on the images every budget's attacks ran on
            values = [asr(m[:common], common) for _, m in masks]
            if len(values) > 1:
                slack = 1.0 / max(int(elig[:common].sum()), 1)
                ok = all(b >= a - slack for a, b in zip(values, values[1:]))
                add(d, f"ASR-1 grows with {norm} eps " + " -> ".join(f"{e:g}" for e, _ in masks),
                    " -> ".join(f"{v:.2f}" for v in values) + (f" (first {common})" if common < len(elig) else ""),
                    ok, norm)
        if convergence and d in convergence:
            c = convergence[d]
            t = c["steps"][-1]
            add(d, f"{c['attack']} converged: {t // 2} -> {t} steps adds <= {c.get('tolerance', aa_margin):g}",
                f"{c['asr'][-1] - c['gain']:.2f} -> {c['asr'][-1]:.2f}", c["converged"], c.get("norm", "linf"))
        for s in suite.specs:
            if s["table"] != 3:
                continue
            r = suite.results[(d, s["name"])]
            m = r["n"]
            wb = union_success(suite, d, *threat(s), n=m)
            if not len(wb):
                continue
            bb = asr(r["success"], m) if r["success"].shape[0] == m else float("nan")
            w = asr(wb, m)
            add(d, f"{s['name']} <= white-box", f"{bb:.2f} vs {w:.2f}", bb <= w + 1.0 / n, threat(s)[0])
        for s in suite.specs:
            if s["table"] in ("aa", "apgd"):
                c = _independent_comparison(suite, d, s)
                va, vo, only = c["independent ASR-1"], c["our suite ASR-1"], c["found only by the independent attack"]
                add(d, f"{s['name']} adds <= {aa_margin:g} to the suite",
                    f"{va:.2f} vs {vo:.2f} ({only} of {c['eligible']} found only by it)",
                    only / max(c["eligible"], 1) <= aa_margin, threat(s)[0])
        if protocols is not None and d in protocols.index.get_level_values(0):
            ours = next(c for c in protocols.columns if c.startswith("all our"))
            for label, row in protocols.loc[d].iterrows():
                only, k = int(row["found only by it"]), int(row["eligible"])
                add(d, f"the paper's own attack ({label}) adds <= {aa_margin:g} to the suite",
                    f"{row['its ASR-1']:.2f} vs {row[ours]:.2f} ({only} of {k} found only by it)",
                    only / max(k, 1) <= aa_margin, "linf")
        names = {s["name"] for s in suite.specs}
        # CW, and the best of all targets, are no weaker than untargeted PGD of the same budget
        for s in (s for s in suite.specs if s["method"] == "cw" or s["table"] == "mt"):
            pgd = f"PGD {attack_name(*threat(s))}, U"
            if pgd in names:   # on the images both ran on (the first m where one ran on fewer)
                r, rp = suite.results[(d, s["name"])], suite.results[(d, pgd)]
                m = min(r["n"], rp["n"])
                v, vp = asr(r["success"][:m], m), asr(rp["success"][:m], m)
                add(d, f"{s['name']} >= {pgd}", f"{v:.2f} vs {vp:.2f}" + (f" (first {m})" if m < len(elig) else ""),
                    v >= vp - 1.0 / max(int(elig[:m].sum()), 1), threat(s)[0])
    return pd.DataFrame(rows)


CHECK_FAMILIES = (   # (pattern of a check of sanity_checks, the family it belongs to), first match wins
    (r"reaches ASR-1", "unbounded budgets reach 0.9"),
    (r"grows with", "ASR grows with eps"),
    (r"converged", "converged"),
    (r"<= white-box", "black-box <= white-box"),
    (r"adds <=", "AutoAttack, APGD, the papers' attacks add <= 2 points"),
    (r"^CW .* >= ", "CW >= PGD"),
    (r"^Multi-targeted .* >= ", "multi-targeted >= PGD"),
)


def check_family(check: str) -> str:
    """The family of a check of :func:`sanity_checks` (:data:`CHECK_FAMILIES`; unknown checks keep their name)."""
    return next((family for pattern, family in CHECK_FAMILIES if re.search(pattern, check)), check)


def checks_overview(checks: pd.DataFrame) -> pd.DataFrame:
    """One row per defence and one column per family of checks (:func:`check_family`): ``pass`` where every check
    of the family passed, else ``FAIL (k of n)`` with the number that failed."""
    fam = checks.assign(family=checks["check"].map(check_family))

    def verdict(part: pd.Series) -> str:
        bad = int((~part.astype(bool)).sum())
        return "pass" if bad == 0 else f"FAIL ({bad} of {len(part)})"

    order = list(dict.fromkeys(f for _, f in CHECK_FAMILIES if f in set(fam["family"])))
    order += [f for f in dict.fromkeys(fam["family"]) if f not in order]
    table = fam.pivot_table(index="defence", columns="family", values="passed", aggfunc=verdict, sort=False)
    return table.reindex(index=list(dict.fromkeys(checks["defence"])), columns=order).fillna("-")


def convergence_table(convergence: Mapping) -> pd.DataFrame:
    """The convergence study of every defence (defence -> :func:`advdetect.suite.convergence_study`) as one table:
    the suite's attack and its strongest run (loss, targeting, step rule), the eligible images, ASR-1 at the suite's
    own number of steps, at the end of the long run, the gain of its last doubling and whether that is within the
    check's tolerance, and the fixed-step runs, one column per step size as a fraction of eps.
    """
    rows = {}
    for d, c in convergence.items():
        last = c["steps"][-1]
        row = {"attack": c["attack"], "strongest run": c.get("run", c["rule"]), "eligible": c["n"],
               "suite's steps": c["suite steps"], "ASR-1 there": c["at suite steps"],
               f"ASR-1 at {last}": c["asr"][-1], "last doubling adds": c["gain"], "converged": c["converged"]}
        for a, v in c["sizes"].items():
            row[f"{c['size steps']} steps of eps/{c['eps'] / a:.3g}"] = v
        rows[d] = row
    return pd.DataFrame(rows).T.infer_objects()


def suite_soundness(checks: pd.DataFrame, norm: str | None = None) -> dict[str, bool]:
    """Per defence, whether every check of :func:`sanity_checks` passed (with ``norm``, every check of attacks
    within that norm: the unbounded budget, the growth with eps, the convergence study, the black-box and
    independent attacks and the comparisons of that norm): only then are its attack success ratios (of that
    norm) more than lower bounds. A failure in another norm says something about the attacks there (the L2
    attacks on an L-inf-trained network, say), not about these."""
    part = checks if norm is None else checks[checks["norm"] == norm]
    out = {str(d): True for d in dict.fromkeys(checks["defence"])}
    out.update({str(d): bool(g["passed"].all()) for d, g in part.groupby("defence", sort=False)})
    return out


def _independent_comparison(suite: SuiteResult, defence: str, spec: Mapping) -> dict:
    """An independent attack (AutoAttack, or APGD driven by the defence's objective) against our suite's union of
    white-box attacks of the same budget, on the same eligible images (the first ``n`` where it ran on fewer)."""
    r = suite.results[(defence, spec["name"])]
    aa = r["success"]
    m = len(aa)
    elig = _eligible(suite, defence)[:m]
    ours = union_success(suite, defence, *threat(spec), n=m)
    if not len(ours):
        ours = torch.zeros_like(aa)
    k = int(elig.sum())
    rate = (lambda mask: float(mask[elig].float().mean())) if k else (lambda mask: float("nan"))
    return {"images": m, "eligible": k, "independent ASR-1": rate(aa), "our suite ASR-1": rate(ours),
            "found only by the independent attack": int((aa & ~ours & elig).sum()),
            "found only by our suite": int((ours & ~aa & elig).sum())}


def autoattack_comparison(suite: SuiteResult):
    """AutoAttack against our whole white-box suite at the same budget, per defence: both ASR-1 (on the same
    eligible images) and how many images only one of them broke."""
    names = {"independent ASR-1": "AutoAttack ASR-1",
             "found only by the independent attack": "found only by AutoAttack"}
    rows = [{"defence": d, "attack": s["name"], **_independent_comparison(suite, d, s),
             "AutoAttack's own checks": "; ".join(suite.results[(d, s["name"])].get("checks", [])) or "none"}
            for d in suite.defences for s in suite.specs if s["table"] == "aa"]
    return pd.DataFrame(rows).rename(columns=names).set_index(["defence", "attack"])


def apgd_comparison(suite: SuiteResult):
    """The APGD check (Croce & Hein's step-size rule and momentum, driven by each defence's own adaptive
    objective) against our whole white-box suite at the same budget, per defence, as
    :func:`autoattack_comparison`."""
    names = {"independent ASR-1": "APGD ASR-1", "found only by the independent attack": "found only by APGD"}
    rows = [{"defence": d, "attack": s["name"], **_independent_comparison(suite, d, s)}
            for d in suite.defences for s in suite.specs if s["table"] == "apgd"]
    return pd.DataFrame(rows).rename(columns=names).set_index(["defence", "attack"])


def multi_targeted_comparison(suite: SuiteResult):
    """The multi-targeted attack beside the targeted and untargeted PGD attacks of the same budget, per
    defence, on the images the multi-targeted attack ran on (ASR-1 at the first FPR; the multi-targeted attack's
    Wilson 95% interval)."""
    rows = []
    for d in suite.defences:
        elig = _eligible(suite, d)
        for s in (s for s in suite.specs if s["table"] == "mt"):
            budget = attack_name(*threat(s))
            r = suite.results[(d, s["name"])]
            m = r["n"]
            lo, hi = proportion_ci(*r["counts"][suite.arenas[d].ps[0]])
            rows.append({"defence": d, "budget": budget, "images": m,
                         "PGD targeted": _share(suite.results[(d, f"PGD {budget}, T")]["success"], elig, m),
                         "PGD untargeted": _share(suite.results[(d, f"PGD {budget}, U")]["success"], elig, m),
                         "multi-targeted": r["ASR-1"],
                         "95% CI": f"{lo:.2f}-{hi:.2f}"})
    return pd.DataFrame(rows).set_index(["defence", "budget"])


def classification_curves(suite: SuiteResult, norm: str, eps: float) -> dict:
    """GAT's view of every defence: accuracy on clean images against the error on attacked ones (misclassified
    and accepted) as the rejection threshold moves, under the strongest white-box attack per image within
    (``norm``, ``eps``). Returns defence -> :class:`advdetect.metrics.Curve`."""
    curves = {}
    for d in suite.defences:
        arena = suite.arenas[d]
        adv_pred, adv_score = arena.defence.decide(strongest(suite, d, norm, eps))
        # classification_curve accepts inputs whose score is >= the threshold: pass minus the rejection score
        curves[d] = classification_curve(-arena.clean[1], arena.clean[0], arena.y, -adv_score, adv_pred, arena.y)
    return curves


def worst_attack(suite: SuiteResult, defence: str, exclude_tables=("sanity",), full_only: bool = False) -> str:
    """The name of the attack with the largest ASR-1 on ``defence`` (ties: the shorter name), optionally
    among the attacks run on every attacked image (NES and HopSkipJump run on fewer)."""
    n = len(suite.arenas[defence].x) if full_only else None
    names = [s["name"] for s in suite.specs if s["table"] not in exclude_tables
             and (n is None or suite.results[(defence, s["name"])]["n"] == n)]
    return max(names, key=lambda a: (suite.get(defence, a), -len(a)))


def asr_curves(suite: SuiteResult) -> tuple[dict, dict]:
    """For the threshold explorer: per defence, the ASR-vs-FPR curve and the EROC of its worst attack among
    those run on every attacked image. Returns ({label: (fprs, ASRs)}, {label: EROC})."""
    curves, erocs = {}, {}
    for d in suite.defences:
        name = worst_attack(suite, d, full_only=True)
        r = suite.results[(d, name)]
        curves[f"{d} ({name})"] = suite.arenas[d].asr_curve(r)
        erocs[f"{d} ({name})"] = r["EROC"]
    return curves, erocs


def protocol_comparison(cache, suite_result: SuiteResult, *, steps: int, eps: float = 0.3,
                        n: int | None = None) -> pd.DataFrame:
    """Each paper's own attack on its defence (``paper_protocol`` of the defence) beside our strongest
    white-box attacks at the same L-inf budget (their per-sample union), on the same images (the first ``n``
    attacked points) and thresholds: ASR-1 with its Wilson 95% interval, so that a gap to the paper can be
    told from a stronger evaluation, and the eligible images the paper's attack broke that none of ours did
    (``found only by it``, of ``eligible``)."""
    rows = []
    for d in suite_result.defences:
        full = suite_result.arenas[d]
        if not full.defence.paper_protocol:
            continue
        arena = full.subset(len(full.x) if n is None else n)
        m = len(arena.x)
        elig = arena.eligible()
        union = union_success(suite_result, d, "linf", eps, n=m)
        k = int(elig.sum())
        ours = float(union[elig].float().mean()) if k and len(union) else float("nan")
        olo, ohi = proportion_ci(int(union[elig].sum()), k) if k and len(union) else (np.nan, np.nan)
        for label, r in paper_protocol(cache, arena, eps=eps, steps=steps).items():
            lo, hi = proportion_ci(*r["counts"][arena.ps[0]])
            only = int((r["success"].bool() & ~union[:m].bool() & elig).sum()) if len(union) else 0
            rows.append({"defence": d, "paper's attack": label, "images": m, "its ASR-1": r[f"ASR-{arena.ps[0]:g}"],
                         "95% CI": f"{lo:.2f}-{hi:.2f}", f"all our L-inf {eps:g} attacks": ours,
                         "ours 95% CI": f"{olo:.2f}-{ohi:.2f}", "found only by it": only, "eligible": k})
    return pd.DataFrame(rows).set_index(["defence", "paper's attack"])
