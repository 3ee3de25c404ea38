"""Turn a wide trial table (one row per patient, `hamd_s3`-style columns) into long form.

The session index is read from column names with a user-configurable regex, so a column
that merely *looks* session-indexed but escapes the regex is an error, not silently treated
as a patient-level variable.
"""

from __future__ import annotations

import re

import pandas as pd

from alliance.errors import InputError

# Column names that look session-indexed: `_s3`, `_S3`, `.s3`, a bare trailing `_s`, or
# `_sess3` / `_session3`. A patient-level count such as `n_sessions` does not match.
_LOOKS_INDEXED = re.compile(r"[_.\-](?:s[_.\-]?\d*|sess(?:ion)?[_.\-]?\d+)$", re.IGNORECASE)
SESSION = "session"


def _compile(session_token: str, source: str) -> re.Pattern[str]:
    try:
        pattern = re.compile(session_token)
    except re.error as exc:
        raise InputError(
            f"session token {session_token!r} is not a valid regular expression: {exc}",
            file=source,
        ) from exc
    if pattern.groups < 1:
        raise InputError(
            f"session token {session_token!r} needs a group capturing the session number, "
            r"e.g. '_s(\d+)$'",
            file=source,
        )
    return pattern


def _check_ids(frame: pd.DataFrame, id_column: str, source: str) -> None:
    if id_column not in frame.columns:
        raise InputError(
            f"id column not found; columns are {', '.join(map(str, frame.columns[:20]))}",
            file=source,
            column=id_column,
        )
    ids = frame[id_column]
    if ids.isna().any():
        row = int(ids.isna().to_numpy().argmax()) + 1
        raise InputError("missing patient id", file=source, row=row, column=id_column)
    dup = ids.duplicated()
    if dup.any():
        row = int(dup.to_numpy().argmax()) + 1
        raise InputError(
            "duplicated patient id in a wide table (one row per patient expected)",
            file=source,
            row=row,
            column=id_column,
            value=ids.iloc[row - 1],
        )


def _split_columns(
    columns: list[str], id_column: str, pattern: re.Pattern[str], source: str
) -> tuple[dict[tuple[str, int], str], list[str]]:
    """Map (stem, session) -> column for session-level columns; list patient-level ones."""
    indexed: dict[tuple[str, int], str] = {}
    patient: list[str] = []
    suspicious: list[str] = []
    for name in columns:
        if name == id_column:
            continue
        match = pattern.search(name)
        if match is None:
            if _LOOKS_INDEXED.search(name) or re.search(pattern.pattern, name, re.IGNORECASE):
                suspicious.append(name)
            patient.append(name)
            continue
        stem = name[: match.start()] + name[match.end() :]
        try:
            session = int(match.group(1))
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"session token {pattern.pattern!r} matched {match.group(0)!r} but its first "
                "group is not a whole number",
                file=source,
                column=name,
            ) from exc
        if not stem:
            raise InputError(
                "column name is only a session token; nothing is left as the variable name",
                file=source,
                column=name,
            )
        if stem in (id_column, SESSION):
            raise InputError(
                f"variable name {stem!r} left after removing the session token clashes with "
                "an output column",
                file=source,
                column=name,
            )
        key = (stem, session)
        if key in indexed:
            raise InputError(
                f"columns {indexed[key]!r} and {name!r} both map to variable {stem!r} at "
                f"session {session}; rename one",
                file=source,
                column=name,
            )
        indexed[key] = name
    if suspicious:
        raise InputError(
            f"column(s) {', '.join(map(repr, suspicious))} look session-indexed but do not "
            f"match the session token {pattern.pattern!r}; fix data.session_token or rename "
            "them",
            file=source,
            column=suspicious[0],
        )
    return indexed, patient


