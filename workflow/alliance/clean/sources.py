"""Reading the configured export files: which columns are kept, how missing codes and value labels
are applied, wide -> long, and the read notes recorded in validation.csv.

Only columns named in config (roles, item patterns, `data.keep_columns`) leave this module, so
free text and unmapped identifiers never travel further. Reading also resolves what the config
leaves open: the layout (`auto`) and, after a wide reshape, the session column.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from alliance.clean import readers, reshape
from alliance.clean.problems import FILE, ROW, Problems
from alliance.clean.readers.dates import check_date_format
from alliance.clean.readers.table import clip, name_text, shown_name
from alliance.config import ROLE_KEYS_PATIENT, ROLE_KEYS_SESSION
from alliance.errors import ConfigError, InputError
from alliance.settings import AllianceSettings, ColumnSettings, DataSettings, SymptomSettings

# The key of `data.missing_codes` (mapping form) holding the codes of every unlisted column.
DEFAULT_CODES = "default"
MissingCodesSetting = Sequence[float] | Mapping[str, Sequence[float]]
CANONICAL_PATIENT = (
    *("patient", "therapist", "site", "arm", "arm_class", "modality", "telehealth", "status"),
    *("dropout_session", "consent_date", "baseline_symptom", "relapse_time", "relapse_event"),
    "agency",
    "prior_failed_trials",
    "staging_score",
    "episode_months",
    "trd",
    "stage",
)
# Column names the clean stage writes itself; a kept column may not take one of them.
DERIVED = (
    *CANONICAL_PATIENT, "session", "date", "week", "suicidality", "symptom", "session_index",
    "weeks", "ideation", "n_sessions", "first_session", "last_session", "first_symptom",
    "final_symptom", "started", "dropout", "dropout_rule", "completed", "symptom_change",
    "response", "remission", "relapse_followed", "attendance", "missed_before", "missed_prior",
    "doses_taken", "doses_prescribed", "adherence", "self_report_symptom", "self_report_pomp",
    "symptom_pomp", "report_discrepancy", "n_scheduled", "n_missed", "attendance_rate",
    "longest_missed_run", "missed_after_last",
)  # fmt: skip


@dataclass
class Source:
    """One input table with its provenance columns (_file, _row)."""

    frame: pd.DataFrame
    path: str
    # (file, note) for every way a reader reinterpreted the data (encoding, missing codes, labels).
    notes: list[tuple[str, str]] = field(default_factory=list)
    # Missing codes configured for each data column (as listed, before sparing valid values),
    # for messages that name a value as a code.
    codes: dict[str, tuple[float, ...]] = field(default_factory=dict)
    # Spreadsheet formulas without a cached value: column -> (row, formula, count).
    formulas: dict[str, tuple[int, str, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Inputs:
    """The input tables as read, with the column roles as reading resolved them."""

    sessions: Source
    # The patient table: the patients file and/or the patient-level part of a wide table.
    patients: Source | None
    # `columns` with `session` set to 'session' when a wide table was reshaped to long.
    columns: ColumnSettings


def role_columns(columns: ColumnSettings) -> dict[str, str | None]:
    """Role -> source column for every single-column role (patient, session and patient roles)."""
    roles = (*ROLE_KEYS_SESSION, *ROLE_KEYS_PATIENT)
    return {"patient": columns.patient} | {role: getattr(columns, role) for role in roles}


def read_inputs(
    data: DataSettings,
    columns: ColumnSettings,
    symptoms: SymptomSettings,
    alliance: AllianceSettings,
) -> Inputs:
    """Read the session (or wide) table and the optional patient table; reshape wide to long."""
    check_date_format(data.date_format)
    raw = _read(data.sessions, data, columns, symptoms, alliance)
    id_col = columns.patient
    session_col = columns.session
    layout = data.layout
    # A declared long table is still checked for session-token columns: a mixed export would
    # otherwise lose its wide part silently (those columns match no item pattern).
    if layout == "auto" or (layout == "long" and session_col in raw.frame.columns):
        layout = reshape.detect_layout(
            raw.frame.drop(columns=[ROW, FILE]),
            id_column=id_col,
            session_column=session_col,
            session_token=data.session_token,
            source=raw.path,
        )
    patients_src: Source | None = None
    if layout == "wide":
        frame = raw.frame
        sessions_long, patient_level = reshape.wide_to_long(
            frame.drop(columns=[FILE]),
            id_column=id_col,
            session_token=data.session_token,
            source=raw.path,
        )
        # Session rows of a wide table point back at their patient's row in the file.
        sessions_long[ROW] = sessions_long[id_col].map(patient_level.set_index(id_col)[ROW])
        sessions_long[FILE] = raw.path
        patient_level[FILE] = raw.path
        columns = dataclasses.replace(columns, session="session")
        rx = re.compile(data.session_token)
        codes = {rx.sub("", col): c for col, c in raw.codes.items()}  # by the long names
        sessions = Source(sessions_long, raw.path, raw.notes, codes, raw.formulas)
        patients_src = Source(patient_level, raw.path, codes=codes, formulas=raw.formulas)
    else:
        sessions = raw
    wanted = set(_wanted_columns(columns, data.keep_columns, symptoms.column))
    patterns = [re.compile(p) for p in _item_patterns(alliance, symptoms.items)]
    used = functools.partial(_used, wanted=wanted, patterns=patterns, token=data.session_token)
    _refuse_formulas(raw, used)
    keep = _keep_filter(list(sessions.frame.columns), wanted, patterns) + [ROW, FILE]
    sessions = dataclasses.replace(
        sessions, frame=sessions.frame[[c for c in sessions.frame.columns if c in keep]]
    )
    headers = [list(raw.frame.columns)]
    if data.patients:
        extra = _read(data.patients, data, columns, symptoms, alliance)
        _refuse_formulas(extra, used)
        headers.append(list(extra.frame.columns))
        if patients_src is not None:
            merged = patients_src.frame.merge(
                extra.frame.drop(columns=[ROW, FILE]), on=id_col, how="outer", suffixes=("", "_p")
            )
            patients_src = Source(merged, raw.path, extra.notes, extra.codes)
        else:
            patients_src = extra
    _unknown_code_columns(data, headers)
    if patients_src is not None:
        keep_p = _keep_filter(list(patients_src.frame.columns), wanted, patterns) + [ROW, FILE]
        pf = patients_src.frame
        patients_src = dataclasses.replace(
            patients_src, frame=pf[[c for c in pf.columns if c in keep_p]]
        )
    return Inputs(sessions, patients_src, columns)


def _used(column: str, *, wanted: set[str], patterns: list[re.Pattern[str]], token: str) -> bool:
    """Whether a source column is read by the pipeline (in long or wide, token-bearing form)."""
    names = {column, re.sub(token, "", column)}
    return any(name in wanted or any(p.search(name) for p in patterns) for name in names)


def _refuse_formulas(src: Source, used: Callable[[str], bool]) -> None:
    """Stop on a used column holding spreadsheet formulas without a cached value.

    openpyxl reads the value Excel last computed; a file written by a script (or saved without
    recalculating) has none, and the cells would silently become missing. Formulas in unused
    columns are only recorded.
    """
    for column, (row, formula, count) in src.formulas.items():
        if not used(column):
            continue
        more = f"; {count} cells of this column are such formulas" if count > 1 else ""
        raise InputError(
            f"formula without a cached value{more}: open and save the file in "
            "Excel/LibreOffice (which computes and stores the values), or export CSV",
            file=src.path, row=row, column=shown_name(column), value=clip(formula),
            check="excel_formula",
        )  # fmt: skip


def _unknown_code_columns(data: DataSettings, headers: list[list[str]]) -> None:
    """ConfigError for a per-column missing-code entry naming a column no input table has."""
    if not isinstance(data.missing_codes, Mapping):
        return
    rx = re.compile(data.session_token)
    names = {n for header in headers for c in header for n in (c, rx.sub("", c))}
    absent = [c for c in data.missing_codes if c != DEFAULT_CODES and c not in names]
    if absent:
        raise ConfigError(
            f"config key data.missing_codes.{name_text(absent[0])}: no column "
            f"'{name_text(absent[0])}' in the input tables; per-column codes name a column as "
            "the export writes it (the default list is under 'default')"
        )


def _read(
    path: str,
    data: DataSettings,
    columns: ColumnSettings,
    symptoms: SymptomSettings,
    alliance: AllianceSettings,
) -> Source:
    """Read one input; value labels only on categorical roles, missing codes never on IDs."""
    if not Path(path).exists():
        raise InputError("input file not found (check data.sessions / data.patients)", file=path)
    header = readers.read_columns(
        path,
        sheet=data.sheet,
        encoding=data.encoding,
        delimiter=data.delimiter,
    )
    configured = configured_codes(header, data.missing_codes, data.session_token)
    never = {columns.patient: "patient", columns.session: "session"}
    never |= {columns.therapist: "therapist"}
    for col, (explicit, col_codes) in configured.items():
        if explicit and col_codes and col in never:
            raise ConfigError(
                f"config key data.missing_codes.{name_text(col)}: '{name_text(col)}' is the "
                f"{never[col]} column, which is never set missing (a row needs it to be "
                "placed); remove the entry"
            )
    # The default list never blanks ID or session columns (a global 9 would erase session 9);
    # sites are spared it too. Default codes inside a column's valid range are skipped there.
    spared = {columns.patient, columns.session, columns.therapist, columns.site}
    default = {c: list(v) for c, (explicit, v) in configured.items() if not explicit}
    codes = {c: list(v) for c, (explicit, v) in configured.items() if explicit}
    notes: list[tuple[str, str]] = []
    if any(default.values()):
        ranges = _valid_ranges(header, data.session_token, columns.suicidality, symptoms, alliance)
        default = {c: v for c, v in default.items() if c not in spared}
        default, kept = _codes_outside_ranges(default, ranges)
        codes |= default
        if kept:
            shown = ", ".join(kept[:5]) + (", ..." if len(kept) > 5 else "")
            notes.append((path, (
                f"data.missing_codes not applied where the code is a valid value, in "
                f"{len(kept)} column(s): {shown}"
            )))  # fmt: skip
    roles = (columns.arm, columns.modality, columns.status, columns.site, columns.therapist)
    categorical = {col for col in roles if col}
    categorical |= set(columns.covariates)
    table = readers.read_table(
        path,
        sheet=data.sheet,
        encoding=data.encoding,
        delimiter=data.delimiter,
        missing_codes={c: v for c, v in codes.items() if v},
        apply_value_labels=_labelled_columns(header, categorical, data.session_token),
    )
    frame = table.frame.reset_index(drop=True)
    frame = frame.assign(**{ROW: np.arange(1, len(frame) + 1), FILE: path})
    notes += [(path, note) for note in table.notes]
    declared = {c: tuple(float(x) for x in v) for c, (_, v) in configured.items() if c not in never}
    return Source(frame, path, notes, declared, dict(table.formulas))


def configured_codes(
    header: Sequence[str], missing_codes: MissingCodesSetting, session_token: str
) -> dict[str, tuple[bool, tuple[float, ...]]]:
    """Column -> (listed for the column itself?, codes) as `data.missing_codes` configures them.

    A list applies to every column. A mapping gives per-column lists under the column's name
    as the export writes it (in a wide table also its long name, `wai_p_05` for
    `wai_p_05_s3`), each replacing the list under `default` for that column (`[]` turns codes
    off there).
    """
    if not isinstance(missing_codes, Mapping):
        return {c: (False, tuple(missing_codes)) for c in header}
    rx = re.compile(session_token)
    default = tuple(missing_codes.get(DEFAULT_CODES, ()))
    out = {}
    for col in header:
        name = col if col in missing_codes else rx.sub("", col)
        own = name in missing_codes and name != DEFAULT_CODES
        out[col] = (True, tuple(missing_codes[name])) if own else (False, default)
    return out


def _valid_ranges(
    header: list[str],
    session_token: str,
    suicidality: str | None,
    symptoms: SymptomSettings,
    alliance: AllianceSettings,
) -> dict[str, tuple[float, float]]:
    """Known valid range of each header column that is a symptom total, item or suicidality."""
    rx = re.compile(session_token)
    fixed = {}
    if symptoms.column:
        fixed[symptoms.column] = (float(symptoms.min), float(symptoms.max))
    if suicidality:
        fixed[suicidality] = (0.0, float(symptoms.suicidality_max))
    raters = [spec for spec in alliance.raters.values() if spec and spec["items"]]
    patterns = [(spec["items"], alliance.instrument(spec["instrument"])) for spec in raters]
    if symptoms.items and symptoms.instrument:
        patterns.append((symptoms.items, alliance.instrument(symptoms.instrument)))
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
    codes: dict[str, list[float]], ranges: Mapping[str, tuple[float, float]]
) -> tuple[dict[str, list[float]], list[str]]:
    """Drop each column's missing codes that are valid values of that column (`ranges`).

    `missing_codes: [9]` is meant for 1-5 items; applied to a HAM-D total it would erase every
    real score of 9. Returns the per-column codes and 'column (codes)' for each column spared.
    """
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


def _wanted_columns(
    columns: ColumnSettings, keep_columns: Sequence[str], symptom_column: str | None
) -> list[str]:
    """Source columns named anywhere in config (everything else is dropped at read time)."""
    names = [col for col in role_columns(columns).values() if col]
    names += [*columns.covariates, *columns.personality.values()]
    names += keep_columns
    if symptom_column:
        names.append(symptom_column)
    return names


def kept_columns(
    keep_columns: Sequence[str], columns: ColumnSettings, symptom_column: str | None
) -> list[str]:
    """`data.keep_columns`, refused when one would leak raw IDs or shadow a pipeline column."""
    mapped = set(_wanted_columns(columns, keep_columns, symptom_column)) - set(keep_columns)
    ids = {columns.patient, columns.therapist}
    for col in keep_columns:
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
    return list(keep_columns)


def _item_patterns(alliance: AllianceSettings, symptom_items: str | None) -> list[str]:
    """The item-column regexes of every configured rater and of the symptom items."""
    pats = [spec["items"] for spec in alliance.rater_specs().values()]
    if symptom_items:
        pats.append(symptom_items)
    return pats


def _keep_filter(
    frame_columns: list[str], wanted: set[str], patterns: list[re.Pattern[str]]
) -> list[str]:
    return [c for c in frame_columns if c in wanted or any(p.search(c) for p in patterns)]


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
