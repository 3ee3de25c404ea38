"""cox kind against R survival 3.5-3 (R 4.2.2).

Reference values: tests/reference/kinds/kinds_reference.csv, case "cox", written by
tests/reference/make_kinds_reference.R from the simulated tests/reference/kinds/cox_data.csv
(240 patients, 25 therapists, relapse in whole weeks so ties are many):
coxph(Surv(relapse_time, relapse_event) ~ alliance_mean + baseline_symptom + armCBT +
cluster(therapist), ties = "efron"), cox.zph (transform "km"), survdiff and
summary(survfit(...), times = 0, 10, ..., 50) by alliance tertile.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.errors import ConfigError
from alliance.models.base import COEF_COLUMNS, FitContext, ModelSpec, Skipped
from alliance.models.cox import at_risk_times, fit, tertiles

CONTEXT = FitContext(seed=1, arms={}, higher_is_worse=True)  # the kind reads none of it

KINDS = Path(__file__).parent / "reference" / "kinds"
_REF = pd.read_csv(KINDS / "kinds_reference.csv", keep_default_na=False)
IDS = {"patient": str, "therapist": str, "site": str}
SPEC = ModelSpec(
    id="relapse_cox",
    kind="cox",
    outcome="relapse_event",
    fixed=("alliance_mean", "baseline_symptom", "armCBT"),
    data="patients",
    options={
        "duration": "relapse_time",
        "event": "relapse_event",
        "cluster": "therapist",
        "tertile_of": "alliance_mean",
    },
)


def ref(section: str) -> pd.DataFrame:
    rows = _REF[(_REF["case"] == "cox") & (_REF["section"] == section)]
    return rows.pivot(index="term", columns="stat", values="value").astype(float)


def rel(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, float) / np.asarray(b, float) - 1.0)))


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return pd.read_csv(KINDS / "cox_data.csv", dtype=IDS)


@pytest.fixture(scope="module")
def result(data):
    return fit(SPEC, data, {"seed": 1})


def test_coefficients_and_robust_se_match_r(result):
    r = ref("coef")
    tab = result.coefficients.set_index("term").loc[r.index]
    assert list(result.coefficients.columns) == COEF_COLUMNS
    assert rel(tab["estimate"], r["estimate"]) < 1e-4
    assert rel(tab["std_error"], r["std_error"]) < 1e-3
    assert rel(tab["p_value"], r["p_value"]) < 1e-3
    assert np.isposinf(tab["df"]).all()
    hr = result.extras["hazard_ratios"].set_index("term").loc[r.index]
    assert rel(hr["naive_se"], r["naive_se"]) < 1e-3
    assert np.allclose(hr["hazard_ratio"], np.exp(r["estimate"]), rtol=1e-4)


def test_fit_statistics_match_r(result):
    r = ref("fit").iloc[0]
    f = result.fit
    assert f["n_events"] == r["n_events"] == 132
    assert rel(f["logLik"], r["loglik"]) < 1e-6
    assert rel(f["AIC"], r["aic"]) < 1e-6
    assert rel(f["BIC"], r["bic"]) < 1e-6  # R: BIC with the number of events as n
    assert rel(f["concordance"], r["concordance"]) < 1e-6
    assert f["n_clusters"] == 25 and f["converged"] and f["warnings"] == []
    assert f["formula_r"] == (
        "coxph(Surv(relapse_time, relapse_event) ~ alliance_mean + baseline_symptom + armCBT"
        ' + cluster(therapist), data = data, ties = "efron")'
    )
    json.dumps(f, allow_nan=False)


def test_schoenfeld_matches_cox_zph(result):
    r = ref("zph")
    z = result.extras["schoenfeld"].set_index("term").loc[r.index]
    assert rel(z["chisq"], r["chisq"]) < 1e-4
    assert rel(z["p"], r["p"]) < 1e-3
    assert result.fit["schoenfeld_global_p"] == pytest.approx(r.loc["GLOBAL", "p"], rel=1e-3)


def test_logrank_and_km_by_tertile_match_r(result):
    r = ref("logrank").iloc[0]
    lr = result.extras["logrank"].iloc[0]
    assert lr["chi2"] == pytest.approx(r["chisq"], rel=1e-4)
    assert lr["df"] == r["df"] == 2
    assert result.fit["tertiles"]["n"] == {"low": 80, "middle": 80, "high": 80}
    at = ref("at_risk")
    mine = result.extras["km_at_risk"]
    assert list(mine["time"].unique()) == [0, 10, 20, 30, 40, 50]
    km = result.extras["km"]
    for key, row in at.iterrows():
        group, time = key.split("|")
        got = mine[(mine["group"] == group) & (mine["time"] == float(time))]
        assert int(got["n_risk"].iloc[0]) == row["n_risk"], key
        # survival at `time`: the KM step at the last event time <= time (1 before any)
        steps = km[(km["group"] == group) & (km["time"] <= float(time))]
        surv = steps["survival"].iloc[-1] if len(steps) else 1.0
        assert surv == pytest.approx(row["survival"], rel=1e-6), key
    assert {"time", "n_risk", "n_event", "survival", "ci_low", "ci_high", "group"} <= set(
        km.columns
    )


def test_without_cluster_se_is_model_based(data):
    spec = ModelSpec(
        id="c", kind="cox", outcome="relapse_event", fixed=SPEC.fixed,
        options={"duration": "relapse_time"},
    )  # fmt: skip
    res = fit(spec, data, CONTEXT)
    r = ref("coef")
    tab = res.coefficients.set_index("term").loc[r.index]
    assert rel(tab["std_error"], r["naive_se"]) < 1e-3
    assert "km" not in res.extras and res.fit["n_clusters"] is None


def test_too_few_events_is_skipped(data):
    few = data.copy()
    events = np.flatnonzero(few["relapse_event"].to_numpy() == 1)
    few.loc[events[9:], "relapse_event"] = 0
    with pytest.raises(Skipped, match="only 9 events"):
        fit(SPEC, few, CONTEXT)
    few.loc[events[9], "relapse_event"] = 1
    assert fit(SPEC, few, CONTEXT).fit["n_events"] == 10


def test_no_covariate_or_single_cluster_is_skipped(data):
    with pytest.raises(Skipped, match="no covariate"):
        fit(
            ModelSpec(id="c", kind="cox", outcome="relapse_event", options=SPEC.options),
            data,
            CONTEXT,
        )
    one = data.assign(therapist="T01")
    with pytest.raises(Skipped, match="at least 2 levels"):
        fit(SPEC, one, CONTEXT)


def test_missing_column_is_a_config_error(data):
    with pytest.raises(ConfigError, match="relapse_time"):
        fit(SPEC, data.drop(columns="relapse_time"), CONTEXT)


def test_tertiles_are_right_closed_like_r_cut():
    x = pd.Series([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], name="a")
    cat, cuts = tertiles(x)
    assert cuts == pytest.approx([1.0, 3.0, 5.0, 7.0])
    # R: cut(x, quantile(x, 0:3/3), include.lowest = TRUE) -> [1,3], (3,5], (5,7]
    assert list(cat) == ["low", "low", "low", "middle", "middle", "high", "high"]
    with pytest.raises(Skipped, match="tertiles"):
        tertiles(pd.Series([1.0, 1.0, 1.0, 2.0], name="a"))


def test_at_risk_times_use_round_steps():
    assert list(at_risk_times(52.0)) == [0, 10, 20, 30, 40, 50]
    assert list(at_risk_times(12.0)) == [0, 2, 4, 6, 8, 10, 12]
    assert list(at_risk_times(0.9)) == pytest.approx([0, 0.2, 0.4, 0.6, 0.8])


# ---- Firth (the relapse_cox default) ---------------------------------------------------------
FIRTH_SPEC = ModelSpec(
    id="relapse_cox",
    kind="cox",
    outcome="relapse_event",
    fixed=("alliance_last", "alliance_mean", "baseline_symptom", "armCBT", "armIMI.CM", "armIPT"),
    data="patients",
    options={
        "cluster": "therapist",
        "ties": "efron",
        "firth": True,
        "se": "model",
        "profile": True,
    },
)


@pytest.fixture(scope="module")
def firth_result():
    data = pd.read_csv(Path(__file__).parent / "reference" / "sim_relapse_small.csv", dtype=IDS)
    return fit(FIRTH_SPEC, data, CONTEXT)


def test_firth_kind_matches_r_refit(firth_result):
    """tests/reference/firth_reference.csv, case relapse_efron (make_firth_reference.R)."""
    table = pd.read_csv(Path(__file__).parent / "reference" / "firth_reference.csv")
    rows = table[(table["case"] == "relapse_efron") & (table["section"] == "coef")]
    r = rows.pivot(index="term", columns="stat", values="value").astype(float)
    tab = firth_result.coefficients.set_index("term").loc[r.index]
    for mine, theirs in [
        ("estimate", "estimate"),
        ("std_error", "std_error"),
        ("ci_low", "ci_low"),
        ("ci_high", "ci_high"),
        ("p_value", "p_value"),
    ]:
        np.testing.assert_allclose(tab[mine], r[theirs], rtol=1e-5, atol=1e-5, err_msg=mine)
    hr = firth_result.extras["hazard_ratios"].set_index("term").loc[r.index]
    np.testing.assert_allclose(hr["robust_se"], r["robust_se"], rtol=1e-5)
    np.testing.assert_allclose(hr["ci_low"], np.exp(r["ci_low"]), rtol=1e-5)


def test_firth_fit_json_names_estimator_and_methods(firth_result):
    f = firth_result.fit
    assert f["estimator"].startswith("Firth-penalised partial likelihood")
    assert f["ci_method"].startswith("profile penalised likelihood")
    assert f["test"].startswith("penalised likelihood-ratio")
    assert f["se_method"].startswith("model-based")
    assert f["formula_r"] == (
        "coxphf::coxphf(Surv(relapse_time, relapse_event) ~ alliance_last + alliance_mean + "
        "baseline_symptom + armCBT + armIMI.CM + armIPT, data = data, pl = TRUE)"
    )
    assert f["lr_test"]["likelihood"] == "penalised"
    assert f["logLik_penalised"] > f["logLik_penalised_null"]
    assert f["n_clusters"] == 23
    assert any("model-based" in n and "robust_se" in n for n in f["notes"])
    assert any("coxphf" in n and "firth_coxph(" in n for n in f["notes"])
    json.dumps(f, allow_nan=False)


def test_firth_with_wald_cis_is_the_relapse_default_and_matches_r():
    """relapse_cox's default (firth, se model, profile false): coxphf(pl = FALSE)."""
    data = pd.read_csv(Path(__file__).parent / "reference" / "sim_relapse_small.csv", dtype=IDS)
    spec = ModelSpec(
        id="relapse_cox", kind="cox", outcome="relapse_event", fixed=FIRTH_SPEC.fixed,
        data="patients", options={**FIRTH_SPEC.options, "profile": False},
    )  # fmt: skip
    res = fit(spec, data, CONTEXT)
    table = pd.read_csv(Path(__file__).parent / "reference" / "firth_reference.csv")
    rows = table[(table["case"] == "relapse_efron") & (table["section"] == "coef")]
    r = rows.pivot(index="term", columns="stat", values="value").astype(float)
    tab = res.coefficients.set_index("term").loc[r.index]
    np.testing.assert_allclose(tab["estimate"], r["estimate"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tab["std_error"], r["std_error"], rtol=1e-5)
    z = 1.959963984540054
    np.testing.assert_allclose(tab["ci_low"], r["estimate"] - z * r["std_error"], atol=1e-5)
    assert res.fit["ci_method"] == "Wald z" and res.fit["test"] == "Wald z (df = inf)"
    assert res.fit["formula_r"].endswith("data = data, pl = FALSE)")
    assert res.fit["estimator"].startswith("Firth")


def test_cr1_option_uses_t_with_clusters_minus_one(data):
    spec = ModelSpec(
        id="c", kind="cox", outcome="relapse_event", fixed=SPEC.fixed,
        options={**SPEC.options, "se": "robust_cr1"},
    )  # fmt: skip
    res = fit(spec, data, CONTEXT)
    r = ref("coef")
    tab = res.coefficients.set_index("term").loc[r.index]
    assert rel(tab["std_error"], r["std_error"] * np.sqrt(25 / 24)) < 1e-3
    assert (tab["df"] == 24).all()
    assert res.fit["test"].startswith("Wald t (df = 24")
    assert "cluster(therapist)" in res.fit["formula_r"]


def test_robust_se_without_cluster_is_a_config_error(data):
    spec = ModelSpec(
        id="c", kind="cox", outcome="relapse_event", fixed=SPEC.fixed,
        options={"duration": "relapse_time", "se": "robust_cr1"},
    )  # fmt: skip
    with pytest.raises(ConfigError, match="needs options.cluster"):
        fit(spec, data, CONTEXT)
