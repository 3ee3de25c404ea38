"""The recovery study's results: shard rows gathered, the summary against each replicate's true
value, the verdicts, the Markdown table, and the calibration check the CI-sized test asserts.

Judgement (`judge`), per checked term over the replicates that fitted:
- bias = mean(estimate - truth_r), truth_r the replicate's own true value; relative bias =
  bias / |mean truth|; MC SE of the bias = SD(estimate - truth_r) / sqrt(n);
- coverage = share of replicates whose 95 % CI holds truth_r; MC SE sqrt(c (1 - c) / n);
- verdict "pass" when the term is identified, coverage is in [0.93, 0.97] and (|bias| < 5 % of
  |truth| or |bias| < 2 MC SE); "fail" when identified otherwise; "not identified" else.
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

REPLICATE_COLUMNS = [
    "replicate", "seed", "position", "check", "model", "term", "source", "parameter",
    "identified", "truth_reason", "truth", "status", "reason", "converged", "singular", "n_obs",
    "estimate", "std_error", "ci_low", "ci_high",
]  # fmt: skip
SUMMARY_COLUMNS = [
    "check", "model", "term", "source", "parameter", "truth", "truth_sd", "mean_estimate",
    "bias", "relative_bias", "mc_se", "rmse", "mean_se", "sd_estimate", "se_ratio",
    "coverage_truth", "coverage_mc_se", "replicates", "used", "failed", "not_converged",
    "singular", "identified", "reason", "verdict", "verdict_note",
]  # fmt: skip
# docs/recovery.csv (committed, machine-readable).
VERDICT_COLUMNS = [
    "model", "term", "truth", "mean_estimate", "bias", "relative_bias", "mc_se",
    "coverage_truth", "coverage_mc_se", "replicates", "failed", "identified", "reason", "verdict",
]  # fmt: skip
COVERAGE_BAND = (0.93, 0.97)
RELATIVE_TOLERANCE = 0.05
MC_SE_MULTIPLE = 2.0


def typed_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Stable dtypes, so a shard with no failure and one with failures concatenate alike."""
    out = frame.copy()
    for col in ("replicate", "seed", "position"):
        out[col] = out[col].astype("int64")
    out["identified"] = out["identified"].astype("bool")
    for col in ("converged", "singular"):
        out[col] = out[col].astype("boolean")
    out["n_obs"] = pd.to_numeric(out["n_obs"]).astype("Int64")
    for col in ("truth", "estimate", "std_error", "ci_low", "ci_high"):
        out[col] = out[col].astype("float64")
    for col in ("check", "model", "term", "source", "parameter", "truth_reason", "status",
                "reason"):  # fmt: skip
        out[col] = out[col].astype("str")
    return out


# ------------------------------------------------------------------------------------- gathering
def gather(shards: Iterable[pd.DataFrame], n_replicates: int) -> pd.DataFrame:
    """Replicate rows sorted by (replicate, position), every replicate exactly once."""
    parts = [typed_rows(s) for s in shards]
    if not parts:
        raise InputError("no recovery shards to gather", check="recovery.gather")
    rows = pd.concat(parts, ignore_index=True)
    rows = rows.sort_values(["replicate", "position"], kind="stable").reset_index(drop=True)
    seen = np.unique(rows["replicate"].to_numpy())
    if (
        not np.array_equal(seen, np.arange(n_replicates))
        or rows.duplicated(["replicate", "check"]).any()
    ):
        raise InputError(
            "recovery shards overlap or leave gaps",
            value=f"{len(seen)} distinct replicates, expected {n_replicates}",
            check="recovery.gather",
        )
    return rows


def usable(rows: pd.DataFrame) -> pd.Series:
    """Fitted rows with a finite estimate, SE and CI (non-converged fits stay in, counted)."""
    finite = np.isfinite(rows[["estimate", "std_error", "ci_low", "ci_high"]].to_numpy()).all(1)
    return (rows["status"] == "fitted") & finite


def judged(rows: pd.DataFrame) -> pd.Series:
    """Rows with a true value that were fitted (or tried): the ones scored."""
    valued = np.isfinite(rows["truth"].to_numpy(dtype=float))
    return pd.Series(valued, index=rows.index) & (rows["status"] != "not fitted")


# ------------------------------------------------------------------------------------- summary
def judge(
    identified: bool,
    truth: float,
    bias: float,
    mc_se: float,
    coverage: float,
    band: tuple[float, float] = COVERAGE_BAND,
) -> tuple[str, str]:
    """(verdict, why): "pass" / "fail" for identified terms, "not identified" otherwise.

    Pass: coverage in `band` and (|bias| < 5 % of |truth| or |bias| < 2 MC SE). NaN anywhere
    (no fit, no true value) is a fail for an identified term.
    """
    if not identified:
        return "not identified", ""
    if not math.isfinite(truth):
        return "fail", "no true value"
    if not (math.isfinite(bias) and math.isfinite(coverage)):
        return "fail", "no usable replicate"
    why = []
    if not band[0] <= coverage <= band[1]:
        why.append(f"coverage {coverage:.3f} outside [{band[0]:.2f}, {band[1]:.2f}]")
    small = abs(bias) < RELATIVE_TOLERANCE * abs(truth)
    within = math.isfinite(mc_se) and abs(bias) < MC_SE_MULTIPLE * mc_se
    if not (small or within):
        why.append(
            f"|bias| {abs(bias):.3g} >= {RELATIVE_TOLERANCE:.0%} of |truth| and >= "
            f"{MC_SE_MULTIPLE:g} MC SE ({mc_se:.3g})"
        )
    return ("fail", "; ".join(why)) if why else ("pass", "")


