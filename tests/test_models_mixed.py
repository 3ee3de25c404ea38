"""Linear combinations by hand, the lmm/glmm kinds on small simulated trials, output files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from alliance.models.base import COEF_COLUMNS, ModelSpec, Skipped
from alliance.models.contrasts import (
    class_points,
    linear_combinations,
    prediction_grid,
    simple_slopes,
    slope_contrasts,
    slope_weights,
)
from alliance.models.run import SUMMARY_COLUMNS, fit_model, load_result, run_model, summarise
from alliance.settings import Settings

ARMS = {"CBT": "psychotherapy", "IPT": "psychotherapy", "IMI-CM": "drug", "PLA-CM": "placebo"}
# The model stage's view of a minimal config with these arm codings.
MODEL = Settings.from_config(
    {"data": {"sessions": "x.csv"}, "columns": {"patient": "id"}, "symptoms": {"column": "s"},
     "codings": {"arm": ARMS, "arm_reference": "PLA-CM"}}
).model_stage()  # fmt: skip
AVAIL = {k: {"available": True, "reason": ""} for k in
         ("therapist", "arm", "dropout", "symptom", "suicidality", "modality")}  # fmt: skip


# ---- linear combinations by hand -------------------------------------------------------------

BETA = pd.Series({"(Intercept)": 10.0, "a": -2.0, "armCBT": 1.0, "armIMI.CM": 0.5,
                  "a:armCBT": 1.5, "armIMI.CM:a": 0.8})  # fmt: skip
VCOV = pd.DataFrame(np.diag([1.0, 0.04, 0.5, 0.5, 0.09, 0.16]), index=BETA.index,
                    columns=BETA.index)  # fmt: skip
VCOV.loc["a", "a:armCBT"] = VCOV.loc["a:armCBT", "a"] = -0.03
VCOV.loc["a", "armIMI.CM:a"] = VCOV.loc["armIMI.CM:a", "a"] = -0.02


def test_linear_combination_estimate_se_and_wald_test_by_hand():
    w = pd.DataFrame([{"a": 1.0, "a:armCBT": 1.0}], index=["cbt slope"])
    out = linear_combinations(w, BETA, VCOV)
    # -2 + 1.5 = -0.5; var = .04 + .09 + 2(-.03) = .07
    assert out.loc["cbt slope", "estimate"] == pytest.approx(-0.5)
    assert out.loc["cbt slope", "std_error"] == pytest.approx(np.sqrt(0.07))
    z = -0.5 / np.sqrt(0.07)
    assert out.loc["cbt slope", "statistic"] == pytest.approx(z)
    assert out.loc["cbt slope", "ci_low"] == pytest.approx(-0.5 - 1.959963985 * np.sqrt(0.07))
    with pytest.raises(KeyError, match="not coefficients"):
        linear_combinations(pd.DataFrame([{"b": 1.0}]), BETA, VCOV)


def test_slope_weights_find_the_interaction_in_either_order():
    terms = list(BETA.index)
    assert slope_weights("a", {"armCBT": 1.0}, terms) == {"a": 1.0, "a:armCBT": 1.0}
    assert slope_weights("a", {"armIMI.CM": 1.0}, terms) == {"a": 1.0, "armIMI.CM:a": 1.0}
    assert slope_weights("a", {"armIPT": 1.0}, terms) == {"a": 1.0}  # no interaction: no term


def test_simple_slopes_classes_and_drug_placebo_contrast_by_hand():
    levels = {"PLA-CM": ("level", np.nan, {}), "CBT": ("level", np.nan, {"armCBT": 1.0}),
              "IMI-CM": ("level", np.nan, {"armIMI.CM": 1.0})}  # fmt: skip
    points = {**levels, **class_points(levels, {"CBT": "psychotherapy", "IMI-CM": "drug",
                                                "PLA-CM": "placebo"})}  # fmt: skip
    table, weights = simple_slopes(BETA, VCOV, ["a"], "arm", points)
    est = table.set_index("level")["estimate"]
    se = table.set_index("level")["std_error"]
    assert est["PLA-CM"] == pytest.approx(-2.0) and se["PLA-CM"] == pytest.approx(0.2)
    assert est["IMI-CM"] == pytest.approx(-1.2)
    assert se["IMI-CM"] == pytest.approx(np.sqrt(0.04 + 0.16 - 0.04))
    assert est["drug"] == est["IMI-CM"] and est["placebo"] == est["PLA-CM"]
    contrast, notes = slope_contrasts(
        BETA,
        VCOV,
        weights,
        ["a"],
        [{"name": "drug_vs_placebo", "plus": "drug", "minus": "placebo"}],
    )
    row = contrast.iloc[0]
    assert (row["term"], row["contrast"]) == ("a", "drug_vs_placebo") and not notes
    # drug - placebo slope = b(a:IMI) = 0.8, SE 0.4
    assert row["estimate"] == pytest.approx(0.8) and row["std_error"] == pytest.approx(0.4)
    # a class of two arms averages them with equal weight
    two = class_points(levels, {"CBT": "x", "IMI-CM": "x"})
    assert two == {"x": ("class", two["x"][1], {"armCBT": 0.5, "armIMI.CM": 0.5})}
    _, notes = slope_contrasts(BETA, VCOV, weights, ["a"], [{"name": "c", "plus": "drug",
                                                             "minus": "nosuch"}])  # fmt: skip
    assert "no slope for 'nosuch'" in notes[0]


def test_prediction_grid_by_hand():
    frame = pd.DataFrame({"patient": ["p1", "p1", "p2", "p2", "p3"],
                          "weeks": [0.0, 2.5, 0.0, 1.0, 0.0],
                          "ap": [1.0, 1.0, 3.0, 3.0, 5.0],
                          "base": [10.0, 10.0, 20.0, 20.0, 30.0],
                          "armCBT": [1.0, 1.0, 0.0, 0.0, 1.0]})  # fmt: skip
    terms = ["(Intercept)", "weeks", "ap", "weeks:ap", "base", "armCBT"]
    grid, weights, info = prediction_grid(frame, terms, "weeks", "ap",
                                          reference_columns=["armCBT"])  # fmt: skip
    assert list(grid["x"].unique()) == [0.0, 1.0, 2.0]  # never past the observed maximum
    assert info["by_sd_over"] == "patients" and info["by_mean"] == 3.0 and info["by_sd"] == 2.0
    row = weights.iloc[len(grid) - 1]  # +1 SD at weeks = 2
    assert row.to_dict() == {"(Intercept)": 1.0, "weeks": 2.0, "ap": 5.0, "weeks:ap": 10.0,
                             "base": 18.0, "armCBT": 0.0}  # fmt: skip


# ---- fits on small simulated trials ------------------------------------------------------------


def trial(seed: int = 7, n_ther: int = 12, per_ther: int = 5, n_sess: int = 6) -> pd.DataFrame:
    """Sessions in patients in therapists with known effects (alliance_pat -2, weeks -0.5)."""
    rng = np.random.default_rng(seed)
    arms = list(ARMS)
    rows = []
    for t in range(n_ther):
        u_t = rng.normal(0, 1.0)
        for k in range(per_ther):
            pid = f"P{t:02d}{k}"
            arm = arms[(t * per_ther + k) % 4]
            a_pat = rng.normal(0, 0.5)
            u_p = rng.normal(0, 2.0)
            drop = int(rng.random() < 0.3)
            for s in range(n_sess):
                a_w = rng.normal(0, 0.3)
                y = 20 - 0.5 * s - 2 * a_pat - 0.8 * a_w + u_t + u_p + rng.normal(0, 1.5)
                ide = int(rng.random() < 1 / (1 + np.exp(1.5 + 1.0 * a_pat)))
                rows.append({"patient": pid, "therapist": f"T{t:02d}", "arm": arm,
                             "session_index": s + 1, "weeks": float(s), "symptom": y,
                             "alliance_pat": a_pat, "alliance_within": a_w, "ideation": ide,
                             "dropout": drop})  # fmt: skip
    out = pd.DataFrame(rows)
    out["alliance_lag1"] = out.groupby("patient")["alliance_within"].shift(1)
    out["alliance"] = out["alliance_pat"] + out["alliance_within"]
    return out


def lmm(**kw) -> ModelSpec:
    base = {"id": "growth", "kind": "lmm", "label": "Growth", "outcome": "symptom",
            "fixed": ("weeks", "alliance_pat", "alliance_within", "arm", "alliance_pat:arm"),
            "random": "(1 | patient) + (1 | therapist)", "key_terms": ("alliance_pat",),
            "options": {"simple_slopes": {"terms": ["alliance_pat"], "by": "arm"},
                        "contrasts": [{"name": "drug_vs_placebo", "plus": "drug",
                                       "minus": "placebo"}],
                        "predictions": {"x": "weeks", "by": "alliance_pat"},
                        "random_effects": ["therapist"]}}  # fmt: skip
    return ModelSpec(**{**base, **kw})


@pytest.fixture(scope="module")
def sessions() -> pd.DataFrame:
    return trial()


def test_lmm_recovers_effects_and_reports_fit_facts(sessions):
    result, timing = fit_model(lmm(), sessions, None, AVAIL, MODEL)
    fit = result.fit
    assert fit["status"] == "fitted" and fit["kind"] == "lmm" and fit["engine"] == "mixedlm"
    assert (fit["n_obs"], fit["n_patients"], fit["n_therapists"]) == (360, 60, 12)
    assert fit["reml"] is True and fit["converged"] is True and fit["df_method"] == "Satterthwaite"
    assert fit["formula_r"].startswith("lmer(symptom ~ weeks + alliance_pat + alliance_within")
    assert "fit_seconds" not in fit and timing["fit_seconds"] > 0  # timing kept apart
    c = result.coefficients.set_index("term")
    assert list(result.coefficients.columns) == COEF_COLUMNS
    assert c.loc["weeks", "estimate"] == pytest.approx(-0.5, abs=0.1)
    assert c.loc["alliance_within", "estimate"] == pytest.approx(-0.8, abs=0.5)
    groups = {v["group"] for v in fit["variance_components"]}
    assert groups == {"patient", "therapist", "Residual"} and set(fit["icc"]) == groups - {
        "Residual"
    }
    slopes = result.extras["simple_slopes"].set_index("level")
    # the placebo slope is the alliance_pat coefficient itself (reference arm)
    assert slopes.loc["PLA-CM", "estimate"] == pytest.approx(c.loc["alliance_pat", "estimate"])
    assert slopes.loc["PLA-CM", "std_error"] == pytest.approx(c.loc["alliance_pat", "std_error"])
    contrast = result.extras["contrasts"].iloc[0]
    assert contrast["estimate"] == pytest.approx(c.loc["alliance_pat:armIMI.CM", "estimate"])
    assert set(result.extras["random_effects"]["group"]) == {"therapist"}
    assert len(result.extras["predictions"]) == 3 * 6


def test_output_files_have_the_contract_columns_and_are_reproducible(sessions, tmp_path):
    out = tmp_path / "growth"
    run_model(lmm(), sessions, None, AVAIL, MODEL, out)
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "coefficients.csv",
        "contrasts.csv",
        "fit.json",
        "frame.parquet",
        "predictions.csv",
        "random_effects.csv",
        "simple_slopes.csv",
        "timing.json",
        "vcov.csv",
    ]
    vcov = pd.read_csv(out / "vcov.csv").set_index("term")
    coefs = pd.read_csv(out / "coefficients.csv")
    np.testing.assert_allclose(
        np.sqrt(np.diag(vcov.loc[coefs["term"], coefs["term"]])), coefs["std_error"], rtol=1e-10
    )
    assert list(coefs.columns) == COEF_COLUMNS and (coefs["model"] == "growth").all()
    slopes = pd.read_csv(out / "simple_slopes.csv")
    assert list(slopes.columns) == [
        "term", "by", "level", "type", "value", "estimate", "std_error", "statistic", "df",
        "p_value", "ci_low", "ci_high", "test",
    ]  # fmt: skip
    # LMM slopes: t tests with the Satterthwaite df of each combination (lmerTest contest1D)
    assert (slopes["test"] == "t").all() and (slopes["df"] > 0).all()
    assert list(pd.read_csv(out / "contrasts.csv").columns) == [
        "term", "contrast", "plus", "minus", "estimate", "std_error", "statistic", "df",
        "p_value", "ci_low", "ci_high", "test",
    ]  # fmt: skip
    assert list(pd.read_csv(out / "predictions.csv").columns) == [
        "x_variable", "x", "by_variable", "by_level", "by_value", "fit", "se_fit", "ci_low",
        "ci_high",
    ]  # fmt: skip
    fit = json.loads((out / "fit.json").read_text())
    for key in ("kind", "engine", "engine_version", "reml", "n_obs", "n_patients", "n_therapists",
                "logLik", "AIC", "BIC", "variance_components", "icc", "converged", "singular",
                "warnings", "df_method", "formula_r", "status", "reason", "frame"):  # fmt: skip
        assert key in fit, key
    frame = pd.read_parquet(out / "frame.parquet")
    assert {"armCBT", "armIMI.CM", "armIPT", "patient", "therapist"} <= set(frame.columns)
    first = {p.name: p.read_bytes() for p in out.iterdir() if p.name != "timing.json"}
    run_model(lmm(), sessions, None, AVAIL, MODEL, out)
    again = {p.name: p.read_bytes() for p in out.iterdir() if p.name != "timing.json"}
    assert first == again  # byte-identical reruns
    back = load_result(out)
    assert back.fit["status"] == "fitted" and set(back.extras) == {
        "contrasts",
        "predictions",
        "random_effects",
        "simple_slopes",
        "vcov",
    }


def test_skipped_model_still_writes_its_outputs_and_clears_stale_extras(sessions, tmp_path):
    out = tmp_path / "growth"
    run_model(lmm(), sessions, None, AVAIL, MODEL, out)
    avail = {**AVAIL, "arm": {"available": False, "reason": "fewer than two arms"}}
    result = run_model(lmm(requires=("arm",)), sessions, None, avail, MODEL, out)
    assert result.fit["status"] == "skipped"
    assert sorted(p.name for p in out.iterdir()) == [
        "coefficients.csv",
        "fit.json",
        "frame.parquet",
        "timing.json",
    ]
    assert (out / "coefficients.csv").read_text() == ",".join(COEF_COLUMNS) + "\n"
    fit = json.loads((out / "fit.json").read_text())
    assert fit["status"] == "skipped" and fit["reason"] == "needs arm: fewer than two arms"


def test_failed_fit_is_written_with_its_reason(sessions, tmp_path):
    s = sessions.assign(ideation=sessions["ideation"] * 2)  # 0/2 is not a binary outcome
    spec = ModelSpec(id="bad", kind="glmm", outcome="ideation", fixed=("alliance_pat",),
                     random="(1 | patient)")  # fmt: skip
    result = run_model(spec, s, None, AVAIL, MODEL, tmp_path / "bad")
    assert result.fit["status"] == "failed"
    assert "binary outcome must be 0/1" in result.fit["reason"]
    assert json.loads((tmp_path / "bad" / "fit.json").read_text())["formula"].startswith(
        "ideation ~ alliance_pat"
    )


def test_glmm_and_summary(sessions):
    spec = ModelSpec(id="ide", kind="glmm", label="Ideation", outcome="ideation",
                     fixed=("alliance_pat", "weeks"), random="(1 | patient) + (1 | therapist)",
                     key_terms=("alliance_pat",))  # fmt: skip
    glmm, _ = fit_model(spec, sessions, None, AVAIL, MODEL)
    assert glmm.fit["family"] == "binomial" and glmm.fit["df_method"] == "Wald z (df = Inf)"
    assert "tolPwrss = 1e-10" in glmm.fit["formula_r"]
    growth, _ = fit_model(lmm(), sessions, None, AVAIL, MODEL)
    failed, _ = fit_model(
        ModelSpec(id="bad", kind="glmm", outcome="symptom", fixed=("weeks",),
                  random="(1 | patient)"), sessions, None, AVAIL, MODEL,
    )  # fmt: skip
    table = summarise(
        {"growth": growth, "ide": glmm, "cox": Skipped("needs relapse: none"), "bad": failed},
        {"cox": ModelSpec(id="cox", kind="cox", outcome="relapse_event", label="Relapse")},
    )
    assert list(table.columns) == SUMMARY_COLUMNS
    assert list(table["model"]) == ["growth", "ide", "cox", "bad"]
    assert list(table["term"].fillna("")) == ["alliance_pat", "alliance_pat", "", ""]
    assert list(table["status"]) == ["fitted", "fitted", "skipped", "failed"]
    assert table.loc[2, "label"] == "Relapse" and table.loc[2, "reason"] == "needs relapse: none"
    assert table.loc[0, "n_obs"] == 360


def test_few_therapists_lmm_falls_back_and_glmm_keeps_with_a_warning():
    s = trial(seed=3, n_ther=5, per_ther=6)
    res, _ = fit_model(lmm(options={}), s, None, AVAIL, MODEL)
    assert res.fit["few_groups"] == {"group": "therapist", "clusters": 5, "se": "CR1"}
    assert res.fit["formula"].endswith("+ (1 | patient)")
    assert (res.coefficients["df"] == 4).all()
    assert "cluster-robust (CR1) by therapist" in res.fit["warnings"][0]
    kept, _ = fit_model(lmm(options={"few_groups": "keep"}), s, None, AVAIL, MODEL)
    assert kept.fit["few_groups"]["action"] == "kept" and "(1 | therapist)" in kept.fit["formula"]
    spec = ModelSpec(id="ide", kind="glmm", outcome="ideation", fixed=("alliance_pat",),
                     random="(1 | patient) + (1 | therapist)")  # fmt: skip
    g, _ = fit_model(spec, s, None, AVAIL, MODEL)
    assert g.fit["few_groups"]["action"] == "kept"
    assert "few upper-level units: therapist (5 levels)" in g.fit["warnings"][0]
    # an LMM whose only grouping factor is the sparse one has nothing to fall back to
    alone, _ = fit_model(lmm(options={}, random="(1 | therapist)"), s, None, AVAIL, MODEL)
    assert alone.fit["few_groups"]["action"] == "kept"
    assert "needs exactly one remaining grouping factor" in alone.fit["warnings"][0]


def test_rank_deficient_design_is_reported(sessions):
    s = sessions.assign(twice=2 * sessions["alliance_pat"])
    spec = lmm(fixed=("weeks", "alliance_pat", "twice"), options={})
    res, _ = fit_model(spec, s, None, AVAIL, MODEL)
    # the engine drops one of the two aliased columns (R would drop the later one)
    warning = next(w for w in res.fit["warnings"] if "rank deficient" in w)
    dropped = {"alliance_pat", "twice"} - set(res.coefficients["term"])
    assert len(dropped) == 1 and dropped.pop() in warning


def test_hazard_kind_fits_person_period_rows(sessions):
    # dropouts leave after session 2..5 (their last attended row carries the event)
    rng = np.random.default_rng(11)
    last = {p: int(rng.integers(2, 6)) for p in sessions["patient"].unique()}
    keep = (sessions["dropout"] == 0) | (sessions["session_index"] <= sessions["patient"].map(last))
    sessions = sessions[keep]
    spec = ModelSpec(id="hz", kind="hazard", outcome="dropout", fixed=("alliance",),
                     random="(1 | therapist)",
                     options={"predictions": {"x": "period", "by": "alliance"}})  # fmt: skip
    res, _ = fit_model(spec, sessions, None, AVAIL, MODEL)
    dropout = sessions.groupby("patient")["dropout"].first()
    assert res.fit["hazard"]["events"] == int(dropout.sum())
    # every attended session is a risk row except each completer's last one
    assert res.fit["hazard"]["rows"] == len(sessions) - int((dropout == 0).sum())
    assert res.fit["converged"]
    assert list(res.coefficients["term"]) == ["(Intercept)", "period", "period_sq",
                                              "alliance"]  # fmt: skip
    pred = res.extras["predictions"]
    assert pred["x"].min() == 1.0 and {"fit_response", "ci_low_response"} <= set(pred.columns)


def test_hazard_reliability_correction_divides_by_lambda(sessions):
    """alliance_rc = naive / lambda, lambda = 1 - error variance / var(alliance | other terms)."""
    import statsmodels.api as sm

    rng = np.random.default_rng(12)
    last = {p: int(rng.integers(2, 6)) for p in sessions["patient"].unique()}
    keep = (sessions["dropout"] == 0) | (sessions["session_index"] <= sessions["patient"].map(last))
    sessions = sessions[keep].assign(alliance_error_var=0.01)
    spec = ModelSpec(id="hz", kind="hazard", outcome="dropout", fixed=("alliance",),
                     random="(1 | therapist)",
                     options={"x": "alliance", "x_error": "alliance_error_var"})  # fmt: skip
    res, _ = fit_model(spec, sessions, None, AVAIL, MODEL)
    frame = res.frame
    ols = sm.OLS(frame["alliance"], sm.add_constant(frame[["period", "period_sq"]])).fit()
    lam = 1 - 0.01 / ols.mse_resid
    rc = res.fit["reliability_correction"]
    assert rc["lambda"] == pytest.approx(lam, rel=1e-10)
    c = res.coefficients.set_index("term")
    assert c.loc["alliance_rc", "estimate"] == pytest.approx(c.loc["alliance", "estimate"] / lam)
    assert c.loc["alliance_rc", "p_value"] == c.loc["alliance", "p_value"]


def test_hazard_calibration_by_group_uses_each_groups_lambda(sessions):
    """options.x_by: alliance_rc = b / lambda_0 and alliance_rc:g = (b + b_g) / lambda_1 - b /
    lambda_0, each lambda on its own group's rows (here the groups' error variances differ)."""
    import statsmodels.api as sm

    rng = np.random.default_rng(12)
    last = {p: int(rng.integers(2, 6)) for p in sessions["patient"].unique()}
    keep = (sessions["dropout"] == 0) | (sessions["session_index"] <= sessions["patient"].map(last))
    g = sessions["therapist"].str[-1].astype(int) % 2  # a patient-level 0/1 moderator
    sessions = sessions.assign(g=g, alliance_error_var=np.where(g == 1, 0.02, 0.005))[keep]
    options = {"x": "alliance", "x_error": "alliance_error_var", "x_by": "g"}
    spec = ModelSpec(id="hz", kind="hazard", outcome="dropout", options=options,
                     fixed=("alliance", "g", "alliance:g"), random="(1 | therapist)")  # fmt: skip
    res, _ = fit_model(spec, sessions, None, AVAIL, MODEL)
    frame = res.frame
    lams = []
    for k, error in ((0, 0.005), (1, 0.02)):
        rows = frame[frame["g"] == k]
        ols = sm.OLS(rows["alliance"], sm.add_constant(rows[["period", "period_sq"]])).fit()
        lams.append(1 - error / ols.mse_resid)
    rc = res.fit["reliability_correction"]
    assert [grp["lambda"] for grp in rc["groups"]] == pytest.approx(lams, rel=1e-10)
    assert rc["by"] == "g" and rc["lambda"] == pytest.approx(lams[0], rel=1e-10)
    c = res.coefficients.set_index("term")
    b, b_g = c.loc["alliance", "estimate"], c.loc["alliance:g", "estimate"]
    assert c.loc["alliance_rc", "estimate"] == pytest.approx(b / lams[0])
    assert c.loc["alliance_rc:g", "estimate"] == pytest.approx((b + b_g) / lams[1] - b / lams[0])
    w = pd.Series({"alliance": 1 / lams[1] - 1 / lams[0], "alliance:g": 1 / lams[1]})
    v = res.extras["vcov"].set_index("term").loc[w.index, w.index]
    assert c.loc["alliance_rc:g", "std_error"] == pytest.approx(float(np.sqrt(w @ v @ w)))
    terms = list(res.coefficients["term"])
    assert terms.index("alliance_rc") == terms.index("alliance") + 1
    assert terms.index("alliance_rc:g") == terms.index("alliance:g") + 1
    assert res.fit["derived_terms"] == ["alliance_rc", "alliance_rc:g"]
