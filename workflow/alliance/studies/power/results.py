"""The power study's results: shards gathered, power per cell and term with a Wilson 95 % CI,
coverage of the truth, convergence and singular-fit rates; the smallest designs reaching the
target powers; the Markdown section.

Power counts a failed fit as a non-detection (rejections / replicates), so failures cannot
raise power; `failed` says how many there were. Coverage is over usable fits: the share of 95 %
CIs holding that replicate's true value (NaN when the term has none).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from alliance import files
from alliance.errors import InputError
from alliance.simulate.params import DEFAULT_PARAMS
from alliance.studies.power.study import DESIGN_KEYS, EFFECT_KEYS, cells
from alliance.studies.power.trials import typed_rows

# Generating values used in the cell (calibrated, configured or the simulator's default).
PARAM_COLUMNS = ("beta_T", "beta_P", "beta_lag", "dropout_alpha", "dropout_beta_alliance")
POWER_COLUMNS = [
    "cell", *DESIGN_KEYS[:2], "patients", *DESIGN_KEYS[2:], *(f"effect_{k}" for k in EFFECT_KEYS),
    *PARAM_COLUMNS, "model", "term", "truth", "power", "power_ci_low", "power_ci_high",
    "mean_estimate", "mean_se", "sd_estimate", "coverage", "convergence_rate", "singular_rate",
    "realised_patients", "realised_dropout", "replicates", "failed",
]  # fmt: skip
SIZE_ORDER = ("patients", "sessions", "therapists")


def wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion k / n (statsmodels)."""
    if n == 0:
        return math.nan, math.nan
    lo, hi = proportion_confint(k, n, alpha=1 - level, method="wilson")
    # exact ends at 0 / n successes (the formula leaves rounding dust like 5.6e-17)
    return (0.0 if k == 0 else float(lo)), (1.0 if k == n else float(hi))


def gather(shards: Iterable[pd.DataFrame], study: Mapping[str, Any]) -> pd.DataFrame:
    """Replicate rows sorted by (cell, replicate, position), each cell's replicates once."""
    parts = [typed_rows(s) for s in shards]
    if not parts:
        raise InputError("no power shards to gather", check="power.gather")
    rows = pd.concat(parts, ignore_index=True)
    rows = rows.sort_values(["cell", "replicate", "position"], kind="stable", ignore_index=True)
    want = len(study["tests"])
    for cell in [c["cell"] for c in cells(study)]:
        part = rows[rows["cell"] == cell]
        reps = np.unique(part["replicate"].to_numpy())
        complete = np.array_equal(reps, np.arange(study["replicates"]))
        if not complete or len(part) != len(reps) * want:
            raise InputError(
                "power shards overlap or leave gaps",
                value=f"cell {cell}: {len(reps)} replicates, expected {study['replicates']}",
                check="power.gather",
            )
    return rows


def rejected(rows: pd.DataFrame, alpha: float, sides: int, direction: str) -> np.ndarray:
    """Whether each row's test rejects H0 (False when the fit gave no p-value)."""
    p = rows["p_value"].to_numpy(dtype=float)
    ok = np.isfinite(p)
    if sides == 2:
        return ok & (p < alpha)
    sign = np.sign(rows["truth"].to_numpy(dtype=float))
    if direction != "truth":
        sign = np.full(len(rows), -1.0 if direction == "less" else 1.0)
    est = rows["estimate"].to_numpy(dtype=float)
    one = np.where(np.sign(est) == sign, p / 2, 1 - p / 2)
    return ok & (sign != 0) & (one < alpha)


