"""Read any trial export into a DataFrame.

Every reader returns a `TableRead` that records how the file was interpreted (encoding,
delimiter, value labels, declared missing codes, notes) so the report can say exactly what
was done to the user's data. Every bad-input problem raises `InputError` naming the file;
library tracebacks never reach the user.

`read_table` and `read_columns` dispatch on the file extension to one module per format
(`text` for CSV/TSV, `parquet`, `excel` with `formulas`, `stat` for SPSS/Stata); `missing`
applies declared missing codes to all of them, `cells` holds the typing rules text and Excel
share, `dates` reads date columns without guessing, and `table` the result type and how values
are shown in messages.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from pathlib import Path

import pandas as pd

from alliance.clean.readers.excel import excel_header, read_excel
from alliance.clean.readers.missing import apply_missing_codes, blank_strings_to_missing
from alliance.clean.readers.parquet import parquet_header, read_parquet
from alliance.clean.readers.stat import apply_labels, integral_floats_to_int, read_stat, stat_header
from alliance.clean.readers.table import (
    FORMATS,
    MISSING_TOKENS,
    SUPPORTED,
    MissingCodes,
    TableRead,
    detect_format,
)
from alliance.clean.readers.text import DELIMITERS, read_text, text_header
from alliance.errors import InputError
from alliance.files import meaningful_index

__all__ = [
    "DELIMITERS",
    "FORMATS",
    "MISSING_TOKENS",
    "SUPPORTED",
    "MissingCodes",
    "TableRead",
    "detect_format",
    "read_columns",
    "read_table",
]


def read_table(
    path: str | os.PathLike[str],
    *,
    sheet: str | int | None = None,
    encoding: str = "auto",
    delimiter: str = "auto",
    missing_codes: MissingCodes = (),
    keep_columns: Sequence[str] | None = None,
    apply_value_labels: bool | Collection[str] = True,
) -> TableRead:
    """Read a csv/tsv/parquet/xlsx/sav/zsav/dta file into a `TableRead`.

    `missing_codes` is a list applied to every column, or a mapping column -> codes.
    `keep_columns` drops every other column at read time so free text never travels further.
    `apply_value_labels=False` keeps SPSS/Stata numeric codes (labels are still reported); a
    collection of column names labels only those (items stay numeric, arm codes become labels).
    """
    source = str(path)
    fmt = detect_format(path)
    p = Path(path)
    if not p.exists():
        raise InputError("file not found", file=source)
    if not p.is_file():
        raise InputError("not a regular file", file=source)
    keep = None if keep_columns is None else list(dict.fromkeys(keep_columns))
    result = TableRead(frame=pd.DataFrame(), source=source, format=fmt)
    if fmt in ("csv", "tsv"):
        frame = read_text(p, source, fmt, encoding, delimiter, keep, result)
    elif fmt == "parquet":
        frame = read_parquet(p, source, keep)
    elif fmt == "excel":
        frame = read_excel(p, source, sheet, keep, result)
    else:
        frame = read_stat(p, source, fmt, keep, result)
    if keep is not None:
        absent = [c for c in keep if c not in frame.columns]
        if absent:
            result.notes.append(f"requested columns not in file: {', '.join(absent)}")
    if len(frame) == 0:
        raise InputError("no data rows", file=source)
    frame = blank_strings_to_missing(frame, result)
    frame = apply_missing_codes(frame, missing_codes, result)
    if fmt in ("spss", "stata"):
        frame = integral_floats_to_int(frame)
        if apply_value_labels is True:
            frame = apply_labels(frame, result)
        elif apply_value_labels:
            frame = apply_labels(frame, result, set(apply_value_labels))
    # a parquet file may carry a named index (e.g. patient id): keep it as a column
    # .copy() consolidates the column-by-column build (avoids pandas fragmentation warnings later)
    result.frame = frame.reset_index(drop=not meaningful_index(frame)).copy()
    result.n_rows = len(frame)
    return result


def read_columns(
    path: str | os.PathLike[str],
    *,
    sheet: str | int | None = None,
    encoding: str = "auto",
    delimiter: str = "auto",
) -> list[str]:
    """Column names of a file without keeping its data, e.g. to build `keep_columns`."""
    source = str(path)
    fmt = detect_format(path)
    p = Path(path)
    if not p.is_file():
        raise InputError("file not found", file=source)
    if fmt in ("csv", "tsv"):
        return text_header(p, source, fmt, encoding, delimiter)
    if fmt == "parquet":
        return parquet_header(p, source)
    if fmt == "excel":
        return excel_header(p, source, sheet)
    return stat_header(p, source, fmt)
