"""The benchmark report: environment, targets met or not, bench.json and bench.md tables.

Why: timings on a shared machine vary; the report sets every number beside what it depends on
(cores, load, bytecode caching, versions) and judges the issue's targets from the record.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import platform
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from alliance.studies.bench import glmm
from alliance.studies.bench.engines import GROWTH

TARGETS = {
    "growth_vs_lme4": 0.5,  # symptoms_growth fit at most half of lme4's time (120k, 600k)
    "glmm_vs_lme4": 0.2,  # every binomial GLMM at most a fifth of lme4's (120k, 600k; #16)
    "pipeline_600k_s": 180.0,
    "pipeline_600k_rss_mb": 4096.0,
    "demo_s": 30.0,  # the Snakemake pipeline; `make run` adds the report and its screenshot
    "noop_s": 5.0,
}


def environment() -> dict[str, Any]:
    """What the numbers depend on: cores, load, Python, bytecode caching, engine versions."""
    from importlib import metadata

    import pandas as pd

    cached = importlib.util.cache_from_source(pd.__file__)
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "bytecode_cached": Path(cached).exists(),
        "dont_write_bytecode": bool(sys.flags.dont_write_bytecode),
        "versions": {
            p: metadata.version(p) for p in ("snakemake", "mixedlm", "statsmodels", "pandas")
        },
    }


def judge_targets(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue with the measured value and whether it is met."""
    pipes = {p["name"]: p for p in record.get("pipelines", [])}
    out = []
    for row in record.get("engines", []):
        if row["model"] == GROWTH and row.get("lme4_s") and row["trial"] in ("120k", "600k"):
            ratio = row["fit_lmm_s"] / row["lme4_s"]
            out.append(
                _target(
                    f"{GROWTH} fit on {row['trial']} rows <= 0.5 x lme4",
                    f"{row['fit_lmm_s']:.2f} s vs lme4 {row['lme4_s']:.2f} s "
                    f"(ratio {ratio:.2f}; engine alone {row['mixedlm_s']:.2f} s)",
                    ratio <= TARGETS["growth_vs_lme4"],
                )
            )
    for row in record.get("glmms", []):
        if row["trial"] in ("120k", "600k") and row.get("ratio") is not None:
            same = row.get("lme4_rows") == row.get("rows")
            out.append(
                _target(
                    f"{row['model']} fit on {row['trial']} rows <= 0.2 x lme4",
                    f"{row['fit_s']:.2f} s vs lme4 {row.get('lme4_cpu_s') or row['lme4_s']:.1f} "
                    f"s CPU (ratio {row['ratio']:.3f})"
                    + ("" if same else f"; lme4's frame had {row.get('lme4_rows')} rows"),
                    row["ratio"] <= TARGETS["glmm_vs_lme4"] and same,
                )
            )
    if "600k" in pipes:
        p = pipes["600k"]["fresh"]
        limit = TARGETS["pipeline_600k_s"]
        out.append(
            _target(
                f"pipeline on 600k rows < {limit:.0f} s",
                f"{p['wall_s']:.0f} s",
                p["wall_s"] < limit,
            )
        )
        out.append(
            _target(
                "peak RSS on 600k rows < 4 GB",
                f"largest process {p['max_process_rss_mb']:.0f} MB, all processes at once "
                f"{p['tree_peak_rss_mb']:.0f} MB",
                p["tree_peak_rss_mb"] < TARGETS["pipeline_600k_rss_mb"],
            )
        )
    if "demo" in pipes:
        p = pipes["demo"]
        limit = TARGETS["demo_s"]
        out.append(
            _target(
                f"demo pipeline < {limit:.0f} s",
                f"{p['fresh']['wall_s']:.0f} s",
                p["fresh"]["wall_s"] < limit,
            )
        )
        out.append(_target("no-op rerun < 5 s", f"{p['noop_s']:.1f} s", p["noop_s"] < 5))
    return out


def _target(what: str, measured: str, met: bool) -> dict[str, Any]:
    return {"target": what, "measured": measured, "met": bool(met)}


def _fmt(x: Any, unit: str = "") -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.2f}{unit}" if x < 10 else f"{x:.1f}{unit}" if x < 100 else f"{x:.0f}{unit}"
    return f"{x}{unit}"


