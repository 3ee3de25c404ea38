"""One results folder per trial (config `output`), checks before any job runs, stale outputs.

- The column list model specs are checked against (alliance.models.columns) equals what the clean
  and score stages write, on both demo exports and on variants of the bad-input fixture.
- `preflight`: model-term typos (with a "did you mean"), study model ids, data files and the key,
  all reported at once; through Snakemake it fails in seconds and writes or removes nothing.
- Stale outputs of an earlier config are removed by the run's first job, never in a dry run.
- Two trials with different `output` run side by side in one folder and leave each other alone.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml
from conftest import FIXTURE_KEY
from pipeline_runs import command, environment
from test_bad_inputs import BASE, load_case
from workflow_helpers import ROOT, absolute_config, run_snakemake

from alliance.clean.stage import clean_trial
from alliance.config import load_config, validate_config
from alliance.errors import ConfigError
from alliance.models.columns import model_tables, spec_problems
from alliance.models.preflight import (
    clear_folder,
    preflight,
    remove_stale,
    stale_models,
    stale_studies,
)
from alliance.models.spec import load_specs, spec_from_dict
from alliance.score.stage import run_score
from alliance.settings import Settings

TYPO = {
    "id": "growth_typo",
    "kind": "lmm",
    "outcome": "symptom",
    "fixed": ["weeks", "alliance_pat_priro"],
    "random": "(1 | patient)",
}


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch):
    """Keys come from the configs (the demo key, the fixture key), never from the shell."""
    monkeypatch.delenv("ALLIANCE_PSEUDONYM_KEY", raising=False)


def _base(**edits) -> dict:
    """The bad-input base fixture (a clean 6-patient trial) with nested `edits`."""
    cfg = yaml.safe_load((BASE / "config.yaml").read_text())
    cfg["data"]["sessions"] = str(BASE / "sessions.csv")
    cfg["data"]["patients"] = str(BASE / "patients.csv")
    cfg["alliance"]["instruments_dir"] = str(ROOT / "config" / "instruments")
    for dotted, value in edits.items():
        node = cfg
        *parents, last = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return cfg


def _written(settings: Settings) -> dict[str, set[str]]:
    clean = clean_trial(settings.clean())
    score = run_score(clean.sessions, clean.patients, settings.score_stage())
    return {
        "sessions": set(score.analysis.columns),
        "patients": set(score.patient_analysis.columns),
    }


# ------------------------------------------------------------------------------ the column list
@pytest.mark.parametrize("name", ["config.yaml", "demo_wide_spss.yaml"])
def test_the_column_list_is_what_the_score_stage_writes_on_the_demo(name):
    settings = Settings.from_config(load_config(ROOT / "config" / name))
    listed = model_tables(settings)
    for table, columns in _written(settings).items():
        assert set(listed[table]) == columns, (
            f"{table}: written but not listed {sorted(columns - set(listed[table]))}; listed "
            f"but not written {sorted(set(listed[table]) - columns)}"
        )


VARIANTS = {
    "base": {},
    "no_detrend": {"score__detrend": False},
    "therapist_rater_too": {
        "alliance__raters__therapist": {"instrument": "wai_sr_t", "items": "^wai_t_(\\d+)$"}
    },
    "suicidality_covariates_kept": {
        "columns__suicidality": "hamd_suicide",
        "columns__covariates": ["age", "sex"],
        "data__keep_columns": ["agreeableness"],
    },
    "no_remission_cutoff": {
        "symptoms__remission_cutoff": None,
        "columns__relapse_time": None,
        "columns__relapse_event": None,
    },  # fmt: skip
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_column_list_follows_the_config(variant, tmp_path):
    """Config switches add or drop exactly the columns they add or drop in the stages."""
    cfg = _base(**VARIANTS[variant])
    if variant != "therapist_rater_too":
        cfg["alliance"]["raters"]["therapist"] = None
    else:  # therapist items for the fixture: the patient's answers, shifted
        frame = (BASE / "sessions.csv").read_text().splitlines()
        header = frame[0].split(",")
        items = [i for i, h in enumerate(header) if h.startswith("wai_p_")]
        out = [",".join([*header, *(header[i].replace("_p_", "_t_") for i in items)])]
        for line in frame[1:]:
            cells = line.split(",")
            out.append(",".join([*cells, *(cells[i] for i in items)]))
        (tmp_path / "sessions.csv").write_text("\n".join(out) + "\n")
        cfg["data"]["sessions"] = str(tmp_path / "sessions.csv")
    if "columns__suicidality" in VARIANTS[variant]:
        frame = (BASE / "sessions.csv").read_text().splitlines()
        out = [frame[0] + ",hamd_suicide"] + [f"{line},{i % 3}" for i, line in enumerate(frame[1:])]
        (tmp_path / "sessions.csv").write_text("\n".join(out) + "\n")
        cfg["data"]["sessions"] = str(tmp_path / "sessions.csv")
        patients = (BASE / "patients.csv").read_text().splitlines()
        extra = [patients[0] + ",age,sex,agreeableness"]
        extra += [f"{line},{30 + i},{'FM'[i % 2]},{40 + i}" for i, line in enumerate(patients[1:])]
        (tmp_path / "patients.csv").write_text("\n".join(extra) + "\n")
        cfg["data"]["patients"] = str(tmp_path / "patients.csv")
    settings = Settings.from_config(cfg)
    listed = model_tables(settings)
    for table, columns in _written(settings).items():
        assert set(listed[table]) == columns, (table, sorted(columns ^ set(listed[table])))


# ------------------------------------------------------------------------------ spec problems
def _problems(**spec) -> list[str]:
    settings = Settings.from_config(load_config(ROOT / "config" / "config.yaml"))
    raw = {k: v for k, v in {**TYPO, **spec}.items() if v is not None}
    return spec_problems([spec_from_dict(raw)], settings)


def test_a_term_typo_names_the_model_the_term_and_the_closest_column():
    (message,) = _problems()
    assert "model 'growth_typo', key fixed" in message
    assert "'alliance_pat_priro'" in message and "did you mean 'alliance_pat_prior'?" in message


@pytest.mark.parametrize(
    ("edit", "key", "bad", "suggestion"),
    [
        ({"random": "(1 + weeks | pateint)"}, "random", "pateint", "patient"),
        ({"random": "(1 + weks | patient)"}, "random", "weks", "weeks"),
        ({"outcome": "symptm"}, "outcome", "symptm", "symptom"),
        ({"subset": "session_indx > 1"}, "subset", "session_indx", "session_index"),
        ({"fixed": ["weeks:alliance_withn_prior"]}, "fixed", "alliance_withn_prior",
         "alliance_within_prior"),
    ],
)  # fmt: skip
def test_random_parts_outcome_subset_and_interactions_are_checked(edit, key, bad, suggestion):
    (message,) = _problems(**{"fixed": ["weeks"], **edit})
    assert f"key {key}: '{bad}'" in message and f"did you mean '{suggestion}'?" in message


def test_options_naming_columns_are_checked_in_the_patient_table():
    problems = _problems(
        kind="cox", data="patients", outcome="relapse_event", fixed=["alliance_mean"],
        random=None, options={"duration": "relapse_tiem", "event": "relapse_event"},
    )  # fmt: skip
    assert len(problems) == 1 and "patient_analysis.parquet" in problems[0]
    assert "did you mean 'relapse_time'?" in problems[0]


def test_every_default_model_passes_and_unavailable_measures_are_not_typos():
    settings = Settings.from_config(load_config(ROOT / "config" / "config.yaml"))
    assert spec_problems(load_specs(settings.models), settings) == []
    # The fixture maps no agency or modality: models naming them are skipped or drop the terms
    # at fit time with the reason, as before; not a config error.
    base = Settings.from_config(_base())
    assert spec_problems(load_specs(base.models), base) == []


# ---------------------------------------------------------------------------------- preflight
def test_preflight_reports_every_problem_at_once(tmp_path):
    cfg = _base(
        data__patients=str(tmp_path / "absent.csv"),
        bootstrap__models=["symptoms_growht"],
        sensitivity__models=["growth_typo"],
        models__custom=[TYPO],
    )
    settings = Settings.from_config(cfg)
    with pytest.raises(ConfigError) as info:
        preflight(settings, load_specs(settings.models))
    text = str(info.value)
    assert "nothing was written or removed" in text
    assert "data.patients: file not found" in text and "absent.csv" in text
    assert "bootstrap.models: 'symptoms_growht'" in text and "'symptoms_growth'?" in text
    assert "'alliance_pat_priro'" in text
    assert "sensitivity.models: 'growth_typo'" not in text  # a model of this config


def test_preflight_checks_the_key_policy():
    settings = Settings.from_config(_base(privacy__key=None))
    with pytest.raises(ConfigError, match="no pseudonymisation key"):
        preflight(settings, load_specs(settings.models))
    settings = Settings.from_config(_base(privacy__key=FIXTURE_KEY))
    preflight(settings, load_specs(settings.models))


# ------------------------------------------------------------------------------ stale outputs
def _touch(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_stale_outputs_are_exactly_what_the_config_no_longer_produces(tmp_path):
    res = tmp_path / "results"
    for model in ("kept", "gone"):
        _touch(res / "models" / model / "fit.json")
    _touch(res / "models" / "notes" / "mine.txt")  # not a model folder: left alone
    _touch(res / "models" / "summary.csv")
    _touch(res / "bootstrap" / "kept" / "ci.csv")
    for k in range(3):
        _touch(res / "bootstrap" / "kept" / "shards" / f"{k}.parquet")
    _touch(res / "bootstrap" / "gone" / "draws.parquet")
    _touch(res / "sensitivity" / "grid.csv")
    _touch(res / "sensitivity" / "shards" / "0.parquet")
    _touch(res / "validation" / "recovery.csv")

    def stale(**studies):
        return [*stale_models(res, ["kept"]), *stale_studies(res, **studies)]

    found = stale(bootstrap=["kept"], bootstrap_shards=2)
    rel = sorted(p.relative_to(res).as_posix() for p in found)
    assert rel == [
        "bootstrap/gone", "bootstrap/kept/shards/2.parquet", "models/gone",
        "sensitivity/grid.csv", "sensitivity/shards",
    ]  # fmt: skip
    assert len(remove_stale(found)) == 5
    assert stale(bootstrap=["kept"], bootstrap_shards=2) == []
    for kept in ("models/notes/mine.txt", "models/summary.csv", "validation/recovery.csv",
                 "bootstrap/kept/shards/1.parquet", "models/kept/fit.json"):  # fmt: skip
        assert (res / kept).exists(), kept
    _touch(res / "sensitivity" / "shards" / "4.parquet")
    assert stale(sensitivity=["kept"], sensitivity_shards=2, bootstrap=["kept"],
                 bootstrap_shards=2)  # fmt: skip
    _touch(res / "models" / "kept" / "simple_slopes.csv")
    assert clear_folder(res / "models" / "kept") == ["fit.json", "simple_slopes.csv"]


def _fake_old_results(work: Path) -> dict[str, str]:
    """An earlier run's outputs: a model since renamed, a bootstrap and grid since removed."""
    made = {
        "results/models/growth_old/fit.json": "{}",
        "results/models/growth_old/simple_slopes.csv": "a,b\n",
        "results/bootstrap/growth_old/ci.csv": "term\n",
        "results/sensitivity/grid.csv": "cell\n",
        "results/clean/flow.csv": "step,arm,n\n",
        "results/validation/recovery.csv": "x\n",
    }
    for rel, text in made.items():
        _touch(work / rel, text)
    return made


