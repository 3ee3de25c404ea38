"""Kinds `lmm` and `glmm`: (generalised) linear mixed models through `alliance.engine`.

The spec reaching `fit` is resolved (alliance.models.frames.model_frame): its terms name frame
columns, so the formula is `outcome ~ fixed + random` verbatim and `formula_r` refits it in R on
frame.parquet with identical term names.

Binomial outcomes (glmm): a 0/1 column, or with `options.trials` a proportion of that column's
number of trials (doses taken / prescribed: lme4 `weights =`, the same likelihood as
cbind(successes, failures)).

Extras (options):
- `simple_slopes` / `contrasts`: slopes of focal terms per level / class / value of a moderator
  and differences of two slopes (alliance.models.contrasts);
- `predictions`: population-level curves over x at -1 SD / mean / +1 SD of a patient-level term;
- `random_effects`: conditional modes with conditional SDs of the listed grouping factors;
- always, when the model has an alliance_ther* / alliance_pat* pair of the same suffix: the
  Baldwin contrast b_ther - b_pat as a row of `contrasts` (contrast `baldwin: ther - pat`).

Slopes and contrasts of an LMM are t tests with the Satterthwaite df of each combination
(lmerTest contest1D); GLMM ones Wald z tests; after the robust fallback, t with J - 1 df.

Few upper-level units (science notes: < ~10 therapists bias three-level SEs). When a grouping
factor has fewer than `options.min_groups` (10) levels and the model has another grouping
factor nested in it, an LMM with `few_groups: robust` (default) drops that factor's random term,
fits the two-level model and replaces the SEs by CR1 cluster-robust SEs by that factor:
V = (X'W X)^-1 [J/(J-1) sum_j X_j'W_j r_j r_j'W_j X_j] (X'W X)^-1 with W = V^-1 the inverse
marginal covariance of the two-level fit, t-tests with J - 1 df. fit.json records this under
`few_groups`. GLMMs (and `few_groups: keep`) fit as specified with a warning.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from alliance.engine import mixed as engine
from alliance.engine.tidy import coef_table
from alliance.models import calibration, contrasts
from alliance.models.base import COEF_COLUMNS, FitContext, ModelResult, ModelSpec
from alliance.models.coding import factor_columns
from alliance.models.frames import group_codes
from alliance.models.spec import parse_random

MIN_GROUPS = 10


def formula(spec: ModelSpec) -> str:
    """`outcome ~ fixed + random` of a resolved spec."""
    rhs = " + ".join(spec.fixed) if spec.fixed else "1"
    if spec.random:
        rhs += f" + {spec.random}"
    return f"{spec.outcome} ~ {rhs}"


def fit(spec: ModelSpec, frame: pd.DataFrame, context: FitContext) -> ModelResult:
    """Fit an lmm / glmm spec on its model frame; coefficients, fit facts and extras.

    With options `x` and `x_error`, adds the regression-calibrated row `{x}_rc`
    (alliance.models.calibration; with `x_by` / `x_mod` also the calibrated interaction)."""
    family = "gaussian" if spec.kind == "lmm" else "binomial"
    return fit_mixed(spec, frame, family=family, arms=context.arms)


def fit_mixed(
    spec: ModelSpec,
    frame: pd.DataFrame,
    *,
    family: str,
    arms: Mapping[str, str],
    derived: Any = None,
) -> ModelResult:
    """Shared by lmm, glmm and hazard (which passes `derived` for its time terms).

    `arms` (codings.arm, arm -> class) adds class rows to simple slopes by arm.
    """
    opts = spec.options
    warnings: list[str] = []
    few = _few_groups(spec, frame, int(opts.get("min_groups") or MIN_GROUPS))
    fitted_spec, robust_group = spec, None
    if few:
        fitted_spec, robust_group, note = _few_groups_plan(spec, frame, few, family)
        warnings.append(note)
    f = formula(fitted_spec)
    if family == "gaussian":
        mf = engine.fit_lmm(f, frame, reml=bool(opts.get("reml", True)))
    else:
        # options.trials: the outcome is a proportion of that many trials (lme4 weights =)
        mf = engine.fit_glmm(f, frame, family="binomial", weights=opts.get("trials") or None)
    beta = mf.coefficients.set_index("term")["estimate"]
    missing = [t for t in fitted_spec.fixed if t not in beta.index]
    if missing:
        # the engine drops aliased columns (printing, not warning); say which ones
        warnings.append(
            "fixed-effects design is rank deficient; not estimable (dropped): " + ", ".join(missing)
        )
    coefs, vcov, df_method, vcov_method = mf.coefficients, mf.vcov, mf.df_method, mf.vcov_method
    # tests of slopes and contrasts: Satterthwaite df per L (lmerTest contest1D) or Wald z
    combo_df: contrasts.DfRule = np.inf
    combo_method = "z (df = inf)"
    if family == "gaussian":
        combo_df = functools.partial(engine.satterthwaite_df, mf)
        combo_method = "t, Satterthwaite df of each combination (lmerTest contest1D)"
    robust_info = None
    if robust_group is not None:
        vcov, n_clusters = cluster_robust_vcov(mf, fitted_spec, frame, robust_group)
        combo_df = float(n_clusters - 1)
        combo_method = f"t ({combo_df:g})"
        coefs = coef_table(
            list(beta.index), beta.to_numpy(), np.sqrt(np.diag(vcov.to_numpy())), combo_df
        )
        df_method = f"t with {n_clusters} - 1 clusters df (cluster-robust)"
        vcov_method = f"CR1 cluster-robust by {robust_group} ({n_clusters} clusters)"
        robust_info = {"group": robust_group, "clusters": n_clusters, "se": "CR1"}
    coefficients = coefs.copy()
    coefficients.insert(0, "model", spec.id)
    coefficients = coefficients[COEF_COLUMNS]

    # The fixed-effect covariance used for every SE here: figures derive curves and bands from it.
    extras: dict[str, pd.DataFrame] = {"vcov": vcov.rename_axis("term").reset_index()}
    info: dict[str, Any] = {}
    slopes = opts.get("simple_slopes")
    if slopes:
        table, weights, slope_info = _simple_slopes(spec, frame, beta, vcov, slopes, arms, combo_df)
        extras["simple_slopes"] = table
        info["simple_slopes"] = slope_info
        if opts.get("contrasts"):
            ctab, notes = contrasts.slope_contrasts(
                beta, vcov, weights, slopes["terms"], opts["contrasts"], df=combo_df
            )
            extras["contrasts"] = ctab
            warnings += notes
    baldwin = contrasts.baldwin_contrasts(beta, vcov, df=combo_df)
    if not baldwin.empty:
        parts = [t for t in (extras.get("contrasts"), baldwin) if t is not None and not t.empty]
        extras["contrasts"] = pd.concat(parts, ignore_index=True)
    pred = opts.get("predictions")
    if pred:
        extras["predictions"], info["predictions"] = _predictions(
            spec, frame, beta, vcov, pred, family, derived
        )
    groups = opts.get("random_effects") or []
    if groups:
        # only the listed factors: conditional SDs of every patient cost more than the fit
        extras["random_effects"] = mf.random_effects_of(groups)

    fit_facts = {
        "kind": spec.kind,
        "family": family,
        "engine": mf.engine,
        "engine_version": mf.engine_version,
        "reml": mf.reml,
        "n_obs": mf.n_obs,
        "n_patients": _n_unique(frame, "patient"),
        "n_therapists": _n_unique(frame, "therapist"),
        "n_groups": mf.n_groups,
        "logLik": mf.loglik,
        "AIC": mf.aic,
        "BIC": mf.bic,
        "variance_components": mf.variance_components.to_dict(orient="records"),
        "icc": mf.icc,
        "icc_note": None
        if mf.icc is not None
        else "no single ICC: the variance share depends on the random-slope covariate",
        # the engine's decision: optimiser success, moved, lme4 gradient check, no variance left
        # at its start value (alliance.engine.mixed.convergence); reasons are in `warnings`
        "converged": mf.converged,
        "convergence": mf.convergence,
        "singular": mf.singular,
        "warnings": [*warnings, *mf.warnings],
        "df_method": df_method,
        "vcov_method": vcov_method,
        "se_approximate": mf.se_approximate and robust_info is None,
        "linear_combinations_df": combo_method,
        "formula": f,
        "formula_r": mf.formula_r,
        "few_groups": robust_info or ({"groups": few, "action": "kept"} if few else None),
        "note": opts.get("note"),
        "fit_seconds": mf.fit_seconds,
        **info,
    }
    result = ModelResult(coefficients=coefficients, fit=fit_facts, frame=frame, extras=extras)
    if calibration.requested(spec):
        working = _working(mf, frame, family, opts.get("trials"))
        calibration.calibrate(result, frame, spec, working)
    return result


def _working(mf: Any, frame: pd.DataFrame, family: str, trials: str | None) -> calibration.Working:
    """The fit's GLS metric for the regression calibration (alliance.models.calibration)."""
    vc = mf.variance_components
    if family == "gaussian":
        resid = float(vc.loc[vc["group"] == "Residual", "variance"].iloc[0])
        return calibration.working_metric(frame, vc, residual_variance=resid)
    eta = mf.predict(frame, re_form=None)["fit"].to_numpy()
    return calibration.working_metric(frame, vc, eta=eta, trials=trials)


