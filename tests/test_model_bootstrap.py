"""Sharded cluster bootstrap of model coefficients: identical for 1 and 8 shards."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pandas as pd
import pytest
from conftest import FIXTURE_KEY, ROOT, demo_config

from alliance.clean.stage import clean_trial
from alliance.errors import ConfigError
from alliance.models.base import FitContext
from alliance.models.run import fit_model
from alliance.models.spec import load_specs
from alliance.score.stage import run_score
from alliance.settings import BootstrapRun, Settings
from alliance.simulate.export import write_trial
from alliance.simulate.trial import simulate_trial
from alliance.studies import bootstrap as mb
from alliance.studies.bootstrap_config import check_models

N_BOOT = 6


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """Scored tables of a small simulated trial, and its settings."""
    folder = tmp_path_factory.mktemp("trial")
    write_trial(simulate_trial(n_patients=96, n_therapists=12, seed=3), folder)
    cfg = copy.deepcopy(demo_config())
    cfg["data"]["sessions"] = str(folder / "sessions.csv")
    cfg["data"]["patients"] = str(folder / "patients.csv")
    cfg["alliance"]["instruments_dir"] = str(ROOT / "config" / "instruments")
    cfg["privacy"]["key"] = FIXTURE_KEY  # the demo key is refused on other data
    settings = Settings.from_config(cfg)
    clean = clean_trial(settings.clean())
    scored = run_score(clean.sessions, clean.patients, settings.score_stage())
    return scored.analysis, scored.patient_analysis, clean.availability, settings


def _draws(spec, tables, run: BootstrapRun, n_shards):
    sessions, patients, availability, _ = tables
    result, _ = fit_model(spec, sessions, patients, availability, run.model_stage())
    terms = result.coefficients["term"].tolist()
    shards = [
        mb.shard_draws(spec, sessions, patients, availability, run, terms, (i, n_shards))
        for i in range(n_shards)
    ]
    return mb.gather_draws(shards, terms), result


def _run(tables) -> BootstrapRun:
    """The bootstrap study's view with N_BOOT replicates."""
    run = tables[3].bootstrap_study()
    return dataclasses.replace(run, bootstrap=dataclasses.replace(run.bootstrap, n_boot=N_BOOT))


def test_lmm_draws_identical_for_1_and_8_shards(tables):
    run = _run(tables)
    spec = {s.id: s for s in load_specs(run.models)}["symptoms_lagged"]
    one, result = _draws(spec, tables, run, 1)
    eight, _ = _draws(spec, tables, run, 8)  # more shards than replicates: some are empty
    pd.testing.assert_frame_equal(one, eight, check_exact=True)
    assert one["replicate"].tolist() == list(range(N_BOOT))
    assert list(one.columns[1:]) == result.coefficients["term"].tolist()
    assert one.drop(columns="replicate").notna().all().all()
    # resampling moved the estimates, and the CI table covers every coefficient
    ci = mb.intervals(one, result.coefficients, 0.95)
    assert (one["alliance_within_prior"] != result.coefficients.set_index("term").loc[
        "alliance_within_prior", "estimate"]).all()  # fmt: skip
    assert ci["term"].tolist() == result.coefficients["term"].tolist()
    assert (ci["n_ok"] == N_BOOT).all() and (ci["pct_low"] <= ci["pct_high"]).all()


def test_mediation_draws_equal_the_models_own_bootstrap(tables):
    run = _run(tables)
    base = {s.id: s for s in load_specs(run.models)}["mediation_personality"]
    spec = dataclasses.replace(base, options={**base.options, "n_boot": N_BOOT})
    three, result = _draws(spec, tables, run, 3)
    pd.testing.assert_frame_equal(three, result.extras["boot"], check_exact=True)


def test_patients_of_a_therapist_drawn_twice_are_two_patients(tables, monkeypatch):
    sessions, _, _, settings = tables
    spec = {s.id: s for s in load_specs(settings.models)}["symptoms_lagged"]
    frame = sessions.dropna(subset=["therapist"]).head(40).assign(therapist="0")
    twice = pd.concat([frame, frame.assign(therapist="1")], ignore_index=True)
    seen = []

    def spy(spec, frame, context):
        seen.append(frame["patient"].nunique())
        raise np.linalg.LinAlgError("singular")

    monkeypatch.setattr(mb, "kind_function", lambda kind: spy)
    context = FitContext.from_settings(settings.model_stage())
    out = mb.statistic(spec, context, ["x"], "therapist")(twice)
    assert seen == [2 * frame["patient"].nunique()]
    assert np.isnan(out["x"])  # a failed refit is a NaN replicate, not a failed shard


def test_unknown_models_and_zero_shards_are_config_errors(tables):
    boot = tables[3].bootstrap
    assert check_models(boot, ["symptoms_growth"]) is boot
    with pytest.raises(ConfigError, match="unknown model id"):
        check_models(dataclasses.replace(boot, models=("nope",)), ["symptoms_growth"])
    with pytest.raises(ConfigError, match="shards"):
        Settings.from_config({**demo_config(), "bootstrap": {"shards": 0}})