def _digests(work: Path) -> dict[str, str]:
    return {
        str(p.relative_to(work)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((work / "results").rglob("*"))
        if p.is_file()
    }


def _case_config(work: Path, name: str) -> Path:
    cfg, _ = load_case(name)
    config = work / "config.yaml"
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return config


@pytest.mark.slow
def test_the_first_jobs_remove_stale_outputs_and_a_dry_run_does_not(tmp_path):
    cfg = _base(models__use_defaults=False, models__custom=[{**TYPO, "id": "growth_new",
                "fixed": ["weeks", "alliance_pat_prior"]}])  # fmt: skip
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    _fake_old_results(tmp_path)
    before = _digests(tmp_path)
    dry = run_snakemake(tmp_path, config, extra=("-n",))
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "prune_models" in dry.stdout + dry.stderr and "prune_studies" in dry.stdout + dry.stderr
    assert _digests(tmp_path) == before
    targets = ("results/models/fitted.json", "results/studies.json")
    proc = run_snakemake(tmp_path, config, *targets)
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = _digests(tmp_path)
    gone = {k for k in before if "growth_old" in k or "sensitivity" in k}
    assert set(before) - set(after) == gone
    assert not (tmp_path / "results/models/growth_old").exists()
    assert {*targets, "results/validation/recovery.csv"} <= set(after)
    log = (tmp_path / "logs" / "prune_models.log").read_text()
    assert "models/growth_old" in log and "the current config does not produce it" in log
    fitted = json.loads((tmp_path / "results/models/fitted.json").read_text())
    assert fitted == {"models": ["growth_new"], "removed": ["models/growth_old"]}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["model_term_typo", "random_part_typo"])