def summarise(
    rows: pd.DataFrame, study: Mapping[str, Any], params: Mapping[str, Mapping[str, Any]]
) -> pd.DataFrame:
    """power.csv: one row per cell x tested term (POWER_COLUMNS)."""
    grid = {c["cell"]: c for c in cells(study)}
    rows = rows.assign(rejected=rejected(rows, study["alpha"], study["sides"], study["direction"]))
    out = []
    for (cell, _), part in rows.groupby(["cell", "position"], sort=True):
        usable = part[(part["status"] == "fitted") & np.isfinite(part["estimate"])]
        n, k = len(part), int(part["rejected"].sum())
        lo, hi = wilson(k, n)
        truth = part["truth"].to_numpy(dtype=float)
        covered = (usable["ci_low"] <= usable["truth"]) & (usable["truth"] <= usable["ci_high"])
        has_truth = np.isfinite(usable["truth"].to_numpy(dtype=float))
        conv = usable["converged"].dropna()
        sing = usable["singular"].dropna()
        c = grid[cell]
        resolved = params[cell]
        out.append(
            {
                **{key: c[key] for key in ("cell", *DESIGN_KEYS)},
                "patients": c["therapists"] * c["patients_per_therapist"],
                **{f"effect_{e}": c[f"effect_{e}"] for e in EFFECT_KEYS},
                **{p: resolved.get(p, DEFAULT_PARAMS[p]) for p in PARAM_COLUMNS},
                "model": part["model"].iloc[0],
                "term": part["term"].iloc[0],
                "truth": float(np.nanmean(truth)) if np.isfinite(truth).any() else np.nan,
                "power": k / n,
                "power_ci_low": lo,
                "power_ci_high": hi,
                "mean_estimate": float(usable["estimate"].mean()) if len(usable) else np.nan,
                "mean_se": float(usable["std_error"].mean()) if len(usable) else np.nan,
                "sd_estimate": float(usable["estimate"].std(ddof=1)) if len(usable) > 1 else np.nan,
                "coverage": float(covered[has_truth].mean()) if has_truth.any() else np.nan,
                "convergence_rate": float(conv.mean()) if len(conv) else np.nan,
                "singular_rate": float(sing.mean()) if len(sing) else np.nan,
                "realised_patients": float(part["n_patients"].mean()),
                "realised_dropout": float(part["dropout_share"].mean()),
                "replicates": n,
                "failed": n - len(usable),
            }
        )  # fmt: skip
    table = pd.DataFrame(out, columns=POWER_COLUMNS)
    order = {c: k for k, c in enumerate(grid)}
    table["_o"] = table["cell"].map(order)
    table = table.sort_values(["_o", "model", "term"], kind="stable").drop(columns="_o")
    return table.reset_index(drop=True)


SCENARIO = ("arms", "dropout_rate", "dropout_alliance", "missing_rating_rate",
            *(f"effect_{k}" for k in EFFECT_KEYS))  # fmt: skip


def smallest_designs(table: pd.DataFrame, targets: Iterable[float]) -> pd.DataFrame:
    """Per term and scenario (arms, dropout, missing ratings, effects) and target power: the
    smallest design (fewest patients, then sessions, then therapists) whose power reaches the
    target, and whether its Wilson lower bound does too; none when no cell reaches it."""
    rows = []
    key = ["model", "term", *SCENARIO]
    filled = table.assign(**{c: table[c].astype(object).where(table[c].notna(), "–")
                             for c in SCENARIO})  # fmt: skip
    for values, part in filled.groupby(key, sort=False, dropna=False):
        part = part.sort_values(list(SIZE_ORDER), kind="stable")
        for target in targets:
            hit = part[part["power"] >= target]
            base = dict(zip(key, values, strict=True))
            if hit.empty:
                rows.append({**base, "target": target, "cell": "", "reached": False})
                continue
            r = hit.iloc[0]
            rows.append(
                {
                    **base, "target": target, "cell": r["cell"], "reached": True,
                    "therapists": int(r["therapists"]),
                    "patients_per_therapist": int(r["patients_per_therapist"]),
                    "patients": int(r["patients"]), "sessions": int(r["sessions"]),
                    "power": r["power"], "power_ci_low": r["power_ci_low"],
                    "lower_bound_reaches": bool(r["power_ci_low"] >= target),
                }
            )  # fmt: skip
    return pd.DataFrame(rows)


def _pct(x: float) -> str:
    return "–" if not math.isfinite(x) else f"{100 * x:.0f} %"


