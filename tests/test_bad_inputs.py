"""The bad-input catalogue (tests/bad_inputs/<case>/): every malformed export or config gives a
precise error (file, row, column, value) or a documented policy action in validation.csv.

Each case folder holds its small fixture files and `case.yaml`:
- `problem`: what is wrong (docs/bad_inputs.md quotes it);
- `config`: edits to tests/bad_inputs/_base/config.yaml (nested keys merge, null unsets;
  relative data / instrument paths are relative to the case folder);
- `stage`: `clean` (default) or `model` (clean + score in memory, then every model's frame);
- `expect`: either `raises` (ValidationFailed / InputError / ConfigError) with `check` and the
  `message` substrings, or the policy outcome: `validation` rows that must be present (an empty
  list: no problem at all), `availability`, `summary`, `values` (that must occur), `message`
  (in validation.csv), `absent` (strings that must not appear in any written file);
- `cli: true`: also run through Snakemake (exit code, log message, nothing half-written).

In-process cases are fast; the Snakemake ones are marked slow.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from workflow_helpers import ROOT, run_snakemake

from alliance.clean.problems import ValidationFailed
from alliance.clean.stage import CleanResult, clean_trial, write_clean
from alliance.errors import ConfigError, InputError
from alliance.models.run import fit_model
from alliance.models.spec import load_specs
from alliance.score.stage import run_score
from alliance.settings import Settings

CASES_DIR = ROOT / "tests" / "bad_inputs"
BASE = CASES_DIR / "_base"
CASES = sorted(p.name for p in CASES_DIR.iterdir() if p.is_dir() and not p.name.startswith("_"))
CLI_CASES = [
    c for c in CASES if yaml.safe_load((CASES_DIR / c / "case.yaml").read_text()).get("cli")
]
ERRORS = {
    "ValidationFailed": ValidationFailed,
    "InputError": InputError,
    "ConfigError": ConfigError,
}
CLEAN_FILES = [
    "sessions.parquet",
    "patients.parquet",
    "flow.csv",
    "validation.csv",
    "availability.json",
]


def merge(base: dict[str, Any], edits: dict[str, Any]) -> dict[str, Any]:
    """Nested dicts merge; anything else (lists, scalars, null) replaces."""
    out = copy.deepcopy(base)
    for key, value in edits.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_case(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(raw config with absolute paths, case spec)."""
    folder = CASES_DIR / name
    case = yaml.safe_load((folder / "case.yaml").read_text(encoding="utf-8"))
    cfg = merge(yaml.safe_load((BASE / "config.yaml").read_text()), case.get("config") or {})
    for key in ("sessions", "patients"):
        if cfg["data"].get(key):
            cfg["data"][key] = str((folder / cfg["data"][key]).resolve())
    inst = cfg["alliance"].get("instruments_dir")
    cfg["alliance"]["instruments_dir"] = (
        str((folder / inst).resolve()) if inst else str(ROOT / "config" / "instruments")
    )
    return cfg, case


def run_case(cfg: dict[str, Any], case: dict[str, Any]) -> CleanResult:
    """What the pipeline does with this input, in memory: validate config, clean (and models)."""
    settings = Settings.from_config(cfg)
    result = clean_trial(settings.clean())
    if case.get("stage") == "model":
        score = run_score(result.sessions, result.patients, settings.score_stage())
        model_view = settings.model_stage()
        for spec in load_specs(settings.models):
            fit_model(spec, score.analysis, score.patient_analysis, result.availability, model_view)
    return result


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch):
    """The key comes from each case's config (privacy.key), never from the caller's shell."""
    monkeypatch.delenv("ALLIANCE_PSEUDONYM_KEY", raising=False)


def test_catalogue_is_large_and_documented():
    assert len(CASES) >= 30
    doc = (ROOT / "docs" / "bad_inputs.md").read_text(encoding="utf-8")
    undocumented = [c for c in CASES if f"`{c}`" not in doc]
    assert not undocumented, f"cases missing from docs/bad_inputs.md: {undocumented}"


def test_base_fixture_is_clean():
    """Each case differs from a problem-free trial, so its defect alone causes the outcome."""
    cfg = yaml.safe_load((BASE / "config.yaml").read_text())
    cfg["data"]["sessions"] = str(BASE / "sessions.csv")
    cfg["data"]["patients"] = str(BASE / "patients.csv")
    cfg["alliance"]["instruments_dir"] = str(ROOT / "config" / "instruments")
    result = run_case(cfg, {})
    assert result.validation.empty
    assert result.summary["patients"] == 6 and result.summary["session_rows"] == 18


