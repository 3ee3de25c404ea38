"""Dates as an export writes them, read without guessing (`read_dates`).

Read without a declared format: ISO-8601 (`2024-01-09`, with a time or a UTC offset), other
year-first numbers (`2024/01/09`, `20240109`) and written months (`9 Jan 2024`, `09JAN2024`).
Never guessed: the order of day and month in `06.05.2019` or `05/06/19` (set
`data.date_format`, e.g. `%d.%m.%Y`; the data's hint, a value > 12 in one place, is named but
not followed), a date without its year, day or month (`20 Oct`), and bare numbers in the range
of Excel serial day numbers (`45300`; `data.date_format: excel_serial` converts them). Dates
are kept at day precision. A strftime format is only ever passed to pandas' parser.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from dateutil import parser

from alliance.clean.readers.cells import NUMBER
from alliance.errors import ConfigError

EXCEL_SERIAL = "excel_serial"
# Serial day numbers read as Excel dates when a date column holds bare numbers: 1954 to 2064.
SERIAL_RANGE = (20000.0, 60000.0)
_EXCEL_EPOCH = pd.Timestamp("1899-12-30")  # day 0 of Excel's (1900) date system, leap bug included
_SERIAL_MAX = 2958465  # 9999-12-31
# A UTC offset or zone written after a time of day: "T10:00:00+02:00", " 10:00Z", "10:00 UTC+1".
OFFSET = re.compile(
    r"^(?P<local>.*\d:\d\d(?::\d\d(?:[.,]\d+)?)?)\s*(?:Z|UTC|GMT|(?:UTC|GMT)?[+-]\d\d?(?::?\d\d)?)$",
    re.IGNORECASE,
)
_ISO = r"\d{4}-\d{1,2}-\d{1,2}(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)?"
# Day and month as numbers, in either order: 06.05.2019, 5/6/19, 06-05-2019 14:30.
_NUMERIC_DM = re.compile(
    r"(?P<a>\d{1,2})(?P<sep>[./-])(?P<b>\d{1,2})(?P=sep)(?P<y>\d{4}|\d{2})(?=$|[T ])"
)
_TIME_TAIL = re.compile(
    r"^(?P<date>.*?)[T ]\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:\s*[AaPp][Mm])?$"
)
_DEFAULTS = (dt.datetime(2000, 1, 1), dt.datetime(2001, 2, 2))  # fields a date lacks differ


@dataclass
class Ambiguity:
    """Day/month dates in a column read without `data.date_format` (they are refused)."""

    first: Any  # index of the first value the two orders read differently (else the first value)
    value: str
    sep: str
    long_year: bool
    day_first: tuple[Any, str] | None = None  # (index, value) with a number > 12 first
    month_first: tuple[Any, str] | None = None  # (index, value) with a number > 12 second

    def formats(self) -> tuple[str, str]:
        """(day-first, month-first) strftime formats in the data's spelling."""
        y = "%Y" if self.long_year else "%y"
        return f"%d{self.sep}%m{self.sep}{y}", f"%m{self.sep}%d{self.sep}{y}"


@dataclass
class DateRead:
    """A column read as dates, and every cell that could not be."""

    dates: pd.Series
    zoned: pd.Series  # cells that carried a time zone (dropped: the local day is kept)
    bad: dict[str, pd.Series] = field(default_factory=dict)  # message -> cells it applies to
    serials: pd.Series | None = None  # bare Excel serial numbers (refused without the format)
    ambiguous: Ambiguity | None = None


def check_date_format(date_format: str | None) -> None:
    """ConfigError unless `date_format` is null, `excel_serial` or a full strftime date format."""
    if date_format is None or date_format == EXCEL_SERIAL:
        return
    has = {d: f"%{d}" in date_format for d in "YymbBdj"}
    full = (has["Y"] or has["y"]) and (
        has["j"] or (has["d"] and (has["m"] or has["b"] or has["B"]))
    )
    problem = "" if full else "it needs a year, a month and a day (%Y or %y, %m or %b, %d)"
    if full:
        try:
            pd.to_datetime(pd.Series(["2000-01-01"]), format=date_format, errors="coerce")
        except ValueError as exc:
            problem = str(exc)
    if problem:
        raise ConfigError(
            f"config key data.date_format: {date_format!r} is not a date format: {problem}; "
            "give a strftime pattern such as '%d.%m.%Y' or '%m/%d/%Y', or excel_serial"
        )


