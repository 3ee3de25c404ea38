"""mediation kind: OLS paths (checked against pingouin 0.7), cluster bootstrap, determinism."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pingouin as pg
import pytest

from alliance.engine.bootstrap import gather
from alliance.errors import ConfigError
from alliance.models.base import COEF_COLUMNS, FitContext, ModelSpec, Skipped
from alliance.models.mediation import bootstrap_draws, fit

TRAITS = ["agreeableness", "extraversion", "openness"]
CONTEXT = FitContext(seed=20261127, arms={}, higher_is_worse=True)


def simulate(n: int = 240, n_ther: int = 30, icc: float = 0.5, seed: int = 7) -> pd.DataFrame:
    """Traits -> early alliance -> symptom change; patients share therapists (effect on M, Y)."""
    rng = np.random.default_rng(seed)
    ther = rng.integers(0, n_ther, n)
    u = rng.normal(0, 1, n_ther)[ther]
    traits = rng.normal(50, 10, (n, 3)) + 6 * icc * u[:, None]
    m = 3.7 + 0.02 * (traits[:, 0] - 50) + 0.01 * (traits[:, 1] - 50)
    m = m + 0.3 * icc * u + rng.normal(0, 0.4, n)
    y = -10 - 4 * (m - 3.7) + 0.05 * (traits[:, 2] - 50) + 2 * icc * u + rng.normal(0, 4, n)
    return pd.DataFrame(
        {
            "patient": [f"P{i:03d}" for i in range(n)],
            "therapist": [f"T{t:02d}" for t in ther],
            **{t: traits[:, i] for i, t in enumerate(TRAITS)},
            "alliance_early": m,
            "symptom_change": y,
            "age": rng.integers(20, 65, n).astype(float),
        }
    )


def spec(**options) -> ModelSpec:
    opts = {"predictors": TRAITS, "mediator": "alliance_early", "cluster": "therapist",
            "n_boot": 200, **options}  # fmt: skip
    return ModelSpec(
        id="mediation_personality", kind="mediation", outcome="symptom_change",
        fixed=("age",), options=opts,
    )  # fmt: skip


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return simulate()


@pytest.fixture(scope="module")
def result(data):
    return fit(spec(), data, CONTEXT)


def test_point_estimates_match_pingouin(data):
    """pingouin ignores clustering, so compare the non-clustered fit's point estimates and OLS
    SEs. pingouin's `Y ~ M` row regresses Y on M without X; its indirect effect uses the b of
    Y ~ M + X, so b = indirect / a there."""
    res = fit(spec(cluster=None, n_boot=50), data, CONTEXT)
    tab = res.coefficients.set_index("term")
    for trait in TRAITS:
        pin = pg.mediation_analysis(
            data=data, x=trait, m="alliance_early", y="symptom_change", covar=["age"],
            n_boot=10, seed=1,
        ).set_index("path")  # fmt: skip
        a = pin.loc["alliance_early ~ X", "coef"]
        assert tab.loc[f"a.{trait}", "estimate"] == pytest.approx(a, rel=1e-8)
        assert tab.loc[f"c.{trait}", "estimate"] == pytest.approx(pin.loc["Total", "coef"])
        assert tab.loc[f"c_prime.{trait}", "estimate"] == pytest.approx(pin.loc["Direct", "coef"])
        ind = pin.loc["Indirect", "coef"]
        assert tab.loc[f"indirect.{trait}", "estimate"] == pytest.approx(ind, rel=1e-8)
        assert tab.loc[f"b.{trait}", "estimate"] == pytest.approx(ind / a, rel=1e-8)
        assert tab.loc[f"a.{trait}", "std_error"] == pytest.approx(
            pin.loc["alliance_early ~ X", "se"], rel=1e-6
        )
        assert tab.loc[f"c.{trait}", "std_error"] == pytest.approx(pin.loc["Total", "se"])
        assert tab.loc[f"c_prime.{trait}", "std_error"] == pytest.approx(pin.loc["Direct", "se"])
    assert res.fit["bootstrap"]["resampled"] == "patients (rows)"


def test_table_layout_and_identity(result, data):
    tab = result.coefficients
    assert list(tab.columns) == COEF_COLUMNS
    assert len(tab) == 5 * len(TRAITS)
    est = tab.set_index("term")["estimate"]
    for t in TRAITS:
        assert est[f"c.{t}"] == pytest.approx(est[f"c_prime.{t}"] + est[f"indirect.{t}"])
    ind = tab.set_index("term").loc["indirect.agreeableness"]
    assert np.isnan(ind["statistic"]) and np.isnan(ind["df"])
    assert 0 < ind["p_value"] <= 1
    paths = result.extras["paths"].set_index(["predictor", "path"])
    row = paths.loc[("agreeableness", "indirect")]
    assert (ind["ci_low"], ind["ci_high"]) == (row["pct_low"], row["pct_high"])
    assert ind["std_error"] == row["boot_se"]
    # the draws obey the identity too
    boot = result.extras["boot"]
    assert len(boot) == 200 and list(boot["replicate"]) == list(range(200))
    assert np.allclose(boot["c.openness"], boot["c_prime.openness"] + boot["indirect.openness"])
    assert np.allclose(boot["indirect.openness"], boot["a.openness"] * boot["b.openness"])
    # paths: Wald t with G - 1 df under clustering
    g = data["therapist"].nunique()
    assert (tab.loc[~tab["term"].str.startswith("indirect"), "df"] == g - 1).all()
    json.dumps(result.fit, allow_nan=False)


def test_same_seed_same_extras_other_seed_or_id_differs(result, data):
    again = fit(spec(), data, CONTEXT)
    for name in ("boot", "paths"):
        pd.testing.assert_frame_equal(again.extras[name], result.extras[name], check_exact=True)
    pd.testing.assert_frame_equal(again.coefficients, result.coefficients, check_exact=True)
    other = fit(spec(), data, dataclasses.replace(CONTEXT, seed=1))
    assert not other.extras["boot"].equals(result.extras["boot"])
    renamed = fit(ModelSpec(**{**spec().__dict__, "id": "other_id"}), data, CONTEXT)
    assert not renamed.extras["boot"].equals(result.extras["boot"])


def test_shards_gather_to_the_fit_draws(result, data):
    shards = [bootstrap_draws(spec(), data, CONTEXT.seed, shard=(i, 3)) for i in range(3)]
    pd.testing.assert_frame_equal(gather(shards), result.extras["boot"], check_exact=True)


def test_cluster_bootstrap_is_wider_than_ignoring_clusters():
    """With traits and alliance both strongly clustered by therapist, resampling patients
    understates the SE of path a (design effect); resampling therapists does not."""
    strong = simulate(icc=2.0)
    clustered = fit(spec(n_boot=300), strong, CONTEXT).extras["paths"]
    naive = fit(spec(n_boot=300, cluster=None), strong, CONTEXT).extras["paths"]
    sel = clustered["path"] == "a"
    ratio = clustered.loc[sel, "boot_se"].to_numpy() / naive.loc[sel, "boot_se"].to_numpy()
    assert (ratio > 1.2).all(), ratio


def test_bias_corrected_interval_in_table(data):
    res = fit(spec(ci="bc"), data, CONTEXT)
    ind = res.coefficients.set_index("term").loc["indirect.extraversion"]
    row = res.extras["paths"].set_index(["predictor", "path"]).loc[("extraversion", "indirect")]
    assert (ind["ci_low"], ind["ci_high"]) == (row["bc_low"], row["bc_high"])
    assert res.fit["bootstrap"]["ci"] == "bc"


def test_skips_and_errors(data):
    with pytest.raises(Skipped, match="predictor"):
        fit(spec(predictors=[]), data, CONTEXT)
    with pytest.raises(Skipped, match="mediator"):
        fit(spec(mediator=None), data, CONTEXT)
    with pytest.raises(Skipped, match="2 levels"):
        fit(spec(), data.assign(therapist="T00"), CONTEXT)
    with pytest.raises(Skipped, match="too few"):
        fit(spec(), data.head(4), CONTEXT)
    with pytest.raises(ConfigError, match="ci"):
        fit(spec(ci="bca"), data, CONTEXT)
    few = data.assign(therapist=data["therapist"].str[:2])  # T0, T1, T2: three clusters
    res = fit(spec(n_boot=20), few, CONTEXT)
    assert any("only 3 clusters" in w for w in res.fit["warnings"])
