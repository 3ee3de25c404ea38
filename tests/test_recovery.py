"""Parameter-recovery study: config, checks from truth.json, scoring against each replicate's
truth, verdicts, shard invariance, and a CI-sized run.

The scoring logic is tested on made rows and a small fake truth (the format the simulator
writes: truth["estimands"], one entry per default model key term). The CI-sized run (slow)
asserts that every identified term's CIs and SEs are calibrated within a binomial / chi-square
band that flakes with probability < 1e-3 when the SEs are right, and that the same check rejects
SEs halved.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from alliance.clean.stage import clean_trial
from alliance.errors import ConfigError, InputError
from alliance.score.stage import analysis_tables, run_score
from alliance.simulate.export import write_trial
from alliance.simulate.trial import simulate_trial
from alliance.studies import recovery, recovery_results, recovery_study

ROOT = Path(__file__).resolve().parents[1]
STUDY_FILE = ROOT / "config" / "validate.yaml"
RR = recovery_results


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


def _entry(model: str, term: str, value: float | None, identified: bool = True) -> dict:
    return {"model": model, "term": term, "value": value, "identified": identified,
            "reason": "yes" if identified else "no: descriptive", "parameter": "p"}  # fmt: skip


FAKE_TRUTH = {
    "params": {"dropout_beta_alliance": -1.3, "beta_lag": -1.2},
    "estimands": [
        _entry("dropout_hazard", "alliance", -1.15),
        _entry("relapse_cox", "alliance_mean", -0.9),
        _entry("symptoms_growth", "alliance_pat_prior", None, identified=False),
    ],
}


# ----------------------------------------------------------------------------------------- config
def test_shipped_study_config_is_valid_and_full_size() -> None:
    study = recovery_study.load_study(STUDY_FILE)
    assert study["replicates"] == 500 and study["shards"] >= 2
    assert study["design"] == {"patients": 480, "therapists": 48, "sessions": 12}
    assert "target" not in study and "checks" not in study
    (extra,) = study["extra_checks"]
    assert extra["parameter"] == "dropout_beta_alliance" and extra["identified"] is True
    pipe = recovery.pipeline(study)
    # every default spec is available (the truth decides which are checked), plus the extra one
    assert {"dropout_hazard", "relapse_cox", "dropout_hazard_lag1"} <= set(pipe.specs)
    # extras-only options are dropped; options that change the fit are kept
    assert "predictions" not in pipe.specs["dropout_hazard"].options
    assert pipe.specs["dropout_hazard_lag1"].options["time"] == "quadratic"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"replicate": 10}, "replicate"),
        ({"simulator": {"beta_X": 1.0}}, "beta_X"),
        ({"extra_checks": [{"model": "m", "term": "t", "parameter": "beta_Z"}]}, "beta_Z"),
        ({"extra_checks": [{"model": "m", "term": "t", "parameter": "arm_time"}]}, "arm_time"),
        ({"extra_checks": [{"model": "m", "term": "t", "parameter": "beta_lag"}] * 2}, "twice"),
        ({"extra_checks": [{"model": "m", "term": "t", "generating": "beta_lag"}]}, "generating"),
        ({"target": {"scale": 2}}, "target"),
        ({"shards": 0}, "shards"),
    ],
)
def test_bad_study_config_names_the_key(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        recovery_study.validate_study(raw)


def test_extra_check_of_unknown_model_is_a_config_error() -> None:
    study = _study(extra_checks=[{"model": "nope", "term": "x", "parameter": "beta_lag",
                                  "identified": True, "reason": ""}])  # fmt: skip
    with pytest.raises(ConfigError, match="nope"):
        recovery.pipeline(study)


def test_seeds_depend_on_study_seed_and_index_only() -> None:
    a = [recovery.replicate_seed(7, r) for r in range(50)]
    assert len(set(a)) == 50
    assert a == [recovery.replicate_seed(7, r) for r in range(50)]
    assert recovery.replicate_seed(8, 0) != a[0]


# ---------------------------------------------------------------------------- checks from truth
def test_checks_come_from_truth_estimands_then_the_study() -> None:
    study = _study()
    checks = recovery.checks_for(study, FAKE_TRUTH)
    assert [c["check"] for c in checks] == [
        "dropout_hazard:alliance", "relapse_cox:alliance_mean",
        "symptoms_growth:alliance_pat_prior", "dropout_hazard_lag1:alliance_lag1",
    ]  # fmt: skip
    assert [c["position"] for c in checks] == [0, 1, 2, 3]
    assert [c["source"] for c in checks] == ["estimand"] * 3 + ["study"]
    assert checks[0]["truth"] == -1.15 and checks[0]["identified"] is True
    assert math.isnan(checks[2]["truth"]) and checks[2]["identified"] is False
    # the extra check's truth is the simulator parameter it names
    assert checks[3]["truth"] == -1.3 and checks[3]["parameter"] == "dropout_beta_alliance"


def test_checks_refuse_nothing_to_check_duplicates_and_bad_entries() -> None:
    bare = _study(extra_checks=[])
    with pytest.raises(InputError, match="nothing to check"):
        recovery.checks_for(bare, {"params": {}})
    twice = {"params": {}, "estimands": [_entry("m", "t", 1.0)] * 2}
    with pytest.raises(InputError, match="checked twice"):
        recovery.checks_for(bare, twice)
    broken = {"params": {}, "estimands": [{"model": "m", "term": "t"}]}
    with pytest.raises(InputError, match="lacks key"):
        recovery.checks_for(bare, broken)


class _FakeResult:
    def __init__(self, terms: dict[str, float]) -> None:
        self.fit = {"status": "fitted", "reason": "", "converged": True, "singular": False,
                    "n_obs": 100}  # fmt: skip
        self.coefficients = pd.DataFrame(
            [{"term": t, "estimate": v, "std_error": 0.1, "ci_low": v - 0.196,
              "ci_high": v + 0.196} for t, v in terms.items()]
        )  # fmt: skip


def test_fit_checks_fits_each_valued_model_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def fake_fit(pipe, model, trial):
        calls.append(model)
        if model == "relapse_cox":
            return ("failed", "too few events")
        return _FakeResult({"alliance": -1.1, "other": 0.0})

    monkeypatch.setattr(recovery, "_fit", fake_fit)
    truth = {"params": {}, "estimands": [
        _entry("dropout_hazard", "alliance", -1.15), _entry("dropout_hazard", "missing", 0.0),
        _entry("relapse_cox", "alliance_mean", -0.9),
        _entry("symptoms_growth", "alliance_pat_prior", None, identified=False),
    ]}  # fmt: skip
    rows = recovery.fit_checks(recovery.checks_for(_study(extra_checks=[]), truth), None, {})
    assert calls == ["dropout_hazard", "relapse_cox"]  # once each; the valueless one never
    by = {r["check"]: r for r in rows}
    assert by["dropout_hazard:alliance"]["estimate"] == -1.1
    assert by["dropout_hazard:alliance"]["status"] == "fitted"
    assert by["dropout_hazard:missing"]["status"] == "failed"
    assert by["relapse_cox:alliance_mean"]["reason"] == "too few events"
    growth = by["symptoms_growth:alliance_pat_prior"]
    assert growth["status"] == "not fitted" and "descriptive" in growth["reason"]
    # fit_unidentified: false lists an unidentified term with a value without fitting it
    truth["estimands"].append(_entry("dropout_gee", "alliance_early", -1.3, identified=False))
    calls.clear()
    checks = recovery.checks_for(_study(extra_checks=[]), truth)
    rows = recovery.fit_checks(checks, None, {}, fit_unidentified=False)
    assert "dropout_gee" not in calls and rows[-1]["status"] == "not fitted"
    summary = RR.summarise(RR.typed_rows(pd.DataFrame(
        [{"replicate": 0, "seed": 0, **r} for r in rows], columns=RR.REPLICATE_COLUMNS
    ))).set_index("check")  # fmt: skip
    gee = summary.loc["dropout_gee:alliance_early"]
    assert (gee["failed"], gee["truth"], gee["verdict"]) == (0, -1.3, "not identified")
    assert summary.loc["dropout_hazard:missing", "failed"] == 1


def test_a_model_outside_the_specs_is_skipped_not_fatal() -> None:
    pipe = recovery.pipeline(_study())
    assert recovery._fit(pipe, "no_such_model", {})[0] == "skipped"


# ------------------------------------------------------------------------- summaries on made data
def _made(truths: dict[str, float], se_factor: float = 1.0, n: int = 20, seed: int = 3,
          sds: dict[str, float] | None = None, shift: float = 0.0) -> pd.DataFrame:  # fmt: skip
    """Estimates ~ N(truth_r, sd) with the right SE (times se_factor) and z-based 95 % CIs.

    truth_r varies a little by replicate (as the Cox per-point truth does)."""
    rng = np.random.default_rng(seed)
    rows = []
    for position, (check, truth) in enumerate(truths.items()):
        sd = (sds or {}).get(check, 0.2)
        true_r = truth * (1 + 0.05 * rng.standard_normal(n))
        est = true_r + shift + sd * rng.standard_normal(n)
        se = np.full(n, sd * se_factor)
        for r in range(n):
            rows.append(
                {"replicate": r, "seed": r, "position": position, "check": check,
                 "model": check.split(":")[0], "term": check.split(":")[1],
                 "source": "estimand", "parameter": "p", "identified": True,
                 "truth_reason": "yes", "truth": true_r[r], "status": "fitted", "reason": "",
                 "converged": True, "singular": False, "n_obs": 100, "estimate": est[r],
                 "std_error": se[r], "ci_low": est[r] - 1.96 * se[r],
                 "ci_high": est[r] + 1.96 * se[r]}
            )  # fmt: skip
    return RR.typed_rows(pd.DataFrame(rows, columns=RR.REPLICATE_COLUMNS))


def test_summarise_by_hand_against_each_replicates_truth() -> None:
    reps = _made({"m:a": -1.0}).head(4).copy()
    truth = np.array([-1.0, -1.1, -0.9, -1.0])
    est = np.array([-1.1, -0.8, -1.0, -0.6])
    reps["truth"], reps["estimate"], reps["std_error"] = truth, est, 0.1
    reps["ci_low"], reps["ci_high"] = est - 0.19, est + 0.19
    reps.loc[reps.index[3], "converged"] = False
    row = RR.summarise(reps).iloc[0]
    err = est - truth  # -0.1, 0.3, -0.1, 0.4
    assert row["truth"] == pytest.approx(-1.0)
    assert row["mean_estimate"] == pytest.approx(-0.875)
    assert row["bias"] == pytest.approx(0.125)
    assert row["relative_bias"] == pytest.approx(0.125)
    assert row["mc_se"] == pytest.approx(err.std(ddof=1) / 2)
    assert row["rmse"] == pytest.approx(np.sqrt(np.mean(err**2)))
    assert row["se_ratio"] == pytest.approx(0.1 / est.std(ddof=1))
    # CIs [-1.29,-0.91], [-0.99,-0.61], [-1.19,-0.81], [-0.79,-0.41] against truths -1.0, -1.1,
    # -0.9, -1.0: the first and third hold their own replicate's truth
    assert row["coverage_truth"] == pytest.approx(0.5)
    assert row["coverage_mc_se"] == pytest.approx(0.25)
    assert (row["replicates"], row["used"], row["failed"], row["not_converged"]) == (4, 4, 0, 1)
    assert row["verdict"] == "fail"


def test_coverage_uses_that_replicates_truth_not_the_mean_truth() -> None:
    # two replicates, truths -1 and -2, each CI holds its own truth and not the mean -1.5
    reps = _made({"m:a": -1.0}).head(2).copy()
    reps["truth"], reps["estimate"], reps["std_error"] = [-1.0, -2.0], [-1.0, -2.0], 0.1
    reps["ci_low"], reps["ci_high"] = [-1.2, -2.2], [-0.8, -1.8]
    row = RR.summarise(reps).iloc[0]
    assert row["coverage_truth"] == 1.0 and row["bias"] == 0.0 and row["truth"] == -1.5


@pytest.mark.parametrize(
    ("identified", "truth", "bias", "mc_se", "coverage", "expected"),
    [
        (True, -1.0, 0.01, 0.02, 0.95, "pass"),
        (True, -1.0, 0.04, 0.001, 0.93, "pass"),  # within 5 % of |truth|
        (True, -0.1, 0.03, 0.02, 0.97, "pass"),  # 30 % but within 2 MC SE
        (True, -0.1, 0.05, 0.02, 0.95, "fail"),  # 50 % and 2.5 MC SE
        (True, -1.0, 0.0, 0.01, 0.92, "fail"),
        (True, -1.0, 0.0, 0.01, 0.98, "fail"),  # over-coverage (SEs too large) fails too
        (True, 0.0, 0.01, 0.01, 0.95, "pass"),  # truth 0: only the MC SE criterion
        (True, math.nan, math.nan, math.nan, math.nan, "fail"),
        (False, -1.0, 0.5, 0.01, 0.10, "not identified"),
        (False, math.nan, math.nan, math.nan, math.nan, "not identified"),
    ],
)
def test_verdict_rule(identified, truth, bias, mc_se, coverage, expected) -> None:
    assert RR.judge(identified, truth, bias, mc_se, coverage)[0] == expected


def test_summary_passes_calibrated_and_fails_biased_or_overconfident_estimators() -> None:
    truths = {"m:a": -1.0, "m:b": 0.5}
    good = RR.summarise(_made(truths, n=2000)).set_index("check")
    assert good["verdict"].tolist() == ["pass", "pass"]
    assert good["coverage_truth"].between(0.93, 0.97).all()
    biased = RR.summarise(_made(truths, n=2000, shift=0.15)).set_index("check")
    assert biased["verdict"].tolist() == ["fail", "fail"]
    assert "bias" in biased.loc["m:a", "verdict_note"]
    halved = RR.summarise(_made(truths, n=2000, se_factor=0.5)).set_index("check")
    assert halved["verdict"].tolist() == ["fail", "fail"]
    assert halved["coverage_truth"].lt(0.8).all()


def test_unidentified_and_failed_rows_are_reported() -> None:
    reps = _made({"m:a": -1.0, "m:u": 0.3}, n=10)
    unident = reps["check"] == "m:u"
    reps.loc[unident, "identified"] = False
    reps.loc[unident, ["truth", "estimate", "std_error", "ci_low", "ci_high"]] = np.nan
    reps.loc[unident, "status"] = "not fitted"
    reps.loc[unident, "truth_reason"] = "no: running means are error-laden"
    reps.loc[(reps["check"] == "m:a") & (reps["replicate"] == 0), "status"] = "failed"
    summary = RR.summarise(reps).set_index("check")
    assert summary.loc["m:a", ["replicates", "used", "failed"]].tolist() == [10, 9, 1]
    u = summary.loc["m:u"]
    assert u["verdict"] == "not identified" and u["failed"] == 0 and math.isnan(u["truth"])
    assert u["reason"] == "no: running means are error-laden"
    table = RR.verdict_table(summary.reset_index())
    assert table.columns.tolist() == [
        "model", "term", "truth", "mean_estimate", "bias", "relative_bias", "mc_se",
        "coverage_truth", "coverage_mc_se", "replicates", "failed", "identified", "reason",
        "verdict",
    ]  # fmt: skip
    md = RR.to_markdown(summary.reset_index(), _study(replicates=10))
    assert "| m | `u` | – |" in md and "not identified" in md and "[0.93, 0.97]" in md
    assert md.count("\n| m |") == 2
    assert "- m `u`: no: running means are error-laden" in md


def test_coverage_floor_is_the_binomial_alpha_quantile() -> None:
    for n, alpha in ((20, 1e-3), (20, 1e-3 / 6), (200, 1e-3)):
        k = RR.coverage_floor(n, 0.95, alpha)
        assert stats.binom.cdf(k - 1, n, 0.95) <= alpha < stats.binom.cdf(k, n, 0.95)
    assert RR.coverage_floor(20, 0.95, 1e-3 / 6) == 14
    assert RR.coverage_floor(20, 0.95, 1e-3) == 15


def test_calibration_passes_right_ses_and_rejects_halved_and_doubled_ses() -> None:
    truths = {"m:a": -1.0, "m:b": 0.5}
    sds = {"m:a": 0.2, "m:b": 0.05}
    assert RR.calibration_problems(_made(truths, sds=sds)) == []
    halved = RR.calibration_problems(_made(truths, 0.5, sds=sds))
    assert {p.split(": ")[0] for p in halved} == {"m:a", "m:b"}
    assert any("mean z^2" in p for p in halved)
    doubled = RR.calibration_problems(_made(truths, 2.0, n=40, sds=sds))
    assert doubled and all("mean z^2" in p for p in doubled)


def test_calibration_reports_failed_replicates_beyond_the_allowed_share() -> None:
    reps = _made({"m:a": -1.0})
    reps.loc[0, ["status", "estimate"]] = ["failed", np.nan]
    assert RR.calibration_problems(reps) == []
    assert RR.calibration_problems(reps, max_failed=0.0) == ["m:a: 1 of 20 replicates failed"]


def test_gather_sorts_and_rejects_gaps_and_overlaps() -> None:
    reps = _made({"m:a": -1.0, "m:b": 0.5})
    shards = [reps[reps["replicate"] >= 10], reps[reps["replicate"] < 10]]
    out = RR.gather(shards, 20)
    assert out["replicate"].is_monotonic_increasing and len(out) == 40
    assert out["position"].tolist()[:4] == [0, 1, 0, 1]
    with pytest.raises(InputError, match="overlap or leave gaps"):
        RR.gather([reps[reps["replicate"] != 5]], 20)
    with pytest.raises(InputError, match="overlap or leave gaps"):
        RR.gather([reps, reps[reps["replicate"] == 5]], 20)


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
    tables = analysis_tables(cleaned.sessions, cleaned.patients, pipe.raters, settings.score)
    pd.testing.assert_frame_equal(tables.analysis, full.analysis)
    pd.testing.assert_frame_equal(tables.patient_analysis, full.patient_analysis)


@pytest.mark.slow
def test_gathered_results_identical_for_one_and_eight_shards() -> None:
    # a small design keeps this quick; failures (e.g. too few relapses) must match too
    study = _study(replicates=3, design={"patients": 64, "therapists": 8, "sessions": 6})
    pipe = recovery.pipeline(study)
    one = RR.gather([recovery.run_shard(study, 0, 1, pipe)], 3)
    # more shards than replicates: empty shards must gather to the same table too
    eight = RR.gather([recovery.run_shard(study, i, 8, pipe) for i in range(8)], 3)
    pd.testing.assert_frame_equal(one, eight, check_exact=True)
    assert set(one["replicate"]) == {0, 1, 2}
    assert "dropout_hazard_lag1:alliance_lag1" in set(one["check"])
    pd.testing.assert_frame_equal(RR.summarise(one), RR.summarise(eight), check_exact=True)


@pytest.mark.slow
def test_ci_sized_recovery_is_calibrated() -> None:
    # 20 replicates of the shipped design, run as 4 shards: every identified estimand's CIs and
    # SEs must be calibrated against each replicate's truth, and the negative control must not.
    # Unidentified terms are not fitted here (they are never judged): ~1 s per replicate.
    n = 20
    study = _study(replicates=n, fit_unidentified=False)
    pipe = recovery.pipeline(study)
    replicates = RR.gather([recovery.run_shard(study, i, 4, pipe) for i in range(4)], n)
    identified = replicates[replicates["identified"] & (replicates["source"] == "estimand")]
    asserted = sorted(set(identified.loc[np.isfinite(identified["truth"]), "check"]))
    assert asserted, "truth.json lists no identified estimand with a value"
    problems = RR.calibration_problems(replicates, asserted)
    assert problems == [], problems
    control = RR.calibration_problems(replicates, ["dropout_hazard_lag1:alliance_lag1"])
    assert control, "the misaligned negative control passed the calibration check"

    # the same estimates with SEs (and CI half-widths) shrunk must fail the check. Halved: a
    # check's mean z^2 (~ chi2_20 / 20) times 4 leaves its range with probability ~0.85 at 20
    # replicates, so at least two thirds of ~10 checks must catch it (P ~ 0.95); a third of the
    # SE (times 9: probability ~0.999 each) every check must catch.
    def shrunk(factor: float) -> set[str]:
        out = replicates.copy()
        mid = (out["ci_low"] + out["ci_high"]) / 2
        out["std_error"] /= factor
        out["ci_low"] = mid - (mid - out["ci_low"]) / factor
        out["ci_high"] = mid + (out["ci_high"] - mid) / factor
        return {p.split(": ")[0] for p in RR.calibration_problems(out, asserted)}

    halved = shrunk(2)
    assert halved <= set(asserted) and len(halved) >= 2 * len(asserted) / 3, halved
    assert shrunk(3) == set(asserted)
