"""End to end through Snakemake on the demo trial (CSV long and SPSS wide): clean and score."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from conftest import FIXTURE_KEY
from pipeline_runs import reference_run
from workflow_helpers import ROOT, absolute_config, run_snakemake

from alliance.clean.pseudonym import pseudonym
from alliance.models.spec import default_spec_dicts

pytestmark = pytest.mark.slow
CLEAN = ["sessions.parquet", "patients.parquet", "flow.csv", "validation.csv", "availability.json"]


def clean_targets() -> list[str]:
    return [f"results/clean/{name}" for name in CLEAN]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The full demo run shared with the privacy and reproducibility tests (one per session)."""
    return reference_run(tmp_path_factory).workdir


def test_clean_stage_on_demo(demo_run):
    tmp_path = demo_run
    for name in CLEAN:
        assert (tmp_path / "results" / "clean" / name).stat().st_size > 0
    patients = pd.read_parquet(tmp_path / "results/clean/patients.parquet")
    sessions = pd.read_parquet(tmp_path / "results/clean/sessions.parquet")
    assert len(patients) == 522 and patients["started"].sum() == 468
    assert len(sessions) == 6555
    assert patients["dropout"].sum() == 108  # 108 of the 468 who started
    flow = pd.read_csv(tmp_path / "results/clean/flow.csv")
    assert flow.query("step == 'randomised' and arm == 'all'")["n"].item() == 480
    raw = pd.read_csv(ROOT / "data/demo/patients.csv")
    blob = b"".join((tmp_path / "results/clean" / n).read_bytes() for n in CLEAN)
    for raw_id in list(raw["subject"]) + list(raw["therapist"].dropna().unique()):
        assert raw_id.encode() not in blob


def test_spss_wide_export_gives_the_same_clean_tables(demo_run, tmp_path):
    cfg = absolute_config(ROOT / "config" / "demo_wide_spss.yaml", tmp_path)
    proc = run_snakemake(tmp_path, cfg, *clean_targets())
    assert proc.returncode == 0, proc.stderr[-3000:]
    wide = pd.read_parquet(tmp_path / "results/clean/sessions.parquet")
    long = pd.read_parquet(demo_run / "results/clean/sessions.parquet")
    cols = ["patient", "session", "symptom", "item_patient_01", "item_therapist_05", "weeks"]
    pd.testing.assert_frame_equal(long[cols], wide[cols], check_dtype=False)


# The demo with adherence as a 0-1 proportion only: the models that answer the adherence question
# (and the other panel of its figure); the rest of the default set is left out to keep it short.
SHARE_MODELS = ("missed_sessions", "adherence_alliance", "adherence_alliance_share")


def proportion_only_demo(folder: Path) -> Path:
    """The demo export with its pill counts replaced by their ratio, `adherence_share` (as a
    self-report scale or an electronic monitor's share would come), and the config for it: the
    demo config mapping columns.adherence and no dose counts, a test key (the demo key is refused
    on other data), only SHARE_MODELS of the default set."""
    sessions = pd.read_csv(ROOT / "data/demo/sessions.csv", dtype=str, keep_default_na=False)
    taken, given = (pd.to_numeric(sessions[c], errors="coerce")
                    for c in ("pills_taken", "pills_prescribed"))  # fmt: skip
    share = (taken / given.where(given > 0)).map(lambda v: "" if pd.isna(v) else repr(v))
    sessions = sessions.drop(columns=["pills_taken", "pills_prescribed"])
    sessions.insert(len(sessions.columns) - 1, "adherence_share", share)
    sessions.to_csv(folder / "sessions.csv", index=False)
    disable = [s["id"] for s in default_spec_dicts() if s["id"] not in SHARE_MODELS]
    return absolute_config(
        ROOT / "config/config.yaml", folder, data__sessions=str(folder / "sessions.csv"),
        columns__doses_taken=None, columns__doses_prescribed=None,
        columns__adherence="adherence_share", privacy__key=FIXTURE_KEY, models__disable=disable,
    )  # fmt: skip