def _num(x: Any) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def to_markdown(table: pd.DataFrame, smallest: pd.DataFrame, study: Mapping[str, Any]) -> str:
    """results/power/power.md: the smallest designs reaching each target, then every cell."""
    sided = "two-sided" if study["sides"] == 2 else f"one-sided ({study['direction']})"
    lines = [
        "## Plan the next trial: power for alliance effects",
        "",
        f"{study['replicates']} simulated trials per design cell (seed {study['seed']}), each "
        "cleaned, scored and modelled by the pipeline; power = share of replicates with p < "
        f"{study['alpha']:g} ({sided}), 95 % Wilson CI; a failed fit counts as no detection. "
        + (f"Simulator calibrated from `{study['calibrate_from']}` (parameters.json). "
           if study["calibrate_from"] else "Simulator defaults (no calibration). ")
        + "Coverage: share of 95 % CIs holding the simulator's true value for the term; it is "
        "far from .95 for terms the model does not identify (docs/estimands.md).",
        "",
        "### Smallest design reaching the target power",
        "",
        "| model | term | scenario | target | design (therapists × patients each × sessions) "
        "| power (95 % lower bound) |",
        "|---|---|---|---:|---|---|",
    ]  # fmt: skip
    varying = [k for k in SCENARIO if table[k].astype(str).nunique() > 1]
    for r in smallest.itertuples(index=False):
        rd = r._asdict()
        scen = ", ".join(f"{k}={_num(rd[k])}" for k in varying) or "as configured"
        if rd["reached"]:
            size = [int(rd[k]) for k in ("therapists", "patients_per_therapist", "sessions")]
            design = " × ".join(map(str, size)) + f" ({int(rd['patients'])} patients)"
            pw = f"{_pct(rd['power'])} (lower bound {_pct(rd['power_ci_low'])})"
        else:
            design, pw = "not reached in this grid", "–"
        lines.append(
            f"| {rd['model']} | `{rd['term']}` | {scen} | {_pct(rd['target'])} | {design} | {pw} |"
        )
    lines += [
        "",
        "### Every cell",
        "",
        "| cell | therapists × patients × sessions | dropout | missing | model | term | truth "
        "| power [95 % CI] | mean est. (SD) | coverage | converged | singular | failed |",
        "|---|---|---:|---:|---|---|---:|---|---|---:|---:|---:|---:|",
    ]
    for r in table.itertuples(index=False):
        lines.append(
            f"| {r.cell} | {r.therapists} × {r.patients_per_therapist} × {r.sessions} | "
            f"{_pct(r.realised_dropout)} | {_pct(r.missing_rating_rate)} | {r.model} | "
            f"`{r.term}` | {_num(r.truth)} | {_pct(r.power)} [{_pct(r.power_ci_low)}, "
            f"{_pct(r.power_ci_high)}] | {_num(r.mean_estimate)} ({_num(r.sd_estimate)}) | "
            f"{_num(r.coverage)} | {_num(r.convergence_rate)} | {_num(r.singular_rate)} | "
            f"{r.failed} of {r.replicates} |"
        )
    return "\n".join([*lines, ""])


def write_results(
    rows: pd.DataFrame,
    study: Mapping[str, Any],
    params: Mapping[str, Mapping[str, Any]],
    calibration: Mapping[str, Any] | None,
    folder: str | Path,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write replicates.csv, power.csv, smallest.csv, power.md and parameters.json to `folder`;
    return (power table, smallest designs)."""
    out = Path(folder)
    table = summarise(rows, study, params)
    smallest = smallest_designs(table, study["target_power"])
    files.write_csv(rows, out / "replicates.csv")
    files.write_csv(table, out / "power.csv")
    files.write_csv(smallest, out / "smallest.csv")
    with files.atomic_path(out / "power.md") as tmp:
        tmp.write_text(to_markdown(table, smallest, study), encoding="utf-8")
    record = {
        "study": study,
        "calibration": calibration,
        "note": "each cell simulates with alliance.simulate.params.DEFAULT_PARAMS updated by its "
        "simulator_overrides (calibration, then power.simulator, then the cell's dropout and "
        "effects)",
        "cells": {c["cell"]: {"design": c, "simulator_overrides": params[c["cell"]]}
                  for c in cells(study)},
    }  # fmt: skip
    with files.atomic_path(out / "parameters.json") as tmp:
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return table, smallest
