"""End to end: the clean stage through Snakemake on the demo trial (CSV long and SPSS wide)."""

from __future__ import annotations

import pandas as pd
import pytest
from workflow_helpers import ROOT, absolute_config, run_snakemake

pytestmark = pytest.mark.slow
CLEAN = ["sessions.parquet", "patients.parquet", "flow.csv", "validation.csv", "availability.json"]


def clean_targets() -> list[str]:
    return [f"results/clean/{name}" for name in CLEAN]


@pytest.mark.parametrize("config_name", ["config.yaml", "demo_wide_spss.yaml"])
def test_clean_stage_runs_on_demo(tmp_path, config_name):
    cfg = absolute_config(ROOT / "config" / config_name, tmp_path)
    proc = run_snakemake(tmp_path, cfg, *clean_targets())
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in CLEAN:
        assert (tmp_path / "results" / "clean" / name).stat().st_size > 0
    patients = pd.read_parquet(tmp_path / "results/clean/patients.parquet")
    sessions = pd.read_parquet(tmp_path / "results/clean/sessions.parquet")
    assert len(patients) == 522 and patients["started"].sum() == 468
    assert len(sessions) == 6499
    assert patients["dropout"].sum() == 116  # data/demo/README: 116 of 468 who started
    flow = pd.read_csv(tmp_path / "results/clean/flow.csv")
    assert flow.query("step == 'randomised' and arm == 'all'")["n"].item() == 480
    raw = pd.read_csv(ROOT / "data/demo/patients.csv")
    blob = b"".join((tmp_path / "results/clean" / n).read_bytes() for n in CLEAN)
    for raw_id in list(raw["subject"]) + list(raw["therapist"].dropna().unique()):
        assert raw_id.encode() not in blob


def test_long_and_wide_exports_give_the_same_clean_tables(tmp_path):
    out = {}
    for name in ("config.yaml", "demo_wide_spss.yaml"):
        work = tmp_path / name.split(".")[0]
        work.mkdir()
        proc = run_snakemake(work, absolute_config(ROOT / "config" / name, work), *clean_targets())
        assert proc.returncode == 0, proc.stderr[-3000:]
        out[name] = pd.read_parquet(work / "results/clean/sessions.parquet")
    long, wide = out["config.yaml"], out["demo_wide_spss.yaml"]
    cols = ["patient", "session", "symptom", "item_patient_01", "item_therapist_05", "weeks"]
    pd.testing.assert_frame_equal(long[cols], wide[cols], check_dtype=False)


def test_bad_input_fails_and_leaves_nothing(tmp_path):
    broken = tmp_path / "sessions.csv"
    text = (ROOT / "data/demo/sessions.csv").read_text().splitlines()
    header = text[0].split(",")
    row = text[5].split(",")
    row[header.index("wai_p_03")] = "9"
    text[5] = ",".join(row)
    broken.write_text("\n".join(text) + "\n")
    cfg = absolute_config(ROOT / "config/config.yaml", tmp_path, data__sessions=str(broken))
    proc = run_snakemake(tmp_path, cfg, *clean_targets())
    assert proc.returncode != 0
    log = (tmp_path / "logs/clean.log").read_text()
    assert "row 5" in log and "'wai_p_03'" in log and "value 9" in log
    assert not (tmp_path / "results/clean").exists() or not any(
        (tmp_path / "results/clean").iterdir()
    )
