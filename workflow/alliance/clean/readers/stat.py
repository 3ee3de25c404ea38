"""SPSS (.sav/.zsav) and Stata (.dta) through pyreadstat: declared missing values, value labels,
and doubles that hold whole numbers.

The files carry metadata a text export lacks; everything done with it (codes masked as missing,
labels applied) is recorded on the `TableRead` so the report can say so.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alliance.clean.readers.table import TableRead, unreadable


def _stat_meta(p: Path, source: str, fmt: str) -> Any:
    import pyreadstat

    reader = pyreadstat.read_sav if fmt == "spss" else pyreadstat.read_dta
    try:
        return reader(str(p), metadataonly=True)[1]
    except Exception as exc:  # any library failure means unreadable input
        raise unreadable(source, fmt, exc) from exc


def stat_header(p: Path, source: str, fmt: str) -> list[str]:
    """Column names from the file's metadata, without reading data."""
    return list(_stat_meta(p, source, fmt).column_names)


def read_stat(p: Path, source: str, fmt: str, keep: list[str] | None, result: TableRead):
    """An SPSS/Stata file as a frame with declared missing values masked and counted."""
    import pyreadstat

    reader = pyreadstat.read_sav if fmt == "spss" else pyreadstat.read_dta
    meta = _stat_meta(p, source, fmt)
    usecols = None if keep is None else [c for c in meta.column_names if c in keep]
    if usecols == []:
        return pd.DataFrame(index=pd.RangeIndex(meta.number_rows or 0))
    try:
        # user_missing=True returns the raw codes and declares them in the metadata; we mask
        # them ourselves so we can count them and keep their labels out of the data.
        frame, meta = reader(str(p), user_missing=True, usecols=usecols)
    except Exception as exc:  # any library failure means unreadable input
        raise unreadable(source, fmt, exc) from exc
    if fmt == "spss":
        frame = _mask_spss_missing(frame, meta.missing_ranges, result)
    else:
        frame = _mask_stata_missing(frame, meta.readstat_variable_types, result)
    # Zero-row files come back with object columns; give strings the pandas 3 str dtype.
    for col in frame.columns:
        if frame[col].dtype == object and all(isinstance(v, str) for v in frame[col].dropna()):
            frame[col] = frame[col].astype("str")
    result.value_labels = {
        col: {_plain(k): v for k, v in labels.items()}
        for col, labels in meta.variable_value_labels.items()
        if col in frame.columns
    }
    return frame


def _mask_spss_missing(
    frame: pd.DataFrame, ranges: Mapping[str, list[dict]], result: TableRead
) -> pd.DataFrame:
    for col, specs in ranges.items():
        if col not in frame.columns:
            continue
        values = frame[col]
        mask = pd.Series(False, index=frame.index)
        declared: list = []
        for spec in specs:
            lo, hi = _plain(spec["lo"]), _plain(spec["hi"])
            declared.append(lo if lo == hi else (lo, hi))
            mask |= (values >= lo) & (values <= hi) if lo != hi else values == lo
        result.user_missing[col] = declared
        n = int(mask.sum())
        if n:
            frame[col] = values.mask(mask)
            result.notes.append(
                f"column {col!r}: {n} value(s) declared user-missing in the file set to missing"
            )
    return frame


def _mask_stata_missing(
    frame: pd.DataFrame, types: Mapping[str, str], result: TableRead
) -> pd.DataFrame:
    # With user_missing=True Stata's extended missing (.a-.z) arrive as letters in numeric
    # columns; system missing (.) is already NaN.
    for col in frame.columns:
        values = frame[col]
        if values.dtype != object or types.get(col) == "string":
            continue
        letters = values.map(lambda v: isinstance(v, str))
        numbers = values.map(lambda v: isinstance(v, int | float) and not isinstance(v, bool))
        if letters.any() and (numbers | letters | values.isna()).all():
            result.user_missing[col] = sorted({f".{v}" for v in values[letters]})
            frame[col] = pd.to_numeric(values.mask(letters), errors="raise").astype("float64")
            result.notes.append(
                f"column {col!r}: {int(letters.sum())} Stata extended missing value(s) set to "
                "missing"
            )
    return frame


def integral_floats_to_int(frame: pd.DataFrame) -> pd.DataFrame:
    """SPSS/Stata store every number as double; give whole-number columns int64 like CSV."""
    for col in frame.columns:
        values = frame[col]
        if values.dtype.kind == "f" and len(values) and values.notna().all():
            arr = values.to_numpy()
            if np.all(np.mod(arr, 1) == 0) and np.all(np.abs(arr) < 2**53):
                frame[col] = values.astype("int64")
    return frame


def apply_labels(
    frame: pd.DataFrame, result: TableRead, only: set[str] | None = None
) -> pd.DataFrame:
    """Replace coded values by their value labels (only in the `only` columns when given)."""
    for col, labels in result.value_labels.items():
        if only is not None and col not in only:
            continue
        values = frame[col]
        present = values.dropna()
        labelled = present.map(lambda v, lab=labels: v in lab)
        if not labelled.any():
            continue  # labels only on codes absent from the data (e.g. missing codes)
        mapped = values.map(lambda v, lab=labels: lab.get(v, v) if v == v else v)
        if labelled.all():
            frame[col] = mapped.astype("str")
        else:
            frame[col] = mapped.astype(object)
            result.notes.append(
                f"column {col!r}: {int((~labelled).sum())} value(s) have no value label and "
                "were kept as numeric codes next to the labels"
            )
    return frame


def _plain(value: Any) -> Any:
    """numpy/float codes as plain Python numbers; whole floats become int."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
