"""The clean stage: read -> map columns -> coerce -> validate -> derive -> pseudonymise.

Produces the session table (one row per patient x attended session) and the patient table with the
derived outcomes (dropout, response, remission, relapse follow-up), plus the participant flow and
the list of every problem found. Nothing here knows the demo's column names: all come from the
stage's settings (`CleanSettings`). This module runs the steps in order (`clean_trial`),
pseudonymises what leaves the stage and writes it (`write_clean`); the steps live in `sources`,
`mapping`, `checks` and `derive`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from alliance import files
from alliance.clean.attendance import (
    SCHEDULE_COLUMNS,
    attendance_measures,
    schedule_table,
    split_missed,
)
from alliance.clean.checks import (
    check_patients,
    check_session_links,
    check_sessions,
    require_outcome_variation,
    require_some_data,
)
from alliance.clean.derive import availability, derive, flow_table, score_symptoms
from alliance.clean.mapping import map_patients, map_sessions
from alliance.clean.problems import FILE, ROW, Problems
from alliance.clean.pseudonym import pseudonymise, resolve_key
from alliance.clean.resistance import (
    check_resistance,
    check_session_measures,
    derive_resistance,
    resistance_availability,
)
from alliance.clean.sources import kept_columns, read_inputs, record_read_notes
from alliance.settings import CleanSettings, ColumnSettings


@dataclass
class CleanResult:
    """Everything the clean stage writes."""

    sessions: pd.DataFrame
    patients: pd.DataFrame
    flow: pd.DataFrame
    validation: pd.DataFrame
    availability: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)
    # one row per scheduled session (attended and missed); empty without an attendance role
    schedule: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SCHEDULE_COLUMNS))


def clean_trial(settings: CleanSettings) -> CleanResult:
    """Run the whole clean stage in memory; raise InputError/ValidationFailed on fatal problems.

    The pseudonym key is checked first (ConfigError: missing, short, or the demo key on other
    data), before any data file is read."""
    data, symptoms, alliance = settings.data, settings.symptoms, settings.alliance
    key = resolve_key(settings.privacy, data)
    problems = Problems(settings.checks.policies())
    inputs = read_inputs(data, settings.columns, symptoms, alliance)
    columns = inputs.columns  # as reading resolved them (the session column of a wide table)
    record_read_notes([inputs.sessions, inputs.patients], problems)
    s = map_sessions(
        inputs.sessions, columns, symptoms, alliance, data.keep_columns, problems,
        date_format=data.date_format,
    )  # fmt: skip
    # missed sessions leave the session table first: every other check sees attended rows only
    s, missed = split_missed(s, columns, settings.codings.attendance, problems)
    kept = kept_columns(data.keep_columns, columns, symptoms.column)
    p = map_patients(inputs.sessions, inputs.patients, columns, kept, problems)
    s = check_sessions(s, columns, problems)
    s = check_session_measures(s, columns, settings.self_report, problems)
    p = check_patients(p, columns, settings.codings, problems, date_format=data.date_format)
    p = check_resistance(p, columns, settings.treatment_resistance, problems)
    s = check_session_links(
        s, p, columns, alliance.raters, problems,
        patient_table=inputs.patients is not None, path=data.sessions,
    )  # fmt: skip
    problems.raise_errors()
    require_some_data(s, inputs.sessions.path)
    s = score_symptoms(s, symptoms, alliance)
    require_outcome_variation(s, symptoms, inputs.sessions.path)
    s, p = derive(s, p, symptoms, settings.dropout)
    s, p = derive_resistance(s, p, settings.treatment_resistance, symptoms, settings.self_report)
    form = "codes" if columns.attendance else ("counts" if columns.missed_before else None)
    schedule = pd.DataFrame(columns=SCHEDULE_COLUMNS)
    if form:
        schedule = schedule_table(s, missed[missed["patient"].isin(set(p["patient"]))])
        s, p = attendance_measures(s, p, schedule)
    flow = flow_table(p, s, problems, settings.privacy)
    avail = availability(s, p, alliance.raters, columns.personality)
    avail |= resistance_availability(
        s, p, settings.treatment_resistance, settings.self_report, form
    )
    s, p = _pseudonymise(s, p, key)
    schedule["patient"] = pseudonymise(schedule["patient"], "patient", key)
    validation = _pseudonymise_problems(problems.frame(), columns, key)
    summary = {
        "patients": int(len(p)),
        "patients_with_sessions": int(p["started"].sum()),
        "therapists": avail["n_therapists"],
        "session_rows": int(len(s)),
        "arms": sorted(p["arm"].dropna().unique().tolist()) if "arm" in p else [],
        "problems": int(len(validation)),
    }
    return CleanResult(s, p, flow, validation, avail, summary, schedule)


def _pseudonymise(s: pd.DataFrame, p: pd.DataFrame, key: bytes) -> tuple[pd.DataFrame, ...]:
    s = s.drop(columns=[ROW, FILE], errors="ignore").copy()
    p = p.drop(columns=[ROW, FILE], errors="ignore").copy()
    s["patient"] = pseudonymise(s["patient"], "patient", key)
    p["patient"] = pseudonymise(p["patient"], "patient", key)
    if "therapist" in p:
        p["therapist"] = pseudonymise(p["therapist"], "therapist", key)
        s["therapist"] = s["patient"].map(p.set_index("patient")["therapist"])
    for col in ("arm", "site"):
        if col in p:
            s[col] = s["patient"].map(p.set_index("patient")[col])
    s = s.sort_values(["patient", "session"]).reset_index(drop=True)
    p = p.sort_values("patient").reset_index(drop=True)
    return s, p


def _pseudonymise_problems(v: pd.DataFrame, columns: ColumnSettings, key: bytes) -> pd.DataFrame:
    """Problems that quote a patient or therapist ID quote its pseudonym instead."""
    v = v.copy()
    for role, source in (("patient", columns.patient), ("therapist", columns.therapist)):
        # read_note values are counts, not IDs, even when the note is about an ID column.
        hit = (v["column"].eq(source) | v["column"].eq(role)) & v["check"].ne("read_note")
        if source and hit.any():
            v.loc[hit, "value"] = pseudonymise(v.loc[hit, "value"], role, key).astype(object)
    return v


def write_clean(result: CleanResult, outdir: str | Path) -> dict[str, Path]:
    """Write the clean stage's files atomically."""
    out = Path(outdir)
    paths = {
        "sessions": out / "sessions.parquet",
        "patients": out / "patients.parquet",
        "flow": out / "flow.csv",
        "validation": out / "validation.csv",
        "availability": out / "availability.json",
        "schedule": out / "schedule.parquet",
    }
    files.write_parquet(result.sessions, paths["sessions"])
    files.write_parquet(result.patients, paths["patients"])
    files.write_parquet(result.schedule, paths["schedule"])
    files.write_csv(result.flow, paths["flow"])
    files.write_csv(result.validation, paths["validation"])
    files.write_json(result.availability | {"summary": result.summary}, paths["availability"])
    return paths