def markdown(record: Mapping[str, Any]) -> str:
    """bench.md: targets, pipeline runs, per-stage cost, model fit times, engines, GLMMs."""
    env = record["environment"]
    pipes = record.get("pipelines", [])
    lines = [
        "# Benchmarks",
        "",
        f"{env['date']} · {env['cores']} cores · load average at start "
        f"{', '.join(map(str, env['load_average']))} · Python {env['python']} · compiled "
        f"bytecode {'cached' if env['bytecode_cached'] else 'NOT cached (every job compiles)'}"
        f" · {', '.join(f'{k} {v}' for k, v in env['versions'].items())}.",
        "Measured, not asserted: on a shared machine the same run varies by up to 2x; the "
        "load average before and after each run is in bench.json.",
        "",
    ]
    targets = record.get("targets", [])
    if targets:
        lines += ["| target | measured | met |", "|---|---|---|"]
        lines += [
            f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |"
            for t in targets
        ]
        lines.append("")
    if pipes:
        lines += [
            "## Pipeline (fresh run, then no-op rerun)",
            "",
            "| trial | session rows | patients | jobs | wall | no-op | largest process | "
            "all processes at once | load before → after |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for p in pipes:
            f = p["fresh"]
            jobs = sum(s["jobs"] for k, s in f["stages"].items() if not k.startswith("snakemake"))
            lines.append(
                f"| {p['name']} | {_fmt(p['session_rows'])} | {_fmt(p['patients'])} | {jobs} | "
                f"{_fmt(f['wall_s'], ' s')} | {_fmt(p['noop_s'], ' s')} | "
                f"{_fmt(f['max_process_rss_mb'], ' MB')} | {_fmt(f['tree_peak_rss_mb'], ' MB')} | "
                f"{p['load_before'][0]} → {p['load_after'][0]} |"
            )
        stages = sorted({s for p in pipes for s in p["fresh"]["stages"]})
        lines += [
            "",
            "## Per stage: longest job / summed jobs (s) · peak RSS of one job (MB)",
            "",
            "Job time is the script process's lifetime (interpreter start, imports, work).",
            "",
            "| stage | " + " | ".join(p["name"] for p in pipes) + " |",
            "|---|" + "---|" * len(pipes),
        ]
        for stage in stages:
            cells = []
            for p in pipes:
                s = p["fresh"]["stages"].get(stage)
                cells.append(
                    "–"
                    if s is None
                    else f"{_fmt(s['max_s'])} / {_fmt(s['sum_s'])} · {_fmt(s['rss_mb'])}"
                    + (f" ({s['jobs']} jobs)" if s["jobs"] > 1 else "")
                )
            lines.append(f"| {stage} | " + " | ".join(cells) + " |")
        models = sorted({m for p in pipes for m in p["models"]})
        lines += [
            "",
            "## Model fits: fit / frame + fit (s), in the pipeline's job",
            "",
            "| model | " + " | ".join(p["name"] for p in pipes) + " |",
            "|---|" + "---|" * len(pipes),
        ]
        for m in models:
            cells = []
            for p in pipes:
                r = p["models"].get(m)
                if r is None:
                    cells.append("–")
                elif r["status"] != "fitted":
                    cells.append(str(r["status"]))
                else:
                    cells.append(f"{_fmt(r['fit_s'])} / {_fmt(r['total_s'])}")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
    engines = record.get("engines", [])
    if engines:
        lines += [
            "",
            "## Engines on the same rows (REML; seconds, best of the repeats)",
            "",
            "`fit_lmm` is the pipeline's call: the engine plus lmerTest-style Satterthwaite df. "
            "lme4 is `lmer()` alone (no lmerTest). statsmodels only where it fits the same model "
            "and within the row limit.",
            "",
            "| trial | rows | model | mixedlm | fit_lmm | lme4 | statsmodels |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in engines:
            lines.append(
                f"| {r['trial']} | {r['rows']} | {r['model']} | {_fmt(r['mixedlm_s'])} | "
                f"{_fmt(r['fit_lmm_s'])} | {_fmt(r.get('lme4_s'))} | "
                f"{_fmt(r.get('statsmodels_s'))} |"
            )
        lines += ["", "Formulas:", ""]
        for name, f in {r["model"]: r["formula"] for r in engines}.items():
            lines.append(f"- {name}: `{f}`")
    lines += glmm.markdown(record.get("glmms", []), _fmt)
    return "\n".join(lines) + "\n"


def write_report(record: Mapping[str, Any], out: Path) -> tuple[Path, Path]:
    """bench.json (everything) and bench.md (the tables)."""
    from alliance import files

    record = {**record, "targets": judge_targets(record)}
    out.mkdir(parents=True, exist_ok=True)
    md = out / "bench.md"
    with files.atomic_path(md) as tmp:
        tmp.write_text(markdown(record), encoding="utf-8")
    return files.write_json(record, out / "bench.json"), md