def test_proportion_only_adherence_runs_the_fractional_logit_gee_end_to_end(tmp_path):
    """Clean -> score -> models -> figures on the demo with adherence as a proportion only: the
    binomial GLMM is skipped saying why, the fractional-logit GEE is fitted and drawn."""
    cfg = proportion_only_demo(tmp_path)
    proc = run_snakemake(tmp_path, cfg)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = tmp_path / "results"
    adherence = json.loads((results / "clean/availability.json").read_text())["adherence"]
    assert adherence["source"] == "proportion" and adherence["proportion_only"]
    assert not adherence["dose_counts"]
    summary = pd.read_csv(results / "models/summary.csv")
    glmm = summary[summary["model"] == "adherence_alliance"].iloc[0]
    assert glmm["status"] == "skipped"
    assert glmm["reason"].startswith("needs adherence.dose_counts: adherence is a proportion")
    gee = summary[summary["model"] == "adherence_alliance_share"].set_index("term")
    assert set(gee.index) == {"alliance_lag1", "alliance_lag1_rc"}
    assert (gee["status"] == "fitted").all() and gee["converged"].all()
    assert 0 < gee.loc["alliance_lag1", "ci_low"] < gee.loc["alliance_lag1", "estimate"]
    fit = json.loads((results / "models/adherence_alliance_share/fit.json").read_text())
    assert (fit["kind"], fit["fractional"], fit["cluster"]) == ("gee", True, "patient")
    assert fit["frame"]["subset"].startswith("arm_class in")
    drawn = json.loads((results / "report/figures_resistance.json").read_text())
    assert "attendance_adherence.png" in drawn["attendance_adherence"], drawn
    overview = (results / "report/overview.html").read_text()
    assert "adherence_alliance_share" in overview and "needs adherence.dose_counts" in overview


def test_bad_input_fails_and_leaves_nothing(tmp_path):
    broken = tmp_path / "sessions.csv"
    text = (ROOT / "data/demo/sessions.csv").read_text().splitlines()
    header = text[0].split(",")
    row = text[5].split(",")
    row[header.index("wai_p_03")] = "9"
    text[5] = ",".join(row)
    broken.write_text("\n".join(text) + "\n")
    # the demo key is refused on data other than the demo: a test key
    cfg = absolute_config(
        ROOT / "config/config.yaml", tmp_path, data__sessions=str(broken), privacy__key=FIXTURE_KEY
    )
    proc = run_snakemake(tmp_path, cfg, *clean_targets())
    assert proc.returncode != 0
    log = (tmp_path / "logs/clean.log").read_text()
    assert "row 5" in log and "'wai_p_03'" in log and "value 9" in log
    assert not (tmp_path / "results/clean").exists() or not any(
        (tmp_path / "results/clean").iterdir()
    )


TRUTH = json.loads((ROOT / "data/demo/truth.json").read_text())
KEY = b"demo-key-not-secret"


def test_score_stage_recovers_variance_shares(demo_run):
    """Null 3-level model shares vs the shares truth.json expects for the observed 12-item mean.

    Tolerance: +-0.06 absolute per share. With 40 therapists the therapist variance alone has a
    standard error of roughly a third of its size, so a tighter bound would flake across seeds.
    """
    icc = pd.read_csv(demo_run / "results/scores/alliance_icc.csv").set_index("level")
    expected = TRUTH["alliance"]["observed_score_expected"]
    for level in ("therapist", "patient", "session"):
        assert icc.loc[level, "share"] == pytest.approx(expected[f"share_{level}"], abs=0.06), level
    assert icc["converged"].all() and not icc["singular"].any()


def test_score_stage_finds_injected_ruptures(demo_run):
    """Every injected V (drop of 3.5-4.5 change-SDs) that the data show must be found at k = 2.

    Detected episodes outnumber injected ones: chance drops of >= 2 SD also qualify (the rule's
    known false-positive rate), so the test checks recall of injected episodes, not equality.
    """
    episodes = pd.read_csv(demo_run / "results/scores/ruptures.csv")
    found = set(
        zip(
            episodes.loc[episodes["k"] == 2, "patient"],
            episodes.loc[episodes["k"] == 2, "session_drop"],
            strict=True,
        )
    )
    injected = TRUTH["ruptures"]["episodes"]
    sessions = pd.read_parquet(demo_run / "results/clean/sessions.parquet")
    attended = set(zip(sessions["patient"], sessions["session"], strict=True))
    seen = [
        (pseudonym(e["subject"], "patient", KEY), e["session"])
        for e in injected
        if (pseudonym(e["subject"], "patient", KEY), e["session"]) in attended
        and (pseudonym(e["subject"], "patient", KEY), e["session"] - 1) in attended
    ]
    assert len(seen) >= 50
    recall = sum(s in found for s in seen) / len(seen)
    assert recall >= 0.85, f"recall of injected ruptures {recall:.2f}"


