"""Tests of linear combinations L'beta against lmerTest 3.1-3 contest1D (R 4.2.2, lme4 1.1-31).

Fixtures (tests/reference/, written by make_contest_reference.R): `contest_cases.csv` names the
data and formula of each case, `contest_reference.csv` holds the weights of each L and R's
contest1D result (long format). R fits with the control `formula_r` carries, so both sides sit at
the optimum. Tolerances: estimate and SE 1e-6 (estimates relative to max(|estimate|, SE); largest
seen 1.8e-7 and 8.9e-7), Satterthwaite df 2e-5 relative (largest seen 2.8e-6: R differentiates by
numDeriv's Richardson extrapolation, we by one Richardson step), p 1e-4 relative and CI 1e-5
(both move with the df); GLMM (Wald z) SEs 1e-3 relative as in test_engine_mixed.py (lme4's
Hessian step). `python tests/test_contest.py` prints the largest df difference per case.
"""

from __future__ import annotations

import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.engine.mixed import CONTEST_COLUMNS, contest1d, fit_glmm, fit_lmm, satterthwaite_df
from alliance.engine.mixed.fit import LMER_CONTROL
from alliance.errors import InputError
from alliance.models import contrasts
from alliance.models.base import ModelSpec
from alliance.models.mixed import fit_mixed

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "tests" / "reference"
STATS = ["estimate", "std_error", "df", "statistic", "p_value", "ci_low", "ci_high"]


@cache
def cases() -> pd.DataFrame:
    return pd.read_csv(REF / "contest_cases.csv", keep_default_na=False).set_index("case")


@cache
def reference() -> pd.DataFrame:
    return pd.read_csv(REF / "contest_reference.csv", keep_default_na=False)


def section(case: str, name: str) -> pd.DataFrame:
    t = reference()
    rows = t[(t["case"] == case) & (t["section"] == name)]
    assert not rows.empty, (case, name)
    return rows.pivot(index="term", columns="stat", values="value").astype(float)


def weights_of(case: str) -> dict[str, dict[str, float]]:
    w = section(case, "weights")
    return {key: {t: v for t, v in row.items() if not np.isnan(v)} for key, row in w.iterrows()}


def data_of(case: str) -> pd.DataFrame:
    data = pd.read_csv(ROOT / cases().loc[case, "data"])
    data["zero"] = 0.0  # as make_contest_reference.R: a covariate without information
    for col in ("patient", "therapist", "g", "patient_local"):
        if col in data.columns:
            data[col] = data[col].astype(str)
    return data


