"""Parameter-recovery study: config, summaries, calibration checks, shard invariance, CI run.

The slow CI-sized run (20 replicates of config/validate.yaml's design) asserts that every checked
parameter's CIs and SEs are calibrated within a binomial / chi-square band that flakes with
probability < 1e-3 when the SEs are right, and that the same check rejects SEs halved.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from alliance.clean.stage import clean_trial
from alliance.errors import ConfigError, InputError
from alliance.score.stage import run_score
from alliance.simulate.export import write_trial
from alliance.simulate.trial import simulate_trial
from alliance.studies import recovery, recovery_results, recovery_study

ROOT = Path(__file__).resolve().parents[1]
STUDY_FILE = ROOT / "config" / "validate.yaml"


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    # study and pipeline configs name their files relative to the repo root, as in `make validate`
    monkeypatch.chdir(ROOT)


def _study(**edits) -> dict:
    study = recovery_study.load_study(STUDY_FILE)
    for key, value in edits.items():
        node = study
        *parents, last = key.split("__")
        for part in parents:
            node = node[part]
        node[last] = value
    return study


# ----------------------------------------------------------------------------------------- config
def test_shipped_study_config_is_valid_and_full_size() -> None:
    study = recovery_study.load_study(STUDY_FILE)
    assert study["replicates"] >= 200
    checks = {recovery_study.check_id(c): c for c in study["checks"]}
    for key in (
        "symptoms_growth:alliance_ther",
        "symptoms_growth:alliance_pat",
        "symptoms_growth:alliance_within",
        "symptoms_growth:weeks:alliance_pat",
        "symptoms_lagged:alliance_within_lag1",
        "dropout_hazard:alliance_lag1",
        "recovery_relapse_cox:alliance_mean",
    ):
        assert key in checks
    assert checks["symptoms_lagged:alliance_within_lag1"]["outcome_model"] == "lagged"
    assert checks["recovery_relapse_cox:alliance_mean"]["reference"] == "generating"
    pipe = recovery.pipeline(study)
    assert set(pipe.specs) == {
        "symptoms_growth", "symptoms_lagged", "dropout_hazard", "recovery_relapse_cox"
    }  # fmt: skip
    # extras-only options are dropped; options that change the fit are kept
    assert "predictions" not in pipe.specs["symptoms_growth"].options
    assert pipe.specs["symptoms_growth"].options["reml"] is True


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"replicate": 10}, "replicate"),
        ({"simulator": {"beta_X": 1.0}}, "beta_X"),
        ({"checks": [{"model": "m", "term": "t", "generating": "beta_Z"}]}, "beta_Z"),
        ({"checks": [{"model": "m", "term": "t", "generating": "beta_S"}] * 2}, "twice"),
        ({"shards": 0}, "shards"),
    ],
)
def test_bad_study_config_names_the_key(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        recovery_study.validate_study(raw)


def test_check_of_unknown_model_is_a_config_error() -> None:
    study = _study(checks=[{"model": "nope", "term": "x", "generating": "beta_S",
                            "outcome_model": "growth", "per_sd": False,
                            "reference": "target"}])  # fmt: skip
    with pytest.raises(ConfigError, match="nope"):
        recovery.pipeline(study)


def test_seeds_depend_on_study_seed_and_index_only() -> None:
    a = [recovery.replicate_seed(7, r) for r in range(50)]
    assert len(set(a)) == 50
    assert a == [recovery.replicate_seed(7, r) for r in range(50)]
    assert recovery.replicate_seed(8, 0) != a[0]
    assert recovery.target_seed(7, 0) not in a


def test_generating_value_weights_arm_multipliers_by_arm_share() -> None:
    truth = {"params": {"beta_P": -0.7, "beta_S": -1.0,
                        "beta_P_arm_multiplier": {"CBT": 1.0, "IPT": 1.0, "IMI-CM": 0.6,
                                                  "PLA-CM": 1.6}}}  # fmt: skip
    balanced = {"CBT": 60, "IPT": 60, "IMI-CM": 60, "PLA-CM": 60}
    assert recovery.generating_value("beta_P", truth, balanced) == pytest.approx(-0.7 * 1.05)
    assert recovery.generating_value("beta_S", truth, balanced) == -1.0
    placebo_only = {"PLA-CM": 10}
    assert recovery.generating_value("beta_P", truth, placebo_only) == pytest.approx(-0.7 * 1.6)


# ------------------------------------------------------------------------- summaries on made data
def _made_replicates(se_factor: float = 1.0, n: int = 20, seed: int = 3) -> pd.DataFrame:
    """Estimates ~ N(true, sd) with the right SE (times se_factor) and z-based 95 % CIs."""
    rng = np.random.default_rng(seed)
    rows = []
    for check, true, sd in (("m:a", -1.0, 0.2), ("m:b", 0.5, 0.05)):
        est = true + sd * rng.standard_normal(n)
        se = np.full(n, sd * se_factor)
        for r in range(n):
            rows.append(
                {"kind": "replicate", "replicate": r, "seed": r, "check": check, "model": "m",
                 "term": check[2:], "outcome_model": "growth", "status": "fitted", "reason": "",
                 "converged": True, "singular": False, "n_obs": 100, "estimate": est[r],
                 "std_error": se[r], "ci_low": est[r] - 1.96 * se[r],
                 "ci_high": est[r] + 1.96 * se[r], "scale": 1.0, "generating": true}
            )  # fmt: skip
    frame = pd.DataFrame(rows, columns=recovery_results.REPLICATE_COLUMNS)
    return recovery_results.typed_rows(frame)


def _made_target() -> pd.DataFrame:
    return pd.DataFrame(
        {"check": ["m:a", "m:b"], "model": "m", "term": ["a", "b"], "generating": [-1.0, 0.5],
         "target": [-1.0, 0.5], "target_se": 0.0, "n_trials": 1, "n_fitted": 1,
         "reference": "target", "true_value": [-1.0, 0.5], "true_value_se": 0.0}
    )  # fmt: skip


def test_coverage_floor_is_the_binomial_alpha_quantile() -> None:
    for n, alpha in ((20, 1e-3), (20, 1e-3 / 6), (200, 1e-3)):
        k = recovery_results.coverage_floor(n, 0.95, alpha)
        assert stats.binom.cdf(k - 1, n, 0.95) <= alpha < stats.binom.cdf(k, n, 0.95)
    # values quoted in the report: 20 replicates, 6 checks sharing alpha = 1e-3
    assert recovery_results.coverage_floor(20, 0.95, 1e-3 / 6) == 14
    assert recovery_results.coverage_floor(20, 0.95, 1e-3) == 15


def test_calibration_passes_right_ses_and_rejects_halved_and_doubled_ses() -> None:
    target = _made_target()
    assert recovery_results.calibration_problems(_made_replicates(1.0), target) == []
    halved = recovery_results.calibration_problems(_made_replicates(0.5), target)
    assert {p.split(":")[0] + ":" + p.split(":")[1] for p in halved} == {"m:a", "m:b"}
    assert any("mean z^2" in p for p in halved)
    doubled = recovery_results.calibration_problems(_made_replicates(2.0, n=40), target)
    assert doubled and all("mean z^2" in p for p in doubled)


def test_calibration_reports_failed_replicates_beyond_the_allowed_share() -> None:
    reps = _made_replicates()
    reps.loc[0, ["status", "estimate"]] = ["failed", np.nan]
    assert recovery_results.calibration_problems(reps, _made_target()) == []
    problems = recovery_results.calibration_problems(reps, _made_target(), max_failed=0.0)
    assert problems == ["m:a: 1 of 20 replicates failed"]


def test_summarise_by_hand() -> None:
    reps = _made_replicates().query("check == 'm:a'").head(4).copy()
    est = np.array([-1.2, -0.8, -1.1, -0.6])
    reps["estimate"] = est
    reps["std_error"] = 0.1
    reps["ci_low"] = est - 0.19
    reps["ci_high"] = est + 0.19
    reps.loc[reps.index[3], "converged"] = False
    target = _made_target().head(1)
    target = target.assign(target=-1.05, target_se=0.01, true_value=-1.05, true_value_se=0.01)
    row = recovery_results.summarise(reps, target).iloc[0]
    assert row["mean_estimate"] == pytest.approx(-0.925)
    assert row["bias"] == pytest.approx(0.125)
    assert row["relative_bias"] == pytest.approx(0.125 / 1.05)
    assert row["rmse"] == pytest.approx(np.sqrt(np.mean((est + 1.05) ** 2)))
    assert row["sd_estimate"] == pytest.approx(est.std(ddof=1))
    assert row["se_ratio"] == pytest.approx(0.1 / est.std(ddof=1))
    assert row["bias_mcse"] == pytest.approx(np.sqrt(est.var(ddof=1) / 4 + 0.01**2))
    # CIs [-1.39,-1.01], [-0.99,-0.61], [-1.29,-0.91], [-0.79,-0.41]: the first and third hold
    # the true value -1.05; only the third holds the generating value -1.0
    assert row["coverage"] == pytest.approx(0.5)
    assert row["coverage_mcse"] == pytest.approx(0.25)
    assert row["coverage_generating"] == pytest.approx(0.25)
    assert row["gap"] == pytest.approx(-0.05)
    assert (row["n_used"], row["n_failed"], row["n_not_converged"]) == (4, 0, 1)


def test_gather_sorts_and_rejects_gaps_and_overlaps() -> None:
    reps = _made_replicates()
    shards = [reps[reps["replicate"] >= 10], reps[reps["replicate"] < 10]]
    out, targets = recovery_results.gather(shards, 20, 0)
    assert out["replicate"].is_monotonic_increasing and len(out) == 40 and targets.empty
    with pytest.raises(InputError, match="overlap or leave gaps"):
        recovery_results.gather([reps[reps["replicate"] != 5]], 20, 0)
    with pytest.raises(InputError, match="overlap or leave gaps"):
        recovery_results.gather([reps, reps[reps["replicate"] == 5]], 20, 0)


# ----------------------------------------------------------------------------- pipeline pieces
def test_analysis_tables_equal_the_score_stage(tmp_path: Path) -> None:
    study = _study()
    pipe = recovery.pipeline(study)
    trial = simulate_trial(n_patients=80, n_therapists=8, n_sessions=8, seed=11, mc_therapists=8)
    write_trial(trial, tmp_path, fmt="parquet")
    settings = recovery.trial_settings(pipe.settings, tmp_path)
    cleaned = clean_trial(settings.clean())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the therapist form's unverified key
        full = run_score(cleaned.sessions, cleaned.patients, settings.score_stage())
    analysis, patients = recovery.analysis_tables(cleaned.sessions, cleaned.patients,
                                                  settings.score, pipe.raters)  # fmt: skip
    pd.testing.assert_frame_equal(analysis, full.analysis)
    assert set(patients.columns) <= set(full.patient_analysis.columns)
    pd.testing.assert_frame_equal(patients, full.patient_analysis[patients.columns])


@pytest.mark.slow
def test_gathered_results_identical_for_one_and_eight_shards() -> None:
    # a small design keeps this quick; failures (e.g. too few relapses) must match too
    study = _study(replicates=3, design={"patients": 64, "therapists": 8, "sessions": 6},
                   target={"scale": 1, "trials": 2})  # fmt: skip
    pipe = recovery.pipeline(study)
    one = recovery_results.gather([recovery.run_shard(study, 0, 1, pipe)], 3, 2)
    # more shards than trials: empty shards must gather to the same tables too
    eight = recovery_results.gather([recovery.run_shard(study, i, 8, pipe) for i in range(8)], 3, 2)
    for a, b in zip(one, eight, strict=True):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert one[0]["replicate"].tolist() == sorted(one[0]["replicate"].tolist())
    assert set(one[0]["replicate"]) == {0, 1, 2} and set(one[1]["replicate"]) == {0, 1}


# The lagged model's autoregression: its model-based SE is about half the replicates' SD
# (measured 0.018 vs 0.034 over 200 replicates; the random-intercept model ignores the serial
# dependence its omitted random slope leaves). Reported in recovery.csv, not asserted calibrated.
NOT_CALIBRATED = {"symptoms_lagged:symptom_lag1"}


@pytest.mark.slow
def test_ci_sized_recovery_is_calibrated() -> None:
    # 20 replicates of the shipped design, run as 4 shards; smaller target trials than the full
    # study (their MC error, ~0.3 replicate SD, is in the bands' slack).
    n = 20
    study = _study(replicates=n, target={"scale": 10, "trials": 2})
    pipe = recovery.pipeline(study)
    shards = [recovery.run_shard(study, i, 4, pipe) for i in range(4)]
    replicates, target_rows = recovery_results.gather(shards, n, 2)
    target = recovery_results.target_table(target_rows, study)
    assert target["n_fitted"].eq(2).all()
    asserted = target[~target["check"].isin(NOT_CALIBRATED)]
    assert len(asserted) >= 7
    problems = recovery_results.calibration_problems(replicates, asserted)
    assert problems == [], problems
    summary = recovery_results.summarise(replicates, target).set_index("check")
    # replicate 17 has 9 relapses, too few for a Cox model: skipped and counted, not hidden
    assert summary["n_failed"].to_dict() == {
        c: int(c.startswith("recovery_relapse_cox")) for c in summary.index
    }
    # the growth model's session-level effect is attenuated by measurement error, not more
    within = summary.loc["symptoms_growth:alliance_within"]
    assert -1.0 < within["target"] < -0.6
    # dynamic-panel bias pushes the lagged model's autoregression above the simulator's 0.4
    assert summary.loc["symptoms_lagged:symptom_lag1", "gap"] > 0.05
    # the same estimates with SEs (and CI half-widths) halved must fail the check
    halved = replicates.copy()
    mid = (halved["ci_low"] + halved["ci_high"]) / 2
    halved["std_error"] /= 2
    halved["ci_low"] = mid - (mid - halved["ci_low"]) / 2
    halved["ci_high"] = mid + (halved["ci_high"] - mid) / 2
    caught = {p.split(": ")[0] for p in recovery_results.calibration_problems(halved, asserted)}
    assert caught == set(asserted["check"])