def _n_unique(frame: pd.DataFrame, col: str) -> int | None:
    if col not in frame.columns or frame[col].isna().all():
        return None
    return int(frame[col].nunique(dropna=True))


# ---- few upper-level units -------------------------------------------------------------------


def _few_groups(spec: ModelSpec, frame: pd.DataFrame, min_groups: int) -> dict[str, int]:
    """Grouping factors with fewer than `min_groups` levels."""
    if not spec.random:
        return {}
    groups = list(dict.fromkeys(g for _, _, g in parse_random(spec.random, spec.id)))
    counts = {g: int(group_codes(frame, g).nunique()) for g in groups}
    return {g: n for g, n in counts.items() if n < min_groups}


def _nested_in(frame: pd.DataFrame, inner: str, outer: str) -> bool:
    """Every level of `inner` sits in one level of `outer`."""
    return bool((frame.groupby(inner, sort=False)[outer].nunique() <= 1).all())


def _few_groups_plan(
    spec: ModelSpec, frame: pd.DataFrame, few: dict[str, int], family: str
) -> tuple[ModelSpec, str | None, str]:
    """Which spec to fit and the cluster factor for robust SEs (None: fit as specified)."""
    blocks = parse_random(spec.random or "", spec.id)
    names = ", ".join(f"{g} ({n} levels)" for g, n in few.items())
    keep = (
        f"few upper-level units: {names} < {spec.options.get('min_groups') or MIN_GROUPS}; "
        "SEs of the three-level model may be biased (fit as specified)"
    )
    if family != "gaussian" or spec.options.get("few_groups", "robust") != "robust":
        return spec, None, keep
    if len(few) != 1:
        return spec, None, keep + "; robust fallback handles one such factor only"
    group = next(iter(few))
    rest = [b for b in blocks if b[2] != group]
    rest_groups = {b[2] for b in rest}
    if len(rest_groups) != 1 or ":" in group:
        return spec, None, keep + "; robust fallback needs exactly one remaining grouping factor"
    inner = next(iter(rest_groups))
    if len(rest) != 1 or not _nested_in(frame, inner, group):
        return spec, None, keep + f"; {inner} is not nested in {group} as one random term"
    lhs, bar, g = rest[0]
    random = f"({' + '.join(lhs)} {bar} {g})"
    note = (
        f"few upper-level units: {names} < {spec.options.get('min_groups') or MIN_GROUPS}; "
        f"fitted without the {group} random term, SEs cluster-robust (CR1) by {group}"
    )
    return dataclasses.replace(spec, random=random), group, note


