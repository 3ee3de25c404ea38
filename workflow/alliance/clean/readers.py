"""Read any trial export into a DataFrame.

Every reader returns a `TableRead` that records how the file was interpreted (encoding,
delimiter, value labels, declared missing codes, notes) so the report can say exactly what
was done to the user's data. Every bad-input problem raises `InputError` naming the file;
library tracebacks never reach the user.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io as _io
import math
import os
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alliance.errors import InputError
from alliance.files import meaningful_index

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
DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_NAMES = {"comma": ",", "semicolon": ";", "tab": "\t", "\\t": "\t", "pipe": "|"}
# Cells read as missing in text and Excel files: blank plus the spellings R, SAS/Stata and
# spreadsheet exports use. Anything else stays a value.
MISSING_TOKENS = frozenset({"", "NA", "N/A", "NaN", "nan", "NULL", "null", "#N/A", "."})
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")
_LEADING_ZERO = re.compile(r"[+-]?0\d")
_SNIFF_LINES = 50

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
        frame = _read_text(p, source, fmt, encoding, delimiter, keep, result)
    elif fmt == "parquet":
        frame = _read_parquet(p, source, keep)
    elif fmt == "excel":
        frame = _read_excel(p, source, sheet, keep, result)
    else:
        frame = _read_stat(p, source, fmt, keep, result)
    if keep is not None:
        absent = [c for c in keep if c not in frame.columns]
        if absent:
            result.notes.append(f"requested columns not in file: {', '.join(absent)}")
    if len(frame) == 0:
        raise InputError("no data rows", file=source)
    frame = _blank_strings_to_missing(frame, result)
    frame = _apply_missing_codes(frame, missing_codes, result)
    if fmt in ("spss", "stata"):
        frame = _integral_floats_to_int(frame)
        if apply_value_labels is True:
            frame = _apply_labels(frame, result)
        elif apply_value_labels:
            frame = _apply_labels(frame, result, set(apply_value_labels))
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
    scratch = TableRead(frame=pd.DataFrame(), source=source, format=fmt)
    if fmt in ("csv", "tsv"):
        text = _decode(p.read_bytes(), source, encoding, scratch)
        delim = _choose_delimiter(text, source, fmt, delimiter)
        return _parse_text(text, source, delim, keep=None, header_only=True)[0]
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(p).names)
        except Exception as exc:  # any library failure means unreadable input
            raise _unreadable(source, "parquet", exc) from exc
    if fmt == "excel":
        header = _excel_rows(p, source, sheet, scratch, header_only=True)[0]
        return [_excel_cell_text(h) or "" for h in header]
    return list(_stat_meta(p, source, fmt).column_names)


# --- text ----------------------------------------------------------------------------------


def _read_text(
    p: Path,
    source: str,
    fmt: str,
    encoding: str,
    delimiter: str,
    keep: list[str] | None,
    result: TableRead,
) -> pd.DataFrame:
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the file: {exc.strerror or exc}", file=source) from exc
    if not data.strip():
        raise InputError("no data rows (the file is empty)", file=source)
    text = _decode(data, source, encoding, result)
    delim = _choose_delimiter(text, source, fmt, delimiter)
    result.delimiter = delim
    fast = _fast_text_frame(text, source, delim, keep)
    if fast is not None:
        return fast
    header, columns, n = _parse_text(text, source, delim, keep)
    return _frame_from_cells(header, columns, n, source)


def _decode(data: bytes, source: str, encoding: str, result: TableRead) -> str:
    if encoding != "auto":
        try:
            text = data.decode(encoding)
        except LookupError as exc:
            raise InputError(f"unknown encoding {encoding!r}", file=source) from exc
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise InputError(
                f"cannot decode line {line} as {encoding} (byte {data[exc.start]:#04x}); "
                "set data.encoding to the file's encoding or 'auto'",
                file=source,
            ) from exc
        result.encoding = encoding
        return text.removeprefix("\ufeff")
    try:
        text = data.decode("utf-8-sig")
        result.encoding = "utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "utf-8"
        return text
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        for fallback in ("cp1252", "latin-1"):
            try:
                text = data.decode(fallback)
            except UnicodeDecodeError:
                continue
            result.encoding = fallback
            result.notes.append(
                f"file is not UTF-8 (first non-UTF-8 byte on line {line}); decoded as "
                f"{fallback}. Set data.encoding if accented text looks wrong."
            )
            return text
    raise AssertionError("latin-1 decodes every byte string")  # pragma: no cover


def _sample_lines(text: str) -> list[str]:
    """The first non-blank lines, splitting only as much of the text as needed (big files)."""
    size = 1 << 16
    while True:
        complete = size >= len(text)
        parts = text[:size].splitlines()
        if not complete:
            parts = parts[:-1]  # the last piece may be cut mid-line
        lines = [line for line in parts if line.strip()][:_SNIFF_LINES]
        if len(lines) >= _SNIFF_LINES or complete:
            return lines
        size *= 4


def _sniff(lines: list[str]) -> str | None:
    """Delimiter that splits the header into >1 fields and the most lines consistently."""
    best: tuple[float, int, str] | None = None
    for delim in DELIMITERS:
        try:
            rows = [r for r in csv.reader(lines, delimiter=delim) if r]
        except csv.Error:
            continue
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        share = sum(len(r) == width for r in rows) / len(rows)
        score = (share, width, delim)
        if best is None or score[:2] > best[:2]:
            best = score
    return None if best is None else best[2]


def _choose_delimiter(text: str, source: str, fmt: str, delimiter: str) -> str:
    lines = _sample_lines(text)
    if delimiter == "auto":
        found = _sniff(lines)
        return found if found is not None else ("," if fmt == "csv" else "\t")
    delim = _DELIMITER_NAMES.get(delimiter.lower(), delimiter)
    if len(delim) != 1:
        raise InputError(
            f"delimiter must be one character or 'auto', got {delimiter!r}", file=source
        )
    header = next(csv.reader(lines[:1], delimiter=delim), [])
    if len(header) == 1:
        other = _sniff(lines)
        if other is not None and other != delim:
            raise InputError(
                f"with delimiter {delim!r} the header is a single column, but the lines "
                f"contain {other!r}: set data.delimiter to {other!r} (or 'auto')",
                file=source,
            )
    return delim


def _parse_text(
    text: str,
    source: str,
    delim: str,
    keep: list[str] | None,
    header_only: bool = False,
) -> tuple[list[str], list[list[str]], int]:
    reader = csv.reader(_io.StringIO(text, newline=""), delimiter=delim)
    try:
        header = next((r for r in reader if r), None)
        if header is None:
            raise InputError("no data rows (the file is empty)", file=source)
        header = [h.strip() for h in header]
        if header_only:
            return header, [], 0
        width = len(header)
        cells: list[list[str]] = [[] for _ in header]
        n = 0
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            if len(row) != width:
                raise InputError(
                    f"line {reader.line_num} has {len(row)} fields but the header has "
                    f"{width} (delimiter {delim!r}); check quoting or the delimiter",
                    file=source,
                    row=n + 1,
                )
            n += 1
            for j, value in enumerate(row):
                cells[j].append(value.strip())
    except csv.Error as exc:
        raise InputError(f"line {reader.line_num}: {exc}", file=source) from exc
    return (*_select_columns(header, cells, source, keep), n)


def _select_columns(
    header: list[str], cells: list[list[Any]], source: str, keep: list[str] | None
) -> tuple[list[str], list[list[Any]]]:
    """Drop unnamed all-empty columns (trailing delimiters), reject unnamed data and dupes."""
    names: list[str] = []
    kept: list[list[Any]] = []
    seen: set[str] = set()
    for j, name in enumerate(header):
        column = cells[j]
        if name == "":
            if all(_is_blank(v) for v in column):
                continue
            raise InputError(f"column {j + 1} has data but no header name", file=source)
        if name in seen:
            raise InputError("duplicate column name", file=source, column=name)
        seen.add(name)
        if keep is None or name in keep:
            names.append(name)
            kept.append(column)
    return names, kept


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() in MISSING_TOKENS)


def _frame_from_cells(
    header: list[str], columns: list[list[Any]], n: int, source: str
) -> pd.DataFrame:
    if n == 0:
        raise InputError("no data rows (only a header)", file=source)
    data = {name: _infer_column(values) for name, values in zip(header, columns, strict=True)}
    return pd.DataFrame(data, index=pd.RangeIndex(n))


def _infer_column(values: list[str]) -> pd.Series:
    """Numeric only when every non-missing cell is a plain number without a leading zero."""
    cells = [None if v in MISSING_TOKENS else v for v in values]
    present = [v for v in cells if v is not None]
    if not present:
        return pd.Series([math.nan] * len(cells), dtype="float64")  # as pandas.read_csv does
    if present and all(_NUMBER.fullmatch(v) and not _LEADING_ZERO.match(v) for v in present):
        if len(present) == len(cells) and all(_INTEGER.fullmatch(v) for v in present):
            ints = [int(v) for v in present]
            if all(-(2**63) <= i < 2**63 for i in ints):
                return pd.Series(ints, dtype="int64")
        floats = [math.nan if v is None else float(v) for v in cells]
        if all(math.isfinite(f) for f in floats if f == f):
            return pd.Series(floats, dtype="float64")
    return pd.Series(cells, dtype="str")


# Fast path for well-formed text files: pyarrow's C++ CSV parser reads every cell as text, then
# the typing rules of `_infer_column` run column-wise in Arrow compute. The per-cell Python path
# above stays the reference: it runs whenever the fast path cannot be sure to agree with it
# (quotes or odd line breaks in the header, NUL bytes, ragged or whitespace-only lines), so
# every error message and edge case comes from one place. Both must give identical frames
# (tests/test_io_fastpath.py compares them).
# Python's str.strip() removes exactly these characters (every c with c.isspace()).
_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_LINE_BREAK = re.compile(r"[\r\n]")


def _fast_text_frame(
    text: str, source: str, delim: str, keep: list[str] | None
) -> pd.DataFrame | None:
    """The frame `_parse_text` + `_frame_from_cells` would build, or None to use them instead."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    start = re.search(r"[^\r\n]", text)
    if start is None or "\x00" in text:
        return None
    brk = _LINE_BREAK.search(text, start.start())
    first = text[start.start() : brk.start() if brk else len(text)]
    if delim not in first or '"' in first or not first.strip() or first != first.splitlines()[0]:
        return None
    width = first.count(delim) + 1
    try:
        table = pacsv.read_csv(
            _io.BytesIO(text.encode("utf-8")),
            read_options=pacsv.ReadOptions(autogenerate_column_names=True),
            parse_options=pacsv.ParseOptions(
                delimiter=delim, quote_char='"', double_quote=True, escape_char=False,
                newlines_in_values=True, ignore_empty_lines=True,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={f"f{j}": pa.string() for j in range(width)},
                null_values=[], strings_can_be_null=False, quoted_strings_can_be_null=False,
            ),
        )  # fmt: skip
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None  # ragged or odd lines: the Python reader explains exactly where
    if table.num_columns != width:
        return None
    header = [str(table.column(j)[0]).strip() for j in range(width)]
    n = table.num_rows - 1
    if n == 0:
        return None  # header only: the Python reader reports it
    data: dict[str, pd.Series] = {}
    seen: set[str] = set()
    for j, name in enumerate(header):
        cells = _arrow_strip(table.column(j).slice(1))
        if name == "":
            if _arrow_missing(cells).false_count == 0:
                continue  # unnamed and empty: a trailing delimiter
            raise InputError(f"column {j + 1} has data but no header name", file=source)
        if name in seen:
            raise InputError("duplicate column name", file=source, column=name)
        seen.add(name)
        if keep is None or name in keep:
            data[name] = _infer_arrow(cells)
    return pd.DataFrame(data, index=pd.RangeIndex(n))


