"""Bootstrap bias correction of the Cox estimate (relapse_cox's `<term>_bc` rows).

References: tests/reference/bootstrap_uniforms.csv (the uniforms the pipeline draws its
replicate data sets from, written by make_bootstrap_uniforms.py) and
bootstrap_bias_reference.csv (R boot on the data sets R rebuilds from them with survival's
Breslow hazard and censoring Kaplan-Meier, refitted with coxph and the survival-only coxphf
estimator: make_bootstrap_bias_reference.R).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.engine.bootstrap import derive_seed
from alliance.engine.survival import fit_cox
from alliance.engine.survival_bias import (
    CoxResampler,
    bootstrap_bias,
    cox_bootstrap_bias,
    replicate_uniforms,
)
from alliance.engine.survival_firth import maximise, risk_sets
from alliance.errors import ConfigError
from alliance.models.base import FitContext, ModelSpec
from alliance.models.cox import fit

REF = Path(__file__).parent / "reference"
FIXED = ("alliance_last", "alliance_mean", "baseline_symptom", "armCBT", "armIMI.CM", "armIPT")
CONTEXT = FitContext(seed=1, arms={}, higher_is_worse=True)  # the uniforms' config seed
N_BOOT = 30  # make_bootstrap_uniforms.py
SPEC = ModelSpec(
    id="relapse_cox",
    kind="cox",
    outcome="relapse_event",
    fixed=FIXED,
    data="patients",
    key_terms=("alliance_last", "alliance_mean", "alliance_last_bc", "alliance_mean_bc"),
    options={
        "cluster": "therapist",
        "ties": "efron",
        "firth": True,
        "se": "model",
        "profile": False,
        "bias_correction": "bootstrap",
        "n_boot": N_BOOT,
    },
)


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return pd.read_csv(REF / "sim_relapse_small.csv", dtype={"therapist": str})


def _reference(case: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    table = pd.read_csv(REF / "bootstrap_bias_reference.csv")
    rows = table[table["case"] == case]
    coef = rows[rows["section"] == "coef"].pivot(index="term", columns="stat", values="value")
    reps = rows[rows["section"] == "replicate"].pivot(index="stat", columns="term", values="value")
    flags = rows[rows["section"] == "flag"].set_index("stat")["value"]
    return coef.loc[list(FIXED)].astype(float), reps[list(FIXED)].astype(float), flags


def _cox(data: pd.DataFrame, firth: bool):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_cox(
            data, "relapse_time", "relapse_event", FIXED, cluster="therapist", firth=firth,
            se="model", profile=False,
        )  # fmt: skip


def test_uniforms_are_the_exported_ones(data):
    """The draws depend only on (seed, replicate, rows): the data sets R rebuilt stay valid."""
    table = pd.read_csv(REF / "bootstrap_uniforms.csv")
    seed = derive_seed(CONTEXT.seed, "relapse_cox")
    for b in range(N_BOOT):
        exported = table[table["replicate"] == b + 1].drop(columns=["replicate", "draw"])
        np.testing.assert_array_equal(replicate_uniforms(seed, b, len(data)), exported.to_numpy())


def test_draws_follow_the_fitted_model(data):
    """A censored patient is never followed longer than observed; event times are the data's;
    with u_event -> 0 nobody has an event (H0 stays finite), and with u_censoring = 1 a patient
    whose event is not redrawn is censored at the first censoring time after it."""
    cox = _cox(data, True)
    model = CoxResampler.fitted(cox._time, cox._event, cox._x, cox.coefficients["estimate"])
    t, d = model.draw(replicate_uniforms(3, 0, len(data)))
    censored = cox._event == 0
    assert (t[censored] <= cox._time[censored]).all()
    assert set(t[d == 1]) <= set(cox._time[cox._event == 1])
    t, d = model.draw(np.r_[np.full((1, len(data)), 1e-300), np.ones((1, len(data)))])
    assert d.sum() == 0 and (t[censored] == cox._time[censored]).all()
    assert (t[~censored] > cox._time[~censored]).all()


@pytest.mark.parametrize(("case", "firth"), [("firth_efron", True), ("mle_efron", False)])
def test_replicates_and_correction_match_r_boot(data, case, firth):
    coef, reps, flags = _reference(case)
    boot = cox_bootstrap_bias(_cox(data, firth), N_BOOT, derive_seed(1, "relapse_cox"))
    failed = ~np.isfinite(boot.draws).all(axis=1)
    # a replicate R coxph says "may be infinite" about is one the engine leaves out
    r_flagged = np.array([flags.get(f"b{b + 1:03d}", 0) == 1 for b in range(N_BOOT)])
    np.testing.assert_array_equal(failed, r_flagged)
    np.testing.assert_allclose(boot.draws[~failed], reps.to_numpy(), atol=2e-6)
    np.testing.assert_allclose(boot.beta, coef["estimate"], atol=2e-6)
    np.testing.assert_allclose(boot.bias, coef["bias"], atol=1e-6)
    np.testing.assert_allclose(boot.corrected, coef["corrected"], atol=2e-6)
    np.testing.assert_allclose(boot.se, coef["bootstrap_se"], rtol=1e-5)


@pytest.fixture(scope="module")
def corrected(data):
    return fit(SPEC, data, CONTEXT)


def test_model_adds_corrected_rows_and_keeps_the_r_rows(data, corrected):
    coef, _, _ = _reference("firth_efron")
    plain = fit(dataclasses.replace(SPEC, options={**SPEC.options, "bias_correction": None}),
                data, CONTEXT)  # fmt: skip
    tab = corrected.coefficients.set_index("term")
    assert list(corrected.coefficients["term"]) == [
        "alliance_last", "alliance_last_bc", "alliance_mean", "alliance_mean_bc",
        "baseline_symptom", "armCBT", "armIMI.CM", "armIPT",
    ]  # fmt: skip
    naive = corrected.coefficients[~corrected.coefficients["term"].str.endswith("_bc")]
    pd.testing.assert_frame_equal(naive.reset_index(drop=True), plain.coefficients)
    for term in ("alliance_last", "alliance_mean"):
        row = tab.loc[f"{term}_bc"]
        assert row["estimate"] == pytest.approx(coef.loc[term, "corrected"], abs=2e-6)
        assert row["std_error"] == tab.loc[term, "std_error"]
        half = 1.959963984540054 * row["std_error"]
        assert row["ci_low"] == pytest.approx(row["estimate"] - half)
        assert row["ci_high"] == pytest.approx(row["estimate"] + half)
        assert row["statistic"] == pytest.approx(row["estimate"] / row["std_error"])
    hr = corrected.extras["hazard_ratios"].set_index("term")
    assert hr.loc["alliance_mean_bc", "hazard_ratio"] == pytest.approx(
        np.exp(tab.loc["alliance_mean_bc", "estimate"])
    )


def test_fit_json_describes_the_correction(corrected):
    f = corrected.fit
    assert f["derived_terms"] == ["alliance_last_bc", "alliance_mean_bc"]
    info = f["bias_correction"]
    assert info["n_boot"] == N_BOOT and info["n_failed"] == 0
    assert info["seed"] == derive_seed(1, "relapse_cox")
    assert info["method"].startswith("bootstrap bias correction")
    mean = info["terms"]["alliance_mean"]
    assert mean["corrected"] == pytest.approx(mean["estimate"] - mean["bias"])
    assert "alliance_mean_bc" in f["hazard_ratios"]
    assert any(n.startswith("alliance_last_bc, alliance_mean_bc: small-sample") for n in f["notes"])
    json.dumps(f, allow_nan=False)


def test_correction_is_deterministic_and_follows_the_seed(data, corrected):
    again = fit(SPEC, data, CONTEXT)
    pd.testing.assert_frame_equal(again.coefficients, corrected.coefficients)
    other = fit(SPEC, data, dataclasses.replace(CONTEXT, seed=2))
    a = corrected.coefficients.set_index("term").loc["alliance_mean_bc", "estimate"]
    b = other.coefficients.set_index("term").loc["alliance_mean_bc", "estimate"]
    assert a != b


def test_robust_se_rows_keep_their_se_and_df(data):
    spec = dataclasses.replace(SPEC, options={**SPEC.options, "se": "robust_cr1", "n_boot": 10})
    tab = fit(spec, data, CONTEXT).coefficients.set_index("term")
    assert tab.loc["alliance_mean_bc", "std_error"] == tab.loc["alliance_mean", "std_error"]
    assert tab.loc["alliance_mean_bc", "df"] == tab.loc["alliance_mean", "df"] == 22


def test_too_many_failed_refits_skip_the_correction(data, monkeypatch):
    from alliance.models import cox

    def losing_two(*args, **kwargs):
        boot = cox_bootstrap_bias(*args, **kwargs)
        boot.draws[:2] = np.nan  # as refits that ran off to infinity
        return boot

    monkeypatch.setattr(cox, "cox_bootstrap_bias", losing_two)  # 2 of 30 > 5 %
    res = fit(SPEC, data, CONTEXT)
    assert not res.coefficients["term"].str.endswith("_bc").any()
    assert "derived_terms" not in res.fit
    assert res.fit["bias_correction"]["n_failed"] == 2
    assert any(w.startswith("bias correction skipped: 2 of 30") for w in res.fit["warnings"])


def test_a_separated_refit_is_left_out():
    """Without the penalty, a replicate whose information on a coefficient collapses (its MLE
    is infinite) does not enter the mean; with Firth's penalty the same replicate is finite."""
    rng = np.random.default_rng(4)
    x = np.column_stack([rng.standard_normal(30), np.r_[np.ones(3), np.zeros(27)]])
    # 3 rare patients: two fail first, one is censored after the first ordinary events, so the
    # data's MLE is finite (about 3) and replicates where all three fail first are not
    time = np.r_[[0.2, 0.3, 1.2], rng.uniform(1.0, 5.0, 27)]
    status = np.r_[[1.0, 1.0, 0.0], (rng.random(27) < 0.6).astype(float)]
    est = maximise(risk_sets(time, status, x, True), 0.0, np.zeros(2)).beta
    assert abs(est[1]) < 5
    mle = bootstrap_bias(time, status, x, est, efron=True, penalty=0.0, n_boot=60, seed=1)
    firth = bootstrap_bias(time, status, x, est, efron=True, penalty=0.5, n_boot=60, seed=1)
    assert mle.n_failed > 0 and firth.n_failed == 0
    assert np.isfinite(mle.corrected).all() and np.abs(mle.draws[np.isfinite(mle.draws)]).max() < 10


