"""Treatment-resistance measures: prior failed trials, staging, adherence, self-report.

Why: resistance is biological (adequate trials that failed, a staging score) or behavioural
(medication not taken, symptoms not reported as the clinician sees them); the checks here keep
each measure in its declared range and the derivations turn it into what models use: the TRD
flag, the adherence proportion of each interval and the self-clinician discrepancy on one
0-100 scale (POMP). Attendance, the third behavioural facet, lives in `attendance`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from alliance.clean.checks import check_range, coerce_numeric
from alliance.clean.problems import Problems
from alliance.clean.sources import role_columns
from alliance.settings import (
    ColumnSettings,
    SelfReportSettings,
    SymptomSettings,
    TreatmentResistanceSettings,
)

PATIENT_MEASURES = ("prior_failed_trials", "staging_score", "episode_months")
COUNTS = ("doses_taken", "doses_prescribed", "missed_before")
# Why a flag of the available treatment-resistance measure is false (availability.json `reasons`).
RESISTANCE_REASONS = {
    "trd": "no prior failed trials (columns.prior_failed_trials): the TRD flag is not known",
    "staging": (
        "no staging score (columns.staging_score, with treatment_resistance.staging_scale and "
        "staging_range): the stage models need it"
    ),
}
# Why a flag of the available adherence measure is false (availability.json `reasons`).
ADHERENCE_REASONS = {
    "dose_counts": (
        "adherence is a proportion without dose counts (columns.adherence): a binomial model needs "
        "the counts (columns.doses_taken + doses_prescribed); the proportion's model (requires "
        "adherence.proportion_only) is the adherence model instead"
    ),
    "proportion_only": (
        "doses are counted (columns.doses_taken + doses_prescribed): the binomial model of the "
        "counts (requires adherence.dose_counts) is the adherence model, not a proportion-only one"
    ),
}


def _not_negative(
    frame: pd.DataFrame, col: str, problems: Problems, source: str, what: str, whole: bool = True
) -> pd.DataFrame:
    """Counts (`whole`) and durations: a number >= 0, else `out_of_range`."""
    values = frame[col]
    bad = values.notna() & ((values < 0) | ((values % 1 != 0) if whole else False))
    rule = "a whole number >= 0" if whole else ">= 0"
    return problems.flag(
        frame, bad, "out_of_range", f"{what} must be {rule}", column=col, source_column=source
    )


def check_resistance(
    p: pd.DataFrame,
    columns: ColumnSettings,
    resistance: TreatmentResistanceSettings,
    problems: Problems,
) -> pd.DataFrame:
    """Coerce and range-check the patient measures: failed trials (whole, >= 0), staging score
    (within `treatment_resistance.staging_range`), episode months (>= 0)."""
    sources = role_columns(columns)
    for role in PATIENT_MEASURES:
        if role in p:
            p = coerce_numeric(p, role, problems, sources[role])
    if "prior_failed_trials" in p:
        p = _not_negative(p, "prior_failed_trials", problems, columns.prior_failed_trials,
                          "number of failed antidepressant trials")  # fmt: skip
    if "staging_score" in p and resistance.staging_range:
        low, high = resistance.staging_range
        what = f"{resistance.staging_scale} staging score"
        p = check_range(p, "staging_score", low, high, problems, columns.staging_score, what)
    if "episode_months" in p:
        p = _not_negative(p, "episode_months", problems, columns.episode_months,
                          "episode duration (months)", whole=False)  # fmt: skip
    return p


def check_session_measures(
    s: pd.DataFrame, columns: ColumnSettings, self_report: SelfReportSettings, problems: Problems
) -> pd.DataFrame:
    """Dose counts (whole, >= 0, taken <= prescribed: `doses_exceed_prescribed`), the adherence
    proportion (0-1) and the self-report total (`self_report.min`-`max`). Coercion to numbers
    happened in `map_sessions`, like every numeric session role."""
    codes = s.attrs.get("missing_codes", {})
    sources = role_columns(columns)
    for role in COUNTS:
        if role in s:
            s = _not_negative(s, role, problems, sources[role], role.replace("_", " "))
    if "doses_taken" in s and "doses_prescribed" in s:
        over = s["doses_taken"] > s["doses_prescribed"]
        s = problems.flag(
            s, over, "doses_exceed_prescribed",
            f"more doses taken than prescribed ('{columns.doses_prescribed}')",
            column="doses_taken", source_column=columns.doses_taken,
        )  # fmt: skip
    if "adherence" in s:
        s = check_range(s, "adherence", 0, 1, problems, columns.adherence,
                        "adherence proportion", codes)  # fmt: skip
    if "self_report_symptom" in s:
        s = check_range(s, "self_report_symptom", self_report.min, self_report.max, problems,
                        columns.self_report_symptom, self_report.label, codes)  # fmt: skip
    return s


def pomp(values: pd.Series, low: float, high: float) -> pd.Series:
    """Percent of maximum possible: (value - min) / (max - min) x 100."""
    return 100.0 * (values.astype(float) - low) / (high - low)


def derive_resistance(
    s: pd.DataFrame,
    p: pd.DataFrame,
    resistance: TreatmentResistanceSettings,
    symptoms: SymptomSettings,
    self_report: SelfReportSettings,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`trd` and `stage` per patient; per session `adherence` (doses taken / prescribed since
    the previous attended session, else the mapped proportion), `self_report_pomp`,
    `symptom_pomp` and `report_discrepancy` = self-report POMP - clinician POMP (> 0: the
    patient reports more severity than the clinician rates). `stage` = staging score minus
    `TreatmentResistanceSettings.stage_centre()` (a fixed point of the scale, by default its
    midpoint), per stage point: the moderator of the stage models."""
    if "prior_failed_trials" in p:
        failed = p["prior_failed_trials"]
        p["trd"] = (failed >= resistance.trd_min_failed).astype("Int64").where(failed.notna())
    centre = resistance.stage_centre()
    if "staging_score" in p and centre is not None:
        p["stage"] = p["staging_score"].astype(float) - centre
    s = s.copy()
    if "doses_taken" in s and "doses_prescribed" in s:
        counted = s["doses_taken"] / s["doses_prescribed"].where(s["doses_prescribed"] > 0)
        given = s.get("adherence", np.nan)
        s["adherence"] = counted.where(counted.notna(), given).astype(float)
    if "self_report_symptom" in s:
        s["self_report_pomp"] = pomp(s["self_report_symptom"], self_report.min, self_report.max)
        if "symptom" in s:
            clin = pomp(s["symptom"], symptoms.min, symptoms.max)
            s["symptom_pomp"] = clin if symptoms.higher_is_worse else 100.0 - clin
            s["report_discrepancy"] = s["self_report_pomp"] - s["symptom_pomp"]
    return s, p


