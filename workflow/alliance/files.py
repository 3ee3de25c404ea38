"""Write results atomically: Parquet, CSV and JSON that are byte-identical for identical data.

One writer per format, used by every stage, so a killed job never leaves a half-written output.
CSV text cells and column names that a spreadsheet would run as a formula are neutralised
(OWASP "CSV injection": a leading `'`); `read_csv` undoes it for the pipeline's own reads.
`shareable_path` is how an input path may appear in an output (never an absolute home folder).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import math
import os
import re
import secrets
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # imported where a frame is read or written: the Snakefile needs only `sha256`
    import pandas as pd


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path beside `path`; rename it onto `path` only if the block succeeds.

    A killed or failing job therefore never leaves a half-written output that a later run
    (or Snakemake) would mistake for a finished one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: it creates files 0600; writers create the temp file with normal permissions.
    # The real suffix stays last so writers that infer a format from it still work.
    tmp = target.with_name(
        f".{target.stem}.{os.getpid()}-{secrets.token_hex(4)}.tmp{target.suffix}"
    )
    try:
        yield tmp
        if not tmp.is_file():
            raise FileNotFoundError(f"the block did not write the temporary file {tmp}")
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes, read in chunks (provenance, demo recognition)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def meaningful_index(df: pd.DataFrame) -> bool:
    import pandas as pd

    idx = df.index
    default = (
        isinstance(idx, pd.RangeIndex) and idx.start == 0 and idx.step == 1 and idx.name is None
    )
    return not default


def write_parquet(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write `df` to parquet atomically; identical frames give byte-identical files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pa.Table.from_pandas(df, preserve_index=meaningful_index(df))
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        bad = next((c for c in df.columns if not _arrow_ok(df[c])), None)
        where = f"column {bad!r}: " if bad is not None else ""
        raise TypeError(f"cannot write parquet {path}: {where}{exc}") from exc
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", write_statistics=True)
    return Path(path)


def _arrow_ok(values: pd.Series) -> bool:
    import pyarrow as pa

    try:
        pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return False
    return True


def _float_repr(x: float) -> str:
    return repr(float(x))


# A cell opening with one of these is a formula to Excel, LibreOffice and Google Sheets (OWASP,
# ASVS 1.2.10): `=`, `+`, `-`, `@`, tab, carriage return, NUL. Leading spaces count as nothing
# (importers may trim them: Table 1 indents its levels); quotes already leading such a cell count
# too, so neutralising stays reversible (`restore_cell`).
FORMULA_START = "=+-@\t\r\0"
_FORMULA = re.compile(f"'* *[{re.escape(FORMULA_START)}]")
_RESTORE = re.compile(f"'+ *[{re.escape(FORMULA_START)}]")
_PLAIN_NUMBER = re.compile(r" *[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def neutralise_cell(value: Any) -> Any:
    """`value` made inert for a spreadsheet: a text cell that would open as a formula gets a
    leading `'`; plain numbers written as text ("-1.5") and anything not a `str` pass through."""
    if not isinstance(value, str) or not _FORMULA.match(value) or _PLAIN_NUMBER.fullmatch(value):
        return value
    return "'" + value


def restore_cell(value: Any) -> Any:
    """The inverse of `neutralise_cell` (drops the `'` it added)."""
    if isinstance(value, str) and _RESTORE.match(value):
        return value[1:]
    return value


def _text_columns(df: pd.DataFrame, cell: Callable[[Any], Any]) -> pd.DataFrame:
    """`df` with `cell` applied to its column names and to every cell of its text columns;
    numeric, boolean and date columns are never touched. `df` itself when nothing changes."""
    import pandas as pd

    out = df
    for i, (_, values) in enumerate(df.items()):
        dtype = values.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            levels = list(dtype.categories)
            if any(cell(v) is not v for v in levels):
                out = df.copy() if out is df else out
                out.isetitem(i, values.cat.rename_categories([cell(v) for v in levels]))
        elif pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
            cells = values.tolist()
            hits = [j for j, v in enumerate(cells) if cell(v) is not v]
            if hits:
                out = df.copy() if out is df else out
                changed = values.copy()
                changed.iloc[hits] = [cell(cells[j]) for j in hits]
                out.isetitem(i, changed)
    names = [cell(c) for c in out.columns]
    if any(a is not b for a, b in zip(names, out.columns, strict=True)):
        out = out.set_axis(names, axis="columns")
    return out


def write_csv(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write `df` as UTF-8 CSV atomically: no index, `\\n` endings, round-trip floats; text cells
    and column names that a spreadsheet would run as formulas neutralised (`neutralise_cell`)."""
    safe = _text_columns(df, neutralise_cell)
    with atomic_path(path) as tmp:
        safe.to_csv(tmp, index=False, lineterminator="\n", float_format=_float_repr,
                    encoding="utf-8")  # fmt: skip
    return Path(path)


def read_csv(path: str | os.PathLike[str], **kwargs: Any) -> pd.DataFrame:
    """A CSV written by `write_csv`, read with `pd.read_csv(**kwargs)`: neutralised text cells
    and column names come back exactly as they were written."""
    import pandas as pd

    return _text_columns(pd.read_csv(path, **kwargs), restore_cell)


def shareable_path(
    path: str | os.PathLike[str] | None, root: str | os.PathLike[str] | None = None
) -> str | None:
    """How an input path may appear in an output that is shared: relative to `root` (default:
    the working directory, the project root under Snakemake) when it lies inside it, else just
    the file name, never an absolute path to someone's home folder. Empty or None pass through.
    """
    if path is None or os.fspath(path) == "":
        return None if path is None else ""
    raw = Path(path)
    base = Path(os.path.abspath(root if root is not None else os.getcwd()))
    full = Path(os.path.abspath(base / raw))  # lexical: `..` is folded, links are not followed
    for inner, outer in ((full, base), (full.resolve(), base.resolve())):
        try:
            return inner.relative_to(outer).as_posix() or "."
        except ValueError:
            continue
    return full.name


def to_jsonable(obj: Any) -> Any:
    """Plain-JSON version of `obj`: numpy/pandas scalars unwrapped, NaN/inf/NA -> None."""
    # no pandas object exists unless pandas was imported, so a caller without frames skips it
    pd = sys.modules.get("pandas")
    series = (pd.Series, pd.Index) if pd is not None else ()
    if isinstance(obj, Mapping):
        return {str(_plain_key(k)): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset, np.ndarray, *series)):
        items = list(obj)
        if isinstance(obj, set | frozenset):
            items = sorted(items, key=repr)
        return [to_jsonable(v) for v in items]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if obj is None or (pd is not None and (obj is pd.NA or obj is pd.NaT)):
        return None
    if isinstance(obj, bool | int | str):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, _dt.datetime | _dt.date):  # pandas Timestamp is a datetime
        return obj.isoformat()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON: {obj!r}")


def _plain_key(key: Any) -> Any:
    return key.item() if isinstance(key, np.generic) else key


def write_json(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Write `obj` as JSON atomically: sorted keys, indent 2, trailing newline."""
    text = json.dumps(
        to_jsonable(obj), sort_keys=True, indent=2, allow_nan=False, ensure_ascii=False
    )
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return Path(path)
