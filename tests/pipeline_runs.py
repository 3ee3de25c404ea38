"""Full Snakemake runs of the demo trial shared by test_privacy.py and test_reproducible.py.

A full run takes minutes on two cores, so each kind of run happens at most once per pytest
process (module-level cache) in a folder under pytest's base temp directory, whichever test
module asks first.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from workflow_helpers import ROOT, SNAKEMAKE, absolute_config

from alliance.config import load_config
from alliance.models.spec import load_specs
from alliance.settings import Settings

# Files that legitimately differ between runs: wall-clock times and absolute paths (the
# Snakemake report, written by `make report` after a run, embeds both).
VOLATILE = frozenset({"timing.json", "provenance.json", "report.html", "timings.html"})
KILL_TIMEOUT = 180  # seconds Snakemake may take to shut down after SIGTERM


@dataclass
class Run:
    """One finished pipeline run: its folder and what the test harness observed."""

    workdir: Path
    offline: bool = False
    notes: dict[str, object] = field(default_factory=dict)

    @property
    def results(self) -> Path:
        return self.workdir / "results"


_RUNS: dict[str, Run] = {}


def offline_prefix() -> list[str]:
    """`unshare -n` (a new network namespace with no interfaces up) when allowed here, else []."""
    exe = shutil.which("unshare")
    if exe is None:
        return []
    probe = subprocess.run([exe, "-n", "true"], capture_output=True)
    return [exe, "-n"] if probe.returncode == 0 else []


def command(workdir: Path, config: Path, *extra: str) -> list[str]:
    """The `make run` command (same flags as the Makefile) for a scratch folder."""
    return [
        str(SNAKEMAKE), "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
        "--config", f"configpath={config}", "--cores", "2", "--quiet", "rules",
        "--show-failed-logs", *extra,
    ]  # fmt: skip


def environment() -> dict[str, str]:
    """The caller's environment minus the key variable: the demo key comes from config."""
    env = dict(os.environ)
    env.pop("ALLIANCE_PSEUDONYM_KEY", None)
    return env


def _fresh(factory: pytest.TempPathFactory, name: str) -> tuple[Path, Path]:
    workdir = factory.getbasetemp() / f"pipeline_{name}"
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir()
    return workdir, absolute_config(ROOT / "config" / "config.yaml", workdir)


def _check(proc: subprocess.CompletedProcess, what: str) -> None:
    assert proc.returncode == 0, f"{what} failed:\n{proc.stderr[-4000:]}"


def reference_run(factory: pytest.TempPathFactory) -> Run:
    """Uninterrupted run from a clean folder, without network access where possible."""
    if "reference" not in _RUNS:
        workdir, config = _fresh(factory, "reference")
        prefix = offline_prefix()
        proc = subprocess.run(
            [*prefix, *command(workdir, config)], capture_output=True, text=True,
            env=environment(), timeout=1800,
        )  # fmt: skip
        _check(proc, "reference run")
        _RUNS["reference"] = Run(workdir, offline=bool(prefix))
    return _RUNS["reference"]


MODEL_OUTPUTS = ("coefficients.csv", "fit.json", "frame.parquet", "timing.json")


def with_report(run: Run) -> Path:
    """`make report` on a finished run: results/report.html (Snakemake's self-contained HTML)."""
    report = run.results / "report.html"
    if not report.exists():
        proc = subprocess.run(
            [*offline_prefix(), *command(run.workdir, run.workdir / "config.yaml"),
             "--report", str(report)],
            capture_output=True, text=True, env=environment(), timeout=900,
        )  # fmt: skip
        _check(proc, "snakemake --report")
    return report


def _models_finished(workdir: Path) -> int:
    """Model jobs Snakemake has registered as finished, from its own log of the current run."""
    logs = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"))
    if not logs:
        return 0
    return len(re.findall(r"Finished jobid: \d+ \(Rule: model\)", logs[-1].read_text()))


def _model_outputs(workdir: Path) -> dict[str, int]:
    """Model id -> how many of its declared outputs exist."""
    models = workdir / "results" / "models"
    return (
        {
            d.name: sum((d / name).exists() for name in MODEL_OUTPUTS)
            for d in sorted(models.iterdir())
            if d.is_dir()
        }
        if models.exists()
        else {}
    )


def interrupted_run(factory: pytest.TempPathFactory) -> Run:
    """A run from a clean folder killed with SIGTERM while models are being fitted, then resumed.

    SIGTERM goes to the whole process group (Snakemake and the job scripts), as a batch
    scheduler's time limit or a shutdown does, so jobs die mid-write. The resume is the
    documented recovery: the same command with `--rerun-incomplete`.
    """
    if "interrupted" in _RUNS:
        return _RUNS["interrupted"]
    workdir, config = _fresh(factory, "interrupted")
    n_models = len(load_specs(Settings.from_config(load_config(config)).models))
    proc = subprocess.Popen(
        command(workdir, config), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=environment(), start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 1800
    while _models_finished(workdir) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    done_at_kill = _models_finished(workdir)
    assert proc.poll() is None, "the run finished before the model stage could be interrupted"
    assert 1 <= done_at_kill < n_models, f"{done_at_kill} of {n_models} models done at SIGTERM"
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        _, stderr = proc.communicate(timeout=KILL_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, stderr = proc.communicate()
    after_kill = {
        "returncode": proc.returncode,
        "models_done_at_kill": done_at_kill,
        "models_done_before_resume": _models_finished(workdir),
        "model_outputs_after_kill": _model_outputs(workdir),
        "n_models": n_models,
        "incomplete_markers": sorted(
            p.name for p in (workdir / ".snakemake" / "incomplete").rglob("*") if p.is_file()
        ),
        "stray_temp_files": sorted(
            str(p.relative_to(workdir)) for p in (workdir / "results").rglob("*.tmp*")
        ),
        "stderr": stderr[-3000:],
    }
    resumed = subprocess.run(
        command(workdir, config, "--rerun-incomplete"), capture_output=True, text=True,
        env=environment(), timeout=1800,
    )  # fmt: skip
    _check(resumed, "resumed run")
    after_kill["models_refitted"] = _models_finished(workdir)
    _RUNS["interrupted"] = Run(workdir, notes=after_kill)
    return _RUNS["interrupted"]


def output_files(results: Path) -> dict[str, Path]:
    """Every file under results/ by relative path, volatile ones excluded."""
    return {
        str(p.relative_to(results)): p
        for p in sorted(results.rglob("*"))
        if p.is_file() and p.name not in VOLATILE
    }
