"""Readable names of model terms, shared by the forest, slopes and RI-CLPM figures.

Names follow docs/estimands.md: the prior-only parts (`*_prior`) are what was known before the
session whose outcome is modelled; the whole-treatment names (`alliance_pat`, ...) stay readable
for custom models. A few names read differently by model kind (`alliance` in the dropout hazard
is the session just attended).
"""

from __future__ import annotations

ARROW = "\N{RIGHTWARDS ARROW}"
TIMES = "\N{MULTIPLICATION SIGN}"
MINUS = "\N{MINUS SIGN}"

TERM_TEXT: dict[str, str] = {
    # prior-only parts (docs/estimands.md): known before the session whose outcome is modelled
    "alliance_ther_prior": "Therapist-level alliance so far",
    "alliance_pat_prior": "Patient-level alliance so far",
    "alliance_within_prior": "Last session's alliance vs own running mean",
    "alliance_within_dt_prior": "Last session's alliance vs own trend (detrended)",
    "alliance_prior_pmean": "Patient's mean alliance so far",
    "alliance": "Alliance, same session",
    # RI-CLPM within-patient paths (previous session -> next)
    "alliance_to_symptom": f"Alliance {ARROW} next symptoms (within patient)",
    "symptom_to_alliance": f"Symptoms {ARROW} next alliance (within patient)",
    "alliance_ar": f"Alliance {ARROW} next alliance (within patient)",
    "symptom_ar": f"Symptoms {ARROW} next symptoms (within patient)",
    # whole-treatment decomposition and older names, kept for custom models
    "alliance_ther": "Therapist-level alliance",
    "alliance_pat": "Patient-level alliance",
    "alliance_within": "Session-level alliance",
    "alliance_lag1": "Alliance, previous session",
    "alliance_lag1_rc": "Same, corrected for item error (regression calibration)",
    "rupture_unrepaired_prior": "Rupture so far, not yet repaired",
    "rupture_repaired_prior": "Rupture so far, repaired",
    "alliance_within_lag1": "Session-level alliance, previous session",
    "alliance_within_dt_lag1": "Session-level alliance (detrended), previous session",
    "alliance_early": "Early alliance",
    "alliance_mean": "Mean alliance",
    "alliance_last": "End-of-treatment alliance",
    "alliance_t": "Therapist-rated alliance",
    "alliance_o": "Observer-rated alliance",
    "alliance_o_early": "Observer-rated early alliance",
    "alliance_o_mean": "Observer-rated mean alliance",
    "symptom_lag1": "Symptoms, previous session",
    "symptom_rest": "Severity without the suicide item",
    "symptom_early_change": "Early symptom change",
    "baseline_symptom": "Baseline symptoms",
    "weeks": "weeks",
    "telehealth": "telehealth",
    "agency": "agency",
    "trd": "TRD",
    "stage": "resistance stage",
    "a1": "a\u2081 slope along P = T",
    "a2": "a\u2082 curvature along P = T",
    "a3": f"a\u2083 slope along P = {MINUS}T",
    "a4": f"a\u2084 curvature along P = {MINUS}T",
}
# names that read differently in one kind of model
KIND_TERM_TEXT: dict[str, dict[str, str]] = {
    "hazard": {
        "alliance": "Alliance of the session just attended",
        "alliance_rc": "Same, corrected for item error (regression calibration)",
        "alliance_rc:trd": "Same, corrected for item error in each group",
        "alliance_rc:stage": "Same, corrected for item error (jointly with the slope)",
    },
    "cox": {  # the bootstrap bias-corrected rows (options.bias_correction)
        "alliance_mean_bc": "Mean alliance, small-sample bias-corrected",
        "alliance_last_bc": "End-of-treatment alliance, small-sample bias-corrected",
    },
}
PATH_TEXT = {
    "indirect": "Indirect effect via alliance",
    "a": f"Path a (predictor {ARROW} alliance)",
    "b": f"Path b (alliance {ARROW} outcome)",
    "c": "Total effect",
    "c_prime": "Direct effect",
}
# RI-CLPM path -> (from, to): which measure's points per which measure's point
CROSS_LAGGED = {
    "alliance_to_symptom": ("alliance", "symptom"),
    "symptom_to_alliance": ("symptom", "alliance"),
    "alliance_ar": ("alliance", "alliance"),
    "symptom_ar": ("symptom", "symptom"),
}
_LOWER_CASE = ("a1", "a2", "a3", "a4")


def term_text(term: str, kind: str = "", early: str = "") -> str:
    """Readable term: known names translated (by model `kind` where it differs), interactions
    joined by a multiplication sign; mediation paths (`indirect.agreeableness`) and pooled
    correlations (`pooled_r_REML`); `early` ("sessions 1–3") names the early window."""
    term = str(term)
    path, _, rest = term.partition(".")
    if rest and path in PATH_TEXT:
        return f"{PATH_TEXT[path]}: {rest}"
    if term.startswith("pooled_r"):
        method = term.removeprefix("pooled_r").strip("_")
        return f"Pooled r ({method})" if method else "Pooled r"
    names = {**TERM_TEXT, **KIND_TERM_TEXT.get(kind, {})}
    if early:
        names["alliance_early"] = f"Early alliance ({early})"
    if ":" in term and term in names:  # an interaction with a name of its own
        return names[term]
    parts = [names.get(p, p) for p in term.split(":")]
    parts = [parts[0]] + [p[0].lower() + p[1:] if p[1:2].islower() else p for p in parts[1:]]
    text = f" {TIMES} ".join(parts)
    if not text or term in _LOWER_CASE:  # a-subscript names stay lower case
        return text
    return text[0].upper() + text[1:]


def path_unit(term: str, measures: dict[str, str]) -> str:
    """ "HAM-D 17 points per WAI-SR point" for an RI-CLPM path; `measures` names the symptom
    and alliance scales ({"symptom": ..., "alliance": ...}); "" for other terms."""
    ends = CROSS_LAGGED.get(str(term))
    if ends is None:
        return ""
    source, target = (measures.get(e, e) for e in ends)
    return f"{target} points per {source} point"
