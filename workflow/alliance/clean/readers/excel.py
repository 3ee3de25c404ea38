"""Excel (.xlsx) through openpyxl: sheet choice, blank rows, formulas, cells rendered as text.

Cells are turned into the text a CSV export would hold, so the typing rules of `cells` apply
unchanged and a workbook types exactly like the same data saved as CSV; cells typed as dates
become ISO dates. Values are those Excel last computed and stored: formula cells without one
are recorded (`TableRead.formulas`), never silently read as missing.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from alliance.clean.readers.cells import empty_rows_note, frame_from_cells, select_columns
from alliance.clean.readers.formulas import uncached_formulas
from alliance.clean.readers.table import TableRead, unreadable
from alliance.errors import InputError


def read_excel(
    p: Path, source: str, sheet: str | int | None, keep: list[str] | None, result: TableRead
) -> pd.DataFrame:
    """The chosen sheet as a frame, typed by the same rules as a CSV export of it."""
    got = _excel_rows(p, source, sheet, result)
    header, rows = got.header, got.rows
    width = len(header)
    columns: list[list[Any]] = [[] for _ in range(width)]
    for row in rows:
        for j in range(width):
            columns[j].append(_excel_cell_text(row[j] if j < len(row) else None))
    header = ["" if h is None else _excel_cell_text(h) or "" for h in header]
    if got.skipped:
        result.notes.append(empty_rows_note(got.skipped, "sheet row"))
    _record_formulas(got.formulas, header, result)
    names, kept = select_columns(header, columns, source, keep)
    return frame_from_cells(names, kept, len(rows), source)


def excel_header(p: Path, source: str, sheet: str | int | None) -> list[str]:
    """Column names of the chosen sheet (its first non-blank row)."""
    scratch = TableRead(frame=pd.DataFrame(), source=source, format="excel")
    header = _excel_rows(p, source, sheet, scratch, header_only=True).header
    return [_excel_cell_text(h) or "" for h in header]


@dataclass
class _Sheet:
    """The rows of a sheet as read: header, data rows, what was skipped or left uncomputed."""

    header: tuple
    rows: list[tuple] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # sheet rows of empty rows between data
    formulas: list[tuple[int, int, str]] = field(default_factory=list)  # (data row, col, text)


def _excel_rows(
    p: Path, source: str, sheet: str | int | None, result: TableRead, header_only: bool = False
) -> _Sheet:
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
        chosen = _choose_sheet(book.sheetnames, sheet, source)
        result.notes.append(f"read sheet {chosen!r}")
        uncached = {} if header_only else uncached_formulas(p, chosen)
        return _sheet_rows(book[chosen], uncached, chosen, source, header_only)
    finally:
        book.close()


def _choose_sheet(names: list[str], sheet: str | int | None, source: str) -> str:
    listed = ", ".join(map(repr, names))
    if sheet is None:
        if len(names) > 1:
            raise InputError(
                f"the workbook has {len(names)} sheets ({listed}); set data.sheet to the one "
                "holding the data",
                file=source,
            )
        return names[0]
    if isinstance(sheet, int):
        if not 0 <= sheet < len(names):
            raise InputError(f"sheet index {sheet} out of range; sheets are {listed}", file=source)
        return names[sheet]
    if sheet not in names:
        raise InputError(f"no sheet named {sheet!r}; sheets are {listed}", file=source)
    return sheet


def _sheet_rows(
    worksheet: Any,
    uncached: dict[tuple[int, int], str],
    chosen: str,
    source: str,
    header_only: bool,
) -> _Sheet:
    """Header and data rows of the sheet, with the formulas in `uncached` ((sheet row, column)
    -> formula) placed by data row. Empty rows are skipped (those between data rows listed)."""
    by_row: dict[int, list[tuple[int, str]]] = {}
    for (number, j), text in uncached.items():
        by_row.setdefault(number, []).append((j, text))
    sheet: _Sheet | None = None
    pending: list[int] = []
    for number, row in enumerate(worksheet.iter_rows(min_row=1, values_only=True), start=1):
        formulas = sorted(by_row.get(number, []))
        if not formulas and all(v is None or (isinstance(v, str) and not v.strip()) for v in row):
            if sheet is not None:
                pending.append(number)
            continue  # blank row: formatting leftovers, not data
        if sheet is None:
            sheet = _Sheet(row)
            if header_only:
                break
            continue
        sheet.skipped += pending
        pending = []
        sheet.rows.append(row)
        sheet.formulas += [(len(sheet.rows), j, text) for j, text in formulas]
    if sheet is None:
        raise InputError(f"no data rows (sheet {chosen!r} is empty)", file=source)
    return sheet


def _record_formulas(
    found: list[tuple[int, int, str]], header: list[str], result: TableRead
) -> None:
    """Uncached formulas per column on `result.formulas`, and a read note for each column."""
    per_column: dict[str, list[tuple[int, str]]] = {}
    for row, j, text in found:
        if j < len(header) and header[j]:
            per_column.setdefault(header[j], []).append((row, text))
    for name, cells in per_column.items():
        result.formulas[name] = (cells[0][0], cells[0][1], len(cells))
        result.notes.append(
            f"column {name!r}: {len(cells)} formula cell(s) without a cached value read as "
            "missing (open and save the file in Excel/LibreOffice to store the values)"
        )


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
