"""Score Likert items into scale scores: reverse keying, prorating, mean or sum."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from alliance.instruments.definition import Instrument


def reverse_key(values: pd.Series | np.ndarray, low: float, high: float) -> pd.Series | np.ndarray:
    """x' = min + max - x (applying it twice gives x back)."""
    return low + high - values


def keyed_items(items: pd.DataFrame, columns: Mapping[int, str], inst: Instrument) -> pd.DataFrame:
    """Item responses with reverse-keyed items flipped, one column per item number."""
    out = {}
    for item, col in columns.items():
        values = pd.to_numeric(items[col], errors="coerce").astype(float)
        if item in inst.reverse:
            low, high = inst.item_range(item)
            values = reverse_key(values, low, high)
        out[item] = values
    return pd.DataFrame(out, index=items.index)


def score_items(
    keyed: pd.DataFrame, members: Sequence[int], inst: Instrument
) -> tuple[pd.Series, pd.Series]:
    """Scale score and number of answered items for the item numbers in `members`.

    A score needs at least `inst.min_answered` of the items; with fewer it is missing (prorating
    rule). `sum` scoring prorates: mean of answered items x number of items, so partial forms stay
    comparable.
    """
    present = [m for m in members if m in keyed.columns]
    block = keyed[present].to_numpy(dtype=float)
    answered = np.sum(~np.isnan(block), axis=1)
    need = int(np.ceil(inst.min_answered * len(members) - 1e-9))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(block, axis=1) / np.where(answered > 0, answered, np.nan)
    score = mean if inst.scoring == "mean" else mean * len(members)
    score = np.where(answered >= max(need, 1), score, np.nan)
    return (
        pd.Series(score, index=keyed.index, dtype=float),
        pd.Series(answered, index=keyed.index, dtype="int64"),
    )
