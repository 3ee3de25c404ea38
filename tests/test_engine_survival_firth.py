"""Firth-penalised Cox (alliance.engine.survival_firth via fit_cox) against a survival-only R refit.

tests/reference/firth_reference.csv is written by tests/reference/make_firth_reference.R: the
penalised log-likelihood from coxph at fixed coefficients (init, iter.max = 0), maximised by
optim (BFGS, reltol 1e-14), profile CIs by uniroot (tests/reference/firth_coxph.R). R 4.2.2,
survival 3.5-3. Cases: tied weeks (Efron, Breslow), a monotone likelihood (the MLE is
infinite), the project's simulated relapse data (6 terms, 28 events), and penalty 0 (profile
CIs of the ordinary MLE).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.engine.survival import fit_cox
from alliance.engine.survival_firth import likelihood, maximise, penalised, risk_sets
from alliance.errors import InputError

REF = Path(__file__).parent / "reference"
_TABLE = pd.read_csv(REF / "firth_reference.csv", keep_default_na=False)
RELAPSE = ["alliance_last", "alliance_mean", "baseline_symptom", "armCBT", "armIMI.CM", "armIPT"]
TOL = 1e-5


def ref(case: str, section: str = "coef") -> pd.DataFrame:
    rows = _TABLE[(_TABLE["case"] == case) & (_TABLE["section"] == section)]
    assert not rows.empty, (case, section)
    return rows.pivot(index="term", columns="stat", values="value").astype(float)


@pytest.fixture(scope="module")
def sim() -> pd.DataFrame:
    d = pd.read_csv(REF / "sim_cox_cluster.csv")
    return d.assign(early=((d["relapse"] == 1) & (d["week"] <= 8)).astype(int))


@pytest.fixture(scope="module")
def relapse() -> pd.DataFrame:
    return pd.read_csv(REF / "sim_relapse_small.csv", dtype={"therapist": str})


def data_for(case: str, sim: pd.DataFrame, relapse: pd.DataFrame) -> tuple:
    if case.startswith("relapse"):
        return relapse, "relapse_time", "relapse_event", RELAPSE
    covs = ["alliance", "early"] if case.startswith("monotone") else ["alliance", "arm"]
    return sim, "week", "relapse", covs


CASES = [
    ("sim_efron", "efron", True),
    ("sim_breslow", "breslow", True),
    ("sim_profile_mle", "efron", False),
    ("monotone_breslow", "breslow", True),
    ("monotone_efron", "efron", True),
    ("relapse_efron", "efron", True),
    ("relapse_breslow", "breslow", True),
]


@pytest.mark.parametrize(("case", "ties", "firth"), CASES)
def test_penalised_fit_and_profile_inference_match_r(case, ties, firth, sim, relapse):
    data, duration, event, covs = data_for(case, sim, relapse)
    fit = fit_cox(data, duration, event, covs, ties=ties, firth=firth, se="model", profile=True)
    c = fit.coefficients.set_index("term")
    r = ref(case).loc[c.index]
    np.testing.assert_allclose(c["estimate"], r["estimate"], rtol=TOL, atol=TOL)
    np.testing.assert_allclose(c["std_error"], r["std_error"], rtol=TOL)
    np.testing.assert_allclose(c["ci_low"], r["ci_low"], rtol=TOL, atol=TOL)
    np.testing.assert_allclose(c["ci_high"], r["ci_high"], rtol=TOL, atol=TOL)
    np.testing.assert_allclose(c["statistic"] ** 2, r["chisq"], rtol=TOL)
    np.testing.assert_allclose(c["p_value"], r["p_value"], rtol=TOL)
    assert np.isposinf(c["df"]).all()
    f = ref(case, "fit").loc[""]
    assert fit.loglik == pytest.approx(f["loglik"], abs=TOL)
    if firth:
        assert fit.loglik_penalised == pytest.approx(
            (f["loglik_penalised_null"], f["loglik_penalised"]), abs=1e-8
        )
        assert fit.estimator.startswith("Firth") and fit.formula_r.startswith("coxphf::coxphf(")
        assert "pl = TRUE" in fit.formula_r
    else:
        assert fit.loglik_penalised is None
    assert fit.ci_method.startswith("profile")


@pytest.mark.parametrize("case", ["sim_efron", "relapse_efron"])
def test_robust_and_cr1_se_at_the_penalised_estimate_match_r(case, sim, relapse):
    data, duration, event, covs = data_for(case, sim, relapse)
    r = ref(case)
    g = int(ref(case, "fit").loc["", "n_clusters"])
    rob = fit_cox(data, duration, event, covs, cluster="therapist", firth=True)
    c = rob.coefficients.set_index("term").loc[r.index]
    np.testing.assert_allclose(c["std_error"], r["robust_se"], rtol=TOL)
    np.testing.assert_allclose(c["naive_se"], r["std_error"], rtol=TOL)
    assert rob.ci_method == "Wald z" and "pl = FALSE" in rob.formula_r
    cr1 = fit_cox(data, duration, event, covs, cluster="therapist", firth=True, se="robust_cr1")
    c1 = cr1.coefficients.set_index("term").loc[r.index]
    np.testing.assert_allclose(c1["std_error"], r["robust_cr1_se"], rtol=TOL)
    np.testing.assert_allclose(c1["robust_se"], r["robust_se"], rtol=TOL)
    assert (c1["df"] == g - 1).all() and cr1.n_clusters == g
    assert "G/(G-1)" in cr1.se_method and any("t with G - 1" in n for n in cr1.notes)
    model = fit_cox(data, duration, event, covs, cluster="therapist", firth=True, se="model")
    cm = model.coefficients.set_index("term").loc[r.index]
    np.testing.assert_allclose(cm["ci_low"], r["ci_low"], rtol=TOL, atol=TOL)
    np.testing.assert_allclose(cm["robust_se"], r["robust_se"], rtol=TOL)


def test_monotone_likelihood_has_a_finite_firth_estimate(sim):
    """`early` relapsed first at every event time: coxph's estimate runs off (R warns it may be
    infinite); Firth's is finite with a finite profile CI (as coxphf's documentation shows)."""
    fit = fit_cox(sim, "week", "relapse", ["alliance", "early"], ties="breslow", firth=True)
    c = fit.coefficients.set_index("term")
    assert 5.0 < c.loc["early", "estimate"] < 10.0
    assert np.isfinite(c[["ci_low", "ci_high"]].to_numpy()).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PHReg: no convergence; exp overflow in the HR
        mle = fit_cox(sim, "week", "relapse", ["alliance", "early"], ties="breslow")
    assert mle.coefficients.set_index("term").loc["early", "estimate"] > 10.0


def test_score_information_and_penalty_gradient_are_derivatives(relapse):
    x = relapse[RELAPSE].to_numpy(float)
    t = relapse["relapse_time"].to_numpy(float)
    s = relapse["relapse_event"].to_numpy(float)
    for efron in (True, False):
        rs = risk_sets(t, s, x, efron)
        beta = np.array([0.2, -0.8, 0.05, -0.5, 0.1, -0.3])
        _, u, info = likelihood(rs, beta)
        ustar = penalised(rs, beta, 0.5)[1]
        h = 1e-6
        for r in range(len(beta)):
            e = np.zeros_like(beta)
            e[r] = h
            lp, up, _ = likelihood(rs, beta + e)
            lm, um, _ = likelihood(rs, beta - e)
            assert (lp - lm) / (2 * h) == pytest.approx(u[r], abs=1e-6)
            np.testing.assert_allclose((up - um) / (2 * h), -info[:, r], atol=1e-5)
            pp, pm = penalised(rs, beta + e, 0.5)[0], penalised(rs, beta - e, 0.5)[0]
            assert (pp - pm) / (2 * h) == pytest.approx(ustar[r], abs=1e-6)


def test_unpenalised_default_is_unchanged(sim):
    """The option off gives the coxph fit exactly as before (the same numbers, no new columns)."""
    fit = fit_cox(sim, "week", "relapse", ["alliance", "arm"], cluster="therapist")
    assert list(fit.coefficients.columns)[-1] == "naive_se"
    assert fit.estimator.startswith("maximum partial") and fit.test == "Wald z (df = inf)"
    assert fit.loglik_penalised is None and fit.notes == []
    assert fit.formula_r.startswith("coxph(") and "cluster(therapist)" in fit.formula_r
    model = fit_cox(sim, "week", "relapse", ["alliance", "arm"], cluster="therapist", se="model")
    np.testing.assert_allclose(
        model.coefficients["std_error"], fit.coefficients["naive_se"], rtol=1e-12
    )
    np.testing.assert_allclose(
        model.coefficients["robust_se"], fit.coefficients["std_error"], rtol=1e-12
    )
    assert "cluster(" not in model.formula_r


def test_diverging_phreg_is_refitted(relapse, monkeypatch):
    """statsmodels' PHReg (uncentred Newton) returned NaN on 1 of 20 simulated relapse trials
    where R converges; the fit then falls back to the Newton-Raphson of survival_firth."""
    from statsmodels.duration.hazard_regression import PHReg

    good = fit_cox(relapse, "relapse_time", "relapse_event", RELAPSE)
    original = PHReg.fit

    def diverged(self, *args, **kwargs):
        res = original(self, *args, **kwargs)
        res.params = np.full_like(res.params, np.nan)
        return res

    monkeypatch.setattr(PHReg, "fit", diverged)
    fit = fit_cox(relapse, "relapse_time", "relapse_event", RELAPSE)
    np.testing.assert_allclose(
        fit.coefficients["estimate"], good.coefficients["estimate"], rtol=1e-7
    )
    np.testing.assert_allclose(
        fit.coefficients["std_error"], good.coefficients["std_error"], rtol=1e-6
    )
    assert fit.loglik == pytest.approx(good.loglik, abs=1e-9)
    assert any("diverged" in n for n in fit.notes)


def test_maximise_holds_fixed_coefficients(relapse):
    x = relapse[RELAPSE].to_numpy(float)
    rs = risk_sets(
        relapse["relapse_time"].to_numpy(float), relapse["relapse_event"].to_numpy(float), x, True
    )
    free = np.ones(6, bool)
    free[1] = False
    start = np.zeros(6)
    start[1] = -1.0
    fit = maximise(rs, 0.5, start, free)
    assert fit.converged and fit.beta[1] == -1.0
    assert np.max(np.abs(penalised(rs, fit.beta, 0.5)[1][free])) < 1e-8


def test_bad_options(sim):
    with pytest.raises(InputError, match="se must be"):
        fit_cox(sim, "week", "relapse", ["alliance"], se="sandwich")
    with pytest.raises(InputError, match="need a cluster"):
        fit_cox(sim, "week", "relapse", ["alliance"], se="robust_cr1")
    with pytest.raises(InputError, match="model-based"):
        fit_cox(sim, "week", "relapse", ["alliance"], cluster="therapist", profile=True)


@pytest.mark.parametrize(
    ("options", "ok"),
    [
        ({"firth": True, "se": "model", "cluster": "therapist"}, True),
        ({"se": "robust_cr1", "cluster": "therapist"}, True),
        ({"se": None}, True),
        ({"se": "sandwich"}, False),
        ({"firth": "yes"}, False),
        ({"firth": True, "profile": False}, True),
        ({"profile": "no"}, False),
    ],
)
def test_config_schema_checks_cox_options(options, ok):
    from conftest import demo_config

    from alliance.config import validate_config
    from alliance.errors import ConfigError

    cfg = demo_config()
    spec = {"id": "c", "kind": "cox", "data": "patients", "outcome": "relapse_event"}
    cfg["models"] = {"custom": [spec | {"fixed": ["alliance_mean"], "options": options}]}
    if ok:
        got = validate_config(cfg)["models"]["custom"][0]["options"]
        assert {k: got[k] for k in options} == options
    else:
        with pytest.raises(ConfigError, match=r"models\.custom(\[0\]|\.0)\.options"):
            validate_config(cfg)


def test_relapse_default_is_firth_with_model_based_wald_cis():
    from conftest import demo_config

    from alliance.config import validate_config
    from alliance.models.spec import load_specs
    from alliance.settings import Settings

    settings = Settings.from_config(validate_config(demo_config()))
    opts = {s.id: s for s in load_specs(settings.models)}["relapse_cox"].options
    assert opts["firth"] is True and opts["se"] == "model" and opts["profile"] is False
    assert opts["cluster"] == "therapist"
