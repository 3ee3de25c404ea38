"""Reproducibility: two runs from clean are byte-identical, an interrupted run resumes to the same
bytes, Snakemake's incomplete-output handling works, and provenance.json records what the issue
lists.

Two full demo runs are shared with test_privacy.py (tests/pipeline_runs.py): the reference run
(uninterrupted, without network where `unshare -n` is allowed) and a second run from a clean folder
that is killed with SIGTERM during the model stage and resumed with `--rerun-incomplete`. Every
output of the second run was produced by fresh processes, part before and part after the kill, so
comparing it with the reference checks determinism and resumption in one pass of the pipeline.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata as md
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from pipeline_runs import (
    MODEL_OUTPUTS,
    VOLATILE,
    command,
    environment,
    interrupted_run,
    output_files,
    reference_run,
)
from test_bad_inputs import BASE
from workflow_helpers import ROOT

from alliance.clean.stage import clean_trial, write_clean
from alliance.config import config_hash, load_config
from alliance.models.spec import load_specs
from alliance.settings import Settings

pytestmark = pytest.mark.slow
CLEAN = ["sessions.parquet", "patients.parquet", "flow.csv", "validation.csv", "availability.json"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return reference_run(tmp_path_factory)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    return interrupted_run(tmp_path_factory)


def test_two_runs_from_clean_are_byte_identical(reference, interrupted):
    """Tables, model CSVs, parquet, JSON and figures: same names, same bytes."""
    a, b = output_files(reference.results), output_files(interrupted.results)
    assert sorted(a) == sorted(b)
    differ = [name for name in a if a[name].read_bytes() != b[name].read_bytes()]
    assert not differ, f"outputs that differ between two runs: {differ}"
    kinds = {Path(name).suffix for name in a}
    assert {".csv", ".parquet", ".json"} <= kinds, kinds
    assert any(name.startswith("models/") and name.endswith("coefficients.csv") for name in a)


def test_volatile_files_are_only_timings_and_provenance(reference):
    """The exclusions above are exactly the files that hold wall-clock times or paths."""
    skipped = {p.name for p in reference.results.rglob("*") if p.is_file()} & VOLATILE
    assert {"timing.json", "provenance.json"} <= skipped
    fit = json.loads(next(reference.results.glob("models/*/fit.json")).read_text())
    assert not {"seconds", "fit_seconds", "start", "end"} & set(fit)


def test_sigterm_during_models_leaves_nothing_half_written(interrupted):
    notes = interrupted.notes
    assert notes["returncode"] != 0, "the run was not stopped by SIGTERM"
    assert 1 <= notes["models_done_at_kill"] < notes["n_models"]
    # The resume redid only the unfinished models: finished ones were kept, not refitted.
    assert notes["models_refitted"] == notes["n_models"] - notes["models_done_before_resume"]
    partial = {m: n for m, n in notes["model_outputs_after_kill"].items() if 0 < n < 4}
    assert not partial, f"model folders with some of {MODEL_OUTPUTS} after the kill: {partial}"
    assert not notes["stray_temp_files"], notes["stray_temp_files"]


def test_resumed_run_left_no_temporary_files(interrupted):
    assert not [p for p in interrupted.results.rglob("*") if ".tmp" in p.name]


# --------------------------------------------------------------------------- provenance.json
def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_provenance_records_versions_config_inputs_seed_code_and_stage_times(reference):
    prov = json.loads((reference.results / "provenance.json").read_text())
    for package in ("pandas", "numpy", "statsmodels", "snakemake", "mixedlm"):
        assert prov["packages"][package] == md.version(package)
    assert prov["python"].count(".") == 2 and prov["platform"]
    resolved = prov["config"]
    assert prov["config_sha256"] == config_hash(resolved)
    assert resolved["privacy"]["key"] != "demo-key-not-secret"  # the key is never recorded
    demo = load_config(reference.workdir / "config.yaml")
    assert resolved["seed"] == prov["seed"] == demo["seed"]
    inputs = {Path(p).name: digest for p, digest in prov["inputs"].items()}
    expected = [ROOT / "data/demo/sessions.csv", ROOT / "data/demo/patients.csv"]
    expected += [ROOT / "config/instruments" / f"{n}.yaml" for n in sorted(instruments(demo))]
    for path in expected:
        assert inputs[path.name] == _sha256(path), path.name
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                          text=True)  # fmt: skip
    if head.returncode == 0:
        assert prov["pipeline"]["commit"] == head.stdout.strip()
        assert isinstance(prov["pipeline"]["dirty"], bool)
    ran = {json.loads(p.read_text())["job"] for p in (reference.workdir / "logs/timing").glob("*")}
    stages = {s["job"]: s for s in prov["stages"]}
    missing = sorted(ran - set(stages) - {"provenance"})
    assert not missing, (
        f"provenance.json misses the start/end of {missing}: the provenance rule must run after "
        "them (workflow/rules/provenance.smk inputs)"
    )
    expected_jobs = {"clean", "score", "alliance_icc", "model_summary"}
    expected_jobs |= {f"model_{s.id}" for s in load_specs(Settings.from_config(demo).models)}
    assert expected_jobs <= set(stages)
    for stage in stages.values():
        assert dt.datetime.fromisoformat(stage["start"]) <= dt.datetime.fromisoformat(stage["end"])


def instruments(cfg: dict) -> set[str]:
    """Instrument names the config uses from YAML files (those files are inputs); the ones the
    config defines itself (`alliance.instruments`) are part of the config, hashed with it."""
    names = {r["instrument"] for r in cfg["alliance"]["raters"].values() if r}
    names |= {cfg["symptoms"]["instrument"]} if cfg["symptoms"]["instrument"] else set()
    return names - set(cfg["alliance"].get("instruments") or {})


# ------------------------------------------------------------------- incomplete-output marks
def test_incomplete_outputs_are_refused_until_rerun(tmp_path):
    """Snakemake's own mechanism, shown on the clean stage of the small bad-input trial.

    The Snakemake process is SIGKILLed (no chance to clean up) while the clean job runs; the
    orphaned job still writes its files, which Snakemake has marked incomplete. After
    `--unlock`, a plain rerun must refuse them (IncompleteFilesException); `--rerun-incomplete`
    redoes the job and gives the same bytes as a run that was never interrupted.
    """
    cfg = yaml.safe_load((BASE / "config.yaml").read_text())
    cfg["data"]["sessions"] = str(BASE / "sessions.csv")
    cfg["data"]["patients"] = str(BASE / "patients.csv")
    cfg["alliance"]["instruments_dir"] = str(ROOT / "config" / "instruments")
    work = tmp_path / "killed"
    work.mkdir()
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    targets = [f"results/clean/{n}" for n in CLEAN]
    cmd = command(work, work / "config.yaml", *targets)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=environment(), start_new_session=True)  # fmt: skip
    marks = work / ".snakemake" / "incomplete"
    # the job's script opens its log when it runs (alliance.runner.script_logger): killing
    # Snakemake after the mark but before the job process starts left no job to finish (a
    # loaded CI run waited out the deadline that way)
    started = work / "logs" / "clean.log"
    deadline = time.monotonic() + 300
    while (
        not (marks.exists() and any(marks.rglob("*")) and started.exists())
        and time.monotonic() < deadline
    ):
        assert proc.poll() is None, "Snakemake ended before the clean job started"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # Snakemake only: the job runs on, orphaned
    proc.wait()
    while not (work / "logs/timing/clean.json").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    assert all((work / "results/clean" / n).exists() for n in CLEAN)
    assert any(p.is_file() for p in marks.rglob("*")), "no incomplete mark left"
    # A killed Snakemake leaves its lock: the documented recovery is --unlock, then a rerun.
    unlock = subprocess.run([*cmd, "--unlock"], capture_output=True, text=True, env=environment())
    assert unlock.returncode == 0, unlock.stderr[-3000:]
    plain = subprocess.run(cmd, capture_output=True, text=True, env=environment())
    assert plain.returncode != 0
    assert "IncompleteFilesException" in plain.stderr, plain.stderr[-3000:]
    assert "results/clean/sessions.parquet" in plain.stderr
    resumed = subprocess.run([*cmd, "--rerun-incomplete"], capture_output=True, text=True,
                             env=environment())  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # The same bytes as an uninterrupted clean stage (same library code, in memory here).
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("ALLIANCE_PSEUDONYM_KEY", raising=False)
        fresh = write_clean(clean_trial(Settings.from_config(cfg).clean()), tmp_path / "fresh")
    for name, path in fresh.items():
        assert (work / "results/clean" / path.name).read_bytes() == path.read_bytes(), name
