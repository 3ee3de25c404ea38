"""pool kind against R metafor 3.8-1 (R 4.2.2).

Reference values: tests/reference/kinds/kinds_reference.csv, cases pool / pool_DL / pool_REML,
written by tests/reference/make_kinds_reference.R from the simulated
tests/reference/kinds/pool_data.csv (8 sites, 24-97 patients): per-site cor(alliance_mean,
symptom_change), then rma(escalc("ZCOR", ri = -r, ni = n)) with DL and REML (threshold 1e-12),
back-transformed with transf.ztor. Benchmark: Flückiger et al. 2018, Psychotherapy 55:316,
r = .278 [.256, .299], k = 295.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.errors import ConfigError
from alliance.models.base import COEF_COLUMNS, FitContext, ModelSpec, Skipped
from alliance.models.pool import fit

KINDS = Path(__file__).parent / "reference" / "kinds"
_REF = pd.read_csv(KINDS / "kinds_reference.csv", keep_default_na=False)
IDS = {"patient": str, "site": str}
CONTEXT = FitContext(seed=1, arms={}, higher_is_worse=True)


def ref(case: str, section: str) -> pd.DataFrame:
    rows = _REF[(_REF["case"] == case) & (_REF["section"] == section)]
    return rows.pivot(index="term", columns="stat", values="value").astype(float)


def spec(**options) -> ModelSpec:
    return ModelSpec(
        id="pooled_sites", kind="pool", outcome="symptom_change", fixed=("alliance_mean",),
        options={"unit": "site", "x": "alliance_mean", **options},
    )  # fmt: skip


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return pd.read_csv(KINDS / "pool_data.csv", dtype=IDS)


@pytest.fixture(scope="module")
def result(data):
    return fit(spec(), data, CONTEXT)


def test_unit_correlations_match_r(result):
    r = ref("pool", "units")
    units = result.extras["units"].set_index("unit").loc[r.index]
    assert np.allclose(units["r_raw"], r["r"], rtol=1e-10)
    assert (units["n"] == r["n"]).all()
    assert np.allclose(units["r"], -units["r_raw"])  # sign auto: higher symptoms are worse
    assert np.allclose(units["z"], np.arctanh(units["r"]))
    assert np.allclose(units["se"], 1 / np.sqrt(units["n"] - 3))
    for m in ("DL", "REML"):
        assert units[f"weight_{m}"].sum() == pytest.approx(1.0)


@pytest.mark.parametrize("method", ["DL", "REML"])
def test_pooled_r_matches_metafor(result, method):
    r = ref(f"pool_{method}", "fit").iloc[0]
    row = result.coefficients.set_index("term").loc[f"pooled_r_{method}"]
    assert row["estimate"] == pytest.approx(r["r"], rel=1e-4)
    assert row["ci_low"] == pytest.approx(r["r_ci_low"], rel=1e-4)
    assert row["ci_high"] == pytest.approx(r["r_ci_high"], rel=1e-4)
    assert row["std_error"] == pytest.approx(r["se"], rel=1e-3)  # on the z scale
    assert row["p_value"] == pytest.approx(r["p_value"], rel=1e-3)
    info = result.fit["methods"][method]
    assert info["tau2"] == pytest.approx(r["tau2"], rel=1e-4)
    assert info["i2"] == pytest.approx(r["i2"], rel=1e-4)
    assert info["q"] == pytest.approx(r["q"], rel=1e-4)
    assert info["r_pi_low"] == pytest.approx(r["r_pi_low"], rel=1e-4)
    assert info["r_pi_high"] == pytest.approx(r["r_pi_high"], rel=1e-4)


def test_table_and_fit_layout(result):
    tab = result.coefficients
    assert list(tab.columns) == COEF_COLUMNS
    assert list(tab["term"]) == ["pooled_r_DL", "pooled_r_REML"]
    assert np.isposinf(tab["df"]).all()
    f = result.fit
    assert f["k"] == 8 and f["sign"] == -1 and not f["few_units"]
    assert "Fisher z" in f["std_error_scale"]
    assert list(f["methods"]) == ["REML", "DL"]  # primary first
    assert f["n_obs"] == 24 + 35 + 41 + 52 + 60 + 73 + 88 + 97
    json.dumps(f, allow_nan=False)


def test_benchmark_table(result):
    b = result.extras["benchmark"].set_index("label")
    assert b.loc["benchmark", ["r", "ci_low", "ci_high", "k"]].tolist() == [
        0.278, 0.256, 0.299, 295,
    ]  # fmt: skip
    pooled = result.coefficients.set_index("term").loc["pooled_r_REML", "estimate"]
    assert b.loc["pooled (REML)", "r"] == pooled
    benchmark = {"r": 0.29, "ci_low": 0.1, "ci_high": 0.47, "source": "Eubanks et al. 2018"}
    custom = fit(spec(benchmark=benchmark), result.frame, CONTEXT)
    cb = custom.fit["benchmark"]
    assert cb["r"] == 0.29 and cb["k"] is None and cb["source"] == "Eubanks et al. 2018"


def test_sign_options(data):
    plus = fit(spec(sign=1), data, CONTEXT)
    assert np.allclose(plus.extras["units"]["r"], plus.extras["units"]["r_raw"])
    better = fit(spec(), data, dataclasses.replace(CONTEXT, higher_is_worse=False))
    assert better.fit["sign"] == 1
    other = fit(spec(y="alliance_mean", x="symptom_change"), data, CONTEXT)
    assert other.fit["sign"] == 1 and "not a symptom column" in other.fit["sign_reason"]
    with pytest.raises(ConfigError, match="sign"):
        fit(spec(sign=2), data, CONTEXT)


def test_few_units_flagged_and_too_few_skipped(data):
    three = data[data["site"].isin(["S1", "S2", "S3"])]
    res = fit(spec(), three, CONTEXT)
    assert res.fit["few_units"] and res.fit["k"] == 3
    assert any("unstable" in w for w in res.fit["warnings"])
    with pytest.raises(Skipped, match="at least 2 units"):
        fit(spec(), data[data["site"] == "S1"], CONTEXT)
    # a unit with 3 rows cannot give a Fisher z: left out with a warning
    tiny = pd.concat([three, data[data["site"] == "S4"].head(3)])
    res = fit(spec(), tiny, CONTEXT)
    assert res.fit["k"] == 3 and any("S4: 3 rows" in w for w in res.fit["warnings"])
    flat = pd.concat([three, data[data["site"] == "S4"].assign(alliance_mean=4.0)])
    assert any("does not vary" in w for w in fit(spec(), flat, CONTEXT).fit["warnings"])
