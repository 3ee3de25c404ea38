"""The recovery study's results: shard rows gathered, targets, bias / RMSE / coverage summary,
the Markdown table, and the calibration checks the CI-sized test asserts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from alliance.errors import InputError
from alliance.studies.recovery_study import check_id

REPLICATE_COLUMNS = [
    "kind", "replicate", "seed", "check", "model", "term", "outcome_model", "status", "reason",
    "converged", "singular", "n_obs", "estimate", "std_error", "ci_low", "ci_high", "scale",
    "generating",
]  # fmt: skip
TARGET_COLUMNS = [
    "check", "model", "term", "generating", "target", "target_se", "n_trials", "n_fitted",
    "reference", "true_value", "true_value_se",
]  # fmt: skip


def typed_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Stable dtypes, so a shard with no failure and one with failures concatenate alike."""
    out = frame.copy()
    for col in ("replicate", "seed"):
        out[col] = out[col].astype("int64")
    for col in ("converged", "singular"):
        out[col] = out[col].astype("boolean")
    out["n_obs"] = pd.to_numeric(out["n_obs"]).astype("Int64")
    for col in ("estimate", "std_error", "ci_low", "ci_high", "scale", "generating"):
        out[col] = out[col].astype("float64")
    for col in ("kind", "check", "model", "term", "outcome_model", "status", "reason"):
        out[col] = out[col].astype("str")
    return out


