"""Cluster bootstrap: resample whole clusters (therapists) with replacement, shardable.

Patients treated by the same therapist are not independent, so a bootstrap that resamples
patients understates the uncertainty; resampling therapists keeps each therapist's patients
together (Field & Welsh 2007). Replicate r always draws from its own random stream
`numpy.random.default_rng([seed, r])`, so the draws do not depend on how the replicates are
split into shards: `gather` of N shards is byte-identical to one shard, whatever N.

Clusters are drawn from the sorted cluster labels, so the draws do not depend on row order. A
cluster drawn twice appears twice; its rows get the cluster label `"<k>"` (k = position in the
draw), so a statistic that itself uses the cluster column sees distinct clusters.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from alliance.errors import InputError

Statistic = Callable[[pd.DataFrame], Mapping[str, float]]


def derive_seed(seed: int, label: str) -> int:
    """A 63-bit seed from the config seed and a label (the model id): stable across runs and
    Python versions (sha256, not the salted built-in hash)."""
    digest = hashlib.sha256(f"{int(seed)}:{label}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def replicate_rng(seed: int, replicate: int) -> np.random.Generator:
    """The random stream of one replicate: depends only on (seed, replicate)."""
    return np.random.default_rng([int(seed), int(replicate)])


def cluster_codes(frame: pd.DataFrame, cluster: str | None) -> tuple[np.ndarray, int]:
    """Each row's cluster as a code 0..G-1 in sorted-label order (rows themselves when
    `cluster` is None), and G; at least two clusters."""
    if cluster is None:
        codes = np.arange(len(frame))
    else:
        if cluster not in frame.columns:
            raise InputError(
                f"cluster column not found: {cluster}", column=cluster, check="bootstrap.cluster"
            )
        codes, _ = pd.factorize(frame[cluster].astype(str), sort=True)
        if (codes < 0).any():
            raise InputError(
                "cluster label missing", column=cluster, check="bootstrap.cluster_missing"
            )
    n_clusters = int(codes.max()) + 1 if len(codes) else 0
    if n_clusters < 2:
        raise InputError(
            "the bootstrap needs at least two clusters", value=n_clusters, check="bootstrap.k"
        )
    return codes, n_clusters


def cluster_draw(seed: int, replicate: int, n_clusters: int) -> np.ndarray:
    """Replicate r's clusters (codes, with replacement): the same draw for every statistic."""
    return replicate_rng(seed, replicate).integers(0, n_clusters, size=n_clusters)


def shard_replicates(n_boot: int, shard: tuple[int, int] = (0, 1)) -> range:
    """Replicates of shard i of n (0-based, contiguous blocks covering 0..n_boot-1)."""
    i, n_shards = shard
    if n_boot < 1:
        raise InputError("n_boot must be at least 1", value=n_boot, check="bootstrap.n_boot")
    if n_shards < 1 or not 0 <= i < n_shards:
        raise InputError(
            "shard must be (i, n) with 0 <= i < n", value=shard, check="bootstrap.shard"
        )
    bounds = np.linspace(0, n_boot, n_shards + 1).round().astype(int)
    return range(int(bounds[i]), int(bounds[i + 1]))


def cluster_bootstrap(
    frame: pd.DataFrame,
    statistic: Statistic,
    cluster: str | None,
    n_boot: int,
    seed: int,
    shard: tuple[int, int] = (0, 1),
) -> pd.DataFrame:
    """Replicates of `statistic` on cluster-resampled copies of `frame` (this shard's only).

    `statistic(frame) -> {name: value}`. `cluster=None` resamples rows (the ordinary bootstrap).
    Returns one row per replicate: `replicate`, then the statistic's values; a replicate whose
    statistic fails on a singular design (LinAlgError) gives NaN values.
    """
    codes, n_clusters = cluster_codes(frame, cluster)
    order = np.argsort(codes, kind="stable")
    members = np.split(order, np.cumsum(np.bincount(codes, minlength=n_clusters))[:-1])
    rows: list[dict[str, Any]] = []
    names: list[str] | None = None
    for r in shard_replicates(n_boot, shard):
        draw = cluster_draw(seed, r, n_clusters)
        idx = np.concatenate([members[c] for c in draw])
        sample = frame.iloc[idx].reset_index(drop=True)
        if cluster is not None:
            sizes = np.array([len(members[c]) for c in draw])
            sample[cluster] = np.repeat(np.arange(n_clusters), sizes).astype(str)
        try:
            values = dict(statistic(sample))
            names = names or list(values)
        except np.linalg.LinAlgError:
            values = {}
        rows.append({"replicate": r, **values})
    out = pd.DataFrame(rows)
    if names is not None:
        out = out.reindex(columns=["replicate", *names])
    return out


def gather(shards: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate shard outputs in replicate order; replicates must be exactly 0..N-1."""
    parts = [s for s in shards]
    if not parts:
        raise InputError("no bootstrap shards to gather", check="bootstrap.gather")
    out = pd.concat(parts, ignore_index=True).sort_values("replicate", kind="stable")
    reps = out["replicate"].to_numpy()
    if not np.array_equal(reps, np.arange(len(out))):
        dup = pd.Series(reps)[pd.Series(reps).duplicated()].tolist()
        raise InputError(
            "bootstrap shards overlap or leave gaps",
            value=dup[:5] if dup else f"{len(out)} replicates, max {reps.max()}",
            check="bootstrap.gather",
        )
    return out.reset_index(drop=True)


def percentile_ci(draws: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval (quantiles by linear interpolation, R's quantile type 7)."""
    d = _finite(draws)
    if d.size == 0:
        return (np.nan, np.nan)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(d, [alpha, 1.0 - alpha])
    return (float(lo), float(hi))


def bc_ci(draws: np.ndarray, estimate: float, level: float = 0.95) -> tuple[float, float]:
    """Bias-corrected percentile interval (Efron 1987, no acceleration).

    z0 = Phi^-1(share of draws below the estimate, ties counted half); the interval takes the
    quantiles Phi(2 z0 +- z_(1-alpha/2)) of the draws.
    """
    d = _finite(draws)
    if d.size == 0:
        return (np.nan, np.nan)
    below = (np.sum(d < estimate) + 0.5 * np.sum(d == estimate)) / d.size
    if below <= 0.0 or below >= 1.0:
        return (np.nan, np.nan)  # every draw on one side: the correction is undefined
    # ndtri / ndtr are scipy.stats.norm's ppf / cdf, without importing scipy.stats (~0.3 s)
    from scipy import special

    z0 = special.ndtri(below)
    zq = special.ndtri(0.5 + level / 2.0)
    probs = special.ndtr([2.0 * z0 - zq, 2.0 * z0 + zq])
    lo, hi = np.quantile(d, probs)
    return (float(lo), float(hi))


def bootstrap_p(draws: np.ndarray) -> float:
    """Two-sided bootstrap p-value of 0: 2 (1 + draws on the far side of 0) / (1 + B),
    capped at 1 (Davison & Hinkley 1997, eq. 4.11), so it is never exactly 0 and is small
    exactly when the percentile interval lies well away from 0."""
    d = _finite(draws)
    if d.size == 0:
        return np.nan
    far = min(np.sum(d <= 0.0), np.sum(d >= 0.0))
    return float(min(1.0, 2.0 * (1.0 + far) / (1.0 + d.size)))


def _finite(draws: np.ndarray) -> np.ndarray:
    d = np.asarray(draws, dtype=float)
    return d[np.isfinite(d)]