def resistance_availability(
    s: pd.DataFrame,
    p: pd.DataFrame,
    resistance: TreatmentResistanceSettings,
    self_report: SelfReportSettings,
    attendance_form: str | None,
) -> dict[str, Any]:
    """availability.json entries: treatment_resistance (with the staging scale and range and
    the TRD definition), attendance (its form), adherence (its source), self_report."""

    def state(ok: bool, reason: str, **extra: Any) -> dict[str, Any]:
        return {"available": bool(ok), "reason": "" if ok else reason, **extra}

    def has(frame: pd.DataFrame, col: str) -> bool:
        return col in frame and bool(frame[col].notna().any())

    staged = has(p, "staging_score")
    centre = resistance.stage_centre() if staged else None
    counted = has(s, "doses_taken") and has(s, "doses_prescribed")
    return {
        "treatment_resistance": state(
            has(p, "trd") or staged,
            "no prior failed trials or staging score (columns.prior_failed_trials, "
            "columns.staging_score)",
            trd=has(p, "trd"),
            trd_min_failed=resistance.trd_min_failed,
            staging=staged,
            staging_scale=resistance.staging_scale if staged else None,
            staging_range=list(resistance.staging_range) if staged else None,
            staging_centre=centre,
            # why a flag is false while the measure is available (the other form is there)
            reasons=RESISTANCE_REASONS,
        ),
        "attendance": state(
            attendance_form is not None,
            "no schedule (columns.attendance or columns.missed_before)",
            form=attendance_form,
        ),
        "adherence": state(
            has(s, "adherence"),
            "no medication adherence (columns.doses_taken + doses_prescribed, or adherence)",
            source="dose counts" if counted else ("proportion" if has(s, "adherence") else None),
            # which likelihood fits (a model's `requires`: adherence.dose_counts or
            # adherence.proportion_only), and why the other does not
            dose_counts=counted,
            proportion_only=has(s, "adherence") and not counted,
            reasons=ADHERENCE_REASONS,
        ),
        "self_report": state(
            has(s, "self_report_symptom"),
            "no self-report symptom scale (columns.self_report_symptom)",
            label=self_report.label,
            range=[self_report.min, self_report.max],
        ),
    }
