"""The clean stage: read -> map columns -> coerce -> validate -> derive -> pseudonymise.

Produces the session table (one row per patient x attended session) and the patient table with the
derived outcomes (dropout, response, remission, relapse follow-up), plus the participant flow and
the list of every problem found. Nothing here knows the demo's column names: all come from config.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alliance import files
from alliance.clean import readers, reshape
from alliance.clean.problems import FILE, ROW, Problems
from alliance.clean.pseudonym import pseudonymise, resolve_key
from alliance.config import ROLE_KEYS_PATIENT, ROLE_KEYS_SESSION
from alliance.errors import ConfigError, InputError
from alliance.instruments.definition import Instrument, load_instrument
from alliance.instruments.items import keyed_items, score_items

# Values that look like missing-data codes: named in the out-of-range message as a hint.
LIKELY_MISSING_CODES = {9, 99, 999, -9, -99, -999, -1, 8, 98, 998}
CANONICAL_PATIENT = (
    *("patient", "therapist", "site", "arm", "arm_class", "modality", "telehealth", "status"),
    *("dropout_session", "consent_date", "baseline_symptom", "relapse_time", "relapse_event"),
    "agency",
)


@dataclass
class CleanResult:
    """Everything the clean stage writes."""

    sessions: pd.DataFrame
    patients: pd.DataFrame
    flow: pd.DataFrame
    validation: pd.DataFrame
    availability: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class Source:
    """One input table with its provenance columns (_file, _row)."""

    frame: pd.DataFrame
    path: str
    # (file, note) for every way a reader reinterpreted the data (encoding, missing codes, labels).
    notes: list[tuple[str, str]] = field(default_factory=list)


# --------------------------------------------------------------------------------------------- read
def _read(path: str, cfg: dict[str, Any]) -> Source:
    """Read one input; value labels only on categorical roles, missing codes never on IDs."""
    data_cfg, cols = cfg["data"], cfg["columns"]
    if not Path(path).exists():
        raise InputError("input file not found (check data.sessions / data.patients)", file=path)
    header = readers.read_columns(
        path,
        sheet=data_cfg["sheet"],
        encoding=data_cfg["encoding"],
        delimiter=data_cfg["delimiter"],
    )
    ids = {cols["patient"], cols["therapist"], cols["site"]}
    codes = {c: list(data_cfg["missing_codes"]) for c in header if c not in ids}
    notes: list[tuple[str, str]] = []
    if data_cfg["missing_codes"]:
        codes, kept = _codes_outside_ranges(codes, header, cfg)
        if kept:
            shown = ", ".join(kept[:5]) + (", ..." if len(kept) > 5 else "")
            notes.append((path, (
                f"data.missing_codes not applied where the code is a valid value, in "
                f"{len(kept)} column(s): {shown}"
            )))  # fmt: skip
    categorical = {cols[r] for r in ("arm", "modality", "status", "site", "therapist") if cols[r]}
    categorical |= set(cols["covariates"])
    table = readers.read_table(
        path,
        sheet=data_cfg["sheet"],
        encoding=data_cfg["encoding"],
        delimiter=data_cfg["delimiter"],
        missing_codes=codes if data_cfg["missing_codes"] else (),
        apply_value_labels=_labelled_columns(header, categorical, data_cfg["session_token"]),
    )
    frame = table.frame.reset_index(drop=True)
    frame = frame.assign(**{ROW: np.arange(1, len(frame) + 1), FILE: path})
    return Source(frame, path, notes + [(path, note) for note in table.notes])


def _valid_ranges(header: list[str], cfg: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """Known valid range of each header column that is a symptom total, item or suicidality."""
    sym, cols = cfg["symptoms"], cfg["columns"]
    rx = re.compile(cfg["data"]["session_token"])
    fixed = {}
    if sym["column"]:
        fixed[sym["column"]] = (float(sym["min"]), float(sym["max"]))
    if cols["suicidality"]:
        fixed[cols["suicidality"]] = (0.0, float(sym["suicidality_max"]))
    raters = [spec for spec in cfg["alliance"]["raters"].values() if spec and spec["items"]]
    patterns = [(spec["items"], _instrument_for(cfg, spec["instrument"])) for spec in raters]
    if sym["items"] and sym["instrument"]:
        patterns.append((sym["items"], _instrument_for(cfg, sym["instrument"])))
    out: dict[str, tuple[float, float]] = {}
    for col in header:
        name = col if col in fixed else rx.sub("", col)  # wide: the long name
        if name in fixed:
            out[col] = fixed[name]
            continue
        for pattern, inst in patterns:
            m = re.search(pattern, name)
            if m and m.groups() and m.group(1).isdigit():
                out[col] = inst.item_range(int(m.group(1)))
                break
    return out


def _codes_outside_ranges(
    codes: dict[str, list[float]], header: list[str], cfg: dict[str, Any]
) -> tuple[dict[str, list[float]], list[str]]:
    """Drop each column's missing codes that are valid values of that column.

    `missing_codes: [9]` is meant for 1-5 items; applied to a HAM-D total it would erase every
    real score of 9. Returns the per-column codes and 'column (codes)' for each column spared.
    """
    ranges = _valid_ranges(header, cfg)
    out, spared = {}, []
    for col, col_codes in codes.items():
        low, high = ranges.get(col, (np.inf, -np.inf))
        inside = [c for c in col_codes if low <= c <= high]
        out[col] = [c for c in col_codes if c not in inside]
        if inside:
            spared.append(f"'{col}' ({', '.join(f'{c:g}' for c in inside)})")
    return out, spared


def _labelled_columns(header: list[str], categorical: set[str], token: str) -> list[str]:
    """Header columns that are categorical roles, in long or wide (session-token) form."""
    rx = re.compile(token)
    return [c for c in header if c in categorical or rx.sub("", c) in categorical]


def _wanted_columns(cfg: dict[str, Any]) -> list[str]:
    """Source columns named anywhere in config (everything else is dropped at read time)."""
    cols = cfg["columns"]
    names = [v for k, v in cols.items() if isinstance(v, str) and v]
    names += cols["covariates"] + list(cols["personality"].values())
    names += cfg["data"]["keep_columns"]
    if cfg["symptoms"]["column"]:
        names.append(cfg["symptoms"]["column"])
    return names


# Column names the clean stage writes itself; a kept column may not take one of them.
DERIVED = (
    *CANONICAL_PATIENT, "session", "date", "week", "suicidality", "symptom", "session_index",
    "weeks", "ideation", "n_sessions", "first_session", "last_session", "first_symptom",
    "final_symptom", "started", "dropout", "dropout_rule", "completed", "symptom_change",
    "response", "remission", "relapse_followed",
)  # fmt: skip


def kept_columns(cfg: dict[str, Any]) -> list[str]:
    """`data.keep_columns`, refused when one would leak raw IDs or shadow a pipeline column."""
    cols = cfg["columns"]
    mapped = set(_wanted_columns(cfg)) - set(cfg["data"]["keep_columns"])
    ids = {cols["patient"], cols["therapist"]}
    for col in cfg["data"]["keep_columns"]:
        if col in ids:
            raise ConfigError(
                f"config key data.keep_columns: '{col}' is an ID column; keeping it would write "
                "raw IDs under results/ (IDs are carried as pseudonyms already)"
            )
        if col in mapped or col in DERIVED or col.startswith(("item_", "_")):
            raise ConfigError(
                f"config key data.keep_columns: '{col}' is already mapped or is the name of a "
                "column the clean stage writes; keep only unmapped columns"
            )
    return list(cfg["data"]["keep_columns"])


def _pattern_columns(cfg: dict[str, Any]) -> list[str]:
    pats = [r["items"] for r in cfg["alliance"]["raters"].values() if r]
    if cfg["symptoms"]["items"]:
        pats.append(cfg["symptoms"]["items"])
    return pats


def _keep_filter(frame_columns: list[str], cfg: dict[str, Any]) -> list[str]:
    wanted = set(_wanted_columns(cfg))
    pats = [re.compile(p) for p in _pattern_columns(cfg)]
    return [c for c in frame_columns if c in wanted or any(p.search(c) for p in pats)]


def read_inputs(cfg: dict[str, Any]) -> tuple[Source, Source | None]:
    """Read the session (or wide) table and the optional patient table; reshape wide to long."""
    data = cfg["data"]
    raw = _read(data["sessions"], cfg)
    id_col = cfg["columns"]["patient"]
    session_col = cfg["columns"]["session"]
    layout = data["layout"]
    # A declared long table is still checked for session-token columns: a mixed export would
    # otherwise lose its wide part silently (those columns match no item pattern).
    if layout == "auto" or (layout == "long" and session_col in raw.frame.columns):
        layout = reshape.detect_layout(
            raw.frame.drop(columns=[ROW, FILE]),
            id_column=id_col,
            session_column=session_col,
            session_token=data["session_token"],
            source=raw.path,
        )
    cfg["data"]["layout"] = layout
    patients_src: Source | None = None
    if layout == "wide":
        frame = raw.frame
        sessions_long, patient_level = reshape.wide_to_long(
            frame.drop(columns=[FILE]),
            id_column=id_col,
            session_token=data["session_token"],
            source=raw.path,
        )
        # Session rows of a wide table point back at their patient's row in the file.
        sessions_long[ROW] = sessions_long[id_col].map(patient_level.set_index(id_col)[ROW])
        sessions_long[FILE] = raw.path
        patient_level[FILE] = raw.path
        session_col = "session"
        cfg["columns"]["session"] = session_col
        sessions = Source(sessions_long, raw.path, raw.notes)
        patients_src = Source(patient_level, raw.path)
    else:
        sessions = raw
    keep = _keep_filter(list(sessions.frame.columns), cfg) + [ROW, FILE]
    sessions = Source(
        sessions.frame[[c for c in sessions.frame.columns if c in keep]],
        sessions.path,
        sessions.notes,
    )
    if data["patients"]:
        extra = _read(data["patients"], cfg)
        if patients_src is not None:
            merged = patients_src.frame.merge(
                extra.frame.drop(columns=[ROW, FILE]), on=id_col, how="outer", suffixes=("", "_p")
            )
            patients_src = Source(merged, raw.path, extra.notes)
        else:
            patients_src = extra
    if patients_src is not None:
        keep_p = _keep_filter(list(patients_src.frame.columns), cfg) + [ROW, FILE]
        pf = patients_src.frame
        patients_src = Source(
            pf[[c for c in pf.columns if c in keep_p]], patients_src.path, patients_src.notes
        )
    return sessions, patients_src


# --------------------------------------------------------------------------------------------- map
def _require(frame: pd.DataFrame, column: str, role: str, path: str) -> None:
    if column not in frame.columns:
        shown = ", ".join(c for c in frame.columns if not c.startswith("_"))
        raise InputError(
            f"required column for '{role}' is missing; columns present: {shown}",
            file=path,
            column=column,
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


def _numeric(frame: pd.DataFrame, col: str, problems: Problems, source_col: str) -> pd.DataFrame:
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


def _range_check(
    frame: pd.DataFrame,
    col: str,
    low: float,
    high: float,
    problems: Problems,
    source_col: str,
    what: str,
) -> pd.DataFrame:
    values = frame[col]
    bad = values.notna() & ((values < low) | (values > high))
    if not bad.any():
        return frame
    codes = sorted(set(values[bad].astype(float)) & {float(c) for c in LIKELY_MISSING_CODES})
    hint = ""
    if codes:
        hint = f"; if {codes[0]:g} means 'missing', declare it in data.missing_codes"
    msg = f"{what} outside the allowed range {low:g}-{high:g}{hint}"
    return problems.flag(frame, bad, "out_of_range", msg, column=col, source_column=source_col)


def _parse_dates(frame: pd.DataFrame, col: str, problems: Problems, source: str) -> pd.DataFrame:
    raw = frame[col]
    if pd.api.types.is_datetime64_any_dtype(raw):
        frame[col] = raw.dt.normalize()
        return frame
    text = raw.astype("string").str.strip()
    parsed = pd.to_datetime(text, errors="coerce", format="mixed", dayfirst=False)
    bad = text.notna() & (text != "") & parsed.isna()
    frame = problems.flag(frame, bad, "bad_date", "not a date", column=col, source_column=source)
    frame = frame.copy()
    frame[col] = pd.to_datetime(
        frame[col].astype("string").str.strip(), errors="coerce", format="mixed"
    )
    return frame


def _instrument_for(cfg: dict[str, Any], name: str) -> Instrument:
    return load_instrument(name, cfg["alliance"]["instruments_dir"])


def map_sessions(src: Source, cfg: dict[str, Any], problems: Problems) -> pd.DataFrame:
    """Rename session-level columns to canonical names, coerce, and range-check items."""
    cols = cfg["columns"]
    frame = src.frame
    _require(frame, cols["patient"], "patient", src.path)
    if not cols["session"]:
        raise ConfigError("config key columns.session: required for a long session table")
    _require(frame, cols["session"], "session", src.path)
    out = pd.DataFrame(
        {ROW: frame[ROW].to_numpy(), FILE: frame[FILE].to_numpy()}, index=frame.index
    )
    out["patient"] = frame[cols["patient"]].astype("string").str.strip()
    sources: dict[str, str] = {}
    for role in ROLE_KEYS_SESSION:
        if cols[role] and cols[role] in frame.columns:
            out[role] = frame[cols[role]]
            sources[role] = cols[role]
        elif cols[role] and role == "session":
            _require(frame, cols[role], role, src.path)
    # Symptom total or items.
    sym = cfg["symptoms"]
    if sym["column"]:
        _require(frame, sym["column"], "symptoms.column", src.path)
        out["symptom"] = frame[sym["column"]]
        sources["symptom"] = sym["column"]
    item_sources: dict[str, tuple[str, int, Instrument]] = {}
    if sym["items"]:
        found = item_columns(frame, sym["items"])
        if not found:
            raise InputError(
                f"no column matches symptoms.items pattern {sym['items']!r}", file=src.path
            )
        inst = _instrument_for(cfg, sym["instrument"]) if sym["instrument"] else None
        for item, col in found.items():
            out[f"item_symptom_{item:02d}"] = frame[col]
            if inst:
                item_sources[f"item_symptom_{item:02d}"] = (col, item, inst)
            sources[f"item_symptom_{item:02d}"] = col
    for rater, spec in cfg["alliance"]["raters"].items():
        if not spec:
            continue
        inst = _instrument_for(cfg, spec["instrument"])
        found = item_columns(frame, spec["items"])
        for item, col in found.items():
            if item not in inst.items:
                raise InputError(
                    f"item number {item} is not an item of {inst.name} (1..{inst.n_items})",
                    file=src.path,
                    column=col,
                    check="item_pattern",
                )
            name = f"item_{rater}_{item:02d}"
            out[name] = frame[col]
            item_sources[name] = (col, item, inst)
            sources[name] = col
    # Coerce and range-check.
    out = _numeric(out, "session", problems, cols["session"])
    for name, source in sources.items():
        if name in ("session", "date"):
            continue
        out = _numeric(out, name, problems, source)
    for name, (source, item, inst) in item_sources.items():
        low, high = inst.item_range(item)
        out = _range_check(out, name, low, high, problems, source, f"{inst.name} item {item}")
    if "symptom" in out:
        out = _range_check(
            out, "symptom", sym["min"], sym["max"], problems, sym["column"], sym["label"]
        )
    if "suicidality" in out:
        out = _range_check(
            out, "suicidality", 0, sym["suicidality_max"], problems, cols["suicidality"],
            "suicidality item",
        )  # fmt: skip
    if "date" in out:
        out = _parse_dates(out, "date", problems, cols["date"])
    for col in kept_columns(cfg):
        if col in frame.columns:
            out[col] = frame[col]  # carried unchanged, as data.keep_columns promises
    out.attrs["sources"] = sources
    return out


def map_patients(
    sessions_src: Source, patients_src: Source | None, cfg: dict[str, Any], problems: Problems
) -> pd.DataFrame:
    """Patient-level roles from the patient table, else collapsed from the session table."""
    cols = cfg["columns"]
    roles = {r: cols[r] for r in ROLE_KEYS_PATIENT if cols[r]}
    extra = {c: c for c in cols["covariates"]} | dict(cols["personality"].items())
    clash = sorted(set(extra) & set(CANONICAL_PATIENT))
    if clash:
        raise ConfigError(
            f"covariate/personality name '{clash[0]}' clashes with a built-in column; rename it"
        )
    wanted = roles | extra
    if patients_src is not None:
        pf = patients_src.frame
        _require(pf, cols["patient"], "patient", patients_src.path)
        base = pd.DataFrame({ROW: pf[ROW].to_numpy(), FILE: pf[FILE].to_numpy()}, index=pf.index)
        base["patient"] = pf[cols["patient"]].astype("string").str.strip()
        for role, col in wanted.items():
            if col in pf.columns:
                base[role] = pf[col]
        for col in kept_columns(cfg):
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
        part["patient"] = sf[cols["patient"]].astype("string").str.strip()
        for role, col in from_sessions.items():
            part[role] = sf[col]
        part = _collapse(part, list(from_sessions), problems, cols)
        if base is None:
            base = part
        else:
            base = base.merge(part.drop(columns=[ROW, FILE]), on="patient", how="left")
    if base is None:
        base = pd.DataFrame({"patient": sf[cols["patient"]].astype("string").str.strip()})
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
    base = _collapse(base, [r for r in wanted if r in base.columns], problems, cols)
    return base


def _collapse(
    frame: pd.DataFrame, roles: list[str], problems: Problems, cols: dict
) -> pd.DataFrame:
    """One row per patient; a patient with conflicting values of a role is a problem."""
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
                source_column=cols.get(role, role),
            )
    agg = {c: "first" for c in frame.columns if c != "patient"}
    return frame.groupby("patient", sort=False, as_index=False).agg(agg)


# -------------------------------------------------------------------------------------- validate
def check_sessions(s: pd.DataFrame, cfg: dict[str, Any], problems: Problems) -> pd.DataFrame:
    """Session numbers, duplicates, order, dates."""
    cols = cfg["columns"]
    sess_col = cols["session"]
    bad = s["session"].isna() | (s["session"] < 0) | (s["session"] % 1 != 0)
    s = problems.flag(
        s, bad, "bad_session", "session number must be a whole number >= 0", column="session",
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
            "patient identifier is empty", file=row[FILE], row=row[ROW], column=cols["patient"]
        )
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
            source_column=cols["date"],
        )  # fmt: skip
        ordered = s.sort_values(["patient", "session"])
        earlier = ordered.groupby("patient")["date"].shift()
        backwards = ordered["date"].notna() & earlier.notna() & (ordered["date"] < earlier)
        rep = ordered["date"].notna() & earlier.notna() & (ordered["date"] == earlier)
        s = problems.flag(
            s, backwards.reindex(s.index), "session_order",
            "session date is earlier than the previous session's", column="date",
            source_column=cols["date"],
        )  # fmt: skip
        s = problems.flag(
            s, rep.reindex(s.index), "repeated_date",
            "two sessions of this patient share a date", column="date", source_column=cols["date"],
        )  # fmt: skip
    return s.sort_values(["patient", "session"]).reset_index(drop=True)


def check_patients(
    p: pd.DataFrame, s: pd.DataFrame, cfg: dict[str, Any], problems: Problems
) -> pd.DataFrame:
    """Codes, relapse follow-up, and links between the two tables."""
    cols, cod = cfg["columns"], cfg["codings"]
    p = p.copy()
    if "arm" in p:
        p["arm"] = p["arm"].astype("string").str.strip()
        known = set(cod["arm"])
        unknown = p["arm"].notna() & ~p["arm"].isin(known)
        hint = f"known codes: {', '.join(sorted(known))}" if known else "codings.arm is empty"
        p = problems.flag(
            p, unknown, "unknown_arm", f"arm code is not in codings.arm ({hint})", column="arm",
            source_column=cols["arm"],
        )  # fmt: skip
        p["arm_class"] = p["arm"].map(cod["arm"]).astype("string")
    for role, mapping in (("modality", cod["modality"]), ("status", cod["status"])):
        if role not in p:
            continue
        p[role] = p[role].astype("string").str.strip()
        if not mapping:
            raise ConfigError(f"config key codings.{role}: map each {role} code in the data")
        unknown = p[role].notna() & ~p[role].isin(set(mapping))
        p = problems.flag(
            p, unknown, "unknown_code",
            f"{role} code is not in codings.{role} (known: {', '.join(sorted(mapping))})",
            column=role, source_column=cols[role],
        )  # fmt: skip
        p[role] = p[role].map(mapping).astype("string")
    if "modality" in p:
        p["telehealth"] = (
            (p["modality"] == "telehealth").astype("Int64").where(p["modality"].notna())
        )
    for role in ("baseline_symptom", "relapse_time", "relapse_event", "agency", "dropout_session"):
        if role in p:
            p = _numeric(p, role, problems, cols[role])
    for name, source in cfg["columns"]["personality"].items():
        p = _numeric(p, name, problems, source)
    if "consent_date" in p:
        p = _parse_dates(p, "consent_date", problems, cols["consent_date"])
    if "relapse_event" in p:
        ev, tm = p["relapse_event"], p.get("relapse_time")
        bad_ev = ev.notna() & ~ev.isin([0, 1])
        p = problems.flag(
            p, bad_ev, "relapse_time", "relapse event must be 0 or 1", column="relapse_event",
            source_column=cols["relapse_event"],
        )  # fmt: skip
        if tm is not None:
            ev, tm = p["relapse_event"], p["relapse_time"]
            p = problems.flag(
                p, ev.notna() & tm.isna(), "relapse_time", "relapse event recorded without a time",
                column="relapse_event", source_column=cols["relapse_event"],
            )  # fmt: skip
            p = problems.flag(
                p, p["relapse_time"] <= 0, "relapse_time", "relapse time must be > 0",
                column="relapse_time", source_column=cols["relapse_time"],
            )  # fmt: skip
    if "therapist" in p:
        per = p.dropna(subset=["therapist"]).groupby("therapist")["patient"].nunique()
        for therapist in per[per == 1].index:
            row = p.loc[p["therapist"] == therapist].iloc[0]
            problems.add(
                "single_patient_therapist",
                "therapist has one patient only (weakens therapist-level estimates)",
                file=row[FILE], row=row[ROW], column=cols["therapist"], value=therapist,
            )  # fmt: skip
    return p


def check_session_links(
    s: pd.DataFrame, p: pd.DataFrame, cfg: dict[str, Any], problems: Problems
) -> pd.DataFrame:
    """Checks that need both tables: unknown patients, dates before consent, post-dropout rows."""
    cols = cfg["columns"]
    if cfg["data"]["patients"] or cfg["data"]["layout"] == "wide":
        orphan = ~s["patient"].isin(set(p["patient"]))
        s = problems.flag(
            s, orphan, "unknown_patient", "patient is not in the patient table", column="patient",
            source_column=cols["patient"],
        )  # fmt: skip
    if "consent_date" in p and "date" in s:
        consent = s["patient"].map(p.set_index("patient")["consent_date"])
        s = problems.flag(
            s, s["date"] < consent, "before_consent", "session date is before the consent date",
            column="date", source_column=cols["date"],
        )  # fmt: skip
    if "dropout_session" in p:
        limit = s["patient"].map(p.set_index("patient")["dropout_session"])
        s = problems.flag(
            s, s["session"] > limit, "after_dropout",
            "session is after the patient's recorded dropout", column="session",
            source_column=cols["session"],
        )  # fmt: skip
    path = cfg["data"]["sessions"]
    for rater, spec in cfg["alliance"]["raters"].items():
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


# ---------------------------------------------------------------------------------------- derive
def score_symptoms(s: pd.DataFrame, cfg: dict[str, Any]) -> pd.DataFrame:
    """Total symptom score from items when the export has no total column."""
    sym = cfg["symptoms"]
    if "symptom" in s or not sym["items"]:
        return s
    if not sym["instrument"]:
        raise ConfigError("config key symptoms.instrument: needed to score symptom items")
    inst = _instrument_for(cfg, sym["instrument"])
    cols = {int(c[-2:]): c for c in s.columns if c.startswith("item_symptom_")}
    keyed = keyed_items(s, cols, inst)
    s = s.copy()
    s["symptom"], _ = score_items(keyed, inst.items, inst)
    return s


def derive(s: pd.DataFrame, p: pd.DataFrame, cfg: dict[str, Any]) -> tuple[pd.DataFrame, ...]:
    """Session index, weeks, baseline, last session, dropout, response, remission, relapse."""
    sym, drop_cfg = cfg["symptoms"], cfg["dropout"]
    s = s.sort_values(["patient", "session"]).reset_index(drop=True)
    s["session_index"] = s.groupby("patient").cumcount() + 1
    if "week" in s:
        s["weeks"] = s["week"].astype(float)
    elif "date" in s:
        first = s.groupby("patient")["date"].transform("min")
        s["weeks"] = (s["date"] - first).dt.days / 7.0
    else:
        first = s.groupby("patient")["session"].transform("min")
        s["weeks"] = (s["session"] - first).astype(float)
    g = s.groupby("patient")
    per = pd.DataFrame(
        {
            "n_sessions": g.size(),
            "first_session": g["session"].min(),
            "last_session": g["session"].max(),
        }
    )
    if "symptom" in s:
        has = s.dropna(subset=["symptom"]).groupby("patient")
        per["first_symptom"] = has["symptom"].first()
        per["final_symptom"] = has["symptom"].last()
    p = p.merge(per, left_on="patient", right_index=True, how="left")
    p["n_sessions"] = p["n_sessions"].fillna(0).astype("int64")
    p["started"] = (p["n_sessions"] > 0).astype("int64")
    if "baseline_symptom" not in p and "first_symptom" in p:
        p["baseline_symptom"] = p["first_symptom"]
    if "baseline_symptom" in p:
        s["baseline_symptom"] = s["patient"].map(p.set_index("patient")["baseline_symptom"])
    # Dropout.
    if drop_cfg["rule"] == "status" and "status" in p:
        p["dropout"] = (p["status"] == "dropout").astype("Int64")
        p.loc[p["status"].isna() | (p["started"] == 0), "dropout"] = pd.NA
        p["dropout_rule"] = "status"
    else:
        planned = p["status"].eq("completed") if "status" in p else False
        short = p["n_sessions"] < drop_cfg["min_sessions"]
        p["dropout"] = (short & ~planned).astype("Int64")
        p.loc[p["started"] == 0, "dropout"] = pd.NA
        p["dropout_rule"] = f"fewer than {drop_cfg['min_sessions']} sessions"
    p["completed"] = (1 - p["dropout"]).astype("Int64")
    # Response and remission (among completers and dropouts alike: last observation).
    if "final_symptom" in p and "baseline_symptom" in p:
        sign = 1 if sym["higher_is_worse"] else -1
        reduction = sign * (p["baseline_symptom"] - p["final_symptom"]) / p["baseline_symptom"]
        p["symptom_change"] = p["final_symptom"] - p["baseline_symptom"]
        p["response"] = (reduction >= sym["response_reduction"]).astype("Int64")
        p.loc[p["final_symptom"].isna() | p["baseline_symptom"].isna(), "response"] = pd.NA
        if sym["remission_cutoff"] is not None:
            p["remission"] = (p["final_symptom"] <= sym["remission_cutoff"]).astype("Int64")
            p.loc[p["final_symptom"].isna(), "remission"] = pd.NA
    # Relapse follow-up only for responders.
    if "relapse_time" in p and "response" in p:
        nonresp = p["response"].fillna(0) != 1
        p["relapse_followed"] = (~nonresp & p["relapse_time"].notna()).astype("int64")
        p.loc[nonresp, ["relapse_time", "relapse_event"]] = np.nan
    if "suicidality" in s:
        thr = sym["suicidality_threshold"]
        s["ideation"] = (s["suicidality"] >= thr).astype("Int64").where(s["suicidality"].notna())
    return s, p


def flow_table(p: pd.DataFrame, s: pd.DataFrame, problems: Problems) -> pd.DataFrame:
    """CONSORT-style flow: assessed -> randomised per arm -> ... -> followed for relapse."""
    rows: list[dict[str, Any]] = []

    def add(step: str, n: int, arm: str = "all", note: str = "") -> None:
        rows.append({"step": step, "arm": arm, "n": int(n), "note": note})

    add("assessed", len(p))
    rand = p[p["arm"].notna()] if "arm" in p else p
    add("randomised", len(rand), note="" if "arm" in p else "no arm column: all counted")
    arms = sorted(rand["arm"].dropna().unique()) if "arm" in rand else []
    groups = [("all", rand)] + [(a, rand[rand["arm"] == a]) for a in arms]
    for arm, g in groups:
        if arm != "all":
            add("randomised", len(g), arm)
        add("started", int(g["started"].sum()), arm)
        add("not started", int((g["started"] == 0).sum()), arm)
        add("completed", int((g["dropout"] == 0).sum()), arm)
        add("dropped out", int((g["dropout"] == 1).sum()), arm)
        if "response" in g:
            add("responders", int((g["response"] == 1).sum()), arm)
        if "relapse_followed" in g:
            add("followed for relapse", int(g["relapse_followed"].sum()), arm)
    dropped = [r for r in problems.rows if r["action"] == "drop_row"]
    add("session rows removed by checks", len(dropped), note="see validation.csv")
    add("session rows analysed", len(s))
    return pd.DataFrame(rows)


def availability(s: pd.DataFrame, p: pd.DataFrame, cfg: dict[str, Any]) -> dict[str, Any]:
    """Which optional measures exist, with the reason when one does not (skipped analyses)."""

    def state(ok: bool, reason: str) -> dict[str, Any]:
        return {"available": bool(ok), "reason": "" if ok else reason}

    raters = {}
    for rater, spec in cfg["alliance"]["raters"].items():
        items = [c for c in s.columns if c.startswith(f"item_{rater}_")]
        has = bool(items) and s[items].notna().any().any()
        why = "not configured" if not spec else "no item responses in the data"
        raters[rater] = state(has, f"{rater}-rated alliance: {why}")
    n_ther = p["therapist"].nunique() if "therapist" in p else 0
    avail = {
        "therapist": state(n_ther >= 2, "no therapist IDs (columns.therapist not mapped or empty)"),
        "site": state("site" in p and p["site"].nunique() >= 2, "fewer than two sites"),
        "arm": state("arm" in p and p["arm"].nunique() >= 2, "fewer than two arms"),
        "modality": state("telehealth" in p and p["telehealth"].nunique() == 2,
                          "no modality contrast (in-person vs telehealth)"),
        "agency": state("agency" in p and p["agency"].notna().any(), "no agency measure"),
        "personality": state(bool(cfg["columns"]["personality"]), "no personality measures"),
        "suicidality": state("ideation" in s and s["ideation"].notna().any(),
                             "no suicidality item"),
        "dropout": state("dropout" in p and p["dropout"].nunique() == 2, "no dropout variation"),
        "relapse": state(
            "relapse_followed" in p and p["relapse_followed"].sum() > 0,
            "no relapse follow-up (columns.relapse_time / relapse_event) for responders",
        ),
        "symptom": state("symptom" in s and s["symptom"].notna().any(), "no symptom scores"),
        "raters": raters,
        "n_therapists": int(n_ther),
    }  # fmt: skip
    if n_ther and n_ther < 10:
        avail["therapist"]["note"] = (
            f"only {n_ther} therapists: three-level SEs are biased; "
            "prefer two-level + cluster-robust"
        )
    return avail


# ------------------------------------------------------------------------------------------ main
def clean_trial(cfg: dict[str, Any]) -> CleanResult:
    """Run the whole clean stage in memory; raise InputError/ValidationFailed on fatal problems."""
    cfg = copy.deepcopy(cfg)  # read_inputs records the resolved layout in it
    problems = Problems(dict(cfg["checks"]))
    sessions_src, patients_src = read_inputs(cfg)
    record_read_notes([sessions_src, patients_src], problems)
    s = map_sessions(sessions_src, cfg, problems)
    p = map_patients(sessions_src, patients_src, cfg, problems)
    s = check_sessions(s, cfg, problems)
    p = check_patients(p, s, cfg, problems)
    s = check_session_links(s, p, cfg, problems)
    problems.raise_errors()
    _require_some_data(s, cfg, sessions_src.path)
    s = score_symptoms(s, cfg)
    _require_outcome_variation(s, cfg, sessions_src.path)
    s, p = derive(s, p, cfg)
    flow = flow_table(p, s, problems)
    avail = availability(s, p, cfg)
    key = resolve_key(cfg["privacy"])
    s, p = _pseudonymise(s, p, key)
    validation = _pseudonymise_problems(problems.frame(), cfg["columns"], key)
    summary = {
        "patients": int(len(p)),
        "patients_with_sessions": int(p["started"].sum()),
        "therapists": avail["n_therapists"],
        "session_rows": int(len(s)),
        "arms": sorted(p["arm"].dropna().unique().tolist()) if "arm" in p else [],
        "problems": int(len(validation)),
    }
    return CleanResult(s, p, flow, validation, avail, summary)


def _require_some_data(s: pd.DataFrame, cfg: dict[str, Any], path: str) -> None:
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


def _require_outcome_variation(s: pd.DataFrame, cfg: dict[str, Any], path: str) -> None:
    """A symptom score that never varies is a mapping or export error, not an outcome.

    Stopping here (rather than skipping models) keeps baseline-based outcomes such as
    symptom_change = constant - baseline from being fitted as if they were measured change.
    """
    values = s["symptom"].dropna() if "symptom" in s else pd.Series(dtype=float)
    if values.empty or values.nunique() > 1:
        return
    sym = cfg["symptoms"]
    raise InputError(
        f"symptom scores do not vary: all {len(values)} non-missing session scores are equal, "
        "so no outcome can be analysed; check symptoms.column / symptoms.items",
        file=path,
        column=sym["column"] or sym["items"],
        value=float(values.iloc[0]),
        check="constant_outcome",
    )


_COLUMN_NOTE = re.compile(r"^column '(?P<column>.*)': (?P<n>\d+) (?P<what>.+)$")


def record_read_notes(sources: list[Source | None], problems: Problems) -> None:
    """How each file was read (encoding fallback, missing codes, value labels) as `read_note`
    rows of validation.csv, so no reinterpretation of the user's data goes unrecorded.

    Per-column notes of one kind are merged into one row per file: a wide export with
    hundreds of item columns still gives a readable validation.csv.
    """
    notes = list(dict.fromkeys(n for src in sources if src is not None for n in src.notes))
    # Which sheet was read is provenance, not a reinterpretation of values.
    notes = [(path, note) for path, note in notes if not note.startswith("read sheet ")]
    grouped: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for path, note in notes:
        m = _COLUMN_NOTE.match(note)
        if m is None:
            problems.add("read_note", note, file=path, action="note")
        else:
            grouped.setdefault((path, m["what"]), []).append((m["column"], int(m["n"])))
    for (path, what), hits in grouped.items():
        total = sum(n for _, n in hits)
        if len(hits) == 1:
            column, message = hits[0][0], f"{total} {what}"
        else:
            names = ", ".join(c for c, _ in hits[:5]) + (", ..." if len(hits) > 5 else "")
            column, message = None, f"{total} {what} ({len(hits)} columns: {names})"
        problems.add("read_note", message, file=path, column=column, value=total, action="note")


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


def _pseudonymise_problems(v: pd.DataFrame, cols: dict[str, Any], key: bytes) -> pd.DataFrame:
    """Problems that quote a patient or therapist ID quote its pseudonym instead."""
    v = v.copy()
    for role in ("patient", "therapist"):
        # read_note values are counts, not IDs, even when the note is about an ID column.
        hit = (v["column"].eq(cols[role]) | v["column"].eq(role)) & v["check"].ne("read_note")
        if cols[role] and hit.any():
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
    }
    files.write_parquet(result.sessions, paths["sessions"])
    files.write_parquet(result.patients, paths["patients"])
    files.write_csv(result.flow, paths["flow"])
    files.write_csv(result.validation, paths["validation"])
    files.write_json(result.availability | {"summary": result.summary}, paths["availability"])
    return paths
