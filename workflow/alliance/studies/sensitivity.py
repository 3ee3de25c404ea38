"""Sensitivity grid: refit chosen models under alternative scoring choices, in shards.

Each grid cell overrides keys of config `score` (early-alliance window, detrending, rater, scale),
reruns the score stage in memory on the cleaned tables and refits the models listed in
`sensitivity.models`. Cell i always goes to shard i mod N, and the gathered table is sorted by cell,
so results are identical whatever the number of shards.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from alliance.errors import ConfigError
from alliance.models.run import fit_model
from alliance.models.spec import load_specs
from alliance.score.stage import run_score
from alliance.settings import SensitivityGrid, SensitivityRun

# The keys of config `score` a cell can override, in cell order (the fields of SensitivityGrid).
GRID_KEYS = tuple(f.name for f in dataclasses.fields(SensitivityGrid))
ROW_COLUMNS = [
    "cell", "setting", "model", "term", "estimate", "std_error", "ci_low", "ci_high", "p_value",
    "n_obs", "status", "reason",
]  # fmt: skip


def grid_cells(grid: SensitivityGrid) -> list[dict[str, Any]]:
    """Every combination of the grid's values (keys in GRID_KEYS order), numbered from 0.

    A key with no values is left out (the cells keep that `score` setting).
    """
    keys = [k for k in GRID_KEYS if getattr(grid, k)]
    return [
        dict(zip(keys, values, strict=True))
        for values in itertools.product(*(getattr(grid, k) for k in keys))
    ]


def _setting(cell: Mapping[str, Any]) -> str:
    return json.dumps(cell, sort_keys=True)


def run_cells(
    sessions: pd.DataFrame,
    patients: pd.DataFrame,
    availability: Mapping[str, Any],
    run: SensitivityRun,
    shard: tuple[int, int],
) -> pd.DataFrame:
    """Rows (cell x model x key term) for the cells of one shard."""
    index, n_shards = shard
    models = run.sensitivity.models
    specs = {s.id: s for s in load_specs(run.models)}
    missing = [m for m in models if m not in specs]
    if missing:
        raise ConfigError(f"config key sensitivity.models: unknown model id(s) {missing}")
    score_view, model_view = run.score_stage(), run.model_stage()
    rows: list[dict[str, Any]] = []
    for number, cell in enumerate(grid_cells(run.sensitivity.grid)):
        if number % n_shards != index:
            continue
        view = dataclasses.replace(score_view, score=dataclasses.replace(run.score, **cell))
        base = {"cell": number, "setting": _setting(cell)}
        try:
            scored = run_score(sessions, patients, view)
        except ConfigError as exc:  # e.g. a rater without that scale in this dataset
            rows += [{**base, "model": m, "status": "skipped", "reason": str(exc)} for m in models]
            continue
        for model_id in models:
            spec = specs[model_id]
            result, _ = fit_model(
                spec, scored.analysis, scored.patient_analysis, availability, model_view
            )
            fit = result.fit
            head = {**base, "model": model_id, "n_obs": fit.get("n_obs"),
                    "status": fit["status"], "reason": fit.get("reason", "")}  # fmt: skip
            coefs = result.coefficients
            chosen = coefs[coefs["term"].isin(spec.key_terms)] if spec.key_terms else coefs
            if chosen.empty:
                rows.append(head)
            for rec in chosen.to_dict("records"):
                rows.append({**head, **{k: rec[k] for k in ROW_COLUMNS if k in rec}})
    return pd.DataFrame(rows, columns=ROW_COLUMNS)


def gather(shards: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """All shards as one table sorted by cell, model and term (shard layout leaves no trace)."""
    table = pd.concat([s for s in shards if len(s)], ignore_index=True) if shards else None
    if table is None or table.empty:
        return pd.DataFrame(columns=ROW_COLUMNS)
    return table.sort_values(["cell", "model", "term"], kind="stable").reset_index(drop=True)
