"""`make bench`: simulate the trials, run the pipeline and engines on each, write the report."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from alliance.studies import bench
from alliance.studies.bench.engines import GROWTH, compare_engines, growth_formula
from alliance.studies.bench.glmm import time_glmms
from alliance.studies.bench.pipeline import run_pipeline, trial_config
from alliance.studies.bench.report import environment, write_report
from alliance.studies.bench.trials import TRIALS, simulate


def run_bench(
    out: Path,
    trials: Iterable[str],
    *,
    demo: bool = True,
    cores: int = 2,
    reps: int = 2,
    engines: bool = True,
    with_r: bool = True,
    statsmodels_max_rows: int = 150_000,
    glmms: bool = True,
    log: Any = print,
) -> dict[str, Any]:
    """Run every benchmark into `out` (work dirs and data under out/) and write the report."""
    record: dict[str, Any] = {
        "environment": environment(), "pipelines": [], "engines": [], "glmms": [],
    }  # fmt: skip
    work = out / "work"
    names = (["demo"] if demo else []) + list(trials)
    for name in names:
        data = None
        if name != "demo":
            patients, therapists = TRIALS[name]
            log(f"[bench] simulating {name}: {patients} patients, {therapists} therapists")
            data = simulate(name, out / "data", patients, therapists)
        cfg = trial_config(data, work / name)
        log(f"[bench] pipeline on {name}")
        result = run_pipeline(name, work / name, cfg, cores)
        record["pipelines"].append(result)
        log(f"[bench]   {result['fresh']['wall_s']} s, no-op {result['noop_s']} s")
        write_report(record, out)
        frame = work / name / "results" / "models" / GROWTH / "frame.parquet"
        if engines and name != "demo" and frame.exists():
            log(f"[bench] engines on {name}")
            rows = compare_engines(
                frame,
                growth_formula(frame.parent.parent),
                1 if name == "600k" else reps,
                work / name / "engines",
                statsmodels_max_rows,
                with_r=with_r,
            )
            record["engines"] += [{"trial": name, **r} for r in rows]
            write_report(record, out)
        if glmms and name != "demo":
            log(f"[bench] binomial GLMMs on {name}")
            models = work / name / "results" / "models"
            record["glmms"] += time_glmms(models, name, 1 if name == "600k" else reps, log)
            write_report(record, out)
    write_report(record, out)
    return record


def main(argv: list[str] | None = None) -> int:
    """`python -m alliance.studies.bench`: see the package docstring (alliance.studies.bench)."""
    ap = argparse.ArgumentParser(prog="alliance-bench", description=bench.__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("results/bench"))
    ap.add_argument(
        "--trials", default="10k,120k,600k", help=f"comma list of {', '.join(TRIALS)} or none"
    )
    ap.add_argument("--no-demo", action="store_true", help="skip the demo trial")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--reps", type=int, default=2, help="engine fits: best of N (1 at 600k)")
    ap.add_argument("--no-engines", action="store_true")
    ap.add_argument("--no-r", action="store_true", help="skip lme4 even if Rscript exists")
    ap.add_argument("--statsmodels-max-rows", type=int, default=150_000)
    ap.add_argument("--no-glmms", action="store_true", help="skip the binomial GLMM refits")
    args = ap.parse_args(argv)
    trials = [t for t in args.trials.split(",") if t and t != "none"]
    unknown = [t for t in trials if t not in TRIALS]
    if unknown:
        ap.error(f"unknown trial(s) {unknown}; known: {', '.join(TRIALS)}")
    run_bench(
        args.out.resolve(),
        trials,
        demo=not args.no_demo,
        cores=args.cores,
        reps=args.reps,
        engines=not args.no_engines,
        with_r=not args.no_r,
        statsmodels_max_rows=args.statsmodels_max_rows,
        glmms=not args.no_glmms,
    )
    print(f"[bench] wrote {args.out / 'bench.md'} and bench.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
