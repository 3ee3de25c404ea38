"""Missing values the user declares (`data.missing_codes`) and blank text cells, for every format.

A code matches its numeric value and its text spellings (-99, "-99", "-99.0"), so the same
declaration works on a CSV and an SPSS file; every masked cell is counted in the read notes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from alliance.clean.readers.cells import NUMBER
from alliance.clean.readers.table import MissingCodes, TableRead


def blank_strings_to_missing(frame: pd.DataFrame, result: TableRead) -> pd.DataFrame:
    """Whitespace-only text cells become missing (as blank cells already are)."""
    for col in frame.columns:
        values = frame[col]
        if pd.api.types.is_string_dtype(values) and values.dtype != object:
            blank = values.str.strip().eq("").fillna(False).astype(bool)
            if blank.any():
                frame[col] = values.mask(blank)
    return frame


def _code_forms(codes: Sequence[float | str]) -> tuple[list[float], set[str]]:
    """Numeric values and text spellings of the missing codes (-99 -> -99.0, "-99", "-99.0")."""
    floats: list[float] = []
    texts: set[str] = set()
    for code in codes:
        if isinstance(code, str):
            texts.add(code.strip())
            if not NUMBER.fullmatch(code.strip()):
                continue
        f = float(code)
        floats.append(f)
        texts.add(repr(f))
        if f.is_integer():
            texts.add(str(int(f)))
    return floats, texts


def _is_code(value: Any, floats: list[float], texts: set[str]) -> bool:
    if isinstance(value, str):
        return value.strip() in texts
    return isinstance(value, int | float) and not isinstance(value, bool) and value in floats


def apply_missing_codes(
    frame: pd.DataFrame, missing_codes: MissingCodes, result: TableRead
) -> pd.DataFrame:
    """Set cells equal to a declared missing code to missing, counting them per column."""
    if not missing_codes:
        return frame
    if isinstance(missing_codes, Mapping):
        per_column = {c: list(v) for c, v in missing_codes.items()}
        absent = [c for c in per_column if c not in frame.columns]
        if absent:
            result.notes.append(f"missing codes declared for absent columns: {absent}")
    else:
        per_column = {c: list(missing_codes) for c in frame.columns}
    for col, codes in per_column.items():
        if not codes or col not in frame.columns:
            continue
        values = frame[col]
        floats, texts = _code_forms(codes)
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            mask = values.isin(floats)
        elif values.dtype == object:
            mask = values.map(lambda v, f=floats, t=texts: _is_code(v, f, t)).astype(bool)
        elif pd.api.types.is_string_dtype(values):
            mask = values.str.strip().isin(texts).fillna(False).astype(bool)
        else:
            continue
        n = int(mask.sum())
        if n:
            if values.dtype.kind in "iu":
                values = values.astype("float64")  # int64 cannot hold NaN
            frame[col] = values.mask(mask)
            result.notes.append(
                f"column {col!r}: {n} value(s) equal to a missing code set to missing"
            )
    return frame