def test_score_stage_tables(demo_run):
    scores = demo_run / "results/scores"
    rel = pd.read_csv(scores / "reliability.csv")
    pooled = rel[(rel["session"] == "pooled") & (rel["scale"] == "total")].set_index("rater")
    assert 0.85 < pooled.loc["patient", "alpha"] < 0.95
    agree = pd.read_csv(scores / "agreement.csv", dtype={"session": str})
    assert {"icc_a1", "icc_c1"} <= set(agree.columns)
    pooled = agree[agree["session"] == "pooled"].set_index(["rater_a", "rater_b"])
    pt, po = pooled.loc[("patient", "therapist")], pooled.loc[("patient", "observer")]
    assert pt["n_pairs"] > 3000 and pt["n_a_only"] > 2000
    # the observer codes recordings of sessions 1, 3, 5 and 16 (some missing)
    assert po["sessions"] == "1;3;5;16" and 1300 < po["n_pairs"] < 1500
    assert pooled.loc[("therapist", "observer"), "sessions"] == "1;3;5"
    assert 0.4 < po["r"] < 0.65 and pt["r"] < po["r"]
    analysis = pd.read_parquet(scores / "analysis.parquet")
    grand = json.loads((scores / "score_notes.json").read_text())["grand_mean"]
    parts = grand + analysis[["alliance_ther", "alliance_pat", "alliance_within"]].sum(axis=1)
    assert (parts - analysis["alliance"]).abs().max() < 1e-9
    patients = pd.read_parquet(scores / "patient_analysis.parquet")
    assert len(patients) == 468 and patients["alliance_early"].notna().all()


