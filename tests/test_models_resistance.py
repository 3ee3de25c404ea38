"""Issue #14's default models on a small simulated trial: missed sessions (slot rows aligned as
the dropout hazard), adherence (binomial with trials), reporting, alliance x TRD, ruptures known
before the outcome, and the combination arm class in the by-arm model (docs/estimands.md)."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import FIXTURE_KEY, ROOT, demo_config, proportion_only

from alliance.clean.resistance import resistance_availability
from alliance.clean.stage import clean_trial
from alliance.models.person_period import slot_rows
from alliance.models.run import fit_model, summarise
from alliance.models.spec import load_specs
from alliance.score.ruptures import prior_rupture_flags
from alliance.score.stage import run_score
from alliance.settings import Settings
from alliance.simulate.export import write_trial
from alliance.simulate.trial import simulate_trial

NEW = (
    "symptoms_by_trd", "dropout_hazard_by_trd", "symptoms_by_stage", "dropout_hazard_by_stage",
    "missed_sessions", "adherence_alliance",
    "reporting_alliance", "symptoms_after_ruptures", "missed_after_ruptures",
    "dropout_after_ruptures",
)  # fmt: skip


def _stages(folder: Path, arm_codes: dict[str, str] | None = None) -> dict[str, Any]:
    """Simulate 160 patients, clean and score them with the demo config (arm codings edited)."""
    trial = simulate_trial(seed=1414, n_patients=160, n_therapists=16)
    write_trial(trial, folder)
    cfg = copy.deepcopy(demo_config())
    cfg["data"]["sessions"] = str(folder / "sessions.csv")
    cfg["data"]["patients"] = str(folder / "patients.csv")
    cfg["alliance"]["instruments_dir"] = str(ROOT / "config" / "instruments")
    cfg["privacy"]["key"] = FIXTURE_KEY
    if arm_codes:
        cfg["codings"]["arm"].update(arm_codes)
    settings = Settings.from_config(cfg)
    clean = clean_trial(settings.clean())
    scored = run_score(clean.sessions, clean.patients, settings.score_stage())
    return {"clean": clean, "scored": scored, "settings": settings.model_stage(), "all": settings}


@pytest.fixture(scope="module")
def trial(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _stages(tmp_path_factory.mktemp("resistance"))


def _fit(
    run: dict[str, Any],
    model_id: str,
    tables: tuple[pd.DataFrame, dict[str, Any]] | None = None,
    **changes: Any,
):
    """Fit a default model on the trial (or on `tables`: sessions and availability)."""
    settings = run["settings"]
    spec = {s.id: s for s in load_specs(settings.models)}[model_id]
    spec = dataclasses.replace(spec, **changes) if changes else spec
    scored = run["scored"]
    sessions, availability = tables or (scored.analysis, run["clean"].availability)
    result, _ = fit_model(spec, sessions, scored.patient_analysis, availability, settings)
    return result


@pytest.mark.parametrize("model_id", [*NEW, "adherence_alliance_share"])
def test_new_default_models_fit_on_a_simulated_trial(trial, model_id):
    only_shares = model_id == "adherence_alliance_share"
    result = _fit(trial, model_id, _shares(trial) if only_shares else None)
    assert result.fit["status"] == "fitted", result.fit["reason"]
    terms = set(result.coefficients["term"])
    assert set(result.fit["key_terms"]) <= terms
    assert np.isfinite(result.coefficients["std_error"]).all()


def test_slot_rows_are_the_schedule_slots_between_attended_sessions(trial):
    """One row per scheduled slot after an attended session up to the next attended one."""
    analysis = trial["scored"].analysis
    rows = slot_rows(analysis)
    sched = trial["clean"].schedule
    between = sched[(sched["last_attended_index"] >= 1) & (sched["after_last_attended"] == 0)]
    want = between.groupby(["patient", "last_attended_index"])["missed"].agg(["size", "sum"])
    got = rows.groupby(["patient", "session_index"])["event"].agg(["size", "sum"])
    got.index.names = want.index.names
    pd.testing.assert_frame_equal(got.astype("int64"), want.astype("int64"))
    # each run: misses first, then the attended session; predictors from the last attended one
    first = rows.drop_duplicates(["patient", "session_index"])
    key = ["patient", "session_index", "alliance"]
    merged = first[key].merge(analysis[key], on=key[:2], suffixes=("", "_row"))
    assert np.allclose(merged["alliance"], merged["alliance_row"], equal_nan=True)
    last = rows.groupby(["patient", "session_index"]).tail(1)
    assert (last["event"] == 0).all() and rows["event"].sum() == between["missed"].sum()


def test_missed_sessions_recovers_a_negative_alliance_slope(trial):
    result = _fit(trial, "missed_sessions")
    coefs = result.coefficients.set_index("term")
    assert coefs.loc["alliance_rc", "estimate"] < coefs.loc["alliance", "estimate"] < 0
    info = result.fit["frame"]["person_period"]
    assert info["rows"] == "slots" and info["events_in_table"] == result.frame["event"].sum()


def test_adherence_is_a_binomial_of_doses_in_the_pill_arms(trial):
    result = _fit(trial, "adherence_alliance")
    assert "weights = doses_prescribed" in result.fit["formula_r"]
    assert set(result.frame["arm"].astype(str)) == {"IMI-CM", "PLA-CM"}
    assert result.coefficients.set_index("term").loc["alliance_lag1", "estimate"] > 0
    # the same likelihood as one Bernoulli row per dose: the binomial counts are used, not rows
    assert result.fit["n_obs"] == len(result.frame) and result.frame["doses_prescribed"].gt(1).any()


ADHERENCE_MODELS = ("adherence_alliance", "adherence_alliance_share")


def _shares(run: dict[str, Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The trial with adherence as a 0-1 proportion only (no dose counts)."""
    return proportion_only(run["scored"].analysis, run["clean"].availability, run["all"])