def _arrow_strip(column: Any) -> Any:
    import pyarrow.compute as pc

    return pc.utf8_trim(column.combine_chunks(), characters=_WHITESPACE)


def _arrow_missing(cells: Any) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.is_in(cells, value_set=pa.array(sorted(MISSING_TOKENS)))


def _infer_arrow(cells: Any) -> pd.Series:
    """`_infer_column` on stripped Arrow strings, column-wise.

    Arrow's float parser accepts exactly the ASCII strings `_NUMBER` matches, plus spellings of
    inf and nan (which the finiteness check turns back into text, as the Python rules do), so a
    successful cast replaces the per-cell regex; its rounding is exact (fast_float).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pc.all(pc.string_is_ascii(cells)).as_py():
        return _infer_column(cells.to_pylist())  # Unicode digits: Python's rules decide
    missing = _arrow_missing(cells)
    n_missing = missing.true_count
    if n_missing == len(cells):
        return pd.Series(np.full(len(cells), np.nan), dtype="float64")
    present = pc.filter(cells, pc.invert(missing)) if n_missing else cells
    try:
        floats = pc.cast(present, pa.float64()).to_numpy()
    except pa.ArrowInvalid:
        floats = None
    if floats is not None and np.isfinite(floats).all() and not _leading_zero(present):
        if n_missing == 0:
            try:
                return pd.Series(pc.cast(present, pa.int64()).to_numpy(), dtype="int64")
            except pa.ArrowInvalid:
                if not pc.any(pc.match_substring_regex(present, "[.eE]")).as_py():
                    try:  # '+5' or beyond int64: Python's int() decides, as `_infer_column`
                        ints = present.to_numpy(zero_copy_only=False).astype(np.int64)
                        return pd.Series(ints, dtype="int64")
                    except OverflowError:
                        pass
        if n_missing == 0:
            return pd.Series(floats, dtype="float64")
        out = np.full(len(cells), np.nan)
        out[~missing.to_numpy(zero_copy_only=False)] = floats
        return pd.Series(out, dtype="float64")
    kept = pc.if_else(missing, pa.scalar(None, pa.string()), cells) if n_missing else cells
    return pd.Series(pd.array(kept, dtype="str"))


def _leading_zero(numbers: Any) -> bool:
    """Whether any number string starts like `_LEADING_ZERO` ('007', '-01'): such cells are IDs."""
    import pyarrow.compute as pc

    unsigned = pc.utf8_ltrim(numbers, characters="+-")  # at most one sign: they parsed
    second = pc.utf8_slice_codeunits(unsigned, 1, 2)
    return bool(pc.any(pc.and_(pc.starts_with(unsigned, "0"), pc.ascii_is_decimal(second))).as_py())


# --- parquet -------------------------------------------------------------------------------


def _read_parquet(p: Path, source: str, keep: list[str] | None) -> pd.DataFrame:
    import pyarrow.parquet as pq

    try:
        names = list(pq.read_schema(p).names)
        columns = None if keep is None else [c for c in names if c in keep]
        return pd.read_parquet(p, columns=columns)
    except Exception as exc:  # any library failure means unreadable input
        raise _unreadable(source, "parquet", exc) from exc


# --- excel ---------------------------------------------------------------------------------


def _read_excel(
    p: Path, source: str, sheet: str | int | None, keep: list[str] | None, result: TableRead
) -> pd.DataFrame:
    header, rows = _excel_rows(p, source, sheet, result)
    width = len(header)
    columns: list[list[Any]] = [[] for _ in range(width)]
    for row in rows:
        for j in range(width):
            columns[j].append(_excel_cell_text(row[j] if j < len(row) else None))
    header = ["" if h is None else _excel_cell_text(h) or "" for h in header]
    names, kept = _select_columns(header, columns, source, keep)
    return _frame_from_cells(names, kept, len(rows), source)


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
        raise _unreadable(source, "xlsx", exc) from exc
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


# --- SPSS / Stata --------------------------------------------------------------------------


def _stat_meta(p: Path, source: str, fmt: str) -> Any:
    import pyreadstat

    reader = pyreadstat.read_sav if fmt == "spss" else pyreadstat.read_dta
    try:
        return reader(str(p), metadataonly=True)[1]
    except Exception as exc:  # any library failure means unreadable input
        raise _unreadable(source, fmt, exc) from exc


def _read_stat(p: Path, source: str, fmt: str, keep: list[str] | None, result: TableRead):
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
        raise _unreadable(source, fmt, exc) from exc
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


def _integral_floats_to_int(frame: pd.DataFrame) -> pd.DataFrame:
    """SPSS/Stata store every number as double; give whole-number columns int64 like CSV."""
    for col in frame.columns:
        values = frame[col]
        if values.dtype.kind == "f" and len(values) and values.notna().all():
            arr = values.to_numpy()
            if np.all(np.mod(arr, 1) == 0) and np.all(np.abs(arr) < 2**53):
                frame[col] = values.astype("int64")
    return frame


def _apply_labels(
    frame: pd.DataFrame, result: TableRead, only: set[str] | None = None
) -> pd.DataFrame:
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


# --- shared post-processing ---------------------------------------------------------------


def _blank_strings_to_missing(frame: pd.DataFrame, result: TableRead) -> pd.DataFrame:
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
            if not _NUMBER.fullmatch(code.strip()):
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


def _apply_missing_codes(
    frame: pd.DataFrame, missing_codes: MissingCodes, result: TableRead
) -> pd.DataFrame:
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


def _unreadable(source: str, kind: str, exc: BaseException) -> InputError:
    reason = str(exc).strip() or type(exc).__name__
    return InputError(f"cannot read as {kind}: {reason}", file=source)