def test_a_model_typo_stops_the_workflow_within_seconds(name, tmp_path):
    """The `make run` command on a config with a typo: the model id, the term and a suggestion
    within 10 s, before any job (nothing written, old results untouched)."""
    config = _case_config(tmp_path, name)
    _fake_old_results(tmp_path)
    before = _digests(tmp_path)
    start = time.monotonic()
    proc = subprocess.run(command(tmp_path, config), capture_output=True, text=True,
                          env=environment(), timeout=120)  # fmt: skip
    elapsed = time.monotonic() - start
    assert proc.returncode != 0
    said = proc.stderr + proc.stdout
    case = yaml.safe_load((ROOT / "tests/bad_inputs" / name / "case.yaml").read_text())
    for part in case["expect"]["message"]:
        assert part in said, said[-3000:]
    assert "did you mean" in said
    assert elapsed < 10, f"took {elapsed:.1f} s"
    assert _digests(tmp_path) == before


@pytest.mark.slow
def test_a_missing_key_leaves_old_results_untouched(tmp_path):
    config = _case_config(tmp_path, "missing_key_with_old_results")
    _fake_old_results(tmp_path)
    before = _digests(tmp_path)
    proc = subprocess.run(command(tmp_path, config), capture_output=True, text=True,
                          env=environment(), timeout=120)  # fmt: skip
    assert proc.returncode != 0
    assert "no pseudonymisation key" in proc.stderr + proc.stdout
    assert _digests(tmp_path) == before
    assert not (tmp_path / "logs").exists()


