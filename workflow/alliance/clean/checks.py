"""Data checks on the mapped tables, each applying its configured policy (`checks`).

Coercion with its checks (non-numeric, out-of-range, bad dates), then session-level checks
(numbering, duplicates, order, dates), patient-level checks (codes, relapse follow-up) and the
checks that need both tables; last, the fatal conditions under which nothing can be analysed.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from alliance.clean.problems import FILE, ROW, Problems
from alliance.clean.readers.dates import ambiguity_message, bad_cells, read_dates, serial_message
from alliance.clean.readers.table import clip, name_text, shown_name
from alliance.clean.sources import role_columns
from alliance.config import code_text
from alliance.errors import ConfigError, InputError
from alliance.settings import CodingSettings, ColumnSettings, SymptomSettings

# Values that look like missing-data codes: named in the out-of-range message as a hint.
LIKELY_MISSING_CODES = {9, 99, 999, -9, -99, -999, -1, 8, 98, 998}
# C0 and C1 control characters (NUL, tab, line breaks, ...): never part of an ID or a code.
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
CODED = ("arm", "modality", "status")
_CONTROL_NAMES = {"\n": "line feed", "\r": "carriage return", "\t": "tab", "\x00": "NUL"}


def coerce_numeric(
    frame: pd.DataFrame, col: str, problems: Problems, source_col: str
) -> pd.DataFrame:
    """Coerce a column to float, flagging non-numeric cells."""
    values = frame[col]
    if pd.api.types.is_numeric_dtype(values):
        frame[col] = values.astype(float)
        return frame
    text = values.astype("string").str.strip()
    parsed = pd.to_numeric(text, errors="coerce")
    bad = text.notna() & (text != "") & parsed.isna()
    frame = problems.flag(
        frame, bad, "non_numeric", "value is not a number", column=col, source_column=source_col
    )
    frame = frame.copy()
    frame[col] = pd.to_numeric(frame[col].astype("string").str.strip(), errors="coerce")
    frame[col] = frame[col].astype(float)
    return frame


def check_range(
    frame: pd.DataFrame,
    col: str,
    low: float,
    high: float,
    problems: Problems,
    source_col: str,
    what: str,
    declared: Mapping[str, Sequence[float]] | None = None,
) -> pd.DataFrame:
    """Flag values outside [low, high], hinting at `data.missing_codes` for code-like values.

    `declared`: the missing codes configured for each source column, so a value that is a
    code of another column is named as such.
    """
    values = frame[col]
    bad = values.notna() & ((values < low) | (values > high))
    if not bad.any():
        return frame
    hint = code_hint(values[bad], source_col, declared or {})
    msg = f"{what} outside the allowed range {low:g}-{high:g}{hint}"
    return problems.flag(frame, bad, "out_of_range", msg, column=col, source_column=source_col)


def code_hint(values: pd.Series, column: str, declared: Mapping[str, Sequence[float]]) -> str:
    """'; if 9 means missing, ...' for the first bad value that is or looks like a missing code.

    A code declared for other columns only says so; a value that merely looks like a code
    (9, 99, -99, ...) suggests declaring it, for this column alone if need be.
    """
    numbers = [float(v) for v in pd.unique(values.dropna()) if isinstance(v, int | float)]
    for v in numbers:
        others = [c for c, codes in declared.items() if c != column and v in map(float, codes)]
        if others:
            names = ", ".join(f"'{name_text(c)}'" for c in others[:3])
            names += ", ..." if len(others) > 3 else ""
            return (
                f"; {v:g} is a declared missing code of {names} but not of this column: if it "
                f"means 'missing' here too, list it for this column (data.missing_codes: "
                f"{{default: [...], {yaml_key(column)}: [{v:g}]}})"
            )
    for v in numbers:
        if v in LIKELY_MISSING_CODES:
            return (
                f"; if {v:g} means 'missing', declare it in data.missing_codes (for this "
                f"column only: data.missing_codes: {{{yaml_key(column)}: [{v:g}]}})"
            )
    return ""


def yaml_key(name: str) -> str:
    """A column name as a key of a YAML flow mapping: bare when plain, else double-quoted."""
    if _PLAIN_KEY.fullmatch(name):
        return name
    return name_text(json.dumps(name, ensure_ascii=False)[1:-1]).join('""')


def parse_dates(
    frame: pd.DataFrame,
    col: str,
    problems: Problems,
    source: str,
    date_format: str | None = None,
) -> pd.DataFrame:
    """Parse a column as dates (day precision), flagging cells that are not dates.

    Nothing is guessed (`alliance.clean.readers.dates`): day/month numbers without
    `data.date_format` and bare Excel serial numbers stop the run (`ambiguous_date`,
    `excel_serial_date`); a date without its year is a `bad_date`. Time zones: a date is the
    calendar day it records where it was recorded. A UTC offset in text
    (`2024-05-06T23:30:00-05:00`) is dropped, not converted (UTC would make that session May
    7th); a time-zone-aware column (Parquet) gives its local day in its own zone. Either way a
    `read_note` row says how many dates carried a zone.
    """
    raw = frame[col]
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        zone = raw.dt.tz
        frame[col] = raw.dt.tz_localize(None).dt.normalize()
        _note_zones(frame, raw.notna(), problems, source, f"stored with time zone {zone}")
        return frame
    if pd.api.types.is_datetime64_any_dtype(raw):
        frame[col] = raw.dt.normalize()
        return frame
    read = read_dates(raw, date_format)
    rows = frame[ROW].to_dict()
    if read.ambiguous is not None:
        first = read.ambiguous.first
        raise InputError(
            ambiguity_message(read.ambiguous, rows), file=frame.at[first, FILE],
            row=rows[first], column=shown_name(source), value=clip(read.ambiguous.value),
            check="ambiguous_date",
        )  # fmt: skip
    if read.serials is not None and read.serials.any():
        serial = raw[read.serials]
        first, value = serial.index[0], serial.iloc[0]
        value = value.item() if isinstance(value, np.generic) else value
        raise InputError(
            serial_message(pd.to_numeric(serial)), file=frame.at[first, FILE], row=rows[first],
            column=shown_name(source), value=clip(value), check="excel_serial_date",
        )  # fmt: skip
    for message, mask in bad_cells(read):
        frame = problems.flag(frame, mask, "bad_date", message, column=col, source_column=source)
    frame = frame.copy()
    frame[col] = read.dates.reindex(frame.index)  # set_missing: bad cells are NaT already
    _note_zones(frame, read.zoned.reindex(frame.index), problems, source, "with a UTC offset")
    return frame


def _note_zones(
    frame: pd.DataFrame, zoned: pd.Series, problems: Problems, source: str, how: str
) -> None:
    """The `read_note` for dates whose time zone was dropped (see `parse_dates`)."""
    zoned = zoned.fillna(False).astype(bool)
    if not zoned.any():
        return
    n = int(zoned.sum())
    problems.add(
        "read_note",
        f"{n} date(s) {how} read as the local calendar day they record (zone dropped, not "
        "converted to UTC)",
        file=frame.loc[zoned, FILE].iloc[0], column=source, value=n, action="note",
    )  # fmt: skip


def code_series(values: pd.Series) -> pd.Series:
    """Codes as text, as `codings` holds them (`alliance.config.code_text`): 1, 1.0, "1" -> "1"."""
    texts = {v: code_text(v) for v in values.dropna().unique() if not _missing(v)}
    return values.map(texts).astype("string")  # one conversion per distinct code


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def reject_control_characters(frame: pd.DataFrame, roles: Mapping[str, str | None]) -> None:
    """Stop on an ID or code holding a control character (NUL, line break, tab, ...).

    Surrounding whitespace is stripped before (text cells when read, IDs and codes when
    mapped); one inside a value is an export or copy-paste error that would split an ID in two
    or a line of output, so the run stops naming the first cell and the count.
    """
    for role, source in roles.items():
        if role not in frame or pd.api.types.is_numeric_dtype(frame[role]):
            continue
        text = frame[role].astype("string").str.strip()
        hit = text.str.contains(_CONTROL, na=False).astype(bool)
        if not hit.any():
            continue
        row = frame.loc[hit].iloc[0]
        char = _CONTROL.findall(text[hit].iloc[0])[0]
        name = _CONTROL_NAMES.get(char, f"U+{ord(char):04X}")
        more = f"; {int(hit.sum())} cells of this column have one" if hit.sum() > 1 else ""
        raise InputError(
            f"{role} contains a control character ({name}){more}: an export or copy-paste "
            "error; remove it in the source file",
            file=row[FILE], row=row[ROW], column=shown_name(source or role),
            value=clip(row[role]), check="control_character",
        )  # fmt: skip


def check_sessions(s: pd.DataFrame, columns: ColumnSettings, problems: Problems) -> pd.DataFrame:
    """Session numbers, duplicates, order, dates."""
    sess_col = columns.session
    declared: Mapping[str, Sequence[float]] = s.attrs.get("missing_codes", {})
    bad = s["session"].isna() | (s["session"] < 0) | (s["session"] % 1 != 0)
    codes = LIKELY_MISSING_CODES | {float(c) for cs in declared.values() for c in cs}
    coded = bad & s["session"].isin(codes)
    for mask, hint in (
        (bad & ~coded, ""),
        (coded, _session_code_hint(s["session"][coded], declared)),
    ):
        s = problems.flag(
            s, mask.reindex(s.index, fill_value=False), "bad_session",
            f"session number must be a whole number >= 0{hint}", column="session",
            source_column=sess_col,
        )  # fmt: skip
    # A fractional session number cannot be kept under any policy (int64 would truncate 2.5 to
    # 2, silently colliding with the real session 2); under `error` the bad rows leave the
    # remaining checks too, so the user is not shown problems that only follow from them.
    gone = s["session"].isna() | (s["session"] % 1 != 0)
    policy = problems.policies.get("bad_session", "error")
    if policy == "error":
        gone |= bad
    elif policy in ("warn", "set_missing"):
        for _, row in s.loc[gone].iterrows():  # say so: the policy alone would keep the row
            problems.add(
                "bad_session", "row removed: it has no whole session number", file=row[FILE],
                row=row[ROW], column=sess_col, value=row["session"], action="drop_row",
            )  # fmt: skip
    s = s.loc[~gone].copy()
    s["session"] = s["session"].astype("int64")
    bad_id = s["patient"].isna() | (s["patient"] == "")
    if bad_id.any():
        row = s.loc[bad_id].iloc[0]
        raise InputError(
            "patient identifier is empty",
            file=row[FILE],
            row=row[ROW],
            column=shown_name(columns.patient),
        )
    reject_control_characters(s, {"patient": columns.patient})
    dup = s.duplicated(["patient", "session"], keep="first")
    s = problems.flag(
        s, dup, "duplicate_session", "patient x session appears more than once",
        column="session", source_column=sess_col,
    )  # fmt: skip
    if problems.policies.get("duplicate_session", "error") == "error":
        s = s.loc[~dup.reindex(s.index, fill_value=False)]  # the run stops; no follow-on noise
    # Out of order: session number lower than an earlier row of the same patient (file order).
    s = s.sort_values([FILE, ROW], kind="stable")
    prev_max = s.groupby("patient", sort=False)["session"].cummax().groupby(s["patient"]).shift()
    out_of_order = prev_max.notna() & (s["session"] < prev_max)
    s = problems.flag(
        s, out_of_order, "session_order", "session number is lower than an earlier row's",
        column="session", source_column=sess_col,
    )  # fmt: skip
    if "date" in s:
        today = pd.Timestamp(dt.date.today())
        s = problems.flag(
            s, s["date"] > today, "future_date", "date is in the future", column="date",
            source_column=columns.date,
        )  # fmt: skip
        ordered = s.sort_values(["patient", "session"])
        earlier = ordered.groupby("patient")["date"].shift()
        backwards = ordered["date"].notna() & earlier.notna() & (ordered["date"] < earlier)
        rep = ordered["date"].notna() & earlier.notna() & (ordered["date"] == earlier)
        s = problems.flag(
            s, backwards.reindex(s.index), "session_order",
            "session date is earlier than the previous session's", column="date",
            source_column=columns.date,
        )  # fmt: skip
        s = problems.flag(
            s, rep.reindex(s.index), "repeated_date",
            "two sessions of this patient share a date", column="date", source_column=columns.date,
        )  # fmt: skip
    return s.sort_values(["patient", "session"]).reset_index(drop=True)


def _session_code_hint(values: pd.Series, declared: Mapping[str, Sequence[float]]) -> str:
    """Why a code-like session number (-99) is not set missing, and what to do instead."""
    if values.empty:
        return ""
    value = float(values.iloc[0])
    known = any(value in map(float, codes) for codes in declared.values())
    what = "is a declared missing code" if known else "looks like a missing code"
    return (
        f"; {value:g} {what}, but data.missing_codes never blanks "
        "the patient, session or therapist column (a row without them cannot be placed): "
        "declare codes per column ({default: [...], COLUMN: [...]}) for data columns only, "
        "and correct or delete this row, or set checks.bad_session: warn to drop such rows"
    )


def check_patients(
    p: pd.DataFrame,
    columns: ColumnSettings,
    codings: CodingSettings,
    problems: Problems,
    date_format: str | None = None,
) -> pd.DataFrame:
    """Codes, numeric and date roles, relapse follow-up, therapists with one patient.

    `date_format`: `data.date_format`, for the consent date."""
    p = p.copy()
    for role in ("therapist", "site"):  # IDs: surrounding whitespace is no part of them
        if role in p:
            p[role] = p[role].map(lambda v: v.strip() if isinstance(v, str) else v)
    for role in CODED:
        if role in p:
            p[role] = code_series(p[role])
    ids = {"patient": columns.patient, "therapist": columns.therapist, "site": columns.site}
    reject_control_characters(p, ids | {r: getattr(columns, r) for r in CODED})
    if "arm" in p:
        arms = {code_text(code): cls for code, cls in codings.arm.items()}
        known = set(arms)
        unknown = p["arm"].notna() & ~p["arm"].isin(known)
        hint = f"known codes: {', '.join(sorted(known))}" if known else "codings.arm is empty"
        p = problems.flag(
            p, unknown, "unknown_arm", f"arm code is not in codings.arm ({hint})", column="arm",
            source_column=columns.arm,
        )  # fmt: skip
        p["arm_class"] = p["arm"].map(arms).astype("string")
    coded = (
        ("modality", codings.modality, columns.modality),
        ("status", codings.status, columns.status),
    )
    for role, mapping, source in coded:
        if role not in p:
            continue
        if not mapping:
            raise ConfigError(f"config key codings.{role}: map each {role} code in the data")
        mapping = {code_text(code): value for code, value in mapping.items()}
        unknown = p[role].notna() & ~p[role].isin(set(mapping))
        p = problems.flag(
            p, unknown, "unknown_code",
            f"{role} code is not in codings.{role} (known: {', '.join(sorted(mapping))})",
            column=role, source_column=source,
        )  # fmt: skip
        p[role] = p[role].map(mapping).astype("string")
    if "modality" in p:
        p["telehealth"] = (
            (p["modality"] == "telehealth").astype("Int64").where(p["modality"].notna())
        )
    sources = role_columns(columns)
    for role in ("baseline_symptom", "relapse_time", "relapse_event", "agency", "dropout_session"):
        if role in p:
            p = coerce_numeric(p, role, problems, sources[role])
    for name, source in columns.personality.items():
        p = coerce_numeric(p, name, problems, source)
    if "consent_date" in p:
        p = parse_dates(p, "consent_date", problems, columns.consent_date, date_format)
    if "relapse_event" in p:
        ev, tm = p["relapse_event"], p.get("relapse_time")
        bad_ev = ev.notna() & ~ev.isin([0, 1])
        p = problems.flag(
            p, bad_ev, "relapse_time", "relapse event must be 0 or 1", column="relapse_event",
            source_column=columns.relapse_event,
        )  # fmt: skip
        if tm is not None:
            ev, tm = p["relapse_event"], p["relapse_time"]
            p = problems.flag(
                p, ev.notna() & tm.isna(), "relapse_time", "relapse event recorded without a time",
                column="relapse_event", source_column=columns.relapse_event,
            )  # fmt: skip
            p = problems.flag(
                p, p["relapse_time"] <= 0, "relapse_time", "relapse time must be > 0",
                column="relapse_time", source_column=columns.relapse_time,
            )  # fmt: skip
    if "therapist" in p:
        per = p.dropna(subset=["therapist"]).groupby("therapist")["patient"].nunique()
        for therapist in per[per == 1].index:
            row = p.loc[p["therapist"] == therapist].iloc[0]
            problems.add(
                "single_patient_therapist",
                "therapist has one patient only (weakens therapist-level estimates)",
                file=row[FILE], row=row[ROW], column=columns.therapist, value=therapist,
            )  # fmt: skip
    return p


def check_session_links(
    s: pd.DataFrame,
    p: pd.DataFrame,
    columns: ColumnSettings,
    raters: Mapping[str, Mapping[str, str] | None],
    problems: Problems,
    *,
    patient_table: bool,
    path: str,
) -> pd.DataFrame:
    """Checks that need both tables: unknown patients, dates before consent, post-dropout rows,
    raters without answers.

    `patient_table`: whether patients come from a table of their own (a patients file or the
    patient rows of a wide table), so a session's patient can be missing from it. `path`: the
    session file, named in the rater rows.
    """
    if patient_table:
        orphan = ~s["patient"].isin(set(p["patient"]))
        s = problems.flag(
            s, orphan, "unknown_patient", "patient is not in the patient table", column="patient",
            source_column=columns.patient,
        )  # fmt: skip
    if "consent_date" in p and "date" in s:
        consent = s["patient"].map(p.set_index("patient")["consent_date"])
        s = problems.flag(
            s, s["date"] < consent, "before_consent", "session date is before the consent date",
            column="date", source_column=columns.date,
        )  # fmt: skip
    if "dropout_session" in p:
        limit = s["patient"].map(p.set_index("patient")["dropout_session"])
        s = problems.flag(
            s, s["session"] > limit, "after_dropout",
            "session is after the patient's recorded dropout", column="session",
            source_column=columns.session,
        )  # fmt: skip
    for rater, spec in raters.items():
        if not spec or s.empty:
            continue
        items = [c for c in s.columns if c.startswith(f"item_{rater}_")]
        empty = s[items].isna().all(axis=1) if items else pd.Series(True, index=s.index)
        if empty.all():
            # A configured rater without data is not fatal (the other rater's analyses still
            # run) but must not vanish silently: availability.json and this row say why.
            why = (
                f"no column matches alliance.raters.{rater}.items '{spec['items']}'"
                if not items
                else f"no {rater}-rated alliance item is answered in any of {len(s)} sessions"
            )
            problems.add(
                "empty_rating", f"{why}: {rater}-rated analyses are skipped", file=path,
                column=f"{rater} items", value=len(items), action="skipped",
            )  # fmt: skip
        elif empty.any():
            n = int(empty.sum())
            problems.add(
                "empty_rating",
                f"{n} session(s) have no {rater}-rated alliance item answered",
                file=path, column=f"{rater} items", value=n,
            )  # fmt: skip
    return s


def require_some_data(s: pd.DataFrame, path: str) -> None:
    """Stop when nothing is left to analyse: no rows, no alliance answers, one patient."""
    if s.empty:
        raise InputError("no session rows left after validation", file=path)
    items = [c for c in s.columns if c.startswith("item_") and not c.startswith("item_symptom_")]
    if not items or s[items].isna().all().all():
        raise InputError(
            "no alliance item has any response: check alliance.raters item patterns and "
            "data.missing_codes",
            file=path,
            check="no_alliance_data",
        )
    if s["patient"].nunique() < 2:
        raise InputError(
            "only one patient in the data: nothing can be estimated",
            file=path,
            value=1,
            check="single_patient",
        )


def require_outcome_variation(s: pd.DataFrame, symptoms: SymptomSettings, path: str) -> None:
    """A symptom score that never varies is a mapping or export error, not an outcome.

    Stopping here (rather than skipping models) keeps baseline-based outcomes such as
    symptom_change = constant - baseline from being fitted as if they were measured change.
    """
    values = s["symptom"].dropna() if "symptom" in s else pd.Series(dtype=float)
    if values.empty or values.nunique() > 1:
        return
    raise InputError(
        f"symptom scores do not vary: all {len(values)} non-missing session scores are equal, "
        "so no outcome can be analysed; check symptoms.column / symptoms.items",
        file=path,
        column=shown_name(symptoms.column or symptoms.items),
        value=float(values.iloc[0]),
        check="constant_outcome",
    )
