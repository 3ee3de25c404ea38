"""alliance.engine.meta against metafor 3.8-1 (R 4.2.2), statsmodels and hand computation.

Data: metadat `dat.molloy2014` (16 correlations of conscientiousness with medication adherence),
copied to tests/reference/molloy2014.csv; metafor results in tests/reference/meta_reference.csv
(both written by tests/reference/make_reference.R).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from alliance.engine.meta import pool_correlations
from alliance.errors import InputError

REF = Path(__file__).parent / "reference"
_TABLE = pd.read_csv(REF / "meta_reference.csv", keep_default_na=False)
MOLLOY = pd.read_csv(REF / "molloy2014.csv")


def metafor(case: str) -> pd.Series:
    rows = _TABLE[_TABLE["case"] == case]
    assert not rows.empty, case
    return rows.set_index("stat")["value"].astype(float)


def compare(res: dict, ref: pd.Series, rtol: float) -> None:
    for stat, value in ref.items():
        assert res[stat] == pytest.approx(value, rel=rtol), stat


@pytest.mark.parametrize(("method", "case"), [("DL", "molloy_DL"), ("REML", "molloy_REML_tight")])
def test_matches_metafor(method, case):
    res = pool_correlations(MOLLOY["ri"], MOLLOY["ni"], method=method)
    compare(res.as_dict(), metafor(case), rtol=1e-6)
    assert res.k == 16 and res.q_df == 15


def test_reml_against_metafor_default_threshold():
    """metafor's default stops REML at a 1e-5 step; the remaining gap is that tolerance."""
    res = pool_correlations(MOLLOY["ri"], MOLLOY["ni"]).as_dict()
    compare(res, metafor("molloy_REML"), rtol=1e-3)


def test_dl_by_hand_on_three_studies():
    r = np.array([0.1, 0.3, 0.5])
    n = np.array([50, 103, 28])
    y = np.arctanh(r)
    v = 1 / (n - 3)
    w = 1 / v
    q = np.sum(w * (y - np.sum(w * y) / w.sum()) ** 2)
    tau2 = max(0.0, (q - 2) / (w.sum() - np.sum(w**2) / w.sum()))
    ws = 1 / (v + tau2)
    mu = np.sum(ws * y) / ws.sum()
    se = math.sqrt(1 / ws.sum())
    res = pool_correlations(r, n, method="DL")
    assert res.q == pytest.approx(q, rel=1e-12)
    assert res.tau2 == pytest.approx(tau2, rel=1e-12)
    assert res.r == pytest.approx(math.tanh(mu), rel=1e-12)
    assert res.r_ci_low == pytest.approx(math.tanh(mu - 1.959963984540054 * se), rel=1e-12)
    assert res.z_pi_high == pytest.approx(mu + 1.959963984540054 * math.sqrt(se**2 + tau2))
    assert res.i2 == pytest.approx(100 * max(0.0, (q - 2) / q), rel=1e-10)
    np.testing.assert_allclose(res.studies["weight"], ws / ws.sum())


def test_dl_agrees_with_statsmodels_combine_effects():
    from statsmodels.stats.meta_analysis import combine_effects

    y = np.arctanh(MOLLOY["ri"].to_numpy())
    v = 1 / (MOLLOY["ni"].to_numpy() - 3.0)
    sm = combine_effects(y, v, method_re="chi2")  # "chi2" is DerSimonian-Laird
    res = pool_correlations(MOLLOY["ri"], MOLLOY["ni"], method="DL")
    assert res.tau2 == pytest.approx(sm.tau2, rel=1e-10)
    assert res.z == pytest.approx(sm.mean_effect_re, rel=1e-10)
    assert res.se == pytest.approx(sm.sd_eff_w_re, rel=1e-10)
    assert res.q == pytest.approx(sm.q, rel=1e-10)


def test_reml_maximises_the_restricted_likelihood():
    y = np.arctanh(MOLLOY["ri"].to_numpy())
    v = 1 / (MOLLOY["ni"].to_numpy() - 3.0)

    def neg_restricted_loglik(tau2: float) -> float:
        w = 1 / (v + tau2)
        mu = np.sum(w * y) / w.sum()
        return 0.5 * (np.sum(np.log(v + tau2)) + math.log(w.sum()) + np.sum(w * (y - mu) ** 2))

    best = optimize.minimize_scalar(
        neg_restricted_loglik, bounds=(0, 1), method="bounded", options={"xatol": 1e-12}
    )
    res = pool_correlations(MOLLOY["ri"], MOLLOY["ni"])
    assert res.tau2 == pytest.approx(best.x, rel=1e-6)


def test_homogeneous_studies_give_zero_tau2():
    res = pool_correlations([0.28, 0.28, 0.28, 0.28], [100, 200, 150, 80])
    assert res.tau2 == 0.0
    assert res.i2 == 0.0
    assert res.r == pytest.approx(0.28)
    assert res.z_pi_low == pytest.approx(res.z_ci_low)
    assert res.q_p == pytest.approx(stats.chi2.sf(0.0, 3))


@pytest.mark.parametrize(
    ("r", "n", "method", "match"),
    [
        ([0.2, 1.0], [50, 50], "REML", "between -1 and 1"),
        ([0.2, 0.3], [50, 3], "REML", "exceed 3"),
        ([0.2], [50], "REML", "at least two"),
        ([0.2, 0.3], [50], "REML", "equal length"),
        ([0.2, 0.3], [50, 60], "PM", "method"),
    ],
)
def test_bad_input(r, n, method, match):
    with pytest.raises(InputError, match=match):
        pool_correlations(r, n, method=method)


def test_bad_input_names_the_row():
    with pytest.raises(InputError) as err:
        pool_correlations([0.1, 0.2, -1.5], [40, 40, 40])
    assert (err.value.row, err.value.column) == (3, "r")