def _design(frame: pd.DataFrame, terms: list[str]) -> np.ndarray:
    cols = []
    for term in terms:
        if term == contrasts.INTERCEPT:
            cols.append(np.ones(len(frame)))
        else:
            cols.append(np.prod([frame[p].to_numpy(dtype=float) for p in term.split(":")], axis=0))
    return np.column_stack(cols)


def cluster_robust_vcov(
    mf: engine.MixedFit, spec: ModelSpec, frame: pd.DataFrame, cluster: str
) -> tuple[pd.DataFrame, int]:
    """CR1 sandwich of a two-level LMM's fixed effects, clustered by `cluster` (see docstring)."""
    terms = list(mf.coefficients["term"])
    ((lhs, _, group),) = parse_random(spec.random or "", spec.id)
    re_terms = [t for t in lhs if t != "0"]
    re_names = [contrasts.INTERCEPT if t == "1" else t for t in re_terms]
    vc = mf.variance_components
    own = vc[vc["group"] == group]
    g = np.zeros((len(re_names), len(re_names)))
    for _, row in own.iterrows():
        i = re_names.index(row["term1"])
        j = re_names.index(row["term2"]) if row["term2"] else i
        g[i, j] = g[j, i] = row["variance"]
    sigma2 = float(vc.loc[vc["group"] == "Residual", "variance"].iloc[0])
    x = _design(frame, terms)
    z = _design(frame, re_names)
    y = frame[spec.outcome].to_numpy(dtype=float)
    r = y - x @ mf.coefficients["estimate"].to_numpy()
    p = x.shape[1]
    bread = np.zeros((p, p))
    clusters = frame[cluster].astype(str).to_numpy()
    score = {c: np.zeros(p) for c in np.unique(clusters)}
    for idx in frame.groupby(group, sort=True).indices.values():
        zi = z[idx]
        vi = zi @ g @ zi.T + sigma2 * np.eye(len(idx))
        wx = np.linalg.solve(vi, x[idx])
        bread += x[idx].T @ wx
        score[clusters[idx[0]]] += wx.T @ r[idx]
    n_clusters = len(score)
    meat = sum(np.outer(s, s) for s in score.values())
    inv = np.linalg.inv(bread)
    v = inv @ meat @ inv * n_clusters / (n_clusters - 1)
    return pd.DataFrame(v, index=terms, columns=terms), n_clusters