def _no_adherence(run: dict[str, Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The trial without any adherence measure, as the clean stage records it."""
    sessions = _shares(run)[0].drop(columns=["adherence"])
    entry = resistance_availability(sessions, pd.DataFrame(), run["all"].treatment_resistance,
                                    run["all"].self_report, None)["adherence"]  # fmt: skip
    return sessions, {**run["clean"].availability, "adherence": entry}


def test_exactly_one_adherence_model_runs_and_the_other_says_why(trial):
    """Counted doses: the binomial GLMM; a proportion only: the fractional-logit GEE; neither:
    both skipped. The skipped one names the measure it needs and why it is not there."""
    counted = {m: _fit(trial, m).fit for m in ADHERENCE_MODELS}
    assert counted["adherence_alliance"]["status"] == "fitted"
    assert counted["adherence_alliance_share"]["status"] == "skipped"
    assert counted["adherence_alliance_share"]["reason"].startswith(
        "needs adherence.proportion_only: doses are counted"
    )
    shares = {m: _fit(trial, m, _shares(trial)) for m in ADHERENCE_MODELS}
    glmm = shares["adherence_alliance"].fit
    assert glmm["status"] == "skipped"
    assert glmm["reason"].startswith("needs adherence.dose_counts: adherence is a proportion")
    gee = shares["adherence_alliance_share"]
    assert gee.fit["status"] == "fitted", gee.fit["reason"]
    facts = {k: gee.fit[k] for k in ("kind", "fractional", "corstr", "cluster")}
    assert facts == {"kind": "gee", "fractional": True, "corstr": "exchangeable",
                     "cluster": "patient"}  # fmt: skip
    assert "Papke & Wooldridge" in gee.fit["notes"][0]
    assert set(gee.frame["arm"].astype(str)) == {"IMI-CM", "PLA-CM"}
    assert not gee.frame["adherence"].isin([0.0, 1.0]).all()  # a proportion, not 0/1
    coefs = gee.coefficients.set_index("term")
    assert 0 < coefs.loc["alliance_lag1", "estimate"] < coefs.loc["alliance_lag1_rc", "estimate"]
    assert gee.fit["reliability_correction"]["term"] == "alliance_lag1"
    neither = {m: _fit(trial, m, _no_adherence(trial)) for m in ADHERENCE_MODELS}
    summary = summarise(neither).set_index("model")
    for model_id, needs in zip(ADHERENCE_MODELS, ("dose_counts", "proportion_only"), strict=True):
        row = summary.loc[model_id]
        assert row["status"] == "skipped"
        assert row["reason"].startswith(f"needs adherence.{needs}: no medication adherence")


def test_models_skip_with_the_reason_when_the_data_lack_the_measure(trial):
    availability = copy.deepcopy(trial["clean"].availability)
    availability["attendance"] = {"available": False, "reason": "no schedule (test)"}
    availability["treatment_resistance"]["trd"] = False
    availability["treatment_resistance"]["staging"] = False  # failed trials known, no stage
    scored, settings = trial["scored"], trial["settings"]
    specs = {s.id: s for s in load_specs(settings.models)}
    for model_id, needs in (("missed_sessions", "attendance"),
                            ("symptoms_by_trd", "treatment_resistance.trd"),
                            ("symptoms_by_stage", "treatment_resistance.staging"),
                            ("dropout_hazard_by_stage",
                             "treatment_resistance.staging")):  # fmt: skip
        result, _ = fit_model(
            specs[model_id], scored.analysis, scored.patient_analysis, availability, settings
        )
        assert result.fit["status"] == "skipped"
        assert result.fit["reason"].startswith(f"needs {needs}")
        if needs.endswith("staging"):
            assert "no staging score (columns.staging_score" in result.fit["reason"]


def test_rupture_flags_use_only_sessions_before_the_row():
    """A drop into session 3 is known from session 4; its repair at 5 from session 6."""
    rows = []
    series = {"a": [4.0, 4.0, 2.0, 2.5, 4.0, 4.0], "b": [4.0, 4.1, 3.9, 4.0, 4.1, 4.0],
              "c": [4.0, 3.9, 4.0, 4.1, 4.0, 3.9]}  # fmt: skip
    for pid, scores in series.items():
        rows += [{"patient": pid, "session": s, "alliance": v} for s, v in enumerate(scores, 1)]
    table = pd.DataFrame(rows)
    flags = prior_rupture_flags(table, k=2.0, m=3)
    a = flags[table["patient"] == "a"]
    assert a["rupture_unrepaired_prior"].tolist()[1:] == [0, 0, 1, 1, 0]
    assert a["rupture_repaired_prior"].tolist()[1:] == [0, 0, 0, 0, 1]
    assert np.isnan(a["rupture_unrepaired_prior"].iloc[0])  # nothing rated before session 1
    assert flags.loc[table["patient"] != "a"].fillna(0).eq(0).all().all()


def test_combination_is_an_arm_class_in_the_by_arm_slopes(tmp_path):
    """An arm coded `combination` gets its class row; a contrast may name it."""
    run = _stages(tmp_path, {"IMI-CM": "combination"})
    settings = run["settings"]
    spec = {s.id: s for s in load_specs(settings.models)}["symptoms_by_arm"]
    contrasts = [
        *spec.options["contrasts"],
        {"name": "combination_vs_placebo", "plus": "combination", "minus": "placebo"},
    ]
    result = _fit(run, "symptoms_by_arm", options={**spec.options, "contrasts": contrasts})
    slopes = result.extras["simple_slopes"]
    classes = set(slopes.loc[slopes["type"] == "class", "level"])
    assert classes == {"combination", "placebo", "psychotherapy"}
    combo = slopes[(slopes["level"] == "combination")].set_index("term")["estimate"]
    arm = slopes[(slopes["level"] == "IMI-CM")].set_index("term")["estimate"]
    pd.testing.assert_series_equal(combo, arm, check_names=False)
    table = result.extras["contrasts"]
    assert set(table["contrast"]) >= {"combination_vs_placebo"}
    assert any("drug_vs_placebo" in w and "not computed" in w for w in result.fit["warnings"])
    adherence = _fit(run, "adherence_alliance")  # combination takes pills too
    assert set(adherence.frame["arm"].astype(str)) == {"IMI-CM", "PLA-CM"}
