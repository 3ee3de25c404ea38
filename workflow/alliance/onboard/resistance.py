"""`alliance init`'s treatment-resistance guesses: the self-report scale beside the clinician
rating, and the staging scale a staging column is written on.

Why apart from `guess`: the self-report scale is chosen after the symptom total (a PHQ-9 that is
the trial's only symptom measure is the symptom, not a self-report beside it), and the staging
scale decides config keys outside `columns` (`treatment_resistance`, `self_report`).
"""

from __future__ import annotations

from alliance.onboard.guess import ITEM_NAMES, NUM, Guess, Tables
from alliance.onboard.profile import ColumnProfile, value_span
from alliance.onboard.vocabulary import SCALES, SELF_REPORT, matches, tokens

# Name words of each staging scale -> (scale, [min, max] or None when the scale has no fixed top).
STAGING_SCALES = (
    (frozenset({"thase*", "rush", "tr", "trss"}), "thase_rush", [0, 5]),
    (frozenset({"msm", "maudsley*"}), "msm", [3, 15]),
    (frozenset({"dm", "dmtrd"}), "dm_trd", [3, 27]),
    (frozenset({"mgh*"}), "mgh_s", None),
)
QIDS_SR = ("QIDS-SR", 0, 27)


def guess_self_report(t: Tables, symptom: list[Guess]) -> list[Guess]:
    """Session totals named after a self-report scale (PHQ-9, QIDS-SR, BDI-II, `_sr`), other
    than the first symptom candidate; items rank out."""
    first = symptom[0].column if symptom else None
    found = []
    for p in t.pool("session"):
        toks = tokens(p.name)
        if p.kind not in NUM or p.constant_within_patient or p.name == first:
            continue
        if not matches(toks, SELF_REPORT) or matches(toks, ITEM_NAMES):
            continue
        label = self_report_scale(p)[0]
        found.append(Guess(p.name, f"self-report scale name ({label}), values {value_span(p)}"))
    return found


def self_report_scale(p: ColumnProfile) -> tuple[str, float, float]:
    """(label, min, max) of a self-report column from its name (PHQ-9 0-27 when unknown)."""
    toks = tokens(p.name)
    if matches(toks, frozenset({"qids*"})):
        return QIDS_SR
    scale = next((s for s in SCALES if matches(toks, s.words)), None)
    if scale is not None:
        return scale.label, scale.low, scale.high
    return "PHQ-9", 0, 27


def staging_scale(name: str) -> tuple[str | None, list[float] | None]:
    """(scale, range) a staging column's name names; (None, None) when none is recognised."""
    toks = tokens(name)
    for words, scale, rng in STAGING_SCALES:
        if matches(toks, words):
            return scale, rng
    return None, None
