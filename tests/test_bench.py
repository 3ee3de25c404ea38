"""Smoke test of the benchmark package (alliance.studies.bench) on a ~10k-row simulated trial.

No timing is asserted: only that every measurement is taken, recorded and tabulated.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from alliance.studies.bench import engines, pipeline, report, sampler, trials


@pytest.fixture(scope="module")
def trial(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    patients, therapists = trials.TRIALS["10k"]
    return root, trials.simulate("10k", root / "data", patients, therapists)


def test_simulated_trial_has_about_10k_rows_and_is_reused(trial):
    root, data = trial
    sessions = pd.read_csv(data / "sessions.csv", usecols=["attendance"])
    rows = int((sessions["attendance"] == "attended").sum())  # missed slots carry no scores
    assert 9_000 <= rows <= 11_500
    stamp = (data / "sessions.csv").stat().st_mtime_ns
    assert trials.simulate("10k", root / "data", *trials.TRIALS["10k"]) == data
    assert (data / "sessions.csv").stat().st_mtime_ns == stamp  # not simulated again


def test_sampler_sees_a_child_process_and_its_memory():
    code = "import time; x = bytearray(60 * 2**20); time.sleep(1.0)"
    proc = subprocess.Popen([sys.executable, "-c", code])
    tree = sampler.TreeSampler(proc.pid, interval=0.05).start()
    proc.wait()
    tree.stop()
    (stage,) = tree.stages().values()
    assert stage["jobs"] == 1 and stage["max_s"] >= 0.5
    assert stage["rss_mb"] >= 60
    assert tree.peak_total >= 60 * 2**20


def test_stage_names_come_from_snakemake_script_files():
    cmd = ["/x/python", "/w/.snakemake/scripts/tmpab_12.model_summary.py"]
    assert sampler.stage_name(cmd) == "model_summary"
    scheduler = ["/x/python", "/x/bin/snakemake", "--cores", "2"]
    assert sampler.stage_name(scheduler).startswith("snakemake")
    assert sampler.stage_name(["/bin/sh", "-c", "true"]) == "shell"


@pytest.mark.slow
def test_pipeline_run_and_report_on_10k_rows(trial):
    root, data = trial
    work = root / "work"
    cfg = pipeline.trial_config(data, work)
    targets = ["results/models/symptoms_growth/fit.json", "results/scores/alliance_icc.csv"]
    result = pipeline.run_pipeline("10k", work, cfg, cores=2, targets=targets)
    fresh = result["fresh"]
    assert fresh["returncode"] == 0 and fresh["wall_s"] > result["noop_s"] > 0
    assert result["session_rows"] > 9_000
    assert {"clean", "score", "model", "alliance_icc"} <= set(fresh["stages"])
    assert all(s["rss_mb"] > 0 for s in fresh["stages"].values())
    assert fresh["max_process_rss_mb"] >= max(s["rss_mb"] for s in fresh["stages"].values()) * 0.9
    growth = result["models"]["symptoms_growth"]
    assert growth["status"] == "fitted" and growth["fit_s"] > 0

    frame = work / "results" / "models" / "symptoms_growth" / "frame.parquet"
    rows = engines.compare_engines(
        frame,
        engines.growth_formula(frame.parent.parent),
        reps=1,
        scratch=root / "engines",
        statsmodels_max_rows=20_000,
        with_r=False,
    )
    assert [e["model"] for e in rows] == ["symptoms_growth", *engines.COMPARED]
    assert all(e["mixedlm_s"] > 0 and e["fit_lmm_s"] > 0 for e in rows)
    assert rows[0]["statsmodels_s"] is None  # statsmodels cannot fit the growth model
    assert all(e["statsmodels_s"] > 0 for e in rows[1:])

    record = {
        "environment": report.environment(),
        "pipelines": [result],
        "engines": [{"trial": "10k", **e, "lme4_s": 1.0} for e in rows],
    }
    json_path, md_path = report.write_report(record, root / "out")
    written = json.loads(json_path.read_text())
    assert written["pipelines"][0]["name"] == "10k"
    md = md_path.read_text()
    for heading in ("## Pipeline", "## Per stage", "## Model fits", "## Engines"):
        assert heading in md
    assert "| 10k | " in md and "symptoms_growth" in md
    # the engine rows made it into a table a Markdown reader can parse
    table = [line for line in md.splitlines() if line.startswith("| 10k | ")]
    assert len(table) >= 1 + len(rows)


def test_targets_are_judged_from_the_record():
    pipes = [
        {"name": "demo", "fresh": {"wall_s": 42.0}, "noop_s": 6.0},
        {
            "name": "600k",
            "fresh": {"wall_s": 250.0, "max_process_rss_mb": 1500.0, "tree_peak_rss_mb": 2500.0},
        },
    ]
    engine_rows = [
        {"trial": "600k", "model": "symptoms_growth", "fit_lmm_s": 4.0, "lme4_s": 10.0,
         "mixedlm_s": 3.0},
        {"trial": "120k", "model": "symptoms_growth", "fit_lmm_s": 2.0, "lme4_s": 3.0,
         "mixedlm_s": 1.5},
    ]  # fmt: skip
    record = {"pipelines": pipes, "engines": engine_rows}
    met = {t["target"]: t["met"] for t in report.judge_targets(record)}
    assert met == {
        "symptoms_growth fit on 600k rows <= 0.5 x lme4": True,
        "symptoms_growth fit on 120k rows <= 0.5 x lme4": False,
        "pipeline on 600k rows < 5 min": True,
        "peak RSS on 600k rows < 4 GB": True,
        "demo run < 60 s": True,
        "no-op rerun < 5 s": False,
    }


def test_markdown_without_runs_still_renders():
    env = {"date": "d", "cores": 2, "load_average": [0, 0, 0], "python": "3.11",
           "bytecode_cached": False, "versions": {"mixedlm": "1"}}  # fmt: skip
    md = report.markdown({"environment": env, "pipelines": [], "engines": []})
    assert md.startswith("# Benchmarks") and "NOT cached" in md


def test_environment_names_what_the_numbers_depend_on():
    env = report.environment()
    assert env["cores"] == os.cpu_count() and len(env["load_average"]) == 3
    assert isinstance(env["bytecode_cached"], bool)
    assert env["versions"]["pandas"] == pd.__version__