@cache
def fitted(case: str):
    row = cases().loc[case]
    data = data_of(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if row["family"] == "binomial":
            fit = fit_glmm(row["formula"], data)
        else:
            fit = fit_lmm(row["formula"], data, reml=str(row["reml"]).upper() == "TRUE")
    frame = section(case, "frame").iloc[0]
    outcome = row["formula"].split("~")[0].strip()
    # the frames of tests/reference/models are regenerated from the demo: refit R when they change
    assert fit.n_obs == frame["n_obs"], "data changed: rerun make_contest_reference.R"
    assert data[outcome].sum() == pytest.approx(frame["outcome_sum"], rel=1e-12), (
        "data changed: rerun make_contest_reference.R"
    )
    return fit


LMM_CASES = [c for c in cases().index if cases().loc[c, "family"] == "gaussian"]


@pytest.mark.parametrize("case", LMM_CASES)
def test_contest1d_matches_lmertest(case):
    fit = fitted(case)
    ref = section(case, "contest")
    for key, w in weights_of(case).items():
        ours = contest1d(fit, w)
        r = ref.loc[key]
        scale = max(abs(r["estimate"]), r["std_error"])
        assert abs(ours["estimate"] - r["estimate"]) <= 1e-6 * scale, (key, ours, r)
        assert ours["std_error"] == pytest.approx(r["std_error"], rel=1e-6), key
        assert ours["df"] == pytest.approx(r["df"], rel=2e-5), key
        assert ours["test"] == "t"
        assert ours["p_value"] == pytest.approx(r["p_value"], rel=1e-4, abs=1e-12), key
        for bound in ("ci_low", "ci_high"):  # t quantile: moves with the df
            assert abs(ours[bound] - r[bound]) <= 1e-5 * scale, (key, bound)


def max_rel_df() -> dict[str, float]:
    """Largest relative df difference to lmerTest per case (for the report)."""
    out = {}
    for case in LMM_CASES:
        ref = section(case, "contest")
        diffs = [
            abs(contest1d(fitted(case), w)["df"] / ref.loc[key, "df"] - 1)
            for key, w in weights_of(case).items()
        ]
        out[case] = max(diffs)
    return out


def test_the_fixtures_fit_with_the_control_formula_r_carries():
    script = (REF / "make_contest_reference.R").read_text()
    assert f"tight_lmer <- {LMER_CONTROL}" in script
    fit = fitted("sim3_slope_ml")
    assert fit.formula_r.endswith(f"REML = FALSE, control = {LMER_CONTROL})")


def test_a_unit_vector_gives_the_coefficient_row():
    fit = fitted("sim3_slope_reml")
    c = fit.coefficients.set_index("term")
    for term in c.index:
        ours = contest1d(fit, {term: 1.0})
        for stat in ("estimate", "std_error", "df", "statistic", "p_value", "ci_low", "ci_high"):
            assert ours[stat] == pytest.approx(c.loc[term, stat], rel=1e-12), (term, stat)


@pytest.mark.parametrize("case", ["singular_reml", "singular_slope_reml", "sim3_zero_reml"])
def test_a_variance_at_zero_keeps_finite_df(case):
    fit = fitted(case)
    assert fit.singular
    assert np.isfinite(fit.coefficients["df"]).all()
    assert all(np.isfinite(contest1d(fit, w)["df"]) for w in weights_of(case).values())


def test_a_singular_deviance_hessian_uses_the_generalised_inverse_as_lmertest():
    # the plain inverse failed here (df NaN); lmerTest drops the zero eigenvalue and warns
    fit = fitted("sim3_uninformed_reml")
    assert np.isfinite(fit.coefficients["df"]).all()
    assert any("eigenvalue(s) close to zero" in w for w in fit.warnings)


def test_glmm_contrasts_are_wald_z_and_say_so():
    fit = fitted("dropout_glmm")
    ref = section("dropout_glmm", "contest")
    for key, w in weights_of("dropout_glmm").items():
        ours = contest1d(fit, w)
        r = ref.loc[key]
        assert ours["test"] == "z" and np.isnan(ours["df"])
        assert ours["estimate"] == pytest.approx(r["estimate"], rel=1e-4)
        assert ours["std_error"] == pytest.approx(r["std_error"], rel=1e-3)
        assert ours["p_value"] == pytest.approx(r["p_value"], rel=1e-2)
    assert satterthwaite_df(fit, [0.0, 1.0]) == np.inf


def test_contest_input_checks_and_rhs():
    fit = fitted("singular_reml")
    assert list(contest1d(fit, [0.0, 1.0]).index) == CONTEST_COLUMNS
    with pytest.raises(InputError, match="not coefficients"):
        contest1d(fit, {"z": 1.0})
    with pytest.raises(InputError, match="2 coefficients"):
        contest1d(fit, [1.0, 2.0, 3.0])
    zero, half = contest1d(fit, {"x": 1.0}), contest1d(fit, {"x": 1.0}, rhs=0.5)
    assert half["statistic"] == pytest.approx((zero["estimate"] - 0.5) / zero["std_error"])
    assert (half["ci_low"], half["ci_high"]) == pytest.approx((zero["ci_low"], zero["ci_high"]))


# ---- the model stage: the Baldwin contrast, simple slopes and contrasts with Satterthwaite df ----


def arm_spec(case: str) -> ModelSpec:
    """The case's formula as a resolved lmm spec (fixed terms over the frame's columns)."""
    formula = cases().loc[case, "formula"]
    outcome, rhs = (part.strip() for part in formula.split("~"))
    cut = rhs.index("(")  # the random terms come last
    fixed, random = tuple(rhs[:cut].rstrip(" +").split(" + ")), rhs[cut:]
    options = {}
    by = MODERATORS.get(case)
    if by:
        options["simple_slopes"] = {"terms": ["alliance_pat_prior", "alliance_within_prior"],
                                    "by": by}  # fmt: skip
    if by == "arm":
        options["contrasts"] = [{"name": "drug_vs_placebo", "plus": "drug", "minus": "placebo"}]
    return ModelSpec(id=case, kind="lmm", outcome=outcome, fixed=fixed, random=random,
                     options=options)  # fmt: skip


MODERATORS = {"symptoms_by_arm": "arm", "symptoms_by_modality": "telehealth",
              "symptoms_by_agency": "agency"}  # fmt: skip
ARMS = {"CBT": "psychotherapy", "IPT": "psychotherapy", "IMI-CM": "drug", "PLA-CM": "placebo"}


@cache
def model_result(case: str):
    frame = data_of(case)
    if "arm" in frame.columns:
        frame["arm"] = pd.Categorical(frame["arm"], categories=["PLA-CM", "CBT", "IMI-CM", "IPT"])
    return fit_mixed(arm_spec(case), frame, family="gaussian", arms=ARMS)


def _check_rows(table: pd.DataFrame, ref: pd.DataFrame) -> None:
    table = table.loc[ref.index]
    scale = np.maximum(ref["estimate"].abs(), ref["std_error"])
    assert (np.abs(table["estimate"] - ref["estimate"]) <= 1e-6 * scale).all()
    np.testing.assert_allclose(table["std_error"], ref["std_error"], rtol=1e-6)
    np.testing.assert_allclose(table["df"], ref["df"], rtol=2e-5)
    np.testing.assert_allclose(table["p_value"], ref["p_value"], rtol=1e-4)
    assert (table["test"] == "t").all()


@pytest.mark.parametrize("case", ["symptoms_growth", "symptoms_lagged", *MODERATORS])
def test_baldwin_contrast_in_the_model_output(case):
    res = model_result(case)
    table = res.extras["contrasts"]
    baldwin = table[table["contrast"] == contrasts.BALDWIN].set_index("term")
    assert list(baldwin.index) == ["alliance_ther_prior - alliance_pat_prior"]
    assert (baldwin["plus"] == "alliance_ther_prior").all()
    assert (baldwin["minus"] == "alliance_pat_prior").all()
    _check_rows(baldwin, section(case, "contest").loc[baldwin.index])
    assert "Satterthwaite" in res.fit["linear_combinations_df"]


def test_simple_slopes_and_contrasts_use_satterthwaite_df():
    res = model_result("symptoms_by_arm")
    ref = section("symptoms_by_arm", "contest")
    slopes = res.extras["simple_slopes"]
    slopes = slopes.set_index(slopes["term"] + "|" + slopes["level"])
    _check_rows(slopes, ref.loc[[k for k in ref.index if k in slopes.index]])
    assert len(slopes) == 14
    ctab = res.extras["contrasts"]
    ctab = ctab[ctab["contrast"] == "drug_vs_placebo"]
    keys = ["alliance_pat_prior|drug_vs_placebo", "alliance_within_prior|drug_vs_placebo"]
    _check_rows(ctab.set_index(ctab["term"] + "|drug_vs_placebo"), ref.loc[keys])


@pytest.mark.parametrize("case", ["symptoms_by_modality", "symptoms_by_agency"])
def test_moderator_value_slopes_use_satterthwaite_df(case):
    slopes = model_result(case).extras["simple_slopes"]
    slopes = slopes.set_index(slopes["term"] + "|" + slopes["level"])
    ref = section(case, "contest")
    keys = [k for k in ref.index if "|" in k]
    assert sorted(keys) == sorted(slopes.index)
    _check_rows(slopes, ref.loc[keys])


def test_glmm_baldwin_contrast_is_a_wald_z_test():
    data = data_of("dropout_glmm")
    ther = data.groupby("therapist")["alliance"].transform("mean")
    data = data.assign(alliance_ther=ther - data["alliance"].mean(),
                       alliance_pat=data["alliance"] - ther)  # fmt: skip
    spec = ModelSpec(id="drop", kind="glmm", outcome="drop",
                     fixed=("alliance_ther", "alliance_pat"), random="(1 | therapist)")  # fmt: skip
    res = fit_mixed(spec, data, family="binomial", arms={})
    row = res.extras["contrasts"].iloc[0]
    assert (row["contrast"], row["plus"], row["minus"]) == (
        contrasts.BALDWIN, "alliance_ther", "alliance_pat")  # fmt: skip
    assert row["test"] == "z" and np.isnan(row["df"])
    vcov = res.extras["vcov"].set_index("term")
    c = res.coefficients.set_index("term")["estimate"]
    assert row["estimate"] == pytest.approx(c["alliance_ther"] - c["alliance_pat"])
    var = vcov.loc["alliance_ther", "alliance_ther"] + vcov.loc["alliance_pat", "alliance_pat"]
    var -= 2 * vcov.loc["alliance_ther", "alliance_pat"]
    assert row["std_error"] == pytest.approx(np.sqrt(var))
    assert row["ci_high"] - row["estimate"] == pytest.approx(1.959963985 * np.sqrt(var))
    assert res.fit["linear_combinations_df"] == "z (df = inf)"


def test_baldwin_pairs_need_the_same_suffix():
    terms = [
        "(Intercept)",
        "alliance_ther_prior",
        "alliance_pat_prior",
        "alliance_ther",
        "alliance_pat_lag1",
        "alliance_ther_prior:weeks",
        "weeks:alliance_pat_prior",
    ]
    assert contrasts.baldwin_pairs(terms) == [("alliance_ther_prior", "alliance_pat_prior")]
    assert contrasts.baldwin_pairs(["alliance_ther", "alliance_pat"]) == [
        ("alliance_ther", "alliance_pat")
    ]
    assert contrasts.baldwin_pairs(["alliance_pat", "alliance_within"]) == []


if __name__ == "__main__":
    print({k: f"{v:.1e}" for k, v in max_rel_df().items()})
