"""The columns the clean and score stages write for a config: what a model spec may name.

`model_tables(settings)` lists, for each table a model reads (`sessions`: results/scores/
analysis.parquet, `patients`: patient_analysis.parquet), the columns those stages produce for this
config: mapped roles, covariates, personality traits, kept columns and every derived column
(docs/data.md, docs/estimands.md). It reads the config only, so `spec_problems` can check every
model's outcome, terms, random parts, subset and column-valued options before any job runs and
name the closest column of a typo. tests/test_results_folder.py keeps the list equal to what the
score stage writes on the demo trials.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator

from alliance.expressions import parse
from alliance.models.base import ModelSpec
from alliance.models.frames import AVAILABILITY_OF, TABLES
from alliance.models.terms import option_columns, spec_terms
from alliance.settings import Settings

# Per session row (results/scores/analysis.parquet), whatever the config.
SESSION_ALWAYS = (
    "patient", "session", "session_index", "weeks", "symptom", "symptom_lag1",
    "baseline_symptom", "alliance", "alliance_n_rated", "alliance_pmean", "alliance_ther",
    "alliance_pat", "alliance_within", "alliance_lag1", "alliance_within_lag1",
    "alliance_prior_pmean", "alliance_ther_prior", "alliance_pat_prior", "alliance_within_prior",
    "alliance_within_dt_prior", "alliance_error_var", "rupture_unrepaired_prior",
    "rupture_repaired_prior",
)  # fmt: skip
# With score.detrend: the detrended within-patient part and its lag.
SESSION_DETREND = ("alliance_within_dt", "alliance_dt_fallback", "alliance_within_dt_lag1")
# With columns.suicidality: ideation at the threshold and severity without the item (the
# `ideation_ge<k>` cut-offs, k = 1 .. symptoms.suicidality_max, are added by `_session_columns`).
SESSION_SUICIDALITY = ("suicidality", "ideation", "symptom_rest")
# Per session, by mapped role (alliance.clean.resistance, alliance.clean.attendance).
SESSION_DOSES = ("doses_taken", "doses_prescribed", "adherence")
SESSION_SELF_REPORT = ("self_report_symptom", "self_report_pomp", "symptom_pomp",
                       "report_discrepancy")  # fmt: skip
SESSION_ATTENDANCE = ("missed_before", "missed_prior")
# Per patient with a schedule (columns.attendance or columns.missed_before).
PATIENT_ATTENDANCE = ("n_scheduled", "n_missed", "attendance_rate", "longest_missed_run",
                      "missed_after_last")  # fmt: skip
# Per patient (results/clean/patients.parquet), whatever the config.
PATIENT_ALWAYS = (
    "patient", "baseline_symptom", "n_sessions", "first_session", "last_session", "started",
    "dropout", "dropout_rule", "completed", "first_symptom", "final_symptom", "symptom_change",
    "change_from", "response",
)  # fmt: skip
PATIENT_ROLES = (
    "therapist", "site", "arm", "modality", "status", "dropout_session", "consent_date",
    "relapse_time", "relapse_event", "agency", "prior_failed_trials", "staging_score",
    "episode_months",
)  # fmt: skip
# Patient columns the score stage leaves out of the session table.
NOT_PER_SESSION = ("first_session", "last_session", "first_symptom")
SUMMARIES = ("early", "mean", "last", "slope", "n")
LANDMARK = (
    "attended_after_early", "symptom_early", "symptom_early_change", "symptom_change_after_early",
)  # fmt: skip
# Options whose value names a column besides those `option_columns` knows.
EXTRA_OPTION_COLUMNS = ("x_error", "time_column")
# Measures (a spec's `requires`, availability.json keys) that need a mapped role.
ROLE_OF_MEASURE = {
    "therapist": "therapist", "site": "site", "arm": "arm", "modality": "modality",
    "agency": "agency", "suicidality": "suicidality", "relapse": "relapse_time",
    "self_report": "self_report_symptom", "treatment_resistance.trd": "prior_failed_trials",
    "treatment_resistance.staging": "staging_score",
    "adherence.dose_counts": "doses_taken", "adherence.proportion_only": "adherence",
}  # fmt: skip
# Measures any one of whose roles provides them.
ROLES_OF_MEASURE = {
    "treatment_resistance": ("prior_failed_trials", "staging_score"),
    "attendance": ("attendance", "missed_before"),
    "adherence": ("doses_taken", "adherence"),
}


def _patient_columns(settings: Settings) -> list[str]:
    """Columns of results/clean/patients.parquet for this config."""
    cols = settings.columns
    out = list(PATIENT_ALWAYS)
    out += [role for role in PATIENT_ROLES if getattr(cols, role)]
    out += [*cols.covariates, *cols.personality, *settings.data.keep_columns]
    if cols.arm:
        out.append("arm_class")
    if cols.modality:
        out.append("telehealth")
    if settings.symptoms.remission_cutoff is not None:
        out.append("remission")
    if cols.relapse_time:
        out.append("relapse_followed")
    if cols.prior_failed_trials:
        out.append("trd")
    if cols.staging_score:
        out.append("stage")
    if cols.attendance or cols.missed_before:
        out += PATIENT_ATTENDANCE
    return list(dict.fromkeys(out))


def _other_rater(settings: Settings) -> str | None:
    """The rater whose score rides along as `alliance_t` (when configured)."""
    other = "therapist" if settings.score.rater != "therapist" else "patient"
    return other if other in settings.alliance.rater_specs() else None


def _observer_rides(settings: Settings) -> bool:
    """Whether the observer-rated score rides along as `alliance_o` (configured, not primary)."""
    observer = "observer" in settings.alliance.rater_specs()
    return observer and settings.score.rater != "observer"


def _session_columns(settings: Settings, patients: list[str]) -> list[str]:
    out = list(SESSION_ALWAYS)
    if settings.score.detrend:
        out += SESSION_DETREND
    if settings.columns.suicidality:
        out += SESSION_SUICIDALITY
        out += [f"ideation_ge{k}" for k in range(1, int(settings.symptoms.suicidality_max) + 1)]
    if _other_rater(settings):
        out.append("alliance_t")
    if _observer_rides(settings):
        out.append("alliance_o")
    cols = settings.columns
    if cols.doses_taken or cols.adherence:
        out += [c for c in SESSION_DOSES if c == "adherence" or cols.doses_taken]
    if cols.self_report_symptom:
        out += SESSION_SELF_REPORT
    if cols.attendance or cols.missed_before:
        out += SESSION_ATTENDANCE
    out += [c for c in patients if c not in NOT_PER_SESSION]
    return list(dict.fromkeys(out))


def model_tables(settings: Settings) -> dict[str, list[str]]:
    """Table (`sessions`, `patients`, as in a spec's `data`) -> the columns written for it."""
    patients = _patient_columns(settings)
    per_patient = list(patients)
    per_patient += [f"alliance_{s}" for s in SUMMARIES]
    if _other_rater(settings):
        per_patient += [f"alliance_t_{s}" for s in SUMMARIES]
    if _observer_rides(settings):
        per_patient += [f"alliance_o_{s}" for s in SUMMARIES]
    per_patient += ["alliance_pat", "alliance_ther", *LANDMARK]
    if {"patient", "therapist"} <= set(settings.alliance.rater_specs()):
        per_patient += ["agree_p", "agree_t", "agree_n"]
    return {
        "sessions": _session_columns(settings, patients),
        "patients": list(dict.fromkeys(per_patient)),
    }


def spec_columns(spec: ModelSpec) -> Iterator[tuple[str, str]]:
    """(key, column) for every column a spec names: outcome, fixed terms, random parts (slopes
    and groups), subset and column-valued options."""
    terms = spec_terms(spec)
    yield "outcome", spec.outcome
    for term in terms.fixed:
        for var in term:
            yield "fixed", var
    for lhs, _, group in terms.random:
        for term in lhs:
            yield from (("random", v) for v in term if v not in ("0", "1"))
        yield from (("random", v) for v in group)
    if spec.subset:
        yield from (("subset", c) for c in sorted(parse(spec.subset).columns()))
    for column in option_columns(spec.options):
        yield "options", column
    for key in EXTRA_OPTION_COLUMNS:
        if isinstance(spec.options.get(key), str):
            yield f"options.{key}", spec.options[key]


def configured(settings: Settings, measure: str) -> bool:
    """False when this config cannot provide `measure` (a `requires` entry): its role is not
    mapped, no personality traits are listed, the rater is not configured. True otherwise
    (whether the data hold it is known after the clean stage: availability.json)."""
    if measure in ROLE_OF_MEASURE:
        return bool(getattr(settings.columns, ROLE_OF_MEASURE[measure]))
    if measure in ROLES_OF_MEASURE:
        return any(getattr(settings.columns, r) for r in ROLES_OF_MEASURE[measure])
    if measure == "personality":
        return bool(settings.columns.personality)
    if measure.startswith("raters."):
        return measure.removeprefix("raters.") in settings.alliance.rater_specs()
    return True


def spec_problems(specs: Iterable[ModelSpec], settings: Settings) -> list[str]:
    """One message per column a spec names that the stages will not write for this config.

    Not problems here: a spec that `requires` a measure the config cannot provide (the model
    stage skips it with the reason), and a column whose absence an unavailable measure explains
    (`arm` without an arm column, ...: the model stage drops its terms with the reason).
    """
    tables = model_tables(settings)
    problems = []
    for spec in specs:
        if spec.data not in tables or not all(configured(settings, m) for m in spec.requires):
            continue  # the spec schema names the allowed tables
        known = set(tables[spec.data]) | set(AVAILABILITY_OF)
        seen: set[str] = set()
        for key, column in spec_columns(spec):
            if column in known or column in seen:
                continue
            seen.add(column)
            close = difflib.get_close_matches(column, tables[spec.data], n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            problems.append(
                f"model '{spec.id}', key {key}: '{column}' is not a column of "
                f"{TABLES[spec.data]} (the columns the clean and score stages write for this "
                f"config){hint}"
            )
    return problems