def _matches(row: dict[str, Any], want: dict[str, Any]) -> bool:
    for key, value in want.items():
        if key == "file":
            if not str(row["file"]).endswith(value):
                return False
        elif key == "value_prefix":
            if not str(row["value"]).startswith(value):
                return False
        elif key == "value":
            if pd.isna(row["value"]) or float(row["value"]) != float(value):
                return False
        elif row[key] != value:
            return False
    return True


def _availability(avail: dict[str, Any], dotted: str) -> bool:
    node: Any = avail
    for part in dotted.split("."):
        node = node[part]
    return bool(node["available"])


@pytest.mark.parametrize("name", CASES)
def test_case(name, tmp_path):
    cfg, case = load_case(name)
    expect = case["expect"]
    if "raises" in expect:
        with pytest.raises((InputError, ConfigError)) as info:
            run_case(cfg, case)
        err = info.value
        assert type(err) is ERRORS[expect["raises"]], f"{type(err).__name__}: {err}"
        if expect.get("check"):
            assert err.check == expect["check"], str(err)
        text = str(err)
        for part in expect["message"]:
            assert part in text, f"{part!r} not in message: {text}"
        return
    result = run_case(cfg, case)
    rows = result.validation.to_dict("records")
    if expect.get("validation") == []:
        assert rows == [], rows
    for want in expect.get("validation", []):
        assert any(_matches(r, want) for r in rows), f"no validation row like {want}: {rows}"
    for part in expect.get("message", []):
        assert any(part in str(r["message"]) for r in rows), f"{part!r} not in {rows}"
    for dotted, state in (expect.get("availability") or {}).items():
        assert _availability(result.availability, dotted) is state, result.availability
    for key, value in (expect.get("summary") or {}).items():
        assert result.summary[key] == value, result.summary
    for dotted, values in (expect.get("values") or {}).items():
        table, column = dotted.split(".")
        got = set(getattr(result, table)[column].dropna().tolist())
        assert set(values) <= got, f"{dotted}: {values} not all in {sorted(got)}"
    paths = write_clean(result, tmp_path / "clean")
    blob = b"".join(p.read_bytes() for p in paths.values())
    for raw in expect.get("absent", []):
        assert raw.encode() not in blob, f"{raw} written to results/clean"


# ------------------------------------------------------------------------------ via Snakemake
def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.mark.slow
@pytest.mark.parametrize("name", CLI_CASES)
def test_case_through_snakemake(name, tmp_path):
    """The real entry point: exit code, the message in the log, and no half-written results."""
    cfg, case = load_case(name)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    expect = case["expect"]
    if case.get("stage") == "model":
        spec_ids = [s["id"] for s in cfg["models"]["custom"]]
        targets = [f"results/models/{i}/fit.json" for i in spec_ids]
    else:
        targets = [f"results/clean/{n}" for n in CLEAN_FILES]
    proc = run_snakemake(tmp_path, config, *targets)
    results = tmp_path / "results"
    assert not [p for p in _files(results) if ".tmp" in p.name], "temporary file left behind"
    if "raises" not in expect:
        assert proc.returncode == 0, proc.stderr[-3000:]
        validation = pd.read_csv(results / "clean" / "validation.csv")
        for want in expect.get("validation", []):
            assert any(_matches(r, want) for r in validation.to_dict("records"))
        return
    assert proc.returncode != 0
    logs = "".join(p.read_text(errors="replace") for p in _files(tmp_path / "logs"))
    said = proc.stderr + proc.stdout + logs
    for part in expect["message"]:
        assert part in said, f"{part!r} not in the output:\n{said[-3000:]}"
    if case.get("stage") == "model":
        # Upstream stages finished (complete files); the failed model wrote nothing.
        assert not _files(results / "models")
        names = {p.name for p in _files(results / "clean")}
        assert names in (set(), set(CLEAN_FILES))
    else:
        assert not _files(results), f"partial outputs: {_files(results)}"
    # Snakemake records nothing as complete for the failed job: a rerun would redo it.
    meta = tmp_path / ".snakemake" / "incomplete"
    assert not _files(meta)


def test_availability_json_is_plain_json(tmp_path):
    """The policy cases' availability (with recorded skips) round-trips through JSON."""
    cfg, case = load_case("rater_no_data")
    paths = write_clean(run_case(cfg, case), tmp_path)
    avail = json.loads(paths["availability"].read_text())
    assert avail["raters"]["therapist"]["available"] is False
