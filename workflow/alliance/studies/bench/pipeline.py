"""Run the real Snakefile on a trial, fresh and as a no-op rerun, and read its model timings.

Why: the pipeline's cost is measured as a user meets it (`make run` with the default profile),
in a scratch work dir per trial so no run touches the repository's results.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from alliance.studies.bench.sampler import TreeSampler

# The repository: Snakefile, config/ and data/demo/ (this file is workflow/alliance/studies/bench/).
ROOT = Path(__file__).resolve().parents[4]


def trial_config(data_dir: Path | None, workdir: Path) -> Path:
    """The demo config with absolute paths; `data_dir` replaces the demo trial's files."""
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    base = data_dir if data_dir is not None else ROOT / "data" / "demo"
    if data_dir is not None:  # the demo key is refused on other data: a fresh key per trial
        cfg["privacy"]["key"] = secrets.token_hex(32)
    cfg["data"]["sessions"] = str(base / "sessions.csv")
    cfg["data"]["patients"] = str(base / "patients.csv")
    cfg["alliance"]["instruments_dir"] = str(ROOT / "config" / "instruments")
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def snakemake_command(
    workdir: Path, config: Path, cores: int, targets: Sequence[str] = ()
) -> list[str]:
    """The `make run` command line, pointed at a scratch work dir."""
    exe = Path(sys.executable).parent / "snakemake"
    # targets first: --quiet takes a list and would swallow them
    return [
        str(exe), *targets, "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
        "--config", f"configpath={config}", "--cores", str(cores),
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