def read_dates(values: pd.Series, date_format: str | None) -> DateRead:
    """Read a column of text or numbers as day-precision dates (see the module docstring)."""
    check_date_format(date_format)
    strftime = date_format not in (None, EXCEL_SERIAL)
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        if not strftime:
            return _read_numbers(values.astype(float), date_format)
        values = values.map(lambda v: f"{v:.0f}" if v == v and v % 1 == 0 else v)
    text = values.astype("string").str.strip()
    present = text.notna() & (text != "")
    offset = text.str.match(OFFSET).fillna(False).astype(bool)
    local = text.str.replace(OFFSET, r"\g<local>", regex=True)
    iso = present & local.str.fullmatch(_ISO).fillna(False).astype(bool)
    dates, zoned = _to_dates(local.where(iso))
    impossible = iso & dates.isna()  # 2024-01-35
    numeric = present & ~iso & local.str.fullmatch(NUMBER.pattern).fillna(False).astype(bool)
    numeric &= not strftime  # a declared format reads numbers such as 06052019 itself
    found = _read_numbers(pd.to_numeric(local.where(numeric), errors="coerce"), date_format)
    dates = dates.where(~numeric, found.dates)
    out = DateRead(dates, (offset | zoned) & present, found.bad, found.serials)
    if impossible.any():
        out.bad["not a date"] = impossible | out.bad.get("not a date", False)
    rest = present & ~iso & ~numeric
    if rest.any():
        _read_written(local[rest], date_format, out)
    out.bad = {msg: mask.reindex(text.index, fill_value=False) for msg, mask in out.bad.items()}
    return out


def _read_numbers(numbers: pd.Series, date_format: str | None) -> DateRead:
    """Numbers in a date column: Excel serial days, yyyymmdd, or not dates."""
    numbers = pd.Series(numbers.to_numpy(dtype=float, na_value=math.nan), index=numbers.index)
    present = numbers.notna()
    whole = present & (numbers % 1 == 0)
    ymd = whole & numbers.between(1_000_01_01, 9999_12_31)
    as_text = numbers.where(ymd).map(lambda v: f"{int(v)}" if v == v else None)
    dates = pd.to_datetime(as_text, format="%Y%m%d", errors="coerce")
    dates = pd.Series(dates, index=numbers.index, dtype="datetime64[us]")
    serial = present & ~ymd & numbers.between(*SERIAL_RANGE)
    if date_format == EXCEL_SERIAL:
        serial = present & ~ymd & numbers.between(61, _SERIAL_MAX)  # before day 61: leap bug
        days = numbers.where(serial).map(lambda v: math.floor(v) if v == v else v)
        dates = dates.where(~serial, _EXCEL_EPOCH + pd.to_timedelta(days, unit="D"))
        serials = pd.Series(False, index=numbers.index)
    else:
        serials = serial
    bad = present & ~serials & dates.isna()
    out = DateRead(dates, pd.Series(False, index=numbers.index), serials=serials)
    if bad.any():
        out.bad["not a date"] = bad
    return out


def _read_written(text: pd.Series, date_format: str | None, out: DateRead) -> None:
    """Day/month numbers and written dates (`9 Jan 2024`): parsed into `out` or recorded."""
    by_value: dict[str, Any] = {}
    why: dict[str, str] = {}
    day_month: list[tuple[Any, str, re.Match[str]]] = []
    if date_format not in (None, EXCEL_SERIAL):
        _read_with_format(text, date_format, out)
        return
    for index, value in text.items():
        m = _NUMERIC_DM.match(value)
        if m:
            day_month.append((index, value, m))
        elif value not in by_value:
            by_value[value], reason = _written_date(value)
            if reason:
                why[value] = reason
    if day_month:
        out.ambiguous = _ambiguity(day_month)
    parsed = text.map(by_value)
    out.dates.loc[parsed.index] = pd.to_datetime(parsed).to_numpy()
    for reason in dict.fromkeys(why.values()):
        mask = text.isin([v for v, r in why.items() if r == reason])
        out.bad[reason] = mask.reindex(out.dates.index, fill_value=False)


def _read_with_format(text: pd.Series, date_format: str, out: DateRead) -> None:
    """Values in the declared strftime format (a trailing time of day is allowed)."""
    parsed = pd.to_datetime(text, format=date_format, errors="coerce")
    if parsed.isna().any() and "%H" not in date_format and "%I" not in date_format:
        missed = text[parsed.isna()]
        head = missed.str.extract(_TIME_TAIL, expand=False)
        parsed = parsed.fillna(pd.to_datetime(head, format=date_format, errors="coerce"))
    out.dates.loc[text.index] = parsed.dt.normalize().to_numpy()
    bad = parsed.isna()
    if bad.any():
        message = f"not a date in data.date_format {date_format!r}"
        out.bad[message] = bad.reindex(out.dates.index, fill_value=False)