# ---- extras ----------------------------------------------------------------------------------


def _simple_slopes(
    spec: ModelSpec,
    frame: pd.DataFrame,
    beta: pd.Series,
    vcov: pd.DataFrame,
    opts: Mapping[str, Any],
    arms: Mapping[str, str],
    df: float,
) -> tuple[pd.DataFrame, dict, dict[str, Any]]:
    by = opts["by"]
    if by not in frame.columns:
        raise KeyError(f"simple_slopes.by '{by}' is not a column of the model frame")
    focal = [t for t in opts.get("terms") or [] if t in beta.index]
    info: dict[str, Any] = {"by": by, "terms": focal}
    if isinstance(frame[by].dtype, pd.CategoricalDtype):
        cols = factor_columns(frame, by)
        points: dict[str, tuple[str, float, dict[str, float]]] = {
            level: ("level", np.nan, {} if col is None else {col: 1.0})
            for level, col in cols.items()
        }
        if by == "arm" and opts.get("classes", True) and arms:
            points.update(contrasts.class_points(points, arms))
            info["classes"] = "equal-weight average of the arms in each class (codings.arm)"
    else:
        values = _moderator_values(frame, by, opts.get("at"))
        points = {label: ("value", v, {by: v}) for label, v in values.items()}
    table, weights = contrasts.simple_slopes(beta, vcov, focal, by, points, df=df)
    return table, weights, info


def _moderator_values(frame: pd.DataFrame, by: str, at: Any) -> dict[str, float]:
    """Explicit values; 0/1 for a binary moderator; else patient-level mean -/+ 1 SD."""
    if at:
        return {f"{by} = {v:g}": float(v) for v in at}
    s = frame[by]
    if set(s.dropna().unique()) <= {0.0, 1.0}:
        return {f"{by} = 0": 0.0, f"{by} = 1": 1.0}
    if "patient" in frame.columns:
        per = frame.groupby("patient", sort=True)[by]
        if (per.nunique() <= 1).all():
            s = per.first()
    m, sd = float(s.mean()), float(s.std(ddof=1))
    return {"-1 SD": m - sd, "mean": m, "+1 SD": m + sd}


def _predictions(
    spec: ModelSpec,
    frame: pd.DataFrame,
    beta: pd.Series,
    vcov: pd.DataFrame,
    opts: Mapping[str, Any],
    family: str,
    derived: Any,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    dummies = [
        col
        for var in frame.columns
        if isinstance(frame[var].dtype, pd.CategoricalDtype)
        for col in factor_columns(frame, var).values()
        if col is not None
    ]
    grid, weights, info = contrasts.prediction_grid(
        frame,
        list(beta.index),
        opts.get("x", "weeks"),
        opts.get("by", "alliance_pat"),
        step=float(opts.get("step", 1.0)),
        reference_columns=dummies,
        derived=derived,
    )
    est = contrasts.linear_combinations(weights, beta, vcov)
    out = pd.concat([grid, est.reset_index(drop=True)], axis=1)
    out = out.rename(columns={"estimate": "fit", "std_error": "se_fit"})
    out = out[["x_variable", "x", "by_variable", "by_level", "by_value", "fit", "se_fit",
               "ci_low", "ci_high"]]  # fmt: skip
    if family == "binomial":
        for col in ("fit", "ci_low", "ci_high"):
            out[f"{col}_response"] = expit(out[col].to_numpy())
    info["scale"] = "link (logit) and response" if family == "binomial" else "outcome"
    info["ci"] = "95 % Wald, fixed-effect covariance; random effects at zero"
    return out, info
