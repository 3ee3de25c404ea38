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

from alliance.studies.bench import engines, glmm, pipeline, report, sampler, trials


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
    targets += [f"results/models/{m}/fit.json" for m in glmm.GLMMS]
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

    glmms = glmm.time_glmms(work / "results" / "models", "10k", reps=1, log=lambda _: None)
    assert [g["model"] for g in glmms] == list(glmm.GLMMS)
    for g in glmms:
        assert g["status"] == "fitted" and g["converged"], (g.get("convergence"), g)
        assert g["fit_s"] > 0 and g["peak_rss_mb"] >= g["base_rss_mb"] > 0
        assert g["rows"] == result["models"][g["model"]]["n_obs"]

    record = {
        "environment": report.environment(),
        "pipelines": [result],
        "engines": [{"trial": "10k", **e, "lme4_s": 1.0} for e in rows],
        "glmms": glmms,
    }
    json_path, md_path = report.write_report(record, root / "out")
    written = json.loads(json_path.read_text())
    assert written["pipelines"][0]["name"] == "10k"
    md = md_path.read_text()
    for heading in ("## Pipeline", "## Per stage", "## Model fits", "## Engines", "## Binomial"):
        assert heading in md
    assert "| 10k | " in md and "symptoms_growth" in md
    # the engine rows made it into a table a Markdown reader can parse
    table = [line for line in md.splitlines() if line.startswith("| 10k | ")]
    assert len(table) >= 1 + len(rows)


def test_targets_are_judged_from_the_record():
    pipes = [
        {"name": "demo", "fresh": {"wall_s": 28.0}, "noop_s": 6.0},
        {
            "name": "600k",
            "fresh": {"wall_s": 190.0, "max_process_rss_mb": 1500.0, "tree_peak_rss_mb": 2500.0},
        },
    ]
    engine_rows = [
        {"trial": "600k", "model": "symptoms_growth", "fit_lmm_s": 4.0, "lme4_s": 10.0,
         "mixedlm_s": 3.0},
        {"trial": "120k", "model": "symptoms_growth", "fit_lmm_s": 2.0, "lme4_s": 3.0,
         "mixedlm_s": 1.5},
    ]  # fmt: skip
    glmm_rows = [
        {"trial": "120k", "model": "suicidality", "fit_s": 2.0, "lme4_s": 300.0,
         "lme4_cpu_s": 280.0, "ratio": 2.0 / 280.0, "rows": 100, "lme4_rows": 100},
        {"trial": "600k", "model": "dropout_hazard", "fit_s": 5.0, "lme4_s": 20.0,
         "ratio": 0.25, "rows": 100, "lme4_rows": 100},
        {"trial": "600k", "model": "missed_sessions", "fit_s": 1.0, "lme4_s": 200.0,
         "ratio": 0.005, "rows": 100, "lme4_rows": 99},  # another frame: not judged met
        {"trial": "10k", "model": "suicidality", "fit_s": 1.0, "lme4_s": 2.0, "ratio": 0.5,
         "rows": 10, "lme4_rows": 10},  # 10k is not a target
    ]  # fmt: skip
    record = {"pipelines": pipes, "engines": engine_rows, "glmms": glmm_rows}
    met = {t["target"]: t["met"] for t in report.judge_targets(record)}
    assert met == {
        "symptoms_growth fit on 600k rows <= 0.5 x lme4": True,
        "symptoms_growth fit on 120k rows <= 0.5 x lme4": False,
        "suicidality fit on 120k rows <= 0.2 x lme4": True,
        "dropout_hazard fit on 600k rows <= 0.2 x lme4": False,
        "missed_sessions fit on 600k rows <= 0.2 x lme4": False,
        "pipeline on 600k rows < 180 s": False,
        "peak RSS on 600k rows < 4 GB": True,
        "demo pipeline < 30 s": True,
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


def test_lme4_glmm_times_are_read_from_the_r_scripts_csv_and_missing_ones_named(tmp_path):
    path = tmp_path / "timings.csv"
    path.write_text(
        '"trial","model","call","seconds","cpu_seconds","converged","loglik","n_obs",'
        '"load_start","date","lme4"\n'
        '"10k","suicidality","formula_r","12.5","11.9","TRUE","-1145.27","9464","3.1",'
        '"2026-11-30","1.1.31"\n'
        '"10k","suicidality","bobyqa_refit","40","39","TRUE","-1145.27","9464","3.1",'
        '"2026-11-30","1.1.31"\n'
        '"600k","suicidality","formula_r","4000","3900","TRUE","-69915.1","560547","3.1",'
        '"2026-11-30","1.1.31"\n'
        '"600k","suicidality","default_control","900","899","TRUE","-69915.1","560547","3.1",'
        '"2026-11-30","1.1.31"\n'
    )
    times = glmm.lme4_times(path)
    # formula_r, or lme4's default control where recorded; never the refits
    assert set(times) == {("10k", "suicidality"), ("600k", "suicidality")}
    assert times[("600k", "suicidality")]["lme4_call"] == "default_control"
    assert times[("600k", "suicidality")]["lme4_cpu_s"] == 899
    assert times[("10k", "suicidality")]["lme4_call"] == "formula_r"
    assert times[("10k", "suicidality")]["lme4_s"] == 12.5
    assert times[("10k", "suicidality")]["lme4_rows"] == 9464
    assert glmm.lme4_times(tmp_path / "absent.csv") == {}  # R never run: no timings, no error
    fitted = {
        "status": "fitted", "rows": 9464, "random_effects": 800, "fit_s": 0.5,
        "peak_rss_mb": 300.0, "base_rss_mb": 200.0, "load_before": [3.0, 3.0, 3.0],
    }  # fmt: skip
    rows = [
        {"trial": "10k", "model": "suicidality", **fitted, **times[("10k", "suicidality")],
         "ratio": 0.04},
        {"trial": "10k", "model": "dropout_hazard", **fitted},
        {"trial": "10k", "model": "adherence_alliance", "status": "skipped"},
    ]  # fmt: skip
    md = "\n".join(glmm.markdown(rows, report._fmt))
    row = "| 10k | suicidality | 9464 | 800 | 0.50 | 300 MB (200) | 3.0 | 11.9 (12.5) | 0.04 |"
    assert row in md
    assert "lme4 timings missing" in md and "10k dropout_hazard" in md
    assert "10k suicidality" not in md.split("lme4 timings missing")[1]


def test_glmm_weights_come_from_the_lme4_call():
    call = "glmer(y ~ x + (1 | patient), data = data, family = binomial, weights = doses, control)"
    assert glmm._weights(call) == "doses"
    assert glmm._weights("glmer(y ~ x + (1 | g), data = data, family = binomial)") is None
