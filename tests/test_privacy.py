"""Privacy: no raw ID anywhere under results/, keyed stable pseudonyms, free text dropped unless
kept, small cells suppressed in descriptive tables, no network at run time."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io as _io
import re
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from pipeline_runs import offline_prefix, reference_run, with_report
from test_bad_inputs import BASE, load_case
from workflow_helpers import ROOT

from alliance import files
from alliance.clean.pseudonym import pseudonym, pseudonymise
from alliance.clean.stage import clean_trial, write_clean
from alliance.config import validate_config
from alliance.errors import ConfigError
from alliance.models.run import fit_model, summarise, write_result
from alliance.models.spec import load_specs
from alliance.render.stage import build_tables
from alliance.score.stage import run_score, write_score
from alliance.settings import Settings

DEMO = ROOT / "data" / "demo"
DEMO_KEY = "demo-key-not-secret"  # config/config.yaml privacy.key
FREE_TEXT = "phoned her sister about the missed visit"  # tests/bad_inputs/_base/patients.csv


def raw_ids() -> list[str]:
    """Every patient and therapist ID of the demo export (both tables)."""
    patients = pd.read_csv(DEMO / "patients.csv", dtype=str)
    sessions = pd.read_csv(DEMO / "sessions.csv", dtype=str, usecols=["subject"])
    ids = set(patients["subject"]) | set(sessions["subject"]) | set(patients["therapist"].dropna())
    return sorted(ids)


DATA_URI = re.compile(rb"data:[^,\"']*;base64,([A-Za-z0-9+/=]+)")


def readable_text(path: Path) -> bytes:
    """What a reader of the file could see: parquet cells, zip members, base64 data URIs (the
    Snakemake report embeds every result file that way), raw bytes."""
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        frame = table.to_pandas()
        parts = [str(table.schema.metadata or {}), " ".join(map(str, frame.columns))]
        parts += ["\n".join(map(str, frame[c].tolist())) for c in frame.columns]
        return "\n".join(parts).encode()
    return _unpack(path.read_bytes())


def _unpack(data: bytes) -> bytes:
    if zipfile.is_zipfile(_io.BytesIO(data)):
        with zipfile.ZipFile(_io.BytesIO(data)) as z:
            return b"\n".join(_unpack(z.read(n)) for n in z.namelist())
    embedded = [_unpack(base64.b64decode(m.group(1))) for m in DATA_URI.finditer(data)]
    return b"\n".join([data, *embedded])


def leaks(folder: Path, needles: list[str]) -> dict[str, list[str]]:
    """file -> needles found in it, for every file under `folder`."""
    pattern = re.compile("|".join(re.escape(n) for n in needles).encode())
    found: dict[str, list[str]] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        hits = {m.group().decode() for m in pattern.finditer(readable_text(path))}
        if hits:
            found[str(path.relative_to(folder))] = sorted(hits)[:5]
    return found


# ------------------------------------------------------------------ the demo run (slow, shared)
@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return reference_run(tmp_path_factory)


@pytest.mark.slow
def test_no_raw_id_in_any_output_file(demo):
    """Every file under results/ (tables, models, figures, report, provenance) is grepped."""
    ids = raw_ids()
    assert len(ids) > 500  # 522 people + 40 therapists
    files = [p for p in demo.results.rglob("*") if p.is_file()]
    assert len(files) > 50 and (demo.results / "clean" / "patients.parquet") in files
    found = leaks(demo.results, ids)
    assert not found, f"raw IDs under results/: {found}"


@pytest.mark.slow
def test_no_raw_id_or_key_in_the_report(demo):
    """`make report` packs results into one HTML file as base64 data URIs: decoded and grepped."""
    report = with_report(demo)
    embedded = DATA_URI.findall(report.read_bytes())
    assert len(embedded) > 10
    found = leaks(report.parent, [*raw_ids(), DEMO_KEY])
    assert not {k: v for k, v in found.items() if k == "report.html"}, found


@pytest.mark.slow
def test_demo_key_and_free_text_never_written(demo):
    needles = [DEMO_KEY, DEMO_KEY.encode().hex()]
    assert not leaks(demo.results, needles)
    assert not leaks(demo.workdir / "logs", [DEMO_KEY])


@pytest.mark.slow
def test_pseudonyms_in_results_are_the_keyed_hmac(demo):
    patients = pd.read_parquet(demo.results / "clean" / "patients.parquet")
    raw = pd.read_csv(DEMO / "patients.csv", dtype=str)
    expected = {pseudonym(r, "patient", DEMO_KEY.encode()) for r in raw["subject"]}
    assert set(patients["patient"]) == expected
    therapists = {pseudonym(t, "therapist", DEMO_KEY.encode()) for t in raw["therapist"].dropna()}
    assert set(patients["therapist"].dropna()) == therapists


@pytest.mark.slow
def test_descriptive_tables_of_the_demo_suppress_small_cells(demo):
    min_cell = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["privacy"]["min_cell"]
    tables = sorted((demo.results / "tables").glob("*.csv"))
    assert tables, "no rendered tables"
    assert not small_count_cells(tables, min_cell)


@pytest.mark.slow
def test_pipeline_ran_without_network(demo):
    """The reference run happened in a network namespace where no connection can be made."""
    prefix = offline_prefix()
    if not prefix:
        pytest.skip("unshare -n is not permitted here; the in-process socket test covers it")
    assert demo.offline and (demo.results / "provenance.json").exists()
    probe = "import socket; socket.create_connection(('192.0.2.1', 80), timeout=2)"
    proc = subprocess.run([*prefix, sys.executable, "-c", probe], capture_output=True, text=True)
    assert proc.returncode != 0 and "unreachable" in proc.stderr.lower(), proc.stderr


# ------------------------------------------------------------------------ in-process (fast)
COUNT_CELL = re.compile(r"^(\d+) \(\d")  # "n (x%)" cells of descriptive tables


def small_count_cells(tables: list[Path], min_cell: int) -> list[str]:
    bad = []
    for path in tables:
        for row in pd.read_csv(path, dtype=str, keep_default_na=False).itertuples(index=False):
            for cell in row:
                m = COUNT_CELL.match(cell.strip())
                if m and 0 < int(m.group(1)) < min_cell:
                    bad.append(f"{path.name}: {cell!r}")
    return bad


def base_config(**data) -> dict:
    cfg, _ = load_case("therapist_one_patient")  # any case: only its base paths are used
    cfg["data"]["sessions"] = str(BASE / "sessions.csv")
    cfg["data"]["patients"] = str(BASE / "patients.csv")
    cfg["data"].update(data)
    return cfg


@pytest.fixture
def no_key_env(monkeypatch):
    monkeypatch.delenv("ALLIANCE_PSEUDONYM_KEY", raising=False)


def test_pseudonym_is_hmac_sha256_of_kind_and_id():
    key = b"k3y"
    digest = hmac.new(key, b"patient:BI-P01", hashlib.sha256).hexdigest()
    assert pseudonym("BI-P01", "patient", key) == f"P-{digest[:10]}"
    assert pseudonym("BI-P01", "therapist", key) != pseudonym("BI-P01", "patient", key)[0] + "x"
    values = pd.Series(["BI-P01", None, "BI-P01", "BI-P02"])
    out = pseudonymise(values, "patient", key)
    assert out.isna().tolist() == [False, True, False, False] and out[0] == out[2] != out[3]


def test_pseudonyms_stable_across_reruns_and_change_with_the_key(no_key_env, monkeypatch):
    cfg = validate_config(base_config())
    first = clean_trial(Settings.from_config(cfg).clean()).patients["patient"].tolist()
    assert clean_trial(Settings.from_config(cfg).clean()).patients["patient"].tolist() == first
    monkeypatch.setenv("ALLIANCE_PSEUDONYM_KEY", "another key, 16 bytes or more")  # env wins
    other = clean_trial(Settings.from_config(cfg).clean()).patients["patient"].tolist()
    assert set(first).isdisjoint(other)


def test_free_text_dropped_at_read_time_unless_kept(no_key_env, tmp_path):
    cfg = validate_config(base_config())
    result = clean_trial(Settings.from_config(cfg).clean())
    assert "notes" not in result.patients and "notes" not in result.sessions
    paths = write_clean(result, tmp_path / "dropped")
    assert not leaks(tmp_path / "dropped", [FREE_TEXT, "BI-P0", "BI-T"]), paths
    kept = clean_trial(Settings.from_config(base_config(keep_columns=["notes"])).clean())
    assert FREE_TEXT in kept.patients["notes"].tolist()


def test_keeping_an_id_column_is_refused(no_key_env):
    with pytest.raises(ConfigError, match="raw IDs"):
        clean_trial(Settings.from_config(base_config(keep_columns=["therapist"])).clean())


def test_every_descriptive_table_suppresses_small_cells(no_key_env, tmp_path):
    """The render stage's tables on a 6-patient trial: every count below min_cell is withheld."""
    cfg = base_config()
    cfg["models"] = {"use_defaults": False}
    cfg = validate_config(cfg)
    results = tmp_path / "results"
    clean = clean_trial(Settings.from_config(cfg).clean())
    write_clean(clean, results / "clean")
    scores = run_score(clean.sessions, clean.patients, Settings.from_config(cfg).score_stage())
    write_score(scores, results / "scores")
    files.write_csv(summarise({}), results / "models" / "summary.csv")
    build_tables(results, Settings.from_config(cfg).render(), results / "tables")
    tables = sorted((results / "tables").glob("*.csv"))
    assert any(t.name.startswith("table1") for t in tables)
    table1 = (results / "tables" / "table1_baseline.csv").read_text()
    assert "< 5" in table1  # 3 patients per arm: every site cell is small
    assert not small_count_cells(tables, cfg["privacy"]["min_cell"])
    assert not leaks(results, ["BI-P0", "BI-T"])


def test_clean_score_and_models_open_no_socket(no_key_env, tmp_path, monkeypatch):
    """Library calls of every stage run with sockets disabled (complements `unshare -n`)."""

    def refuse(*args, **kwargs):
        raise AssertionError("a network socket was opened")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    cfg = validate_config(base_config())
    clean = clean_trial(Settings.from_config(cfg).clean())
    settings = Settings.from_config(cfg)
    score = run_score(clean.sessions, clean.patients, settings.score_stage())
    specs = [s for s in load_specs(settings.models) if s.kind in ("lmm", "glmm", "gee", "pool")][:3]
    assert specs
    for spec in specs:
        result, timing = fit_model(spec, score.analysis, score.patient_analysis,
                                   clean.availability, settings.model_stage())  # fmt: skip
        write_result(result, timing, tmp_path / spec.id)