def test_unknown_bias_correction_is_a_config_error(data):
    spec = dataclasses.replace(SPEC, options={**SPEC.options, "bias_correction": "jackknife"})
    with pytest.raises(ConfigError, match="bias_correction"):
        fit(spec, data, CONTEXT)


def _simulated_trial(rng: np.random.Generator, n: int, beta: np.ndarray):
    """Exponential event times on 4 covariates (the first two correlated 0.76, as mean and last
    alliance), censored administratively at the median time: about n / 2 events."""
    z = rng.standard_normal((n, 4))
    x = z.copy()
    x[:, 1] = 0.76 * z[:, 0] + np.sqrt(1 - 0.76**2) * z[:, 1]
    t = rng.exponential(1.0 / np.exp(x @ beta))
    cens = np.quantile(t, 0.5)
    return np.round(np.minimum(t, cens), 3), (t <= cens).astype(float), x


@pytest.mark.slow
def test_correction_removes_most_of_the_small_sample_bias():
    """800 trials of 50 patients (25 events, 4 terms): the Cox MLE of the -1 slope is biased
    away from zero by several MC SEs; the corrected estimate's bias is within 2 MC SEs of 0 and
    less than a third of the uncorrected one."""
    beta = np.array([0.0, -1.0, 0.0, 0.0])
    rng = np.random.default_rng(20261130)
    naive, fixed = [], []
    for r in range(800):
        time, status, x = _simulated_trial(rng, 50, beta)
        est = maximise(risk_sets(time, status, x, True), 0.0, np.zeros(4)).beta
        boot = bootstrap_bias(time, status, x, est, efron=True, penalty=0.0, n_boot=20, seed=r)
        naive.append(est[1])
        fixed.append(boot.corrected[1])
    err_naive, err_fixed = np.array(naive) - beta[1], np.array(fixed) - beta[1]
    mc_naive = err_naive.std(ddof=1) / np.sqrt(len(err_naive))
    mc_fixed = err_fixed.std(ddof=1) / np.sqrt(len(err_fixed))
    assert err_naive.mean() < -3 * mc_naive
    assert abs(err_fixed.mean()) < 2 * mc_fixed
    assert abs(err_fixed.mean()) < abs(err_naive.mean()) / 3
