"""Benchmarks: pipeline wall time and peak memory per stage, fit time per model, engines.

`make bench` (python -m alliance.studies.bench) writes `results/bench/bench.json` and `bench.md`:

- pipeline: the real Snakefile run fresh, then re-run as a no-op, on the demo trial and on
  simulated trials of about 10k / 120k / 600k session rows (`alliance simulate`, fixed seed,
  12-13 patients per therapist as in the demo). Each run's process tree is sampled for memory:
  per stage (script) the longest job, the summed job time and the peak RSS of one job; for the
  whole run the wall time, the largest single process (exact, from wait4) and the concurrent
  peak of the tree (sampled);
- fit time of every model (results/models/<id>/timing.json, as the pipeline wrote it);
- engines: the `symptoms_growth` frame of each trial fitted with mixedlm (our engine, raw and
  through alliance.engine.mixed.fit_lmm with Satterthwaite df), lme4 (Rscript, when installed)
  and statsmodels MixedLM for the two models it can also fit (below a row limit: it takes
  minutes at 600k rows).

Timings are measurements, never assertions: the machine (cores, load average before and after,
whether Python loads compiled bytecode) is recorded beside them, because on a shared 2-core
machine the same run can take twice as long.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SEED = 20261127
# name -> (randomised patients, therapists); about 13.6 attended session rows per patient.
TRIALS: dict[str, tuple[int, int]] = {
    "10k": (740, 60),
    "120k": (8_900, 700),
    "600k": (44_000, 3_500),
}
GROWTH = "symptoms_growth"
# Models statsmodels MixedLM can fit too (one grouping factor, or a nested one as a variance
# component); the comparison: symptoms ~ session + within + between alliance.
_BASE = "symptom ~ weeks + alliance_within + alliance_pat + alliance_ther"
COMPARED = {
    "growth_slope": (f"{_BASE} + (1 + weeks | patient)", "patient", "~weeks", None),
    "therapist_patient": (
        f"{_BASE} + (1 | therapist) + (1 | patient)",
        "therapist",
        "1",
        {"patient": "0 + C(patient)"},
    ),
}
TARGETS = {
    "growth_vs_lme4": 0.5,  # symptoms_growth fit at most half of lme4's time (120k, 600k)
    "pipeline_600k_s": 300.0,
    "pipeline_600k_rss_mb": 4096.0,
    "demo_s": 60.0,
    "noop_s": 5.0,
}


# ---- process-tree sampling ----------------------------------------------------------------


@dataclass
class _Proc:
    stage: str
    first: float
    last: float
    rss: int = 0


@dataclass
class TreeSampler:
    """Samples RSS of a process and its descendants every `interval` seconds (psutil).

    A job is one process; its stage is the script it runs (Snakemake writes `script:` jobs as
    .snakemake/scripts/tmpXXXX.<script>.py), else the program name.
    """

    pid: int
    interval: float = 0.2
    procs: dict[tuple[int, float], _Proc] = field(default_factory=dict)
    peak_total: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> TreeSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop.is_set():
            now = time.perf_counter()
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            total = 0
            for proc in procs:
                try:
                    key = (proc.pid, proc.create_time())
                    rss = proc.memory_info().rss
                    if key not in self.procs:
                        self.procs[key] = _Proc(_stage(proc.cmdline()), now, now)
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    continue
                total += rss
                rec = self.procs[key]
                rec.last, rec.rss = now, max(rec.rss, rss)
            self.peak_total = max(self.peak_total, total)
            self._stop.wait(self.interval)

    def stages(self) -> dict[str, dict[str, float]]:
        """Per stage: jobs, longest and summed job lifetime (s), largest job peak RSS (MB)."""
        out: dict[str, dict[str, float]] = {}
        for rec in self.procs.values():
            if rec.stage in ("", "shell"):
                continue
            row = out.setdefault(rec.stage, {"jobs": 0, "max_s": 0.0, "sum_s": 0.0, "rss_mb": 0})
            life = rec.last - rec.first + self.interval  # seen from one sample to the next
            row["jobs"] += 1
            row["max_s"] = round(max(row["max_s"], life), 2)
            row["sum_s"] = round(row["sum_s"] + life, 2)
            row["rss_mb"] = round(max(row["rss_mb"], rec.rss / 2**20), 1)
        return dict(sorted(out.items()))


def _stage(cmdline: Sequence[str]) -> str:
    for arg in cmdline[1:]:
        name = Path(arg).name
        if "/.snakemake/scripts/" in arg and name.endswith(".py"):
            return name.split(".", 1)[1].removesuffix(".py")  # tmpXXXX.model.py -> model
    if any(Path(a).name == "snakemake" for a in cmdline[:2]):
        return "snakemake (scheduler)"
    prog = Path(cmdline[0]).name if cmdline else ""
    return "shell" if prog in ("sh", "bash", "dash") else prog


# ---- data and configs -----------------------------------------------------------------------


def simulate(name: str, data_root: Path, patients: int, therapists: int) -> Path:
    """The simulated trial `name` in data_root/name (reused when the same parameters made it)."""
    from alliance.simulate.export import write_trial
    from alliance.simulate.trial import simulate_trial

    out = data_root / name
    stamp = {"seed": SEED, "patients": patients, "therapists": therapists}
    marker = out / "bench_params.json"
    if marker.exists() and json.loads(marker.read_text()) == stamp:
        return out
    trial = simulate_trial(n_patients=patients, n_therapists=therapists, seed=SEED)
    write_trial(trial, out, fmt="csv", layout="long")
    marker.write_text(json.dumps(stamp) + "\n")
    return out


def trial_config(data_dir: Path | None, workdir: Path) -> Path:
    """The demo config with absolute paths; `data_dir` replaces the demo trial's files."""
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    base = data_dir if data_dir is not None else ROOT / "data" / "demo"
    cfg["data"]["sessions"] = str(base / "sessions.csv")
    cfg["data"]["patients"] = str(base / "patients.csv")
    cfg["alliance"]["instruments_dir"] = str(ROOT / "config" / "instruments")
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


