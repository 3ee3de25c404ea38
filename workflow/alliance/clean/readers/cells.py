"""Typing rules for cells read as text (CSV/TSV and Excel): which columns are kept, which cells
are missing, and when a column is numeric.

CSV and Excel share these rules (Excel cells are first rendered as the text a CSV export would
hold), so one file types the same whichever format it was saved in.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pandas as pd

from alliance.clean.readers.table import MISSING_TOKENS, shown_name
from alliance.errors import InputError

NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")
_LEADING_ZERO = re.compile(r"[+-]?0\d")


def select_columns(
    header: list[str], cells: list[list[Any]], source: str, keep: list[str] | None
) -> tuple[list[str], list[list[Any]]]:
    """Drop unnamed all-empty columns (trailing delimiters), reject unnamed data and dupes."""
    names: list[str] = []
    kept: list[list[Any]] = []
    seen: set[str] = set()
    for j, name in enumerate(header):
        column = cells[j]
        if name == "":
            if all(is_blank(v) for v in column):
                continue
            raise InputError(f"column {j + 1} has data but no header name", file=source)
        if name in seen:
            raise InputError("duplicate column name", file=source, column=shown_name(name))
        seen.add(name)
        if keep is None or name in keep:
            names.append(name)
            kept.append(column)
    return names, kept


def is_blank(value: Any) -> bool:
    """A cell with no value: empty, whitespace or a missing token (NA, #N/A, ...)."""
    return value is None or (isinstance(value, str) and value.strip() in MISSING_TOKENS)


def empty_rows_note(where: list[int], unit: str) -> str:
    """The read note for empty rows skipped between data rows (`unit`: 'line', 'sheet row')."""
    shown = ", ".join(map(str, where[:10])) + (", ..." if len(where) > 10 else "")
    return (
        f"{len(where)} empty row(s) skipped (no value in any cell), at {unit}(s) {shown}; "
        "row numbers in messages count data rows only"
    )


def frame_from_cells(
    header: list[str], columns: list[list[Any]], n: int, source: str
) -> pd.DataFrame:
    """The typed frame of `n` rows of text cells, one list per column."""
    if n == 0:
        raise InputError("no data rows (only a header)", file=source)
    data = {name: infer_column(values) for name, values in zip(header, columns, strict=True)}
    return pd.DataFrame(data, index=pd.RangeIndex(n))


def infer_column(values: list[str]) -> pd.Series:
    """Numeric only when every non-missing cell is a plain number without a leading zero."""
    cells = [None if v in MISSING_TOKENS else v for v in values]
    present = [v for v in cells if v is not None]
    if not present:
        return pd.Series([math.nan] * len(cells), dtype="float64")  # as pandas.read_csv does
    if present and all(NUMBER.fullmatch(v) and not _LEADING_ZERO.match(v) for v in present):
        if len(present) == len(cells) and all(_INTEGER.fullmatch(v) for v in present):
            ints = [int(v) for v in present]
            if all(-(2**63) <= i < 2**63 for i in ints):
                return pd.Series(ints, dtype="int64")
        floats = [math.nan if v is None else float(v) for v in cells]
        if all(math.isfinite(f) for f in floats if f == f):
            return pd.Series(floats, dtype="float64")
    return pd.Series(cells, dtype="str")