def _check_order(rows: pd.DataFrame) -> list[str]:
    first = rows.groupby("check", sort=False)["position"].min().reset_index()
    return first.sort_values(["position", "check"], kind="stable")["check"].tolist()


def _first_text(values: pd.Series) -> str:
    texts = [str(v) for v in values if str(v)]
    return texts[0] if texts else ""


def summarise(replicates: pd.DataFrame, band: tuple[float, float] = COVERAGE_BAND) -> pd.DataFrame:
    """One row per check: truth, bias, MC SE, coverage of each replicate's truth, verdict.

    `replicates` counts the replicates that listed the check; `failed` those fitted (a true
    value, and not left out by fit_unidentified) whose fit gave no usable estimate. `truth` is
    the mean over the replicates used (over all that have one when none is). With a single
    usable replicate the MC SE of the bias is that fit's model SE.
    """
    rows = []
    for check in _check_order(replicates):
        part = replicates[replicates["check"] == check]
        valued = part[judged(part)]
        ok = valued[usable(valued)]
        n = len(ok)
        est, true = ok["estimate"].to_numpy(), ok["truth"].to_numpy()
        err = est - true
        lo, hi = ok["ci_low"].to_numpy(), ok["ci_high"].to_numpy()
        truths = ok["truth"].to_numpy() if n else part["truth"].dropna().to_numpy()
        truth = float(truths.mean()) if len(truths) else np.nan
        bias = float(err.mean()) if n else np.nan
        sd = float(est.std(ddof=1)) if n > 1 else np.nan
        if n > 1:
            mc_se = float(err.std(ddof=1) / math.sqrt(n))
        else:
            mc_se = float(ok["std_error"].iloc[0]) if n else np.nan
        cover = float(np.mean((lo <= true) & (true <= hi))) if n else np.nan
        identified = bool(part["identified"].all())
        decision, why = judge(identified, truth, bias, mc_se, cover, band)
        rows.append(
            {
                "check": check,
                "model": part["model"].iloc[0],
                "term": part["term"].iloc[0],
                "source": part["source"].iloc[0],
                "parameter": _first_text(part["parameter"]),
                "truth": truth,
                "truth_sd": float(truths.std(ddof=1)) if len(truths) > 1 else np.nan,
                "mean_estimate": float(est.mean()) if n else np.nan,
                "bias": bias,
                "relative_bias": bias / abs(truth) if truth else np.nan,
                "mc_se": mc_se,
                "rmse": float(np.sqrt(np.mean(err**2))) if n else np.nan,
                "mean_se": float(ok["std_error"].mean()) if n else np.nan,
                "sd_estimate": sd,
                "se_ratio": float(ok["std_error"].mean()) / sd if n > 1 and sd > 0 else np.nan,
                "coverage_truth": cover,
                "coverage_mc_se": math.sqrt(cover * (1 - cover) / n) if n else np.nan,
                "replicates": len(part),
                "used": n,
                "failed": int(len(valued) - n),
                "not_converged": int((ok["converged"] == False).sum()),  # noqa: E712 (NA-safe)
                "singular": int((ok["singular"] == True).sum()),  # noqa: E712
                "identified": identified,
                "reason": _first_text(part["truth_reason"]),
                "verdict": decision,
                "verdict_note": why,
            }
        )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def verdict_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The committed docs/recovery.csv: VERDICT_COLUMNS of the summary."""
    return summary[VERDICT_COLUMNS].reset_index(drop=True)


# ------------------------------------------------------------------------------------ Markdown
def _num(x: float, sign: str = "") -> str:
    """3 decimals, or 3 significant digits below 0.1 (small paths and MC SEs); "–" for NaN."""
    if not (isinstance(x, float | int) and math.isfinite(x)):
        return "–"
    return format(x, f"{sign}.3f" if x == 0 or abs(x) >= 0.1 else f"{sign}.3g")


def _percent(x: float) -> str:
    return format(x, "+.1%") if isinstance(x, float | int) and math.isfinite(x) else "–"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(summary: pd.DataFrame, study: Mapping[str, Any]) -> str:
    """The summary as a readable Markdown page (results/validation/recovery.md -> docs/)."""
    d = study["design"]
    lo, hi = COVERAGE_BAND
    counts = summary["verdict"].value_counts()
    n_judged = int(counts.get("pass", 0) + counts.get("fail", 0))
    lines = [
        "# Parameter recovery against the simulator's true values",
        "",
        f"{study['replicates']} simulated trials of {d['patients']} patients, "
        f"{d['therapists']} therapists, {d['sessions']} sessions (seed {study['seed']}), each "
        "cleaned, scored and modelled by the pipeline (`make validate`, config/validate.yaml). "
        f"Identified terms: {n_judged}, of which {int(counts.get('pass', 0))} pass and "
        f"{int(counts.get('fail', 0))} fail; not identified (reported, not judged): "
        f"{int(counts.get('not identified', 0))}.",
        "",
        "The truth is the simulator's, not the estimator's own large-sample value: each trial's "
        "truth.json lists, per default model key term, the value the term should estimate under "
        "the generating model (it may differ between trials, e.g. the Cox per-point value "
        "depends on the realised SD of mean alliance), whether the model identifies it, and "
        "why (listed below the table). Extra checks of the study's own specs compare with a "
        "generating parameter.",
        "",
        "Judgement: bias = mean(estimate − that trial's truth); relative bias = bias / |mean "
        "truth|; coverage = share of 95 % CIs holding that trial's truth; MC SE = Monte-Carlo "
        f"standard error. **pass**: identified, coverage in [{lo:.2f}, {hi:.2f}] and (|bias| < "
        f"{RELATIVE_TOLERANCE:.0%} of |truth| or |bias| < {MC_SE_MULTIPLE:g} MC SE); **fail**: "
        "identified otherwise; **not identified**: reported, not judged (a term without a true "
        "value is not fitted). `failed` counts replicates whose fit gave no usable estimate. "
        "Machine-readable: docs/recovery.csv.",
        "",
        "| model | term | truth | mean est. | bias (MC SE) | rel. bias | coverage (MC SE) "
        "| failed | verdict |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in summary.itertuples():
        decision = f"**{r.verdict}**" if r.verdict in ("pass", "fail") else r.verdict
        if r.verdict_note:
            decision += f": {r.verdict_note}"
        lines.append(
            f"| {r.model} | `{r.term}` | {_num(r.truth)} | {_num(r.mean_estimate)} | "
            f"{_num(r.bias, '+')} ({_num(r.mc_se)}) | {_percent(r.relative_bias)} | "
            f"{_num(r.coverage_truth)} ({_num(r.coverage_mc_se)}) | {r.failed} of "
            f"{r.replicates} | {_cell(decision)} |"
        )
    lines += ["", "## Why each term is (not) identified", ""]
    for (model, reason), terms in _reasons(summary):
        lines.append(f"- {model} {', '.join(f'`{t}`' for t in terms)}: {_cell(reason) or '–'}")
    return "\n".join([*lines, ""])


def _reasons(summary: pd.DataFrame) -> list[tuple[tuple[str, str], list[str]]]:
    """Consecutive terms of one model with the same reason, grouped."""
    out: list[tuple[tuple[str, str], list[str]]] = []
    for r in summary.itertuples():
        key = (str(r.model), str(r.reason))
        if out and out[-1][0] == key:
            out[-1][1].append(str(r.term))
        else:
            out.append((key, [str(r.term)]))
    return out


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
    replicates: pd.DataFrame,
    checks: Sequence[str] | None = None,
    alpha: float = 1e-3,
    max_failed: float = 0.1,
) -> list[str]:
    """Checks whose CIs or SEs are miscalibrated beyond chance; empty when all is well.

    For a few replicates (the CI-sized run), where the verdict's coverage band is too narrow to
    judge. Per check (default: every identified check with a true value; alpha split over the
    checks, so the family flakes with probability <= alpha when every SE is right): the number
    of CIs covering that replicate's truth must reach `coverage_floor`, and mean z^2 =
    mean(((estimate - truth) / SE)^2), about chi^2_n / n for right SEs and no bias, must lie in
    its central 1 - alpha/checks range. More than `max_failed` (a share) failed fits is a
    problem too.
    """
    rows = replicates[judged(replicates)]
    if checks is None:
        checks = _check_order(rows[rows["identified"]])
    a = alpha / max(len(checks), 1)
    problems = []
    for check in checks:
        part = rows[rows["check"] == check]
        ok = part[usable(part)]
        n = len(ok)
        if len(part) - n > max_failed * len(part):
            problems.append(f"{check}: {len(part) - n} of {len(part)} replicates failed")
        if n == 0:
            continue
        covered = int(((ok["ci_low"] <= ok["truth"]) & (ok["truth"] <= ok["ci_high"])).sum())
        floor = coverage_floor(n, 0.95, a)
        if covered < floor:
            problems.append(f"{check}: {covered}/{n} CIs cover the true value (floor {floor})")
        z2 = float((((ok["estimate"] - ok["truth"]) / ok["std_error"]) ** 2).mean())
        lo, hi = stats.chi2.ppf([a / 2, 1 - a / 2], n) / n
        if not lo <= z2 <= hi:
            problems.append(f"{check}: mean z^2 = {z2:.2f} outside [{lo:.2f}, {hi:.2f}]")
    return problems


def read_shards(paths: Sequence[str | Path]) -> list[pd.DataFrame]:
    """Shard files read back."""
    return [pd.read_parquet(p) for p in paths]