# ---- pipeline runs ------------------------------------------------------------------------


def snakemake_command(
    workdir: Path, config: Path, cores: int, targets: Sequence[str] = ()
) -> list[str]:
    """The `make run` command line, pointed at a scratch work dir."""
    exe = Path(sys.executable).parent / "snakemake"
    # targets first: --quiet takes a list and would swallow them
    return [
        str(exe), *targets, "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
        "--configfile", str(config), "--cores", str(cores),
        "--workflow-profile", str(ROOT / "workflow" / "profiles" / "default"),
        "--quiet", "rules",
    ]  # fmt: skip


def _run_sampled(cmd: list[str], log: Path) -> dict[str, Any]:
    """Run `cmd`; wall time, exit code, exact max RSS of any process (wait4), sampled tree."""
    start = time.perf_counter()
    with log.open("w") as handle:
        proc = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT)
        sampler = TreeSampler(proc.pid).start()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    sampler.stop()
    return {
        "returncode": proc.returncode,
        "wall_s": round(time.perf_counter() - start, 2),
        "max_process_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux: kB
        "tree_peak_rss_mb": round(sampler.peak_total / 2**20, 1),
        "stages": sampler.stages(),
    }


def run_pipeline(
    name: str, workdir: Path, config: Path, cores: int, targets: Sequence[str] = ()
) -> dict[str, Any]:
    """A fresh run (results, logs and .snakemake removed first) and a no-op rerun."""
    for sub in ("results", "logs", ".snakemake"):
        shutil.rmtree(workdir / sub, ignore_errors=True)
    cmd = snakemake_command(workdir, config, cores, targets)
    load_before = os.getloadavg()
    fresh = _run_sampled(cmd, workdir / "bench_fresh.log")
    if fresh["returncode"] != 0:
        tail = (workdir / "bench_fresh.log").read_text()[-3000:]
        raise RuntimeError(f"pipeline on {name} failed:\n{tail}")
    noop = _run_sampled(cmd, workdir / "bench_noop.log")
    return {
        "name": name,
        "session_rows": _rows(workdir / "results" / "clean" / "sessions.parquet"),
        "patients": _rows(workdir / "results" / "clean" / "patients.parquet"),
        "cores": cores,
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "fresh": fresh,
        "noop_s": noop["wall_s"],
        "models": model_times(workdir / "results" / "models"),
    }


def _rows(path: Path) -> int | None:
    if not path.exists():
        return None
    import pyarrow.parquet as pq

    return int(pq.read_metadata(path).num_rows)


def model_times(models_dir: Path) -> dict[str, dict[str, Any]]:
    """Per model: status, rows, fit seconds and frame + fit seconds, as the pipeline wrote them."""
    out = {}
    for timing in sorted(models_dir.glob("*/timing.json")):
        fit = json.loads((timing.parent / "fit.json").read_text())
        t = json.loads(timing.read_text())
        out[timing.parent.name] = {
            "status": fit.get("status"),
            "n_obs": fit.get("n_obs"),
            "fit_s": round(t["fit_seconds"], 3) if "fit_seconds" in t else None,
            "total_s": t.get("total_seconds"),
        }
    return out


# ---- engine comparison ----------------------------------------------------------------------


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


# ---- environment and report -------------------------------------------------------------


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


def _targets(record: Mapping[str, Any]) -> list[dict[str, Any]]:
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
    if "600k" in pipes:
        p = pipes["600k"]["fresh"]
        out.append(
            _target("pipeline on 600k rows < 5 min", f"{p['wall_s']:.0f} s", p["wall_s"] < 300)
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
        out.append(
            _target("demo run < 60 s", f"{p['fresh']['wall_s']:.0f} s", p["fresh"]["wall_s"] < 60)
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
    """bench.md: targets, pipeline runs, per-stage cost, model fit times, engines."""
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
    return "\n".join(lines) + "\n"


def write_report(record: Mapping[str, Any], out: Path) -> tuple[Path, Path]:
    """bench.json (everything) and bench.md (the tables)."""
    from alliance import files

    record = {**record, "targets": _targets(record)}
    out.mkdir(parents=True, exist_ok=True)
    md = out / "bench.md"
    with files.atomic_path(md) as tmp:
        tmp.write_text(markdown(record), encoding="utf-8")
    return files.write_json(record, out / "bench.json"), md


# ---- driver ---------------------------------------------------------------------------------


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
    log: Any = print,
) -> dict[str, Any]:
    """Run every benchmark into `out` (work dirs and data under out/) and write the report."""
    record: dict[str, Any] = {"environment": environment(), "pipelines": [], "engines": []}
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
    write_report(record, out)
    return record


def main(argv: list[str] | None = None) -> int:
    """`python -m alliance.studies.bench`: see the module docstring."""
    ap = argparse.ArgumentParser(prog="alliance-bench", description=__doc__.splitlines()[0])
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
    )
    print(f"[bench] wrote {args.out / 'bench.md'} and bench.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
