"""Column mapping: the export's columns renamed to the pipeline's canonical roles.

Session-level roles, symptom and alliance items go to the session table (coerced and range
checked); patient-level roles come from the patient table or, collapsed to one row per patient,
from the session table, and a patient with two values of one role is a problem.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import pandas as pd

from alliance.clean.checks import check_range, coerce_numeric, parse_dates
from alliance.clean.problems import FILE, ROW, Problems
from alliance.clean.readers.table import name_text, shown_name
from alliance.clean.sources import CANONICAL_PATIENT, Source, kept_columns, role_columns
from alliance.config import ROLE_KEYS_PATIENT, ROLE_KEYS_SESSION
from alliance.errors import ConfigError, InputError
from alliance.instruments.definition import Instrument
from alliance.settings import AllianceSettings, ColumnSettings, SymptomSettings

SHOWN_COLUMNS = 30  # column names listed when a required one is missing


def _require(frame: pd.DataFrame, column: str, role: str, path: str) -> None:
    if column not in frame.columns:
        present = [name_text(c) for c in frame.columns if not c.startswith("_")]
        shown = ", ".join(present[:SHOWN_COLUMNS])
        if len(present) > SHOWN_COLUMNS:
            shown += f", ... ({len(present)} columns)"
        raise InputError(
            f"required column for '{role}' is missing; columns present: {shown}",
            file=path,
            column=shown_name(column),
            check="missing_column",
        )


def item_columns(frame: pd.DataFrame, pattern: str) -> dict[int, str]:
    """Item number -> source column for a regex whose group 1 is the item number."""
    rx = re.compile(pattern)
    found: dict[int, str] = {}
    for col in frame.columns:
        m = rx.search(col)
        if m:
            if not m.groups():
                raise ConfigError(
                    f"item pattern {pattern!r} needs a group capturing the item number"
                )
            found[int(m.group(1))] = col
    return dict(sorted(found.items()))


def map_sessions(
    src: Source,
    columns: ColumnSettings,
    symptoms: SymptomSettings,
    alliance: AllianceSettings,
    keep_columns: Sequence[str],
    problems: Problems,
    date_format: str | None = None,
) -> pd.DataFrame:
    """Rename session-level columns to canonical names, coerce, and range-check items.

    `columns` as reading resolved them; `keep_columns` (data.keep_columns) are checked with
    `kept_columns` and carried unchanged; `date_format` is `data.date_format`. The missing
    codes configured per source column (`src.codes`) travel in `attrs["missing_codes"]` for
    the messages of later checks.
    """
    frame = src.frame
    _require(frame, columns.patient, "patient", src.path)
    if not columns.session:
        raise ConfigError("config key columns.session: required for a long session table")
    _require(frame, columns.session, "session", src.path)
    out = pd.DataFrame(
        {ROW: frame[ROW].to_numpy(), FILE: frame[FILE].to_numpy()}, index=frame.index
    )
    out["patient"] = frame[columns.patient].astype("string").str.strip()
    roles = role_columns(columns)
    sources: dict[str, str] = {}
    for role in ROLE_KEYS_SESSION:
        col = roles[role]
        if col and col in frame.columns:
            out[role] = frame[col]
            sources[role] = col
        elif col and role == "session":
            _require(frame, col, role, src.path)
    # Symptom total or items.
    if symptoms.column:
        _require(frame, symptoms.column, "symptoms.column", src.path)
        out["symptom"] = frame[symptoms.column]
        sources["symptom"] = symptoms.column
    item_sources: dict[str, tuple[str, int, Instrument]] = {}
    if symptoms.items:
        found = item_columns(frame, symptoms.items)
        if not found:
            raise InputError(
                f"no column matches symptoms.items pattern {symptoms.items!r}", file=src.path
            )
        inst = alliance.instrument(symptoms.instrument) if symptoms.instrument else None
        for item, col in found.items():
            out[f"item_symptom_{item:02d}"] = frame[col]
            if inst:
                item_sources[f"item_symptom_{item:02d}"] = (col, item, inst)
            sources[f"item_symptom_{item:02d}"] = col
    for rater, spec in alliance.rater_specs().items():
        inst = alliance.instrument(spec["instrument"])
        found = item_columns(frame, spec["items"])
        for item, col in found.items():
            if item not in inst.items:
                raise InputError(
                    f"item number {item} is not an item of {inst.name} (1..{inst.n_items})",
                    file=src.path,
                    column=shown_name(col),
                    check="item_pattern",
                )
            name = f"item_{rater}_{item:02d}"
            out[name] = frame[col]
            item_sources[name] = (col, item, inst)
            sources[name] = col
    # Coerce and range-check.
    out = coerce_numeric(out, "session", problems, columns.session)
    for name, source in sources.items():
        if name in ("session", "date", "attendance"):  # a number, a date, a code
            continue
        out = coerce_numeric(out, name, problems, source)
    for name, (source, item, inst) in item_sources.items():
        low, high = inst.item_range(item)
        what = f"{inst.name} item {item}"
        out = check_range(out, name, low, high, problems, source, what, src.codes)
    if "symptom" in out:
        out = check_range(
            out, "symptom", symptoms.min, symptoms.max, problems, symptoms.column, symptoms.label,
            src.codes,
        )  # fmt: skip
    if "suicidality" in out:
        out = check_range(
            out, "suicidality", 0, symptoms.suicidality_max, problems, columns.suicidality,
            "suicidality item", src.codes,
        )  # fmt: skip
    if "date" in out:
        out = parse_dates(out, "date", problems, columns.date, date_format)
    for col in kept_columns(keep_columns, columns, symptoms.column):
        if col in frame.columns:
            out[col] = frame[col]  # carried unchanged, as data.keep_columns promises
    out.attrs["sources"] = sources
    out.attrs["missing_codes"] = dict(src.codes)
    return out


def map_patients(
    sessions_src: Source,
    patients_src: Source | None,
    columns: ColumnSettings,
    kept: Sequence[str],
    problems: Problems,
) -> pd.DataFrame:
    """Patient-level roles from the patient table, else collapsed from the session table.

    `kept`: the checked `data.keep_columns` (see `kept_columns`), carried from the patient table.
    """
    source_of = role_columns(columns)
    roles = {r: source_of[r] for r in ROLE_KEYS_PATIENT if source_of[r]}
    extra = {c: c for c in columns.covariates} | dict(columns.personality.items())
    clash = sorted(set(extra) & set(CANONICAL_PATIENT))
    if clash:
        raise ConfigError(
            f"covariate/personality name '{clash[0]}' clashes with a built-in column; rename it"
        )
    wanted = roles | extra
    if patients_src is not None:
        pf = patients_src.frame
        _require(pf, columns.patient, "patient", patients_src.path)
        base = pd.DataFrame({ROW: pf[ROW].to_numpy(), FILE: pf[FILE].to_numpy()}, index=pf.index)
        base["patient"] = pf[columns.patient].astype("string").str.strip()
        for role, col in wanted.items():
            if col in pf.columns:
                base[role] = pf[col]
        for col in kept:
            if col in pf.columns:
                base[col] = pf[col]
        base.attrs["from"] = patients_src.path
    else:
        base = None
    sf = sessions_src.frame
    from_sessions = {
        role: col
        for role, col in wanted.items()
        if (base is None or role not in base) and col in sf
    }
    if from_sessions:
        part = pd.DataFrame({ROW: sf[ROW], FILE: sf[FILE]})
        part["patient"] = sf[columns.patient].astype("string").str.strip()
        for role, col in from_sessions.items():
            part[role] = sf[col]
        part = _collapse(part, list(from_sessions), problems, source_of)
        if base is None:
            base = part
        else:
            base = base.merge(part.drop(columns=[ROW, FILE]), on="patient", how="left")
    if base is None:
        base = pd.DataFrame({"patient": sf[columns.patient].astype("string").str.strip()})
        base = base.drop_duplicates().reset_index(drop=True)
        base[ROW] = pd.NA
        base[FILE] = sessions_src.path
    missing = sorted(
        f"{role} ('{col}')" for role, col in wanted.items() if role not in base.columns
    )
    if missing:
        where = patients_src.path if patients_src is not None else sessions_src.path
        raise InputError(
            f"mapped column(s) not found in any input table: {', '.join(missing)}",
            file=where,
            check="missing_column",
        )
    base = _collapse(base, [r for r in wanted if r in base.columns], problems, source_of)
    return base


def _collapse(
    frame: pd.DataFrame,
    roles: list[str],
    problems: Problems,
    source_of: Mapping[str, str | None],
) -> pd.DataFrame:
    """One row per patient; a patient with conflicting values of a role is a problem.

    `source_of`: role -> source column named in the problem (else the role's own name).
    """
    conflict_check = {"therapist": "therapist_conflict", "arm": "arm_conflict"}
    for role in roles:
        n = frame.dropna(subset=[role]).groupby("patient", sort=False)[role].nunique()
        bad_patients = set(n[n > 1].index)
        if bad_patients:
            check = conflict_check.get(role, "arm_conflict" if role == "arm_class" else None)
            check = check or "patient_conflict"
            mask = frame["patient"].isin(bad_patients) & frame[role].notna()
            # Report the rows after the first value, which disagree with it.
            first = frame.loc[mask].groupby("patient")[role].transform("first")
            disagree = pd.Series(False, index=frame.index)
            disagree.loc[first.index] = frame.loc[first.index, role].astype(str) != first.astype(
                str
            )
            problems.policies.setdefault("patient_conflict", "error")
            frame = problems.flag(
                frame,
                disagree,
                check,
                f"patient has more than one {role} (first seen: see earlier rows)",
                column=role,
                source_column=source_of.get(role, role),
            )
    agg = {c: "first" for c in frame.columns if c != "patient"}
    return frame.groupby("patient", sort=False, as_index=False).agg(agg)
