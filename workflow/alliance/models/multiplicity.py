"""Multiplicity: Holm and Benjamini-Hochberg adjusted p-values within families of key terms.

Config `multiplicity` names a primary family of `model.term` entries and a secondary one (`auto`:
every other key term of every fitted model except sensitivity models, or a list). Each family is
adjusted over the p-values actually obtained (fitted rows with a p-value); an entry whose model
was skipped, failed or is not in the run, or whose term is not a coefficient, is kept as a row
with status "not fitted" and the reason, and takes no part in the adjustment. `p_adjust` equals
R's p.adjust (checked against it in tests/test_multiplicity.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from alliance.settings import MultiplicitySettings

COLUMNS = {"holm": "p_holm", "bh": "p_bh"}
ADDED = ("p_holm", "p_bh", "family")  # the summary columns this module fills
NOT_FITTED = "not fitted"


def p_adjust(p: Sequence[float] | np.ndarray, method: str) -> np.ndarray:
    """R's p.adjust(p, "holm") / p.adjust(p, "BH"); NaN entries stay NaN and are not counted."""
    values = np.asarray(p, dtype=float)
    out = np.full(values.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(values))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(values[ok], kind="stable")]
    ranked = values[order]
    k = np.arange(1, m + 1)
    if method == "holm":  # step-down: running maximum of (m - k + 1) p_(k)
        adjusted = np.maximum.accumulate((m - k + 1) * ranked)
    elif method == "bh":  # step-up: running minimum from the top of m / k p_(k)
        adjusted = np.minimum.accumulate((m / k * ranked)[::-1])[::-1]
    else:
        raise ValueError(f"unknown adjustment {method!r}; have {sorted(COLUMNS)}")
    out[order] = np.minimum(adjusted, 1.0)
    return out


def split_entry(entry: str) -> tuple[str, str] | None:
    """`model.term` -> (model, term) at the first dot (model ids have none); None if malformed."""
    model, dot, term = entry.partition(".")
    return (model, term) if dot and model and term else None


def extra_terms(settings: MultiplicitySettings | None) -> dict[str, set[str]]:
    """Model id -> terms named in a family, so the summary lists them even when not key terms."""
    out: dict[str, set[str]] = {}
    if settings is None:
        return out
    for entry in [*settings.primary, *_secondary_list(settings)]:
        parts = split_entry(entry)
        if parts:
            out.setdefault(parts[0], set()).add(parts[1])
    return out


def _secondary_list(settings: MultiplicitySettings) -> list[str]:
    """Explicit secondary entries (none when `auto`)."""
    return [] if isinstance(settings.secondary, str) else list(settings.secondary)


def add_families(
    summary: pd.DataFrame,
    settings: MultiplicitySettings | None,
    statuses: Mapping[str, tuple[str, str]],
    labels: Mapping[str, tuple[str, str]] | None = None,
    sensitivity: set[str] | frozenset[str] = frozenset(),
    derived: set[tuple[str, str]] | frozenset[tuple[str, str]] = frozenset(),
) -> pd.DataFrame:
    """`summary` with columns family, p_holm, p_bh and a "not fitted" row per missing entry.

    `statuses`: model id -> (status, reason) of every model in the run; `labels`: model id ->
    (label, kind) for the rows added; `sensitivity`: ids of sensitivity models, which `auto`
    leaves out of the secondary family (they repeat a model, not a new question); `derived`:
    (model, term) rows that repeat another row's test (fit.json `derived_terms`, e.g. a
    reliability-corrected coefficient with its naive row's z and p), which `auto` leaves out
    too. Without settings no row belongs to a family.
    """
    out = summary.copy()
    out["family"] = ""
    for col in COLUMNS.values():
        out[col] = np.nan
    if settings is None:
        return out
    fitted = (out["status"] == "fitted") & out["term"].notna()
    keys = out["model"].astype(str) + "." + out["term"].astype(str)
    primary = set(settings.primary)
    out.loc[fitted & keys.isin(primary), "family"] = "primary"
    rest = fitted & (out["family"] == "")
    if isinstance(settings.secondary, str):  # auto: every other fitted key term
        pairs = pd.Series(list(zip(out["model"], out["term"], strict=True)), index=out.index)
        repeat = out["model"].isin(set(sensitivity)) | pairs.isin(set(derived))
        out.loc[rest & ~repeat, "family"] = "secondary"
    else:
        out.loc[rest & keys.isin(set(settings.secondary)), "family"] = "secondary"
    present = set(keys[fitted])
    listed = {"primary": settings.primary, "secondary": _secondary_list(settings)}
    missing = [
        _not_fitted(entry, family, statuses, labels or {})
        for family, entries in listed.items()
        for entry in dict.fromkeys(entries)
        if entry not in present and not (family == "secondary" and entry in primary)
    ]
    out = _insert(out, missing)
    for family in ("primary", "secondary"):
        rows = (out["family"] == family) & (out["status"] == "fitted")
        p = pd.to_numeric(out.loc[rows, "p_value"], errors="coerce").to_numpy(dtype=float)
        for method in settings.methods:
            out.loc[rows, COLUMNS[method]] = p_adjust(p, method)
    return out


def _not_fitted(
    entry: str,
    family: str,
    statuses: Mapping[str, tuple[str, str]],
    labels: Mapping[str, tuple[str, str]],
) -> dict[str, Any]:
    parts = split_entry(entry)
    if parts is None:
        model, term, why = entry, None, "not a model.term entry"
    else:
        model, term = parts
        status, reason = statuses.get(model, ("", ""))
        if not status:
            why = "model not in this run (not a default model, or disabled)"
        elif status == "fitted":
            why = "not a coefficient of the fitted model"
        else:
            why = f"model {status}" + (f": {reason}" if reason else "")
    label, kind = labels.get(model, (model, ""))
    return {"model": model, "label": label, "kind": kind, "term": term, "status": NOT_FITTED,
            "reason": why, "family": family}  # fmt: skip


def _insert(summary: pd.DataFrame, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Each added row after the last row of its model (at the end when the model has none)."""
    if not rows:
        return summary
    position = {m: i for i, m in enumerate(summary["model"])}
    order = [float(i) for i in range(len(summary))]
    order += [position.get(r["model"], len(summary)) + 0.5 for r in rows]
    added = pd.DataFrame(rows).reindex(columns=summary.columns)
    both = pd.concat([summary.astype(object), added.astype(object)], ignore_index=True)
    return both.iloc[np.argsort(order, kind="stable")].reset_index(drop=True)