def _written_date(value: str) -> tuple[Any, str]:
    """(date, '') for a complete written date; (NaT, why) otherwise. Nothing is filled in."""
    try:
        first, second = (parser.parse(value, default=d) for d in _DEFAULTS)
    except (ValueError, OverflowError):
        return pd.NaT, "not a date"
    lacks = [
        name for name in ("year", "month", "day") if getattr(first, name) != getattr(second, name)
    ]
    if lacks:
        return pd.NaT, (
            f"not a date: no {' or '.join(lacks)} (only full dates are read; nothing is filled in)"
        )
    stamp = pd.Timestamp(first.replace(tzinfo=None))
    return stamp.normalize(), ""


def _ambiguity(values: list[tuple[Any, str, re.Match[str]]]) -> Ambiguity:
    """What the day/month values say about their order (they are refused either way)."""
    both = [
        (i, v, m)
        for i, v, m in values
        if int(m["a"]) <= 12 and int(m["b"]) <= 12 and int(m["a"]) != int(m["b"])
    ]
    index, value, m = (both or values)[0]
    amb = Ambiguity(index, value, m["sep"], len(m["y"]) == 4)
    for i, v, mm in values:
        if int(mm["a"]) > 12 and amb.day_first is None:
            amb.day_first = (i, v)
        if int(mm["b"]) > 12 and amb.month_first is None:
            amb.month_first = (i, v)
    return amb


def ambiguity_message(amb: Ambiguity, rows: dict[Any, Any]) -> str:
    """The refusal for day/month dates; `rows` maps index labels to 1-based data rows."""
    day, month = amb.formats()
    head = (
        f"dates are written with day and month as numbers ({amb.value!r} reads as "
        "either); the order is never guessed"
    )
    if amb.day_first and amb.month_first:
        (i, v), (j, w) = amb.day_first, amb.month_first
        return (
            f"{head}, and this column mixes both: {v!r} (row {rows[i]}) has a number > 12 "
            f"first, {w!r} (row {rows[j]}) second; correct the export, then set "
            f"data.date_format ('{day}' day first, '{month}' month first)"
        )
    if amb.day_first or amb.month_first:
        (i, v) = amb.day_first or amb.month_first  # type: ignore[misc]
        order, fmt = ("day", day) if amb.day_first else ("month", month)
        return (
            f"{head}: {v!r} (row {rows[i]}) suggests {order} first; if so, set "
            f"data.date_format: '{fmt}'"
        )
    return (
        f"{head} and no value > 12 settles it; set data.date_format: '{day}' (day first) "
        f"or '{month}' (month first)"
    )


def serial_message(values: pd.Series) -> str:
    """The refusal for Excel serial numbers in a date column read without the format."""
    first = float(values.iloc[0])
    shown = f"{first:g}"
    as_date = (_EXCEL_EPOCH + pd.Timedelta(days=math.floor(first))).date().isoformat()
    return (
        f"{len(values)} date(s) are bare numbers like Excel's serial day numbers ({shown} "
        f"would be {as_date}); set data.date_format: excel_serial to read them as Excel "
        "dates, or format the column as dates before exporting"
    )


def _to_dates(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """ISO text -> naive day-precision dates, and which cells still carried a zone."""
    try:
        parsed = pd.to_datetime(text, errors="coerce", format="mixed", dayfirst=False)
    except (ValueError, TypeError, OverflowError):  # zones pandas reads but cannot mix
        stamps = [_one_date(v) for v in text]
        zoned = pd.Series([s is not pd.NaT and s.tzinfo is not None for s in stamps], text.index)
        naive = [s.tz_localize(None) if s is not pd.NaT and s.tzinfo else s for s in stamps]
        parsed = pd.Series(pd.to_datetime(naive), index=text.index)
        return parsed.dt.normalize().astype("datetime64[us]"), zoned
    zoned = pd.Series(False, index=text.index)
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        zoned = parsed.notna()
        parsed = parsed.dt.tz_localize(None)
    return parsed.dt.normalize().astype("datetime64[us]"), zoned


def _one_date(value: Any) -> Any:
    if pd.isna(value):
        return pd.NaT
    try:
        return pd.Timestamp(pd.to_datetime(value, errors="coerce", format="mixed"))
    except (ValueError, TypeError, OverflowError):
        return pd.NaT


def bad_cells(read: DateRead) -> Iterator[tuple[str, pd.Series]]:
    """(message, cells) for every kind of unreadable date, in a stable order."""
    for message, mask in read.bad.items():
        if mask.any():
            yield message, mask
