"""gee kind against R geepack 1.3.9 (R 4.2.2).

Reference values: tests/reference/kinds/kinds_reference.csv, cases gee_*, written by
tests/reference/make_kinds_reference.R from the simulated tests/reference/kinds/gee_data.csv
(320 patients, 30 therapists of unequal size): geeglm(dropout ~ alliance_early +
baseline_symptom, binomial, id = therapist, corstr = ...) and a gaussian case. The *_tight
cases iterate to epsilon = 1e-12; geepack's default (1e-4) stops up to 5e-5 relative short,
which the plain `gee_exchangeable` case shows.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.errors import ConfigError, InputError
from alliance.models.base import COEF_COLUMNS, FitContext, ModelSpec, Skipped
from alliance.models.gee import fit

CONTEXT = FitContext(seed=1, arms={}, higher_is_worse=True)  # the kind reads none of it

KINDS = Path(__file__).parent / "reference" / "kinds"
_REF = pd.read_csv(KINDS / "kinds_reference.csv", keep_default_na=False)
IDS = {"patient": str, "therapist": str}
BINARY = {"outcome": "dropout", "fixed": ("alliance_early", "baseline_symptom")}
CASES = {
    "gee_exchangeable_tight": (BINARY, {"cluster": "therapist"}),
    "gee_independence_tight": (BINARY, {"cluster": "therapist", "corstr": "independence"}),
    "gee_gaussian_tight": (
        {"outcome": "baseline_symptom", "fixed": ("alliance_early",)},
        {"cluster": "therapist", "family": "gaussian"},
    ),
}


def ref(case: str, section: str) -> pd.DataFrame:
    rows = _REF[(_REF["case"] == case) & (_REF["section"] == section)]
    return rows.pivot(index="term", columns="stat", values="value").astype(float)


def rel(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, float) / np.asarray(b, float) - 1.0)))


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    # shuffled: the kind must not rely on the clusters' rows being together
    return pd.read_csv(KINDS / "gee_data.csv", dtype=IDS).sample(frac=1.0, random_state=3)


@pytest.mark.parametrize("case", list(CASES))
def test_matches_geepack(data, case):
    terms, opts = CASES[case]
    res = fit(ModelSpec(id="dropout_gee", kind="gee", options=opts, **terms), data, CONTEXT)
    r = ref(case, "coef")
    tab = res.coefficients.set_index("term").loc[r.index]
    assert list(res.coefficients.columns) == COEF_COLUMNS
    assert rel(tab["estimate"], r["estimate"]) < 1e-4
    assert rel(tab["std_error"], r["std_error"]) < 1e-3
    f = ref(case, "fit").iloc[0]
    assert res.fit["scale"] == pytest.approx(f["scale"], rel=1e-4)
    assert res.fit["QIC"] == pytest.approx(f["qic"], rel=1e-4)
    if "alpha" in f:
        assert res.fit["working_correlation"] == pytest.approx(f["alpha"], rel=1e-4)
    assert res.fit["converged"]
    json.dumps(res.fit, allow_nan=False)


def test_default_geepack_tolerance_is_close_not_exact(data):
    """Documents why the tight cases are the reference: geepack's default stops early."""
    res = fit(
        ModelSpec(id="g", kind="gee", options={"cluster": "therapist"}, **BINARY), data, CONTEXT
    )
    loose = ref("gee_exchangeable", "coef")
    tab = res.coefficients.set_index("term").loc[loose.index]
    assert 1e-6 < rel(tab["estimate"], loose["estimate"]) < 1e-4


def test_fit_facts(data):
    res = fit(
        ModelSpec(id="g", kind="gee", options={"cluster": "therapist"}, **BINARY), data, CONTEXT
    )
    f = res.fit
    assert f["n_obs"] == 320 and f["n_patients"] == 320
    assert f["n_clusters"] == data["therapist"].nunique() == 29  # one of 30 drew no patient
    assert f["corstr"] == "exchangeable" and f["family"] == "binomial"
    assert "id = factor(therapist)" in f["formula_r"]
    assert "data[order(data$therapist), ]" in f["formula_r"]
    assert list(res.frame["therapist"]) == sorted(res.frame["therapist"])
    odds = f["odds_ratios"]["alliance_early"]
    est = res.coefficients.set_index("term").loc["alliance_early", "estimate"]
    assert odds["or"] == pytest.approx(np.exp(est))
    assert np.isposinf(res.coefficients["df"]).all()


def test_cluster_default_is_therapist(data):
    res = fit(ModelSpec(id="g", kind="gee", **BINARY), data, CONTEXT)
    assert res.fit["cluster"] == "therapist"


def test_unusable_clusters_are_skipped(data):
    with pytest.raises(Skipped, match="cluster column"):
        fit(ModelSpec(id="g", kind="gee", options={"cluster": None}, **BINARY), data, CONTEXT)
    with pytest.raises(Skipped, match="at least 2 clusters"):
        fit(ModelSpec(id="g", kind="gee", **BINARY), data.assign(therapist="T01"), CONTEXT)


