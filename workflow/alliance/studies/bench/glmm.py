"""Binomial GLMMs side by side: our fit time and peak memory, and lme4's time where recorded.

Why: issue #16 ("Binomial GLMMs at scale"). One model of each binomial GLMM form the pipeline
fits is refitted from the pipeline's own frame (results/models/<id>/frame.parquet and the
fit.json formula) in a fresh process, so its peak RSS is that fit's (plus the interpreter and
the frame, reported apart). lme4 is never run here: at 600k rows it takes tens of minutes per
model. Its times come from tests/reference/glmm_scale_timings.csv, written by
tests/reference/make_glmm_scale_reference.R on the same frames (rebuilt from the bench seed by
tests/reference/glmm_scale_frames.py), so `make bench` works without R and bench.md says which
are missing.

`python -m alliance.studies.bench.glmm FRAME FORMULA [--weights COL] [--reps N]` is the child
process: it prints one JSON line.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alliance.studies.bench.pipeline import ROOT

# model id -> what it stands for (every binomial GLMM form in models/defaults.yaml)
GLMMS: dict[str, str] = {
    "dropout_hazard": "hazard, therapist intercept",
    "suicidality": "glmm, patient and therapist intercepts (patients within therapists)",
    "missed_sessions": "hazard on scheduled slots, patient and therapist intercepts",
    "adherence_alliance": "glmm, proportion of doses with binomial trials weights",
}
R_TIMINGS = ROOT / "tests" / "reference" / "glmm_scale_timings.csv"
R_SCRIPT = "tests/reference/make_glmm_scale_reference.R"


# lme4 calls whose time the bench compares with, preferred first: the default control (what
# issue #16 asks for), else the pipeline's formula_r call (tolPwrss = 1e-10, slower)
LME4_CALLS = ("default_control", "formula_r")


def lme4_times(path: Path = R_TIMINGS) -> dict[tuple[str, str], dict[str, Any]]:
    """(trial, model) -> lme4's fit as the R script recorded it (LME4_CALLS order); {} without."""
    if not path.exists():
        return {}
    out: dict[tuple[str, str], dict[str, Any]] = {}
    with path.open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("call") in LME4_CALLS]
    # the preferred call last, so it wins
    for row in sorted(rows, key=lambda r: -LME4_CALLS.index(r["call"])):
        out[(row["trial"], row["model"])] = {
            "lme4_call": row["call"],
            "lme4_s": _number(row.get("seconds")),
            "lme4_cpu_s": _number(row.get("cpu_seconds")),
            "lme4_converged": row.get("converged") == "TRUE",
            "lme4_rows": int(float(row["n_obs"])) if row.get("n_obs") else None,
            "lme4_load": _number(row.get("load_start")),
            "lme4_date": row.get("date") or None,
            "lme4_version": row.get("lme4") or None,
        }
    return out


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "", "NA") else None
    except ValueError:
        return None


def _weights(formula_r: str) -> str | None:
    """The trials column of a binomial proportion model, from fit.json's lme4 call."""
    found = re.search(r"weights = (\w+)", formula_r)
    return found.group(1) if found else None


def time_glmms(
    models_dir: Path, trial: str, reps: int, log: Callable[[str], Any] = print
) -> list[dict[str, Any]]:
    """Each GLMMS model the pipeline fitted in `models_dir`, refitted alone; lme4 beside it."""
    reference = lme4_times()
    rows = []
    for model, what in GLMMS.items():
        fit_json = models_dir / model / "fit.json"
        frame = models_dir / model / "frame.parquet"
        row: dict[str, Any] = {"trial": trial, "model": model, "form": what}
        fit = json.loads(fit_json.read_text()) if fit_json.exists() else {}
        if fit.get("status") != "fitted" or not frame.exists():
            row["status"] = fit.get("status", "missing")
            rows.append(row)
            continue
        log(f"[bench]   {model}")
        row.update(fit_in_child(frame, fit["formula"], _weights(fit.get("formula_r", "")), reps))
        row.update(reference.get((trial, model), {}))
        # lme4 runs niced on a shared machine: its CPU time is its cost, elapsed may be far more
        lme4_cost = row.get("lme4_cpu_s") or row.get("lme4_s")
        if lme4_cost and row.get("fit_s"):
            row["ratio"] = round(row["fit_s"] / lme4_cost, 4)
        rows.append(row)
    return rows


def fit_in_child(frame: Path, formula: str, weights: str | None, reps: int) -> dict[str, Any]:
    """Fit time (best of `reps`) and peak RSS of fit_glmm in a fresh Python process."""
    cmd = [sys.executable, "-m", "alliance.studies.bench.glmm", str(frame), formula]
    cmd += ["--reps", str(reps)] + (["--weights", weights] if weights else [])
    path = [str(ROOT / "workflow"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)}
    load_before = [round(x, 2) for x in os.getloadavg()]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=7200)
    if proc.returncode != 0:
        return {"status": "failed", "error": proc.stderr.strip()[-500:]}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"status": "fitted", "load_before": load_before, **out}


