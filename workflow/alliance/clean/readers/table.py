"""What every reader returns (`TableRead`), the supported file formats and the shared errors.

Kept apart from the per-format modules so each of them, and the package's `read_table`, import
one definition of the result type and of the missing-cell spellings. Also how data values and
column names are shown in messages (`clip`, `shown_name`): shortened and on one line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from alliance.errors import InputError

FORMATS: dict[str, str] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".txt": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".xlsx": "excel",
    ".xls": "excel",
    ".sav": "spss",
    ".zsav": "spss",
    ".dta": "stata",
}
SUPPORTED = ", ".join(FORMATS)
# Cells read as missing in text and Excel files: blank plus the spellings R, SAS/Stata and
# spreadsheet exports use. Anything else stays a value.
MISSING_TOKENS = frozenset({"", "NA", "N/A", "NaN", "nan", "NULL", "null", "#N/A", "."})

MissingCodes = Sequence[float | str] | Mapping[str, Sequence[float | str]] | None


@dataclass
class TableRead:
    """A table as read, plus everything needed to explain how it was read."""

    frame: pd.DataFrame
    source: str
    format: str
    value_labels: dict[str, dict] = field(default_factory=dict)
    user_missing: dict[str, list] = field(default_factory=dict)
    encoding: str | None = None
    delimiter: str | None = None
    n_rows: int = 0
    notes: list[str] = field(default_factory=list)
    # Spreadsheet formula cells without a cached value (read as missing), per column:
    # (first 1-based data row, its formula, number of such cells in the column).
    formulas: dict[str, tuple[int, str, int]] = field(default_factory=dict)


def detect_format(path: str | os.PathLike[str]) -> str:
    """Map a file extension (case-insensitive) to a format name, or raise InputError."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise InputError(
            f"unsupported file type {suffix or '(no extension)'!r}; supported: {SUPPORTED}",
            file=str(path),
        )
    return FORMATS[suffix]


def unreadable(source: str, kind: str, exc: BaseException) -> InputError:
    """The InputError for a file a library could not parse, with the library's reason."""
    reason = str(exc).strip() or type(exc).__name__
    return InputError(f"cannot read as {kind}: {reason}", file=source)


# Messages show at most this many characters of a data value or column name.
CLIP = 80


class Clipped(str):
    """A text value that equals the full value but prints shortened in messages.

    `repr` (what `InputError` shows after `value`) gives the first `CLIP` characters and the
    length: `'aaaa…' (500 characters)`; control characters are escaped as `repr` does.
    """

    def __repr__(self) -> str:
        text = str(self)
        if len(text) <= CLIP:
            return repr(text)
        return f"{text[:CLIP] + '…'!r} ({len(text)} characters)"


class ShownName(str):
    """A column name that equals the name but formats escaped, shortened and on one line.

    `InputError` writes `column '{name}'`: a header holding a line break or another control
    character (an Excel header cell with Alt+Enter) would split the message; it shows as
    `'HAM-D\\ntotal'` instead.
    """

    def __format__(self, spec: str) -> str:
        return format(name_text(str(self)), spec)


def name_text(name: str) -> str:
    """A column name as messages show it: control characters escaped, at most `CLIP` characters."""
    text = repr(name)[1:-1] if _has_control(name) else name
    if len(text) > CLIP:
        text = f"{text[:CLIP]}… ({len(name)} characters)"
    return text


def _has_control(text: str) -> bool:
    return any(ord(c) < 32 or 127 <= ord(c) < 160 for c in text)


def clip(value: object) -> object:
    """`value` for a message: text is `Clipped` (prints shortened), anything else unchanged."""
    return Clipped(value) if isinstance(value, str) and not isinstance(value, Clipped) else value


def shown_name(name: object) -> object:
    """`name` for an `InputError`'s column: text is a `ShownName` (prints escaped, one line)."""
    if isinstance(name, str) and not isinstance(name, ShownName):
        return ShownName(name)
    return name


def value_text(value: object) -> str:
    """A data value as messages show it: `repr`, shortened (`Clipped`)."""
    return repr(clip(value))