def test_bad_input(data):
    with pytest.raises(InputError, match="0/1 outcome"):
        fit(ModelSpec(id="g", kind="gee", outcome="baseline_symptom", fixed=BINARY["fixed"]),
            data, CONTEXT)  # fmt: skip
    with pytest.raises(ConfigError, match="family"):
        fit(ModelSpec(id="g", kind="gee", options={"family": "poisson"}, **BINARY), data, CONTEXT)
    collinear = data.assign(copy=data["alliance_early"] * 2)
    spec = ModelSpec(id="g", kind="gee", outcome="dropout", fixed=("alliance_early", "copy"))
    with pytest.raises(Skipped, match="collinear"):
        fit(spec, collinear, CONTEXT)


def test_fractional_logit_takes_a_proportion_and_rejects_what_is_not_one(data):
    """options.fractional: y in [0, 1] (the fractional logit); on a 0/1 outcome it is the plain
    binomial GEE. Without it a proportion is refused with the option named; outside [0, 1], or
    with another family, it is refused too."""
    frac = {"cluster": "therapist", "fractional": True}
    plain = fit(ModelSpec(id="g", kind="gee", options={"cluster": "therapist"}, **BINARY),
                data, CONTEXT)  # fmt: skip
    same = fit(ModelSpec(id="g", kind="gee", options=frac, **BINARY), data, CONTEXT)
    pd.testing.assert_frame_equal(plain.coefficients, same.coefficients)
    shares = data.assign(share=(data["baseline_symptom"] - 5) / 30)
    assert shares["share"].between(0, 1).all() and not shares["share"].isin([0, 1]).all()
    spec = ModelSpec(id="g", kind="gee", outcome="share", fixed=("alliance_early",), options=frac)
    res = fit(spec, shares, CONTEXT)
    assert res.fit["fractional"] and "Papke & Wooldridge" in res.fit["notes"][0]
    assert 0 < res.fit["scale"] < 1  # shares vary far less than Bernoulli outcomes
    vcov = res.extras["vcov"].set_index("term")
    se = res.coefficients.set_index("term")["std_error"]
    np.testing.assert_allclose(np.sqrt(np.diag(vcov.loc[se.index, se.index])), se)
    with pytest.raises(InputError, match="options.fractional: true"):
        fit(dataclasses.replace(spec, options={"cluster": "therapist"}), shares, CONTEXT)
    with pytest.raises(InputError, match=r"proportion in \[0, 1\], found 1.2"):
        fit(spec, shares.assign(share=shares["share"].where(shares.index != 5, 1.2)), CONTEXT)
    with pytest.raises(ConfigError, match="fractional"):
        fit(dataclasses.replace(spec, options={**frac, "family": "gaussian"}), shares, CONTEXT)


def test_calibration_uses_the_gee_metric(data):
    """`{x}_rc`'s lambda is 1 - sum_r P_rr s2_r / x'P x with the GEE's own V on the linear
    predictor scale, V_i = (1 / w)[(1 - alpha) I + alpha J] per cluster (w the mean mu (1 - mu)),
    computed here from the dense V; lower than the marginal lambda, since an exchangeable
    correlation leans on within-cluster differences."""
    rng = np.random.default_rng(11)
    codes = pd.factorize(data["therapist"])[0]
    eta = 0.8 + 0.5 * data["alliance_early"] + rng.normal(0, 0.8, codes.max() + 1)[codes]
    frame = data.assign(
        share=1 / (1 + np.exp(-(eta + rng.normal(0, 0.5, len(data))))),
        x_error=0.05,
        alliance_early=data["alliance_early"] + rng.normal(0, 0.3, len(data)),
    )
    options = {"cluster": "therapist", "fractional": True, "x": "alliance_early",
               "x_error": "x_error"}  # fmt: skip
    spec = ModelSpec(id="g", kind="gee", outcome="share", fixed=BINARY["fixed"], options=options)
    res = fit(spec, frame, CONTEXT)
    rc, alpha = res.fit["reliability_correction"], res.fit["working_correlation"]
    assert rc["metric"].startswith("GLS") and alpha > 0
    f = res.frame
    mu = 1 / (1 + np.exp(-np.column_stack([np.ones(len(f)), f[list(BINARY["fixed"])]])
                        @ res.coefficients["estimate"].to_numpy()[:3]))  # fmt: skip
    w = float(np.mean(mu * (1 - mu)))
    same = (f["therapist"].to_numpy()[:, None] == f["therapist"].to_numpy()[None, :]).astype(float)
    v_inv = np.linalg.inv(((1 - alpha) * np.eye(len(f)) + alpha * same) / w)
    z = np.column_stack([np.ones(len(f)), f["baseline_symptom"]])
    p = v_inv - v_inv @ z @ np.linalg.solve(z.T @ v_inv @ z, z.T @ v_inv)
    x = f["alliance_early"].to_numpy()
    dense = 1 - float(np.diag(p) @ f["x_error"].to_numpy()) / float(x @ p @ x)
    assert rc["lambda"] == pytest.approx(dense, rel=1e-9)
    assert rc["lambda"] < rc["lambda_marginal"]