def _lme4_cell(row: dict[str, Any], fmt: Callable[..., str]) -> str:
    if row.get("lme4_s") is None:
        return "–"
    if row.get("lme4_cpu_s") is None:
        return f"({fmt(row['lme4_s'])})"
    return f"{fmt(row['lme4_cpu_s'])} ({fmt(row['lme4_s'])})"


def markdown(rows: list[dict[str, Any]], fmt: Callable[..., str]) -> list[str]:
    """bench.md's GLMM section: one row per trial and model, then what is missing."""
    if not rows:
        return []
    lines = [
        "",
        "## Binomial GLMMs: ours vs lme4 (seconds)",
        "",
        "Ours: `fit_glmm` on the pipeline's frame in a fresh process, best of the repeats (one "
        "at 600k); peak RSS of that process while fitting, and in brackets its RSS before the "
        "fit (interpreter, imports and the frame). lme4: `glmer` with its default control "
        "where recorded (the comparison issue #16 asks for), else with the pipeline's "
        "`formula_r` call (tolPwrss = 1e-10, slower; the last column says which), CPU seconds "
        "(elapsed), "
        f"read from `{R_TIMINGS.relative_to(ROOT)}` (written by `{R_SCRIPT}` on the same frames "
        "rebuilt from the bench seed, on another run: its load average and date are given); the "
        "ratio is our wall time over lme4's CPU time (lme4 is single-threaded).",
        "",
        "| trial | model | rows | levels | ours | peak RSS (before the fit) | load | lme4 CPU "
        "(elapsed) | ours / lme4 | lme4 run |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    missing = []
    for r in rows:
        if r.get("status") != "fitted":
            lines.append(f"| {r['trial']} | {r['model']} | {r.get('status')} |" + " |" * 7)
            continue
        if r.get("lme4_s") is None:
            missing.append(f"{r['trial']} {r['model']}")
            lme4_run = "not recorded"
        else:
            rows_note = "" if r.get("lme4_rows") == r["rows"] else f", {r.get('lme4_rows')} rows!"
            lme4_run = (
                f"`{r.get('lme4_call')}`, {r.get('lme4_date')}, load {r.get('lme4_load')}"
                + ("" if r.get("lme4_converged") else ", not converged")
                + rows_note
            )
        lines.append(
            f"| {r['trial']} | {r['model']} | {r['rows']} | {r['random_effects']} | "
            f"{fmt(r['fit_s'])} | {fmt(r['peak_rss_mb'], ' MB')} ({fmt(r['base_rss_mb'])}) | "
            f"{r['load_before'][0]} | {_lme4_cell(r, fmt)} | "
            f"{'–' if r.get('ratio') is None else format(r['ratio'], '.3g')} | "
            f"{lme4_run} |"
        )
    lines += ["", "Forms: " + "; ".join(f"{k}: {v}" for k, v in GLMMS.items()) + "."]
    if missing:
        lines += [
            "",
            f"lme4 timings missing (not in {R_TIMINGS.name}) for: {', '.join(missing)}. Add them "
            f"with `{R_SCRIPT} FRAMES --trial T MODEL ...` (GLMM_SCALE_TIMING_ONLY=1 to time "
            "only).",
        ]
    return lines


def _status_mb(field: str) -> float | None:
    """VmRSS / VmHWM of this process from /proc (Linux), in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 1024, 1)  # kB
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the peak-RSS mark (VmHWM) to the current RSS; False where Linux does not allow."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _max_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: kB


def main(argv: list[str] | None = None) -> int:
    """The child: read the frame, fit `reps` times, print time, memory and the fit's facts."""
    import pandas as pd

    from alliance.engine.mixed import fit_glmm

    ap = argparse.ArgumentParser(prog="alliance-bench-glmm")
    ap.add_argument("frame", type=Path)
    ap.add_argument("formula")
    ap.add_argument("--weights")
    ap.add_argument("--reps", type=int, default=1)
    args = ap.parse_args(argv)
    data = pd.read_parquet(args.frame)
    # the imports' transient peak is not the fit's: measure from the RSS with the frame loaded
    base = _status_mb("VmRSS")
    reset = _reset_peak()
    times, fit = [], None
    for _ in range(max(1, args.reps)):
        start = time.perf_counter()
        fit = fit_glmm(args.formula, data, weights=args.weights)
        times.append(time.perf_counter() - start)
    assert fit is not None
    out = {
        "rows": len(data),
        "random_effects": int(sum(fit.n_groups.values())),
        "fit_s": round(min(times), 3),
        "base_rss_mb": base,
        "peak_rss_mb": _status_mb("VmHWM") if reset else _max_rss_mb(),
        "loglik": fit.loglik,
        "converged": bool(fit.converged),
        # why not, when not: the optimiser's message and the convergence check's reasons
        "convergence": {k: fit.convergence.get(k) for k in ("optimizer_message", "reasons")},
        "load": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