# ------------------------------------------------------------------------- trials side by side
@pytest.mark.slow
def test_two_trials_run_side_by_side_and_leave_each_other_alone(tmp_path):
    """The long CSV demo and the wide SPSS demo, each with its own `output`, started together
    in one working directory: both complete; each folder holds only its own trial's results,
    logs and job timings; a no-op rerun of one changes nothing of the other."""
    long_cfg = absolute_config(ROOT / "config/config.yaml", tmp_path, "long.yaml",
                               output="trial_long")  # fmt: skip
    wide_cfg = absolute_config(ROOT / "config/demo_wide_spss.yaml", tmp_path, "wide.yaml",
                               output="out/trial_wide")  # fmt: skip
    assert load_config(long_cfg)["output"] != load_config(wide_cfg)["output"]
    procs: dict[str, subprocess.CompletedProcess] = {}

    def run(name: str, cfg: Path) -> None:
        procs[name] = subprocess.run(command(tmp_path, cfg), capture_output=True, text=True,
                                     env=environment(), timeout=1800)  # fmt: skip

    threads = [threading.Thread(target=run, args=a) for a in (("long", long_cfg),
                                                              ("wide", wide_cfg))]  # fmt: skip
    for t in threads:
        t.start()
        time.sleep(1)
    for t in threads:
        t.join()
    for name, proc in procs.items():
        assert proc.returncode == 0, f"{name}:\n{proc.stderr[-3000:]}"
    long, wide = tmp_path / "trial_long", tmp_path / "out" / "trial_wide"
    assert not (tmp_path / "results").exists()
    for folder in (long, wide):
        assert (folder / "provenance.json").is_file() and (folder / "tables").is_dir()
    assert (tmp_path / "logs" / "trial_long" / "clean.log").is_file()
    assert (tmp_path / "out" / "logs" / "trial_wide" / "clean.log").is_file()
    prov = json.loads((wide / "provenance.json").read_text())
    assert prov["config"]["data"]["sessions"].endswith("trial_wide.sav")
    assert prov["config"]["output"] == "out/trial_wide"
    timings = {s["job"] for s in prov["stages"]}
    assert "clean" in timings and len(timings) == len(prov["stages"])  # its own jobs, once each
    snapshot = {p: p.stat().st_mtime_ns for p in long.rglob("*") if p.is_file()}
    again = subprocess.run(command(tmp_path, wide_cfg), capture_output=True, text=True,
                           env=environment(), timeout=600)  # fmt: skip
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    assert {p: p.stat().st_mtime_ns for p in long.rglob("*") if p.is_file()} == snapshot


