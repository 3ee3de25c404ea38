"""Write results atomically: Parquet, CSV and JSON that are byte-identical for identical data.

One writer per format, used by every stage, so a killed job never leaves a half-written output.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
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


def meaningful_index(df: pd.DataFrame) -> bool:
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


def write_csv(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write `df` as UTF-8 CSV atomically: no index, `\\n` endings, round-trip floats."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, lineterminator="\n", float_format=_float_repr, encoding="utf-8")
    return Path(path)


def to_jsonable(obj: Any) -> Any:
    """Plain-JSON version of `obj`: numpy/pandas scalars unwrapped, NaN/inf/NA -> None."""
    if isinstance(obj, Mapping):
        return {str(_plain_key(k)): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset | np.ndarray | pd.Series | pd.Index):
        items = list(obj)
        if isinstance(obj, set | frozenset):
            items = sorted(items, key=repr)
        return [to_jsonable(v) for v in items]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if obj is None or obj is pd.NA or obj is pd.NaT:
        return None
    if isinstance(obj, bool | int | str):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, _dt.datetime | _dt.date | pd.Timestamp):
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
