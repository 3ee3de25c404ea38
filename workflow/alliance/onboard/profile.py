"""Column profiles: what each column's values look like (kind, range, levels, likely missing codes).

Every guesser decides from these profiles, never from the raw values.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

import pandas as pd

MAX_LEVELS = 12  # columns with at most this many distinct values are reported as categorical
# Codes that often mean "missing" (SPSS/SAS habits). 9 only counts inside an item group, where a
# 1-5 scale makes it impossible; in a single column 9 is too often a real value.
GROUP_CODES = (9, 99, 999, -9, -99, -999)
SINGLE_CODES = (99, 999, -9, -99, -999)
_DATE_TEXT = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}(?:[ T][\d:.]+)?$|^\d{1,2}[./]\d{1,2}[./]\d{2,4}$")
_DAY_MONTH = re.compile(r"^(\d{1,2})([./])(\d{1,2})[./](\d{2,4})$")


@dataclass
class ColumnProfile:
    """What one column's values look like."""

    name: str
    table: str
    kind: str  # integer, number, date, text, empty
    n_distinct: int
    n_missing: int
    low: float | None = None
    high: float | None = None
    codes: list[str] | None = None  # distinct codes as the pipeline will compare them
    constant_within_patient: bool | None = None
    increasing_within_patient: bool | None = None
    suspicious: list[float] = field(default_factory=list)  # likely missing codes (not in range)
    # text dates: iso, month-first, day-first (`23/04/2021`) or ambiguous (`05/04/2021` only)
    date_order: str | None = None
    date_example: str | None = None
    date_formats: tuple[str, ...] = ()  # strftime formats that read the column (see date_order)
    # the column with its value labels applied (SPSS/Stata), as the clean stage reads a
    # categorical role (arm, status, modality, site, therapist, covariates)
    labelled: ColumnProfile | None = None
    value_labels: dict | None = None  # code -> label (on a labelled profile)

    def as_read(self, categorical: bool) -> ColumnProfile:
        """This profile as the pipeline reads the column for a categorical role or another."""
        return self.labelled if categorical and self.labelled is not None else self


def fmt(x: float | None) -> str:
    """A number as reports show it (`-` when absent)."""
    return "-" if x is None else f"{x:g}"


def value_span(p: ColumnProfile) -> str:
    """`low–high` of a column's values."""
    return f"{fmt(p.low)}–{fmt(p.high)}"


def is_flag(p: ColumnProfile) -> bool:
    """Whole numbers 0/1 only (a flag), whatever the dtype."""
    return p.kind == "integer" and p.low in (0.0, 1.0) and p.high in (0.0, 1.0)


def _codes(values: pd.Series) -> list[str]:
    """Distinct codes as the clean stage compares them (string, stripped), in natural order."""
    text = values.dropna().astype("string").str.strip()
    uniq = set(text[text != ""].tolist())

    def key(c: str) -> tuple[int, float, str]:
        try:
            return (0, float(c), c)
        except ValueError:
            return (1, 0.0, c)

    return sorted(uniq, key=key)


def _kind(values: pd.Series) -> str:
    present = values.dropna()
    if present.empty:
        return "empty"
    if pd.api.types.is_datetime64_any_dtype(values):
        return "date"
    if pd.api.types.is_bool_dtype(values):
        return "integer"
    if pd.api.types.is_numeric_dtype(values):
        return "integer" if bool((present % 1 == 0).all()) else "number"
    if present.map(lambda v: isinstance(v, dt.date | pd.Timestamp)).all():
        return "date"  # SPSS/Stata dates arrive as Python date objects
    text = present.astype("string").str.strip()
    looks = text.str.match(_DATE_TEXT).mean() >= 0.9
    parses = looks and pd.to_datetime(text, errors="coerce", format="mixed").notna().mean() >= 0.9
    return "date" if parses else "text"