# ----------------------------------------------------------------------------- path resolution
def test_paths_written_in_a_config_are_relative_to_its_folder(tmp_path, monkeypatch):
    """A config next to its data works from any working directory; `output` written in it is
    relative to it too; left out, `output` is results/ in the working directory and the
    instruments are the bundled ones."""
    trial = tmp_path / "trial"
    trial.mkdir()
    shutil.copy(BASE / "sessions.csv", trial / "sessions.csv")
    shutil.copy(BASE / "patients.csv", trial / "patients.csv")
    raw = copy.deepcopy(yaml.safe_load((BASE / "config.yaml").read_text()))
    raw["data"] = {"sessions": "sessions.csv", "patients": "./patients.csv"}
    (trial / "my.yaml").write_text(yaml.safe_dump(raw))
    elsewhere = tmp_path / "repo"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(trial / "my.yaml")
    assert cfg["data"]["sessions"] == str(trial / "sessions.csv")
    assert cfg["data"]["patients"] == str(trial / "patients.csv")
    assert cfg["output"] == "results"
    assert cfg["alliance"]["instruments_dir"] == str(ROOT / "config" / "instruments")
    clean_trial(Settings.from_config(cfg).clean())  # reads the files from anywhere
    raw["output"] = "out"
    raw["alliance"]["instruments_dir"] = "../instruments"
    (trial / "my.yaml").write_text(yaml.safe_dump(raw))
    cfg = load_config(trial / "my.yaml")
    assert cfg["output"] == str(trial / "out")
    assert cfg["alliance"]["instruments_dir"] == str(tmp_path / "instruments")
    monkeypatch.chdir(tmp_path)  # inside the working directory: given relative to it
    assert load_config(trial / "my.yaml")["output"] == "trial/out"
    raw["alliance"]["instruments_dir"] = "config/instruments"  # the default names the bundled
    (trial / "my.yaml").write_text(yaml.safe_dump(raw))
    bundled = load_config(trial / "my.yaml")["alliance"]["instruments_dir"]
    assert bundled == str(ROOT / "config" / "instruments")


@pytest.mark.parametrize("output", ["/tmp", "..", ".", "../elsewhere"])
def test_the_results_folder_stays_inside_the_config_folder_or_the_project(
    output, tmp_path, monkeypatch
):
    folder = tmp_path / "trial" / "config"
    folder.mkdir(parents=True)
    raw = yaml.safe_load((BASE / "config.yaml").read_text())
    raw["data"] = {"sessions": str(BASE / "sessions.csv")}
    raw["output"] = output
    (folder / "c.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path / "trial")
    if output == "..":  # the working directory itself
        with pytest.raises(ConfigError, match="config key output"):
            load_config(folder / "c.yaml")
        return
    if output == "../elsewhere":  # inside the working directory: allowed
        assert load_config(folder / "c.yaml")["output"] == "elsewhere"
        return
    with pytest.raises(ConfigError, match="config key output"):
        load_config(folder / "c.yaml")


def test_the_shipped_configs_read_the_repository_data_from_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, data in (("config.yaml", "data/demo/sessions.csv"),
                       ("demo_wide_spss.yaml", "data/demo_wide/trial_wide.sav")):  # fmt: skip
        cfg = load_config(ROOT / "config" / name)
        assert cfg["data"]["sessions"] == str(ROOT / data)
        assert cfg["alliance"]["instruments_dir"] == str(ROOT / "config" / "instruments")
        assert cfg["output"] == "results"
    assert validate_config(_base())["output"] == "results"


# ------------------------------------------------------------------------------------ commands
def test_alliance_validate_runs_the_checks_before_reading_data(tmp_path, capsys):
    from alliance.cli import main

    cfg, _ = load_case("model_term_typo")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert main(["validate", "--configfile", str(config)]) == 1
    out = capsys.readouterr().out
    assert "INVALID" in out and "did you mean 'alliance_pat_prior'?" in out


def test_alliance_output_prints_the_results_folder(tmp_path, capsys, monkeypatch):
    from alliance.cli import main

    monkeypatch.chdir(tmp_path)
    config = absolute_config(ROOT / "config/config.yaml", tmp_path, output="trial_a")
    assert main(["output", "--configfile", str(config)]) == 0
    assert capsys.readouterr().out.strip() == "trial_a"
    config.write_text(config.read_text().replace("output: trial_a", "output: /"))
    assert main(["output", "--configfile", str(config)]) == 1
    assert "config key output" in capsys.readouterr().err
