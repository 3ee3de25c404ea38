"""Excel (.xlsx) through openpyxl: sheet choice, blank rows, cells rendered as CSV text.

Cells are turned into the text a CSV export would hold, so the typing rules of `cells` apply
unchanged and a workbook types exactly like the same data saved as CSV.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import pandas as pd

from alliance.clean.readers.cells import frame_from_cells, select_columns
from alliance.clean.readers.table import TableRead, unreadable
from alliance.errors import InputError


def read_excel(
    p: Path, source: str, sheet: str | int | None, keep: list[str] | None, result: TableRead
) -> pd.DataFrame:
    """The chosen sheet as a frame, typed by the same rules as a CSV export of it."""
    header, rows = _excel_rows(p, source, sheet, result)
    width = len(header)
    columns: list[list[Any]] = [[] for _ in range(width)]
    for row in rows:
        for j in range(width):
            columns[j].append(_excel_cell_text(row[j] if j < len(row) else None))
    header = ["" if h is None else _excel_cell_text(h) or "" for h in header]
    names, kept = select_columns(header, columns, source, keep)
    return frame_from_cells(names, kept, len(rows), source)


def excel_header(p: Path, source: str, sheet: str | int | None) -> list[str]:
    """Column names of the chosen sheet (its first non-blank row)."""
    scratch = TableRead(frame=pd.DataFrame(), source=source, format="excel")
    header = _excel_rows(p, source, sheet, scratch, header_only=True)[0]
    return [_excel_cell_text(h) or "" for h in header]


def _excel_rows(
    p: Path, source: str, sheet: str | int | None, result: TableRead, header_only: bool = False
) -> tuple[tuple, list[tuple]]:
    if p.suffix.lower() == ".xls":
        raise InputError(
            "legacy .xls workbooks are not supported; save the sheet as .xlsx or .csv",
            file=source,
        )
    import openpyxl

    try:
        book = openpyxl.load_workbook(p, read_only=True, data_only=True)
    except Exception as exc:  # any library failure means unreadable input
        raise unreadable(source, "xlsx", exc) from exc
    try:
        names = book.sheetnames
        if sheet is None:
            if len(names) > 1:
                raise InputError(
                    f"the workbook has {len(names)} sheets ({', '.join(map(repr, names))}); "
                    "set data.sheet to the one holding the data",
                    file=source,
                )
            chosen = names[0]
        elif isinstance(sheet, int):
            if not 0 <= sheet < len(names):
                raise InputError(
                    f"sheet index {sheet} out of range; sheets are {', '.join(map(repr, names))}",
                    file=source,
                )
            chosen = names[sheet]
        else:
            if sheet not in names:
                raise InputError(
                    f"no sheet named {sheet!r}; sheets are {', '.join(map(repr, names))}",
                    file=source,
                )
            chosen = sheet
        result.notes.append(f"read sheet {chosen!r}")
        rows_iter = book[chosen].iter_rows(values_only=True)
        rows = []
        for row in rows_iter:
            if all(v is None or (isinstance(v, str) and not v.strip()) for v in row):
                continue  # blank row: formatting leftovers, not data
            rows.append(row)
            if header_only:
                break
    finally:
        book.close()
    if not rows:
        raise InputError(f"no data rows (sheet {chosen!r} is empty)", file=source)
    return rows[0], rows[1:]


def _excel_cell_text(value: Any) -> str | None:
    """Render a cell as the text a CSV export would hold, so typing rules are shared."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    return str(value).strip()
