"""What every reader returns (`TableRead`), the supported file formats and the shared errors.

Kept apart from the per-format modules so each of them, and the package's `read_table`, import
one definition of the result type and of the missing-cell spellings.
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
