"""Parquet: read through pyarrow, every library failure reported as unreadable input."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from alliance.clean.readers.table import unreadable


def read_parquet(p: Path, source: str, keep: list[str] | None) -> pd.DataFrame:
    """A parquet file as a frame, only the `keep` columns when given."""
    import pyarrow.parquet as pq

    try:
        names = list(pq.read_schema(p).names)
        columns = None if keep is None else [c for c in names if c in keep]
        return pd.read_parquet(p, columns=columns)
    except Exception as exc:  # any library failure means unreadable input
        raise unreadable(source, "parquet", exc) from exc


def parquet_header(p: Path, source: str) -> list[str]:
    """Column names from the parquet schema, without reading data."""
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(p).names)
    except Exception as exc:  # any library failure means unreadable input
        raise unreadable(source, "parquet", exc) from exc
