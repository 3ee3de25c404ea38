"""rsa kind against R 4.2.2 `lm` and surface parameters computed by hand in R.

Reference values: tests/reference/kinds/kinds_reference.csv, cases rsa / rsa_cluster, written
by tests/reference/make_kinds_reference.R from the simulated tests/reference/kinds/rsa_data.csv
(260 patients, 40 therapists, WAI-SR-like ratings 1-5 centred at 3):
lm(symptom_change ~ P + T + I(P^2) + P:T + I(T^2) + age); a1..a4 = L b with SE sqrt(L V L');
rsa_cluster uses the CR1 covariance bread (S'S) bread x G/(G-1) x (N-1)/(N-K) by therapist.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from alliance.errors import ConfigError
from alliance.models.base import COEF_COLUMNS, FitContext, ModelSpec, Skipped
from alliance.models.rsa import GRID_SIZE, fit

CONTEXT = FitContext(seed=1, arms={}, higher_is_worse=True)  # the kind reads none of it

KINDS = Path(__file__).parent / "reference" / "kinds"
_REF = pd.read_csv(KINDS / "kinds_reference.csv", keep_default_na=False)
IDS = {"patient": str, "therapist": str}
FIXED = ("agree_p", "agree_t", "age")


def ref(case: str, section: str) -> pd.DataFrame:
    rows = _REF[(_REF["case"] == case) & (_REF["section"] == section)]
    return rows.pivot(index="term", columns="stat", values="value").astype(float)


def rel(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, float) / np.asarray(b, float) - 1.0)))


def spec(**options) -> ModelSpec:
    return ModelSpec(
        id="agreement_rsa", kind="rsa", outcome="symptom_change", fixed=FIXED,
        options={"midpoint": 3, **options},
    )  # fmt: skip


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return pd.read_csv(KINDS / "rsa_data.csv", dtype=IDS)


@pytest.mark.parametrize(("case", "opts"), [("rsa", {}), ("rsa_cluster", {"cluster": "therapist"})])
def test_b_and_surface_parameters_match_r(data, case, opts):
    res = fit(spec(**opts), data, CONTEXT)
    r = ref(case, "coef")
    tab = res.coefficients.set_index("term")
    assert list(res.coefficients.columns) == COEF_COLUMNS
    assert set(r.index) == set(tab.index)  # R's term names, plus a1..a4
    tab = tab.loc[r.index]
    assert rel(tab["estimate"], r["estimate"]) < 1e-4
    assert rel(tab["std_error"], r["std_error"]) < 1e-3
    df = 253.0 if case == "rsa" else data["therapist"].nunique() - 1.0  # residual df / G - 1
    assert (tab["df"] == df).all()
    t = tab.loc["a1"]
    assert t["p_value"] == pytest.approx(2 * stats.t.sf(abs(t["statistic"]), df))


def test_order_and_fit_statistics(data):
    res = fit(spec(), data, CONTEXT)
    terms = list(res.coefficients["term"])
    assert terms == ["(Intercept)", "P", "T", "I(P^2)", "P:T", "I(T^2)", "age",
                     "a1", "a2", "a3", "a4"]  # fmt: skip
    r = ref("rsa", "fit").iloc[0]
    f = res.fit
    assert f["df_residual"] == r["df_residual"]
    assert f["logLik"] == pytest.approx(r["loglik"], rel=1e-8)
    assert f["AIC"] == pytest.approx(r["aic"], rel=1e-8)
    assert f["BIC"] == pytest.approx(r["bic"], rel=1e-8)
    assert f["r_squared"] == pytest.approx(r["r_squared"], rel=1e-8)
    assert f["centre"] == 3.0 and f["P"] == "agree_p" and f["T"] == "agree_t"
    assert f["formula_r"] == (
        "lm(symptom_change ~ P + T + I(P^2) + P:T + I(T^2) + age, "
        "data = within(data, {P <- agree_p - 3; T <- agree_t - 3}))"
    )
    json.dumps(f, allow_nan=False)
    assert np.allclose(res.frame["P"], data["agree_p"] - 3)


def test_grid_is_the_fitted_surface(data):
    res = fit(spec(), data, CONTEXT)
    grid = res.extras["grid"]
    assert len(grid) == GRID_SIZE**2
    lo = min(data["agree_p"].min(), data["agree_t"].min())
    hi = max(data["agree_p"].max(), data["agree_t"].max())
    assert grid["agree_p"].min() == lo and grid["agree_t"].max() == hi
    # R: predict(fit, data.frame(P = 1, T = 2, age = mean(age))) against the coefficients
    b = res.coefficients.set_index("term")["estimate"]
    p, t = 1.0, 2.0
    y = (b["(Intercept)"] + b["P"] * p + b["T"] * t + b["I(P^2)"] * p * p + b["P:T"] * p * t
         + b["I(T^2)"] * t * t + b["age"] * data["age"].mean())  # fmt: skip
    assert y == pytest.approx(ref("rsa", "fit").iloc[0]["predict_p1_t2"], rel=1e-8)
    # every grid point is the same formula
    g = grid.iloc[::97]
    expected = (b["(Intercept)"] + b["P"] * g["P"] + b["T"] * g["T"] + b["I(P^2)"] * g["P"] ** 2
                + b["P:T"] * g["P"] * g["T"] + b["I(T^2)"] * g["T"] ** 2
                + b["age"] * data["age"].mean())  # fmt: skip
    assert np.allclose(g["predicted"], expected)
    inside = grid["in_range"] == 1
    assert inside.any() and not inside.all()


def test_no_midpoint_centres_at_pooled_mean(data):
    res = fit(spec(midpoint=None), data, CONTEXT)
    centre = np.r_[data["agree_p"], data["agree_t"]].mean()
    assert res.fit["centre"] == pytest.approx(centre)
    assert "pooled mean" in res.fit["centring"]
    # centring moves the b's but not the quadratic ones nor the fit
    b3 = res.coefficients.set_index("term").loc["I(P^2)", "estimate"]
    assert b3 == pytest.approx(ref("rsa", "coef").loc["I(P^2)", "estimate"], rel=1e-8)


def test_degenerate_data(data):
    agree = data.assign(agree_t=data["agree_p"])
    with pytest.raises(Skipped, match="collinear"):
        fit(spec(), agree, CONTEXT)
    with pytest.raises(Skipped, match="too few"):
        fit(spec(), data.head(7), CONTEXT)
    with pytest.raises(Skipped, match="2 levels"):
        fit(spec(cluster="therapist"), data.assign(therapist="T01"), CONTEXT)
    with pytest.raises(ConfigError, match="first two terms"):
        fit(
            ModelSpec(id="r", kind="rsa", outcome="symptom_change", fixed=("agree_p",)),
            data,
            CONTEXT,
        )