def date_order(values: pd.Series) -> tuple[str | None, str | None, tuple[str, ...]]:
    """How text dates order day and month, an example, and the strftime formats that read
    them: `iso` (none needed), `day-first` (a first part above 12, or dotted `dd.mm.yyyy`),
    `month-first`, `ambiguous` (`05/04/2021` only: both formats) or `mixed` (both orders)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return None, None, ()
    text = values.dropna().astype("string").str.strip()
    parts = text.str.extract(_DAY_MONTH)
    parts = parts[parts[0].notna()]
    if parts.empty:
        return ("iso", None, ()) if len(text) else (None, None, ())
    first, second = parts[0].astype(int), parts[2].astype(int)
    sep = str(parts[1].iloc[0])
    year = "%Y" if parts[3].str.len().max() > 2 else "%y"
    day_first, month_first = f"%d{sep}%m{sep}{year}", f"%m{sep}%d{sep}{year}"
    if (second > 12).any() and (first > 12).any():
        return "mixed", str(text.loc[(second > 12).idxmax()]), ()
    if (second > 12).any():
        return "month-first", str(text.loc[(second > 12).idxmax()]), (month_first,)
    if (first > 12).any() or sep == ".":
        return "day-first", str(text.loc[(first > 12).idxmax()]), (day_first,)
    return "ambiguous", str(text.loc[parts.index[0]]), (day_first, month_first)


def profile_columns(
    frame: pd.DataFrame, table: str, id_col: str | None
) -> dict[str, ColumnProfile]:
    """Profile of every column; `id_col` given, also whether it is constant within patient."""
    out: dict[str, ColumnProfile] = {}
    repeated = id_col is not None and bool(frame[id_col].duplicated().any())
    for col in frame.columns:
        values = frame[col]
        kind = _kind(values)
        suspicious: list[float] = []
        if kind in ("integer", "number"):
            # Ranges, levels and flags describe the values without likely missing codes.
            _, suspicious = split_codes(values.dropna().astype(float), SINGLE_CODES, group=False)
            values = values.mask(values.isin(suspicious))
            if suspicious:
                frame = frame.copy()
                frame[col] = values
        prof = ColumnProfile(str(col), table, kind, int(values.nunique()), int(values.isna().sum()))
        prof.suspicious = suspicious
        if kind in ("integer", "number") and values.notna().any():
            num = values.astype(float)
            prof.low, prof.high = float(num.min()), float(num.max())
        if prof.n_distinct <= MAX_LEVELS and kind in ("integer", "text"):
            prof.codes = _codes(values)
        if kind == "date":
            prof.date_order, prof.date_example, prof.date_formats = date_order(values)
        if id_col is not None and col != id_col:
            prof.constant_within_patient = True
            if repeated:
                grouped = frame.groupby(id_col, sort=False)[col]
                prof.constant_within_patient = bool((grouped.nunique() <= 1).all())
                if kind == "integer":
                    diffs = grouped.diff().dropna()
                    prof.increasing_within_patient = bool(len(diffs)) and bool((diffs > 0).all())
        out[str(col)] = prof
    return out


def split_codes(
    values: pd.Series, codes: tuple[int, ...], group: bool
) -> tuple[pd.Series, list[float]]:
    """Values without likely missing codes, and the codes found.

    A code is suspicious when it lies outside the range of the other values: negative among
    non-negative values, above a small item range by more than one step (group), or at least 1.5
    times a single column's maximum.
    """
    present = [float(c) for c in codes if (values == c).any()]
    rest = values[~values.isin(present)]
    if rest.empty or not present:
        return values, []
    lo, hi = float(rest.min()), float(rest.max())
    found = [
        c
        for c in present
        if (c < 0 <= lo)
        or (group and c > hi + 1 and hi <= 10)
        or (not group and c > 0 and hi > 0 and c >= 1.5 * hi)
    ]
    return values[~values.isin(found)], sorted(found)
