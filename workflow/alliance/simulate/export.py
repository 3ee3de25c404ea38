"""Write a simulated trial the way real trial data arrive: csv, tsv, parquet, xlsx, sav, dta.

Why: the pipeline's readers must cope with every format and layout a data manager may send,
including SPSS user-missing codes and value-labelled categoricals; the demo exercises them.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pyreadstat

from alliance.errors import ConfigError
from alliance.simulate.resistance import missed_counts, with_schedule
from alliance.simulate.trial import SimulatedTrial

FORMATS = ("csv", "tsv", "parquet", "xlsx", "sav", "dta")
LAYOUTS = ("long", "wide")
SPSS_MISSING_CODE = -99
# Numeric codes for labelled categoricals in SPSS / Stata exports.
VALUE_CODES: dict[str, dict[str, int]] = {
    "arm": {"CBT": 1, "IPT": 2, "IMI-CM": 3, "PLA-CM": 4},
    "modality": {"in-person": 1, "video": 2},
    "sex": {"F": 1, "M": 2},
    "status": {"completed": 1, "dropout": 2, "not_started": 3},
    "attendance": {"attended": 1, "cancelled": 2, "no_show": 3},
}
DATE_COLUMNS = ("visit_date", "consent_date")
_LABELS = {
    "subject": "Participant ID",
    "visit": "Session number",
    "visit_date": "Session date",
    "hamd": "HAM-D 17 total",
    "hamd_suicide": "HAM-D item 3 (suicide)",
    "therapist": "Therapist ID",
    "site": "Site",
    "arm": "Randomised arm",
    "modality": "Treatment modality",
    "age": "Age at consent (years)",
    "sex": "Sex",
    "consent_date": "Date of consent",
    "baseline_hamd": "Screening HAM-D 17 total",
    "agreeableness": "Agreeableness (T score)",
    "extraversion": "Extraversion (T score)",
    "openness": "Openness (T score)",
    "agency": "Interpersonal agency (z)",
    "status": "Treatment status",
    "relapse_weeks": "Weeks to relapse or censoring (responders)",
    "relapse": "Relapse during follow-up (responders)",
    "n_failed_trials": "Failed adequate antidepressant trials, this episode",
    "thase_rush_stage": "Thase-Rush stage (0-5)",
    "episode_months": "Duration of the current episode (months)",
    "attendance": "Scheduled session attended / cancelled / no-show",
    "missed_before": "Scheduled sessions missed since the previous attended session",
    "pills_prescribed": "Doses prescribed since the previous session",
    "pills_taken": "Doses taken since the previous session (pill count)",
    "phq9_total": "PHQ-9 total (self-report)",
}
_WIDE_RE = re.compile(r"^(?P<name>.+)_s(?P<session>\d{2})$")


def to_wide(trial: SimulatedTrial) -> pd.DataFrame:
    """One row per patient: patient columns unchanged, then `{column}_s{session:02d}`.

    Therapist and observer items appear only for sessions on their rating schedules. Missed sessions
    are in the count form (`missed_before_sNN`: slots missed just before attended session NN):
    a wide row has one cell per session number, so a no-show after the last attended session
    has no place (the long export keeps it).
    """
    n_sessions = int(trial.truth["n_sessions"])
    scheduled = _rating_schedules(trial)
    s = trial.sessions.assign(missed_before=missed_counts(trial.sessions, trial.missed))
    values = [c for c in s.columns if c not in ("subject", "visit")]
    blocks = []
    for session in range(1, n_sessions + 1):
        cols = [c for c in values if session in scheduled.get(c, (session,))]
        block = s.loc[s["visit"] == session, ["subject", *cols]].set_index("subject")
        blocks.append(block.rename(columns=lambda c, k=session: f"{c}_s{k:02d}"))
    wide = pd.concat(blocks, axis=1)
    patients = trial.patients
    wide = wide.reindex(patients["subject"])
    return pd.concat([patients.reset_index(drop=True), wide.reset_index(drop=True)], axis=1)


def from_wide(wide: pd.DataFrame, patient_columns: list[str]) -> pd.DataFrame:
    """Reshape a wide table back to long session rows (sessions with a visit_date only)."""
    rows = []
    by_session: dict[int, dict[str, str]] = {}
    for col in wide.columns:
        m = _WIDE_RE.match(col)
        if m and col not in patient_columns:
            by_session.setdefault(int(m["session"]), {})[col] = m["name"]
    for session, mapping in sorted(by_session.items()):
        block = wide[["subject", *mapping]].rename(columns=mapping)
        block = block[block["visit_date"].notna()]
        rows.append(block.assign(visit=session))
    long = pd.concat(rows, ignore_index=True)
    return long.sort_values(["subject", "visit"], ignore_index=True)


def _rating_schedules(trial: SimulatedTrial) -> dict[str, tuple[int, ...]]:
    """Item column -> the sessions it is asked at, for raters who rate only some sessions."""
    design, observer = trial.truth["design"], trial.truth.get("observer")
    out = {c: tuple(design["therapist_rating_sessions"]) for c in design["therapist_item_columns"]}
    if observer:
        out |= {c: tuple(observer["rating_sessions"]) for c in observer["item_columns"]}
    return out


def _user_missing_columns(trial: SimulatedTrial) -> list[str]:
    design = trial.truth["design"]
    observer = trial.truth.get("observer", {}).get("item_columns", [])
    return [*design["patient_item_columns"], *design["therapist_item_columns"], *observer]


def _code_item_nonresponse(trial: SimulatedTrial, code: int) -> pd.DataFrame:
    """Session table with item non-response (asked but unanswered) replaced by `code`.

    Therapist items not scheduled at a session stay missing: they were never asked; so do
    observer items of a recording nobody coded (a coded recording has at least one item).
    """
    design = trial.truth["design"]
    s = trial.sessions.copy()
    rated = s["visit"].isin(design["therapist_rating_sessions"])
    for col in design["patient_item_columns"]:
        s[col] = s[col].fillna(code)
    for col in design["therapist_item_columns"]:
        s.loc[rated, col] = s.loc[rated, col].fillna(code)
    observer = trial.truth.get("observer", {}).get("item_columns", [])
    if observer:
        coded = s[observer].notna().any(axis=1)
        for col in observer:
            s.loc[coded, col] = s.loc[coded, col].fillna(code)
    return s


def _fill_numeric(frame: pd.DataFrame, code: int) -> pd.DataFrame:
    """Every missing cell of a numeric column becomes `code` (text columns stay empty)."""
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_numeric_dtype(out[col]):
            out[col] = out[col].fillna(code)
    return out


def _labelled(frame: pd.DataFrame) -> pd.DataFrame:
    """Categoricals to numeric codes and ISO date strings to dates, for SPSS / Stata."""
    out = frame.copy()
    for col in out.columns:
        base = _WIDE_RE.sub(r"\g<name>", col)
        if col in VALUE_CODES:
            out[col] = out[col].map(VALUE_CODES[col]).astype("float64")
        elif base in DATE_COLUMNS:
            out[col] = pd.Series(
                [None if pd.isna(v) else dt.date.fromisoformat(v) for v in out[col]],
                index=out.index,
                dtype="object",
            )
        elif isinstance(out[col].dtype, pd.StringDtype):
            out[col] = out[col].astype("object").where(out[col].notna(), "")
        elif pd.api.types.is_numeric_dtype(out[col]):
            out[col] = out[col].astype("float64")
    return out


def _stat_meta(frame: pd.DataFrame, user_missing: list[str], code: int | None) -> dict[str, Any]:
    labels = {}
    for col in frame.columns:
        m = _WIDE_RE.match(col)
        base, suffix = (m["name"], f" (session {int(m['session'])})") if m else (col, "")
        item = re.match(r"wai_(p|t)_(\d{2})$", base)
        observed = re.match(r"obs_(\d{2})$", base)
        if item:
            rater = "patient" if item[1] == "p" else "therapist"
            labels[col] = f"WAI-SR {rater} item {int(item[2])}{suffix}"
        elif observed:
            labels[col] = f"Demo observer alliance scale item {int(observed[1])}{suffix}"
        else:
            labels[col] = _LABELS.get(base, base) + suffix
    value_labels = {
        col: {v: k for k, v in VALUE_CODES[col].items()} for col in frame if col in VALUE_CODES
    }
    formats, measures = {}, {}
    for col in frame.columns:
        base = _WIDE_RE.sub(r"\g<name>", col)
        dtype = frame[col].dtype
        if col in VALUE_CODES:
            formats[col], measures[col] = "F1.0", "nominal"
        elif base in DATE_COLUMNS:
            measures[col] = "scale"
        elif pd.api.types.is_integer_dtype(dtype):
            formats[col] = "F8.0"
            measures[col] = "ordinal" if base in user_missing else "scale"
        elif pd.api.types.is_numeric_dtype(dtype):
            measures[col] = "scale"
        else:
            measures[col] = "nominal"
    missing = {}
    if code is not None:
        missing = {
            col: [code] for col in frame.columns if _WIDE_RE.sub(r"\g<name>", col) in user_missing
        }
    return {
        "column_labels": labels,
        "variable_value_labels": value_labels,
        "missing": missing,
        "formats": formats,
        "measures": measures,
    }


def _write_one(frame: pd.DataFrame, path: Path, fmt: str, trial: SimulatedTrial, code) -> None:
    if fmt in ("csv", "tsv"):
        frame.to_csv(path, index=False, sep="," if fmt == "csv" else "\t", lineterminator="\n")
    elif fmt == "parquet":
        frame.to_parquet(path, index=False, engine="pyarrow")
    elif fmt == "xlsx":
        frame.to_excel(path, index=False, sheet_name=path.stem, engine="openpyxl")
    elif fmt == "sav":
        meta = _stat_meta(frame, _user_missing_columns(trial), code)
        pyreadstat.write_sav(
            _labelled(frame),
            path,
            column_labels=meta["column_labels"],
            variable_value_labels=meta["variable_value_labels"],
            missing_ranges=meta["missing"],
            variable_format=meta["formats"],
            variable_measure=meta["measures"],
            row_compress=True,
        )
        fix_sav_stamp(path)
    else:  # dta
        meta = _stat_meta(frame, _user_missing_columns(trial), None)
        pyreadstat.write_dta(
            _labelled(frame),
            path,
            column_labels=meta["column_labels"],
            variable_value_labels=meta["variable_value_labels"],
        )


# An SPSS file's header stamps its creation date and time (ReadStat writes the clock's): written
# with a fixed stamp instead, so the same trial gives the same bytes (`make demo`). The value is
# the committed data/demo_wide/trial_wide.sav's, which regenerating therefore reproduces.
SAV_STAMP = (b"30 Nov 26", b"12:29:42")
SAV_STAMP_OFFSET = 92  # after rec_type, prod_name, layout_code, case size, compression, ...


def fix_sav_stamp(path: str | Path, stamp: tuple[bytes, bytes] = SAV_STAMP) -> None:
    """Overwrite the creation date (`dd Mmm yy`) and time (`hh:mm:ss`) in a .sav/.zsav header."""
    date, clock = stamp
    with open(path, "r+b") as handle:
        magic = handle.read(4)
        if magic not in (b"$FL2", b"$FL3"):
            raise ValueError(f"{path}: not an SPSS system file (magic {magic!r})")
        handle.seek(SAV_STAMP_OFFSET)
        handle.write(date + clock)


def write_trial(
    trial: SimulatedTrial,
    out_dir: str | Path,
    fmt: str = "csv",
    layout: str = "long",
    missing_code: int | None = None,
) -> list[Path]:
    """Write the trial and `truth.json`; return the written paths (data files, then truth).

    long: `sessions.<ext>` + `patients.<ext>`; wide: `trial_wide.<ext>`.
    `missing_code` (csv/tsv/xlsx): every missing numeric cell is written as this code.
    SPSS always codes item non-response as `missing_code` (default -99), declared user-missing.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    if layout not in LAYOUTS:
        raise ConfigError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if missing_code is not None and fmt in ("parquet", "dta"):
        raise ConfigError(f"missing_code is not supported for {fmt}: it has native missing values")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    code = missing_code
    sessions = trial.sessions
    if fmt == "sav":
        code = SPSS_MISSING_CODE if missing_code is None else missing_code
        sessions = _code_item_nonresponse(trial, code)
    coded = SimulatedTrial(
        sessions=sessions, patients=trial.patients, truth=trial.truth, missed=trial.missed
    )
    if layout == "long":
        tables = {"sessions": with_schedule(sessions, trial.missed), "patients": trial.patients}
    else:
        tables = {"trial_wide": to_wide(coded)}
    paths = []
    for name, frame in tables.items():
        if code is not None and fmt in ("csv", "tsv", "xlsx"):
            frame = _fill_numeric(frame, code)
        path = out / f"{name}.{fmt}"
        _write_one(frame, path, fmt, trial, code)
        paths.append(path)
    truth_path = out / "truth.json"
    truth_path.write_text(json.dumps(trial.truth, sort_keys=True, indent=2) + "\n")
    paths.append(truth_path)
    return paths
