"""CSV/TSV: decoding, delimiter sniffing, the per-cell Python parser and the pyarrow fast path.

The Python parser is the reference (every error message and edge case comes from it); the Arrow
fast path handles well-formed files and steps aside whenever it cannot be sure to agree.
"""

from __future__ import annotations

import csv
import functools
import io as _io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alliance.clean.readers.cells import (
    empty_rows_note,
    frame_from_cells,
    infer_column,
    is_blank,
    select_columns,
)
from alliance.clean.readers.table import MISSING_TOKENS, TableRead, shown_name
from alliance.errors import InputError

DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_NAMES = {"comma": ",", "semicolon": ";", "tab": "\t", "\\t": "\t", "pipe": "|"}
_SNIFF_LINES = 50


def read_text(
    p: Path,
    source: str,
    fmt: str,
    encoding: str,
    delimiter: str,
    keep: list[str] | None,
    result: TableRead,
) -> pd.DataFrame:
    """A CSV/TSV file as a typed frame (the Arrow fast path when it applies)."""
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the file: {exc.strerror or exc}", file=source) from exc
    if not data.strip():
        raise InputError("no data rows (the file is empty)", file=source)
    text = decode(data, source, encoding, result)
    delim = choose_delimiter(text, source, fmt, delimiter)
    result.delimiter = delim
    fast = _fast_text_frame(text, source, delim, keep)
    if fast is not None:
        return fast
    skipped: list[int] = []
    header, columns, n = parse_text(text, source, delim, keep, skipped=skipped)
    if skipped:
        result.notes.append(empty_rows_note(skipped, "line"))
    return frame_from_cells(header, columns, n, source)


def text_header(p: Path, source: str, fmt: str, encoding: str, delimiter: str) -> list[str]:
    """Column names of a text file (decoded and split as `read_text` would)."""
    scratch = TableRead(frame=pd.DataFrame(), source=source, format=fmt)
    text = decode(p.read_bytes(), source, encoding, scratch)
    delim = choose_delimiter(text, source, fmt, delimiter)
    return parse_text(text, source, delim, keep=None, header_only=True)[0]


def decode(data: bytes, source: str, encoding: str, result: TableRead) -> str:
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


def choose_delimiter(text: str, source: str, fmt: str, delimiter: str) -> str:
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


def parse_text(
    text: str,
    source: str,
    delim: str,
    keep: list[str] | None,
    header_only: bool = False,
    skipped: list[int] | None = None,
) -> tuple[list[str], list[list[str]], int]:
    """Header, cells per column and the number of data rows of a text file.

    Empty rows (blank lines, lines of delimiters only, cells that are all blank or missing
    tokens) are skipped and not counted as data rows; the file lines of those between data rows
    are added to `skipped`.
    """
    reader = csv.reader(_io.StringIO(text, newline=""), delimiter=delim)
    pending: list[int] = []  # empty lines not yet followed by data (trailing ones are not noted)
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
            if all(is_blank(v) for v in row):
                pending.append(reader.line_num)
                continue  # an empty row: no value in any cell
            if skipped is not None:
                skipped += pending
            pending = []
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
    return (*select_columns(header, cells, source, keep), n)


# Fast path for well-formed text files: pyarrow's C++ CSV parser reads every cell as text, then
# the typing rules of `infer_column` run column-wise in Arrow compute. The per-cell Python path
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
# Two line breaks in a row before more text: an empty line between data rows.
_INNER_BLANK_LINE = re.compile(r"(?:\r\n|\r|\n)(?:\r\n|\r|\n)+(?=[^\r\n])")


def _fast_text_frame(
    text: str, source: str, delim: str, keep: list[str] | None
) -> pd.DataFrame | None:
    """The frame `parse_text` + `frame_from_cells` would build, or None to use them instead."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    start = re.search(r"[^\r\n]", text)
    if start is None or "\x00" in text:
        return None
    brk = _LINE_BREAK.search(text, start.start())
    first = text[start.start() : brk.start() if brk else len(text)]
    if delim not in first or '"' in first or not first.strip() or first != first.splitlines()[0]:
        return None
    if _INNER_BLANK_LINE.search(text, start.start()):
        return None  # an empty row between data rows: the Python reader notes where
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
    stripped = [_arrow_strip(table.column(j).slice(1)) for j in range(width)]
    missing = [_arrow_missing(cells) for cells in stripped]
    if functools.reduce(pc.and_, missing).true_count:
        return None  # rows of delimiters only: the Python reader skips and notes them
    data: dict[str, pd.Series] = {}
    seen: set[str] = set()
    for j, name in enumerate(header):
        cells = stripped[j]
        if name == "":
            if missing[j].false_count == 0:
                continue  # unnamed and empty: a trailing delimiter
            raise InputError(f"column {j + 1} has data but no header name", file=source)
        if name in seen:
            raise InputError("duplicate column name", file=source, column=shown_name(name))
        seen.add(name)
        if keep is None or name in keep:
            data[name] = _infer_arrow(cells, missing[j])
    return pd.DataFrame(data, index=pd.RangeIndex(n))


def _arrow_strip(column: Any) -> Any:
    import pyarrow.compute as pc

    return pc.utf8_trim(column.combine_chunks(), characters=_WHITESPACE)


def _arrow_missing(cells: Any) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.is_in(cells, value_set=pa.array(sorted(MISSING_TOKENS)))


def _infer_arrow(cells: Any, missing: Any) -> pd.Series:
    """`infer_column` on stripped Arrow strings, column-wise.

    Arrow's float parser accepts exactly the ASCII strings `cells.NUMBER` matches, plus
    spellings of inf and nan (which the finiteness check turns back into text, as the Python
    rules do), so a successful cast replaces the per-cell regex; its rounding is exact
    (fast_float).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pc.all(pc.string_is_ascii(cells)).as_py():
        return infer_column(cells.to_pylist())  # Unicode digits: Python's rules decide
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
                    try:  # '+5' or beyond int64: Python's int() decides, as `infer_column`
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
    """Whether any number string has a leading zero ('007', '-01'): such cells are IDs."""
    import pyarrow.compute as pc

    unsigned = pc.utf8_ltrim(numbers, characters="+-")  # at most one sign: they parsed
    second = pc.utf8_slice_codeunits(unsigned, 1, 2)
    return bool(pc.any(pc.and_(pc.starts_with(unsigned, "0"), pc.ascii_is_decimal(second))).as_py())
