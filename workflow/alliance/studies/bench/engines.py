"""Engine comparison: the symptoms_growth frame fitted by mixedlm, lme4 and statsmodels.

Why: the issue's target is the pipeline's own fit against lme4 on the same rows; statsmodels
MixedLM is timed on the models it can also fit, to show what the alternative would cost.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

GROWTH = "symptoms_growth"
# Models statsmodels MixedLM can fit too (one grouping factor, or a nested one as a variance
# component); the comparison: symptoms ~ session + within + between alliance.
_BASE = "symptom ~ weeks + alliance_within_prior + alliance_pat_prior + alliance_ther_prior"
COMPARED = {
    "growth_slope": (f"{_BASE} + (1 + weeks | patient)", "patient", "~weeks", None),
    "therapist_patient": (
        f"{_BASE} + (1 | therapist) + (1 | patient)",
        "therapist",
        "1",
        {"patient": "0 + C(patient)"},
    ),
}


def growth_formula(models_dir: Path) -> str:
    """The formula the pipeline fitted for symptoms_growth (R-named dummy columns)."""
    return json.loads((models_dir / GROWTH / "fit.json").read_text())["formula"]


def _best(fn: Any, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(min(times), 3)


def time_mixedlm(frame: Any, formula: str, reps: int) -> dict[str, float]:
    """Seconds of the engine's lmer alone and of fit_lmm (adds lmerTest Satterthwaite df)."""
    import mixedlm

    from alliance.engine.mixed import _prepare, fit_lmm

    prepared, _, _ = _prepare(formula, frame)
    return {
        "mixedlm_s": _best(lambda: mixedlm.lmer(formula, prepared, REML=True), reps),
        "fit_lmm_s": _best(lambda: fit_lmm(formula, frame, reml=True), reps),
    }


def time_statsmodels(frame: Any, name: str, reps: int) -> float:
    """Seconds of statsmodels MixedLM (REML, lbfgs as its default) on a COMPARED model."""
    from statsmodels.regression.mixed_linear_model import MixedLM

    _, groups, re_formula, vc = COMPARED[name]
    fixed = _BASE

    def fit() -> None:
        model = MixedLM.from_formula(
            fixed, data=frame, groups=groups, re_formula=re_formula, vc_formula=vc
        )
        model.fit(reml=True)

    return _best(fit, reps)


_R_TIMER = r"""
suppressPackageStartupMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
data <- read.csv(args[1])
reps <- as.integer(args[2])
formulas <- readLines(args[3])
cat(sprintf("lme4 %s\n", as.character(packageVersion("lme4"))))
for (f in formulas) {
  best <- Inf
  for (r in seq_len(reps)) {
    t <- system.time(m <- lmer(as.formula(f), data = data, REML = TRUE))[["elapsed"]]
    best <- min(best, t)
  }
  cat(sprintf("%.3f\t%s\n", best, f))
}
"""


def time_lme4(frame: Any, formulas: Sequence[str], reps: int, scratch: Path) -> dict[str, Any]:
    """Seconds of lme4::lmer (REML) per formula on the same rows, via Rscript; {} without R."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        return {}
    scratch.mkdir(parents=True, exist_ok=True)
    data = scratch / "frame.csv"
    frame.to_csv(data, index=False)
    (scratch / "formulas.txt").write_text("\n".join(formulas) + "\n")
    (scratch / "timer.R").write_text(_R_TIMER)
    proc = subprocess.run(
        [rscript, str(scratch / "timer.R"), str(data), str(reps), str(scratch / "formulas.txt")],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip()[-500:]}
    lines = proc.stdout.strip().splitlines()
    out: dict[str, Any] = {"version": lines[0].split()[1]}
    for line in lines[1:]:
        seconds, formula = line.split("\t", 1)
        out[formula] = float(seconds)
    return out


def compare_engines(
    frame_path: Path,
    formula: str,
    reps: int,
    scratch: Path,
    statsmodels_max_rows: int,
    with_r: bool = True,
) -> list[dict[str, Any]]:
    """symptoms_growth and the COMPARED models on one trial's frame, every engine available."""
    import pandas as pd

    frame = pd.read_parquet(frame_path)
    for col in ("patient", "therapist"):
        frame[col] = frame[col].astype(str)
    models = {GROWTH: formula, **{k: v[0] for k, v in COMPARED.items()}}
    r_times = time_lme4(frame, list(models.values()), reps, scratch) if with_r else {}
    rows = []
    for name, f in models.items():
        row: dict[str, Any] = {"model": name, "rows": len(frame), "formula": f}
        row.update(time_mixedlm(frame, f, reps))
        row["lme4_s"] = r_times.get(f)
        if name in COMPARED and len(frame) <= statsmodels_max_rows:
            # one repeat on big frames: it takes minutes there, and the gap is not subtle
            row["statsmodels_s"] = time_statsmodels(frame, name, reps if len(frame) < 50_000 else 1)
        else:
            row["statsmodels_s"] = None
        rows.append(row)
    if "version" in r_times:
        for row in rows:
            row["lme4_version"] = r_times["version"]
    if "error" in r_times:
        for row in rows:
            row["lme4_error"] = r_times["error"]
    return rows
