"""Cluster-bootstrap CIs for any model's coefficients, as shard jobs gathered into one table.

Config `bootstrap:` (all optional): `models` (model ids; none by default, since each replicate
refits the model), `n_boot` (1000), `shards` (1: jobs per model), `cluster` (therapist: the
resampled unit), `level` (0.95). Replicate r resamples whole clusters with the stream
`default_rng([seed, r])`, seed = the mediation kind's `model_seed` (derive_seed of the config
seed and the model id, alliance.engine.bootstrap), so the gathered draws are identical whatever
`shards` is, and for a mediation model they equal the model's own `boot.csv` when n_boot is the
same (they are its own `bootstrap_draws`, computed from cross-products).

Any other kind is refitted per replicate on the resampled frame (its extras switched off), and the
replicate keeps the terms of the model's coefficients.csv; a replicate whose fit fails (singular,
a factor level not drawn) gives NaN for it. Patients of a therapist drawn twice are relabelled
per copy, so a random patient effect sees two patients, not one with doubled sessions.

Outputs per model (results/bootstrap/<id>/): shards/<i>.parquet, draws.parquet (gathered) and
ci.csv: term, estimate (the model's), boot_se, pct_low/high, bc_low/high, boot_p, n_ok.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from alliance.engine.bootstrap import bc_ci, bootstrap_p, cluster_bootstrap, gather, percentile_ci
from alliance.models.base import FitContext, ModelSpec, Skipped, kind_function
from alliance.models.frames import model_frame
from alliance.models.mediation import bootstrap_draws, model_seed
from alliance.settings import BootstrapRun

# Options that only add extra tables: a replicate needs the coefficients alone.
EXTRA_OPTIONS = ("predictions", "random_effects", "simple_slopes", "contrasts", "tertile_of")
CI_COLUMNS = [
    "term", "estimate", "boot_se", "pct_low", "pct_high", "bc_low", "bc_high", "boot_p", "n_ok",
]  # fmt: skip


def statistic(
    spec: ModelSpec, context: FitContext, terms: Sequence[str], cluster: str
) -> Callable[[pd.DataFrame], dict[str, float]]:
    """frame -> {term: estimate} for one replicate (NaN for a term the refit lacks)."""
    from alliance.models.run import FIT_FAILURES

    fit = kind_function(spec.kind)
    lean = dataclasses.replace(
        spec, options={k: v for k, v in spec.options.items() if k not in EXTRA_OPTIONS}
    )

    def refit(frame: pd.DataFrame) -> dict[str, float]:
        if "patient" in frame.columns and cluster != "patient":
            frame = frame.assign(patient=frame[cluster].astype(str) + ":" + frame["patient"])
        try:
            coefs = fit(lean, frame, context).coefficients
        except (Skipped, *FIT_FAILURES):
            return dict.fromkeys(terms, np.nan)
        est = dict(zip(coefs["term"], coefs["estimate"], strict=True))
        return {t: float(est.get(t, np.nan)) for t in terms}

    return refit


def shard_draws(
    spec: ModelSpec,
    sessions: pd.DataFrame | None,
    patients: pd.DataFrame | None,
    availability: Mapping[str, Any],
    run: BootstrapRun,
    terms: Sequence[str],
    shard: tuple[int, int],
) -> pd.DataFrame:
    """Replicates of shard (i, n) for `spec`: one row per replicate, one column per term.

    A model that is skipped on these data, or has no coefficients, gives an empty table.
    """
    if not terms:
        return pd.DataFrame(columns=["replicate"])
    codings = run.codings
    try:
        frame, meta = model_frame(
            spec, sessions, patients, availability,
            arms=codings.arm, arm_reference=codings.arm_reference,
        )  # fmt: skip
    except Skipped:
        return pd.DataFrame(columns=["replicate", *terms])
    cluster = spec.options.get("cluster") or run.bootstrap.cluster
    n_boot = int(run.bootstrap.n_boot)
    if spec.kind == "mediation":  # its own bootstrap: the same draws, from cross-products
        own = {**meta.spec.options, "cluster": cluster, "n_boot": n_boot}
        draws = bootstrap_draws(dataclasses.replace(meta.spec, options=own), frame, run.seed, shard)
        return draws.reindex(columns=["replicate", *terms])
    context = FitContext.from_settings(run.model_stage())
    draws = cluster_bootstrap(
        frame,
        statistic(meta.spec, context, terms, cluster),
        cluster,
        n_boot,
        model_seed(spec, run.seed),
        shard=shard,
    )
    return draws.reindex(columns=["replicate", *terms])


def gather_draws(shards: Sequence[pd.DataFrame], terms: Sequence[str]) -> pd.DataFrame:
    """Shards in replicate order (alliance.bootstrap.gather checks for gaps and overlaps)."""
    parts = [s for s in shards if len(s)]
    if not parts:
        return pd.DataFrame(columns=["replicate", *terms])
    return gather(parts).reindex(columns=["replicate", *terms])


def intervals(draws: pd.DataFrame, coefficients: pd.DataFrame, level: float) -> pd.DataFrame:
    """ci.csv: each coefficient's estimate with bootstrap SE, percentile and BC intervals, p."""
    rows = []
    for term, estimate in zip(coefficients["term"], coefficients["estimate"], strict=True):
        d = draws[term].to_numpy(dtype=float) if term in draws else np.array([])
        ok = d[np.isfinite(d)]
        pct = percentile_ci(d, level)
        bc = bc_ci(d, float(estimate), level)
        rows.append(
            {
                "term": term,
                "estimate": float(estimate),
                "boot_se": float(np.std(ok, ddof=1)) if ok.size > 1 else np.nan,
                "pct_low": pct[0],
                "pct_high": pct[1],
                "bc_low": bc[0],
                "bc_high": bc[1],
                "boot_p": bootstrap_p(d),
                "n_ok": int(ok.size),
            }
        )
    return pd.DataFrame(rows, columns=CI_COLUMNS)