def wide_to_long(
    frame: pd.DataFrame,
    *,
    id_column: str,
    session_token: str = r"_s(\d+)$",
    source: str = "<table>",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a wide table into (sessions_long, patient_level).

    A column is session-level when `re.search(session_token, name)` matches; its long name is
    the name without the matched text and its session is `int(group 1)`. A person's session
    row is dropped when every session-level value of that session is missing (not attended).
    """
    pattern = _compile(session_token, source)
    _check_ids(frame, id_column, source)
    columns = [str(c) for c in frame.columns]
    if columns != list(frame.columns):
        frame = frame.set_axis(columns, axis=1)
    indexed, patient_cols = _split_columns(columns, id_column, pattern, source)
    if not indexed:
        raise InputError(
            f"no column matches the session token {session_token!r}; columns are "
            f"{', '.join(columns[:20])}",
            file=source,
        )
    stems = sorted({stem for stem, _ in indexed})
    sessions = sorted({session for _, session in indexed})
    parts = []
    for session in sessions:
        present = {stem: col for (stem, s), col in indexed.items() if s == session}
        block = frame[list(present.values())].set_axis(list(present), axis=1)
        attended = block.notna().any(axis=1).to_numpy()
        if not attended.any():
            continue  # an empty block would turn every column to object in concat
        block = block.loc[attended]
        part = pd.DataFrame({id_column: frame[id_column].loc[attended]})
        part[SESSION] = session
        for stem in stems:
            if stem in block:
                part[stem] = block[stem]
            else:
                # measured at other sessions only: missing here, typed like its other columns
                part[stem] = pd.Series(index=part.index, dtype=_stem_dtype(frame, indexed, stem))
        parts.append(part)
    long = pd.concat(parts, ignore_index=True)
    for stem in stems:
        if long[stem].dtype == object:
            # e.g. an all-empty text column next to numeric ones: let the values decide
            long[stem] = long[stem].infer_objects()
    long[SESSION] = long[SESSION].astype("int64")
    long = long.sort_values([id_column, SESSION], kind="stable").reset_index(drop=True)
    patient = (
        frame[[id_column, *patient_cols]]
        .sort_values(id_column, kind="stable")
        .reset_index(drop=True)
    )
    return long, patient


def _stem_dtype(frame: pd.DataFrame, indexed: dict[tuple[str, int], str], stem: str) -> object:
    """dtype able to hold the stem's values and a missing value (int becomes float)."""
    dtypes = [frame[col].dtype for (s, _), col in indexed.items() if s == stem]
    dtype = dtypes[0] if all(d == dtypes[0] for d in dtypes) else object
    if pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        return "float64"
    return dtype


def detect_layout(
    frame: pd.DataFrame,
    *,
    id_column: str,
    session_column: str,
    session_token: str = r"_s(\d+)$",
    source: str = "<table>",
) -> str:
    """'long' (a session column, ids may repeat) or 'wide' (token columns, unique ids)."""
    pattern = _compile(session_token, source)
    if id_column not in frame.columns:
        raise InputError("id column not found", file=source, column=id_column)
    token_cols = [str(c) for c in frame.columns if pattern.search(str(c))]
    has_session = session_column in frame.columns
    repeats = bool(frame[id_column].duplicated().any())
    if has_session and token_cols:
        raise InputError(
            f"the table has both a session column {session_column!r} and session-indexed "
            f"columns ({', '.join(token_cols[:5])}); use one layout",
            file=source,
            column=token_cols[0],
            check="mixed_layout",
        )
    if has_session:
        return "long"
    if token_cols:
        if repeats:
            dup = frame[id_column].duplicated().to_numpy()
            row = int(dup.argmax()) + 1
            raise InputError(
                "ids repeat in a wide table (session-indexed columns, no session column)",
                file=source,
                row=row,
                column=id_column,
                value=frame[id_column].iloc[row - 1],
            )
        return "wide"
    raise InputError(
        f"cannot tell the layout: no session column {session_column!r} and no column matches "
        f"the session token {session_token!r}",
        file=source,
        column=session_column,
        check="missing_column",
    )