def test_report_renders_in_headless_chromium(demo_run):
    """The Snakemake report opens in Chromium with every stage category and its figures/tables."""
    from workflow_helpers import SNAKEMAKE

    from alliance.render.browser import chromium, rendered_dom, screenshot

    cfg = demo_run / "config.yaml"
    proc = subprocess.run(
        [str(SNAKEMAKE), "-s", str(ROOT / "Snakefile"), "--directory", str(demo_run),
         "--config", f"configpath={cfg}", "--report", "results/report.html"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = demo_run / "results/report.html"
    assert report.stat().st_size > 100_000
    if chromium() is None:
        pytest.skip("no chromium on PATH: install Debian's chromium to run the browser test")
    dom = rendered_dom(report)
    for section in ("0 Overview", "1 Clean", "2 Score", "3 Model", "4 Render"):
        assert section in dom, f"report lacks the {section} category"
    for name in ("symptom_trajectories.png", "forest.png", "alliance_effects.html"):
        assert name in dom, f"report lacks {name}"
    shot = screenshot(report, demo_run / "results/report_screenshot.png")
    assert shot.stat().st_size > 10_000


def test_render_outputs(demo_run):
    figures = json.loads((demo_run / "results/report/figures.json").read_text())
    for state in figures.values():
        if isinstance(state, str):
            continue  # skipped with a reason, shown on the overview page
        for file in state:
            assert (demo_run / "results/figures" / file).stat().st_size > 5_000, file
    tables = demo_run / "results/tables"
    for stem in (
        "table1_baseline",
        "reliability",
        "agreement",
        "alliance_effects",
        "model_symptoms_growth",
        "model_symptoms_observer_early",
    ):
        for ext in ("csv", "md", "tex", "html"):
            assert (tables / f"{stem}.{ext}").exists(), f"{stem}.{ext}"
    # Tables match the model CSVs number for number (a sample of cells).
    coefs = pd.read_csv(demo_run / "results/models/symptoms_growth/coefficients.csv")
    table = pd.read_csv(tables / "model_symptoms_growth.csv", dtype=str)
    row = coefs.set_index("term").loc["alliance_pat_prior"]
    cells = " ".join(table.astype(str).to_numpy().ravel())
    assert f"{row['estimate']:.2f}".replace("-", "\u2212") in cells
    assert f"{row['std_error']:.2f}" in cells
    overview = (demo_run / "results/report/overview.html").read_text()
    assert "symptoms_growth" in overview and "fitted" in overview


# ---------------------------------------------------------------------------------- the Makefile
MAKEFILE = (ROOT / "Makefile").read_text()


def _demo_commands() -> list[list[str]]:
    """The `alliance simulate` argument lists of `make demo` (continuation lines joined)."""
    recipe = MAKEFILE.split("\ndemo:", 1)[1].split("\n\n", 1)[0].replace("\\\n", " ")
    return [
        shlex.split(line.split("alliance simulate", 1)[1])
        for line in recipe.splitlines()
        if "alliance simulate" in line
    ]


def test_make_demo_regenerates_the_committed_files_byte_for_byte(tmp_path):
    """Both `make demo` commands, into a scratch folder: every file equals the committed one
    (the SPSS writer fixes the creation stamp ReadStat takes from the clock)."""
    from alliance.simulate.cli import main

    commands = _demo_commands()
    assert len(commands) == 2
    for args in commands:
        committed = ROOT / args[args.index("--out") + 1]
        args[args.index("--out") + 1] = str(tmp_path / committed.name)
        assert main(args) == 0
        fresh = tmp_path / committed.name
        made = sorted(p.name for p in fresh.iterdir())
        assert made and all((committed / n).exists() for n in made)
        for name in made:
            same = (fresh / name).read_bytes() == (committed / name).read_bytes()
            assert same, f"{committed.name}/{name} differs from the committed file"


def test_the_makefile_python_is_the_one_pyproject_requires():
    import tomllib

    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    version = re.search(r"^PYTHON_VERSION := (\d+)\.(\d+)$", MAKEFILE, flags=re.M)
    assert version, "Makefile: PYTHON_VERSION := <major>.<minor>"
    major, minor = int(version[1]), int(version[2])
    assert requires == f">={major}.{minor},<{major}.{minor + 1}"


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_refuses_another_python_before_creating_the_venv(tmp_path):
    for name in ("Makefile", "pyproject.toml", "requirements.lock"):
        shutil.copy(ROOT / name, tmp_path / name)
    old = tmp_path / "python3.9"
    old.write_text("#!/bin/sh\necho 3.9\n")
    old.chmod(0o755)
    proc = subprocess.run(["make", "-C", str(tmp_path), f"PY={old}", "run"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode != 0
    assert "needs Python 3.11" in proc.stderr and "is Python 3.9" in proc.stderr
    assert "make PY=python3.11 run" in proc.stderr
    assert not (tmp_path / ".venv").exists()


# The demo without observer ratings (alliance.raters.observer: null), as most trials come: the
# agreement, models and figures still run; what needs the observer says why it is absent.
NO_OBSERVER_MODELS = ("symptoms_observer_early", "agreement_rsa")


def test_the_demo_without_observer_ratings_runs_end_to_end(tmp_path):
    disable = [s["id"] for s in default_spec_dicts() if s["id"] not in NO_OBSERVER_MODELS]
    cfg = absolute_config(ROOT / "config/config.yaml", tmp_path,
                          alliance__raters__observer=None, models__disable=disable)  # fmt: skip
    proc = run_snakemake(tmp_path, cfg)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = tmp_path / "results"
    raters = json.loads((results / "clean/availability.json").read_text())["raters"]
    assert raters["observer"] == {
        "available": False,
        "reason": "observer-rated alliance: not configured",
    }
    agree = pd.read_csv(results / "scores/agreement.csv", dtype={"session": str})
    assert set(zip(agree["rater_a"], agree["rater_b"], strict=True)) == {("patient", "therapist")}
    pooled = agree.set_index("session").loc["pooled"]
    assert pooled["n_pairs"] > 3000 and pooled["sessions"] == "1;2;3;5;7;9;11;13;15"
    assert not any(
        c.startswith("alliance_o")
        for c in pd.read_parquet(results / "scores/patient_analysis.parquet").columns
    )
    summary = pd.read_csv(results / "models/summary.csv").set_index("model")
    row = summary.loc["symptoms_observer_early"]
    assert row["status"] == "skipped"
    assert row["reason"] == "needs raters.observer: observer-rated alliance: not configured"
    assert (summary.loc["agreement_rsa", "status"] == "fitted").all()
    drawn = json.loads((results / "report/figures.json").read_text())
    assert "rater_agreement.png" in drawn["rater_agreement"], drawn
    table = (results / "tables/agreement.md").read_text()
    assert "Patient–therapist" in table and "observer" not in table
    overview = (results / "report/overview.html").read_text()
    assert "symptoms_observer_early" in overview
    assert "observer-rated alliance: not configured" in overview