# ------------------------------------------------------------------------------------- gathering
def gather(
    shards: Iterable[pd.DataFrame], n_replicates: int, n_targets: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(replicate rows, target-trial rows), each sorted by (replicate, check), every trial once."""
    parts = [typed_rows(s) for s in shards]
    if not parts:
        raise InputError("no recovery shards to gather", check="recovery.gather")
    rows = pd.concat(parts, ignore_index=True)
    out = []
    for kind, n in (("replicate", n_replicates), ("target", n_targets)):
        part = rows[rows["kind"] == kind].sort_values(["replicate", "check"], kind="stable")
        seen = np.unique(part["replicate"].to_numpy())
        if not np.array_equal(seen, np.arange(n)) or part.duplicated(["replicate", "check"]).any():
            raise InputError(
                f"recovery shards overlap or leave gaps ({kind} trials)",
                value=f"{len(seen)} distinct {kind} trials, expected {n}",
                check="recovery.gather",
            )
        out.append(part.reset_index(drop=True))
    return out[0], out[1]


def usable(rows: pd.DataFrame) -> pd.Series:
    """Fitted rows with a finite estimate, SE and CI (non-converged fits stay in, counted)."""
    finite = np.isfinite(rows[["estimate", "std_error", "ci_low", "ci_high"]].to_numpy()).all(1)
    return (rows["status"] == "fitted") & finite


def target_table(target_rows: pd.DataFrame, study: Mapping[str, Any]) -> pd.DataFrame:
    """Per check: target (mean over target trials), its MC SE, and the true value used.

    The MC SE is the SD across target trials / sqrt(trials) (model SE with one trial), so it
    does not lean on the SEs under test. `true_value` is the target, or the generating value for
    checks whose mapping is exact (`reference: generating`).
    """
    out = []
    for check in study["checks"]:
        part = target_rows[target_rows["check"] == check_id(check)]
        ok = part[usable(part)]
        k = len(ok)
        est = ok["estimate"].to_numpy()
        if k >= 2:
            se = float(est.std(ddof=1) / math.sqrt(k))
        else:
            se = float(ok["std_error"].iloc[0]) if k else np.nan
        target = float(est.mean()) if k else np.nan
        generating = float(part["generating"].mean()) if len(part) else np.nan
        exact = check["reference"] == "generating"
        out.append(
            {
                "check": check_id(check),
                "model": check["model"],
                "term": check["term"],
                "generating": generating,
                "target": target,
                "target_se": se,
                "n_trials": len(part),
                "n_fitted": k,
                "reference": check["reference"],
                "true_value": generating if exact else target,
                "true_value_se": 0.0 if exact else se,
            }
        )
    return pd.DataFrame(out, columns=TARGET_COLUMNS)


def summarise(replicates: pd.DataFrame, target: pd.DataFrame) -> pd.DataFrame:
    """One row per check: bias, RMSE, SE calibration and coverage of the true value."""
    tgt = target.set_index("check")
    rows = []
    for check in tgt.index:
        part = replicates[replicates["check"] == check]
        ok = part[usable(part)]
        est, se = ok["estimate"].to_numpy(), ok["std_error"].to_numpy()
        lo, hi = ok["ci_low"].to_numpy(), ok["ci_high"].to_numpy()
        n = len(ok)
        t = tgt.loc[check]
        true, true_se, g = float(t["true_value"]), float(t["true_value_se"]), float(t["generating"])
        mean = float(est.mean()) if n else np.nan
        sd = float(est.std(ddof=1)) if n > 1 else np.nan
        cover = float(np.mean((lo <= true) & (true <= hi))) if n else np.nan
        rows.append(
            {
                "check": check,
                "model": t["model"],
                "term": t["term"],
                "outcome_model": part["outcome_model"].iloc[0] if len(part) else "",
                "reference": t["reference"],
                "true_value": true,
                "generating": g,
                "target": float(t["target"]),
                "target_se": float(t["target_se"]),
                "gap": float(t["target"]) - g,
                "relative_gap": (float(t["target"]) - g) / abs(g) if g else np.nan,
                "n_replicates": len(part),
                "n_used": n,
                "n_failed": int(len(part) - n),
                "n_not_converged": int((ok["converged"] == False).sum()),  # noqa: E712 (NA-safe)
                "n_singular": int((ok["singular"] == True).sum()),  # noqa: E712
                "mean_estimate": mean,
                "bias": mean - true,
                "bias_mcse": math.sqrt(sd**2 / n + true_se**2) if n > 1 else np.nan,
                "relative_bias": (mean - true) / abs(true) if true else np.nan,
                "rmse": float(np.sqrt(np.mean((est - true) ** 2))) if n else np.nan,
                "mean_se": float(se.mean()) if n else np.nan,
                "sd_estimate": sd,
                "se_ratio": float(se.mean()) / sd if n > 1 and sd > 0 else np.nan,
                "coverage": cover,
                "coverage_mcse": math.sqrt(cover * (1 - cover) / n) if n else np.nan,
                "bias_vs_generating": mean - g,
                "coverage_generating": float(np.mean((lo <= g) & (g <= hi))) if n else np.nan,
            }
        )
    return pd.DataFrame(rows)


def to_markdown(summary: pd.DataFrame, study: Mapping[str, Any]) -> str:
    """A Markdown table of the summary, for the README and the closing note."""
    d, tg = study["design"], study["target"]
    lines = [
        f"Parameter recovery: {study['replicates']} simulated trials of {d['patients']} "
        f"patients, {d['therapists']} therapists, {d['sessions']} sessions (seed "
        f"{study['seed']}). Target = the same model on {tg['trials']} trial(s) {tg['scale']} "
        "times larger; bias, RMSE and coverage are against the true value (the target, or the "
        "generating value where the mapping is exact).",
        "",
        "| model | term | generating | target (MC SE) | true value | mean est. | bias (MCSE) "
        "| RMSE | mean SE / SD | coverage (MCSE) | coverage of generating | failed |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in summary.itertuples():
        lines.append(
            f"| {r.model} | `{r.term}` | {r.generating:.3f} | {r.target:.3f} ({r.target_se:.3f})"
            f" | {r.true_value:.3f} ({r.reference}) | {r.mean_estimate:.3f} | {r.bias:+.3f} "
            f"({r.bias_mcse:.3f}) | {r.rmse:.3f} | {r.mean_se:.3f} / {r.sd_estimate:.3f} | "
            f"{r.coverage:.3f} ({r.coverage_mcse:.3f}) | {r.coverage_generating:.3f} | "
            f"{r.n_failed} of {r.n_replicates} |"
        )
    lines += [
        "",
        "gap = target - generating is a property of the estimand, not of the code: observed "
        "item scores carry measurement error (session level attenuated), the therapist mean "
        "carries part of the patient level, and a lagged outcome with person-mean-centred "
        "predictors has dynamic-panel (Nickell-type) bias. See config/validate.yaml.",
        "",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------- CI assertions
def coverage_floor(n: int, nominal: float = 0.95, alpha: float = 1e-3) -> int:
    """Smallest covered count k with P(X < k) <= alpha for X ~ Binomial(n, nominal)."""
    k = int(stats.binom.ppf(alpha, n, nominal))
    while stats.binom.cdf(k - 1, n, nominal) > alpha:
        k -= 1
    while k + 1 <= n and stats.binom.cdf(k, n, nominal) <= alpha:
        k += 1
    return k


def calibration_problems(
    replicates: pd.DataFrame, target: pd.DataFrame, alpha: float = 1e-3, max_failed: float = 0.1
) -> list[str]:
    """Checks whose CIs or SEs are miscalibrated beyond chance; empty when all is well.

    Per check (alpha split over the checks, so the family flakes with probability <= alpha
    when every SE is right): the number of CIs covering the true value must reach
    `coverage_floor`, and mean z^2 = mean(((estimate - true) / SE)^2), distributed about as
    chi^2_n / n for right SEs, must lie in its central 1 - alpha/checks range. z^2 catches an
    SE off by a factor of 2 that 20 coverage indicators alone could miss. More than
    `max_failed` (a share) failed or CI-less fits is a problem too; fewer are design facts (a
    small trial with too few relapses for a Cox model), reported by `summarise`.
    """
    tgt = target.set_index("check")["true_value"]
    a = alpha / max(len(tgt), 1)
    problems = []
    for check, true in tgt.items():
        part = replicates[replicates["check"] == check]
        ok = part[usable(part)]
        n = len(ok)
        if len(part) - n > max_failed * len(part):
            problems.append(f"{check}: {len(part) - n} of {len(part)} replicates failed")
        if n == 0:
            continue
        covered = int(((ok["ci_low"] <= true) & (true <= ok["ci_high"])).sum())
        floor = coverage_floor(n, 0.95, a)
        if covered < floor:
            problems.append(f"{check}: {covered}/{n} CIs cover the true value (floor {floor})")
        z2 = float((((ok["estimate"] - true) / ok["std_error"]) ** 2).mean())
        lo, hi = stats.chi2.ppf([a / 2, 1 - a / 2], n) / n
        if not lo <= z2 <= hi:
            problems.append(f"{check}: mean z^2 = {z2:.2f} outside [{lo:.2f}, {hi:.2f}]")
    return problems


def read_shards(paths: Sequence[str | Path]) -> list[pd.DataFrame]:
    """Shard files read back."""
    return [pd.read_parquet(p) for p in paths]
