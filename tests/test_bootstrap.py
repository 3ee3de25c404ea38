"""alliance.engine.bootstrap: shard invariance, cluster resampling, intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from alliance.engine.bootstrap import (
    bc_ci,
    bootstrap_p,
    cluster_bootstrap,
    derive_seed,
    gather,
    percentile_ci,
    replicate_rng,
    shard_replicates,
)
from alliance.errors import InputError


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    sizes = rng.integers(1, 9, 17)
    cl = np.repeat([f"T{i:02d}" for i in range(17)], sizes)
    return pd.DataFrame({"therapist": cl, "y": rng.normal(size=cl.size)})


def stat(d: pd.DataFrame) -> dict[str, float]:
    return {"mean": float(d["y"].mean()), "n": float(len(d)), "k": float(d["therapist"].nunique())}


def test_one_shard_equals_eight_shards_byte_for_byte(frame):
    one = cluster_bootstrap(frame, stat, "therapist", 101, seed=5)
    eight = gather(
        cluster_bootstrap(frame, stat, "therapist", 101, seed=5, shard=(i, 8)) for i in range(8)
    )
    pd.testing.assert_frame_equal(one, eight, check_exact=True)
    assert one.to_csv(index=False) == eight.to_csv(index=False)
    # shards in any order gather to the same table
    parts = [
        cluster_bootstrap(frame, stat, "therapist", 101, seed=5, shard=(i, 3)) for i in range(3)
    ]
    pd.testing.assert_frame_equal(gather(parts[::-1]), one, check_exact=True)


def test_replicate_depends_only_on_seed_and_index(frame):
    a = cluster_bootstrap(frame, stat, "therapist", 10, seed=5)
    b = cluster_bootstrap(frame, stat, "therapist", 20, seed=5)
    pd.testing.assert_frame_equal(a, b.iloc[:10], check_exact=True)
    c = cluster_bootstrap(frame, stat, "therapist", 10, seed=6)
    assert not a.equals(c)
    x = replicate_rng(5, 3).integers(0, 1000, 5)
    assert np.array_equal(x, np.random.default_rng([5, 3]).integers(0, 1000, 5))


def test_whole_clusters_are_resampled(frame):
    out = cluster_bootstrap(frame, stat, "therapist", 50, seed=1)
    sizes = frame["therapist"].value_counts()
    # each replicate holds 17 clusters (duplicates relabelled distinct) of the original sizes
    assert (out["k"] == 17).all()
    assert out["n"].nunique() > 1
    assert out["n"].between(17 * sizes.min(), 17 * sizes.max()).all()
    rows = cluster_bootstrap(frame, stat, None, 50, seed=1)
    assert (rows["n"] == len(frame)).all()


def test_row_order_does_not_change_the_draws(frame):
    shuffled = frame.sample(frac=1.0, random_state=2).reset_index(drop=True)

    def total(d: pd.DataFrame) -> dict[str, float]:
        return {"sum": round(float(d["y"].sum()), 12)}

    a = cluster_bootstrap(frame, total, "therapist", 30, seed=9)
    b = cluster_bootstrap(shuffled, total, "therapist", 30, seed=9)
    pd.testing.assert_frame_equal(a, b)


def test_failed_replicate_gives_nan(frame):
    def fragile(d: pd.DataFrame) -> dict[str, float]:
        if len(d) % 2:
            raise np.linalg.LinAlgError("singular")
        return {"mean": float(d["y"].mean())}

    out = cluster_bootstrap(frame, fragile, "therapist", 40, seed=3)
    assert list(out.columns) == ["replicate", "mean"]
    assert out["mean"].isna().any() and out["mean"].notna().any()


def test_gather_rejects_gaps_and_overlaps(frame):
    s0 = cluster_bootstrap(frame, stat, "therapist", 10, seed=1, shard=(0, 2))
    s1 = cluster_bootstrap(frame, stat, "therapist", 10, seed=1, shard=(1, 2))
    with pytest.raises(InputError, match="gaps"):
        gather([s1])
    with pytest.raises(InputError, match="overlap"):
        gather([s0, s0, s1])


def test_shard_bounds():
    assert [list(shard_replicates(10, (i, 3))) for i in range(3)] == [
        [0, 1, 2], [3, 4, 5, 6], [7, 8, 9],
    ]  # fmt: skip
    assert sum(len(shard_replicates(5, (i, 8))) for i in range(8)) == 5
    with pytest.raises(InputError):
        shard_replicates(10, (3, 3))
    with pytest.raises(InputError):
        cluster_bootstrap(pd.DataFrame({"therapist": ["a", "a"], "y": [1.0, 2.0]}), stat,
                          "therapist", 5, seed=1)  # fmt: skip


def test_derive_seed_is_stable():
    # sha256 of "20261127:mediation_personality": fixed forever, across processes
    assert derive_seed(20261127, "mediation_personality") == derive_seed(
        20261127, "mediation_personality"
    )
    assert derive_seed(1, "a") != derive_seed(1, "b") != derive_seed(2, "a")
    assert derive_seed(1, "a") == 2355803643389800977  # int(sha256(b"1:a")[:8]) >> 1
    assert 0 <= derive_seed(2**40, "x") < 2**63


def test_intervals():
    draws = np.arange(1, 101, dtype=float)
    assert percentile_ci(draws) == pytest.approx(np.quantile(draws, [0.025, 0.975]))
    # with the estimate at the median of symmetric draws z0 = 0: BC equals percentile
    assert bc_ci(draws, 50.5) == pytest.approx(percentile_ci(draws))
    # an estimate below most draws shifts the BC interval down
    lo, hi = bc_ci(draws, 30.0)
    z0 = stats.norm.ppf(0.295)  # 29 draws below 30, one tie counted half
    q = stats.norm.cdf([2 * z0 - 1.959964, 2 * z0 + 1.959964])
    assert (lo, hi) == pytest.approx(tuple(np.quantile(draws, q)), rel=1e-6)
    assert np.isnan(bc_ci(draws, 0.0)).all()  # every draw above: undefined
    assert np.isnan(percentile_ci(np.array([np.nan]))).all()


def test_bootstrap_p():
    assert bootstrap_p(np.arange(1.0, 1000.0)) == pytest.approx(2 / 1000)
    assert bootstrap_p(np.r_[-np.ones(50), np.ones(50)]) == 1.0
    assert bootstrap_p(np.r_[-np.ones(10), np.ones(89)]) == pytest.approx(2 * 11 / 100)
