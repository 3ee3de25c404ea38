"""`fit_lmm` and `fit_glmm`: call the engine, keep its warnings, and tidy its result R's way.

Coefficient names follow R (`_r_names`), variance components are lme4's VarCorr rows, ICCs are
given when every random term is an intercept; see the package docstring for what differs from
the engine's own numbers and why.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from alliance.engine.mixed import convergence, laplace, laplace_fit
from alliance.engine.mixed.inference import (
    _laplace_hessian_vcov,
    _profiled_derivs,
    _satterthwaite,
    lmm_evaluator,
)
from alliance.engine.mixed.prepare import _binomial_response, _prepare
from alliance.engine.mixed.result import MixedFit, engine_version
from alliance.engine.threads import one_blas_thread
from alliance.engine.tidy import coef_table
from alliance.errors import InputError


def fit_lmm(
    formula: str,
    data: pd.DataFrame,
    *,
    reml: bool = True,
    max_iter: int | None = None,
    level: float = 0.95,
) -> MixedFit:
    """Fit `formula` (lme4 syntax) by REML or ML; fixed effects get Satterthwaite df (lmerTest)."""
    import mixedlm

    frame, levels, _ = _prepare(formula, data)
    control = mixedlm.lmerControl(maxiter=max_iter) if max_iter is not None else None
    start = time.perf_counter()
    with _keeping_evaluator() as made:
        result, caught = _call_engine(mixedlm.lmer, formula, frame, REML=reml, control=control)
    # the fit's own evaluator (building one is ~1 s at 600k rows); restarts refit the same matrices
    evaluator = made[-1] if made else lmm_evaluator(result, reml)
    outcome = convergence.check_start(
        result,
        _lmm_start(evaluator),
        caught,
        lambda s: _call_engine(mixedlm.lmer, formula, frame, REML=reml, control=control, start=s),
    )
    result, caught = outcome.result, list(outcome.warnings)
    conv = convergence.assess(result, outcome, *_profiled_derivs(result, reml, evaluator))
    satterthwaite, df_notes = _satterthwaite(result, reml, evaluator)
    seconds = time.perf_counter() - start
    beta = np.asarray(result.beta, dtype=float)
    df = np.full(len(beta), np.nan) if satterthwaite is None else satterthwaite.coefficient_df()
    if len(df) and not np.all(np.isfinite(df)) and satterthwaite is not None:
        df_notes.append("Satterthwaite df not finite for some terms")
    caught += df_notes

    terms = _r_names(list(result.fixef().keys()), levels)
    vcov = np.asarray(result.vcov(), dtype=float)
    coefs = coef_table(terms, beta, np.sqrt(np.diag(vcov)), df, level=level)
    vc = _variance_components(result, residual=True)
    return _mixed_fit(
        result, levels, formula=formula, family="gaussian", coefs=coefs, vcov=vcov, vc=vc,
        reml=reml, warnings=caught, seconds=seconds, df_method="Satterthwaite",
        vcov_method="sigma^2 (X'V^-1 X)^-1 at the optimum (lme4 vcov)",
        icc=_icc(vc, residual_var=None), formula_r=_lmer_call(formula, reml),
        _satterthwaite=satterthwaite, conv=conv,
    )  # fmt: skip


def _mixed_fit(
    result: Any,
    levels: dict[str, list[Any]],
    *,
    coefs: pd.DataFrame,
    vcov: np.ndarray,
    seconds: float,
    **facts: Any,
) -> MixedFit:
    """A MixedFit from an engine result plus what differs between LMM and GLMM (`facts`).

    `facts["conv"]` (convergence.Convergence) decides `converged`; its reasons join the warnings.
    """
    terms = list(coefs["term"])
    conv: convergence.Convergence = facts.pop("conv")
    facts["warnings"] = list(dict.fromkeys([*facts["warnings"], *conv.reasons]))
    return MixedFit(
        coefficients=coefs,
        vcov=pd.DataFrame(vcov, index=terms, columns=terms),
        variance_components=facts.pop("vc"),
        n_obs=int(result.nobs()),
        n_groups={str(k): int(v) for k, v in result.ngrps().items()},
        loglik=float(result.logLik()),
        aic=float(result.AIC()),
        bic=float(result.BIC()),
        converged=conv.converged,
        convergence=conv.as_dict(),
        singular=bool(result.isSingular()),
        engine_version=engine_version(),
        fit_seconds=seconds,
        _result=result,
        _levels=levels,
        **facts,
    )


def fit_glmm(
    formula: str,
    data: pd.DataFrame,
    *,
    family: str = "binomial",
    weights: str | None = None,
    max_iter: int | None = None,
    level: float = 0.95,
) -> MixedFit:
    """Fit a binomial-logit GLMM by Laplace (lme4 `glmer`, nAGQ = 1).

    The response is either `cbind(successes, failures)` (each argument a column or a difference
    of two columns, as in `cbind(incidence, size - incidence)`), a 0/1 column, or a proportion
    column with `weights` naming the column of trials. Wald z-tests use the lme4 Hessian SEs.
    """
    import mixedlm

    if family != "binomial":
        raise InputError(
            "only family='binomial' (logit link) is supported", value=family, check="glmm.family"
        )
    frame, levels, rows = _prepare(formula, data, (weights,) if weights else ())
    engine_formula, trials = _binomial_response(formula, frame, weights, rows)
    fam = mixedlm.families.Binomial()
    start = time.perf_counter()
    model, model_notes = _glmer_model(mixedlm, engine_formula, frame, fam, trials)
    problem = laplace.LaplaceProblem(model.matrices)

    def engine_fit(theta0: np.ndarray | None = None) -> tuple[Any, list[str]]:
        opt = laplace_fit.optimise(problem, theta0, max_iter=max_iter)
        return _glmer_result(model, fam, problem, opt)

    with one_blas_thread():  # row passes: BLAS threads only contend (engine.threads)
        result, caught = engine_fit()
        caught = [*model_notes, *caught]
        # the fit starts at theta = 1 on variances, 0 elsewhere (lme4's start)
        outcome = convergence.check_start(result, problem.start_theta(), caught, engine_fit)
        result, caught = outcome.result, list(outcome.warnings)
        vcov_full, hess_note, grad, hess = _laplace_hessian_vcov(problem, result)
        polished = laplace_fit.newton_polish(problem, result, grad, hess)
        if polished is not None:  # one Newton step on the FD Hessian lowered the deviance
            result = _glmer_result(model, fam, problem, polished)[0]
            vcov_full, hess_note, grad, hess = _laplace_hessian_vcov(problem, result)
        conv = convergence.assess(result, outcome, grad, hess)
    seconds = time.perf_counter() - start

    terms = _r_names(list(result.fixef().keys()), levels)
    beta = np.asarray(result.beta, dtype=float)
    if vcov_full is None:
        vcov = np.asarray(result.vcov(), dtype=float)
        caught.append(hess_note)
        vcov_method = "engine RX-based vcov (lme4 Hessian unusable, see warnings)"
        se_approximate = True
    else:
        vcov = vcov_full
        vcov_method = (
            "finite-difference Hessian of the Laplace deviance over (theta, beta), lme4 "
            "(deriv12, step 1e-4)"
        )
        se_approximate = False
    coefs = coef_table(terms, beta, np.sqrt(np.diag(vcov)), np.inf, level=level)
    vc = _variance_components(result, residual=False)
    return _mixed_fit(
        result, levels, formula=formula, family="binomial", coefs=coefs, vcov=vcov, vc=vc,
        reml=False, warnings=caught, seconds=seconds, df_method="Wald z (df = Inf)",
        vcov_method=vcov_method, icc=_icc(vc, residual_var=math.pi**2 / 3.0),
        formula_r=_glmer_call(formula, weights), conv=conv, se_approximate=se_approximate,
    )  # fmt: skip


def _glmer_model(
    mixedlm: Any, formula: str, frame: pd.DataFrame, fam: Any, trials: np.ndarray | None
) -> tuple[Any, list[str]]:
    """The engine's model (matrices built, lme4's checks run, rank-deficient columns dropped).

    The fit itself is ours (alliance.engine.mixed.laplace); the engine's warnings are kept.
    """
    from mixedlm.models.checks import run_model_checks  # engine internal, see docstring

    def build(f: str, fr: pd.DataFrame, **kw: Any) -> Any:
        model = mixedlm.models.glmer_fit.GlmerMod(f, fr, **kw)
        model.matrices, model._dropped_cols = run_model_checks(model.matrices, model.control)
        return model

    return _call_engine(build, formula, frame, family=fam, weights=trials)


_SINGULAR = (
    "Model is singular (boundary fit). Some variance components are estimated as zero or near-zero."
)


def _glmer_result(
    model: Any, fam: Any, problem: laplace.LaplaceProblem, opt: laplace_fit.Optimum
) -> tuple[Any, list[str]]:
    """The engine's result object holding our optimum (its methods give logLik, VarCorr, ...)."""
    from mixedlm.models.glmer import GlmerResult  # engine internal, see docstring

    b, deviance = problem.random_effects(opt.theta, opt.beta)
    result = GlmerResult(
        formula=model.formula, matrices=model.matrices, family=fam, theta=opt.theta,
        beta=opt.beta, u=b, deviance=deviance, converged=opt.converged, n_iter=opt.n_iter,
        nAGQ=1, pirls_converged=problem.last_converged, pirls_tol=laplace.MODE_TOL,
        joint_fit=True, message=opt.message, optimizer="L-BFGS-B (alliance.engine.mixed)",
    )  # fmt: skip
    notes = [_SINGULAR] if result.isSingular(tol=1e-4) else []
    return result, notes


@contextmanager
def _keeping_evaluator() -> Iterator[list[Any]]:
    """Collect the deviance evaluators (LMMOptimizer) the engine's lmer builds while inside.

    lmer builds one from the model matrices, optimises and drops it; the convergence check and
    the Satterthwaite pieces need the same evaluator of the same matrices (inference.
    lmm_evaluator), whose native design takes as long to build again. Engine internal: the
    module attribute mixedlm.models.lmer_fit.LMMOptimizer, restored on exit."""
    from mixedlm.models import lmer_fit

    original, made = lmer_fit.LMMOptimizer, []

    def keep(*args: Any, **kwargs: Any) -> Any:
        made.append(original(*args, **kwargs))
        return made[-1]

    lmer_fit.LMMOptimizer = keep
    try:
        yield made
    finally:
        lmer_fit.LMMOptimizer = original


def _call_engine(fn: Any, formula: str, frame: pd.DataFrame, **kwargs: Any) -> tuple[Any, list]:
    """Run the engine and keep its warnings verbatim (they become MixedFit.warnings).

    Whether the fit converged is decided afterwards (alliance.engine.mixed.convergence).
    """
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = fn(formula, frame, **kwargs)
        except (ValueError, KeyError) as exc:
            raise InputError(
                f"mixed model could not be fitted: {exc}", value=formula, check="mixed.fit"
            ) from exc
    return result, list(dict.fromkeys(str(w.message) for w in caught))


def _lmm_start(evaluator: Any) -> np.ndarray:
    """The engine's data-based starting theta of an LMM (recomputed: it is deterministic)."""
    return np.asarray(evaluator.get_start_theta(), dtype=float)


def _r_names(engine_terms: list[str], levels: dict[str, list[Any]]) -> list[str]:
    """Engine names (`period.1`, `a.1:b.2`) -> R names (`period2`, `a2:b3`).

    With treatment contrasts the engine numbers the non-reference levels 1..k-1; when a factor
    is coded full rank (no intercept) it appends the level itself, as R does. A main effect with
    as many columns as levels tells the two apart when levels are themselves digits.
    """

    def match(piece: str) -> tuple[str, str] | None:
        for var in sorted(levels, key=len, reverse=True):
            if not piece.startswith(var + "."):
                continue
            suffix = piece[len(var) + 1 :]
            labels = [str(c) for c in levels[var]]
            if suffix in labels or (suffix.isdigit() and 1 <= int(suffix) < len(labels)):
                return var, suffix
        return None

    main_counts: dict[str, int] = {}
    for term in engine_terms:
        hit = match(term) if ":" not in term else None
        if hit is not None:
            main_counts[hit[0]] = main_counts.get(hit[0], 0) + 1
    out = []
    for term in engine_terms:
        pieces = []
        for piece in term.split(":"):
            hit = match(piece)
            if hit is None:
                pieces.append(piece)
                continue
            var, suffix = hit
            labels = [str(c) for c in levels[var]]
            full_rank = main_counts.get(var, 0) == len(labels)
            if suffix.isdigit() and not (full_rank and suffix in labels):
                pieces.append(var + labels[int(suffix)])
            else:
                pieces.append(var + suffix)
        out.append(":".join(pieces))
    return out


def _variance_components(result: Any, *, residual: bool) -> pd.DataFrame:
    """Tidy VarCorr: one row per variance (term2 empty) and per correlation, as lme4 prints."""
    vc = result.VarCorr()
    rows = []
    for gname, grp in vc.groups.items():
        names = list(grp.term_names)
        cov = np.asarray(grp.cov, dtype=float)
        for i, t in enumerate(names):
            rows.append(
                {
                    "group": str(gname),
                    "term1": t,
                    "term2": "",
                    "variance": cov[i, i],
                    "sd": math.sqrt(max(cov[i, i], 0.0)),
                    "corr": np.nan,
                }
            )
        for i in range(len(names)):
            for j in range(i + 1, len(names)):
                denom = math.sqrt(cov[i, i] * cov[j, j])
                rows.append(
                    {
                        "group": str(gname),
                        "term1": names[i],
                        "term2": names[j],
                        "variance": cov[i, j],
                        "sd": np.nan,
                        "corr": cov[i, j] / denom if denom > 0 else np.nan,
                    }
                )
    if residual:
        rvar = float(vc.residual)
        rows.append(
            {
                "group": "Residual",
                "term1": "",
                "term2": "",
                "variance": rvar,
                "sd": math.sqrt(rvar),
                "corr": np.nan,
            }
        )
    return pd.DataFrame(rows, columns=["group", "term1", "term2", "variance", "sd", "corr"])


def _icc(vc: pd.DataFrame, residual_var: float | None) -> dict[str, float] | None:
    """Per-group ICC tau_g / (sum tau + residual) when every random term is an intercept.

    With random slopes the share depends on the covariate value, so no single ICC exists. GLMMs
    use the latent-scale residual pi^2/3 of the logit link.
    """
    variances = vc[vc["term2"] == ""]
    groups = variances[variances["group"] != "Residual"]
    if groups.empty or (groups["term1"] != "(Intercept)").any():
        return None
    if residual_var is None:
        residual_var = float(variances.loc[variances["group"] == "Residual", "variance"].iloc[0])
    total = float(groups["variance"].sum()) + residual_var
    return {
        str(g): float(v) / total for g, v in zip(groups["group"], groups["variance"], strict=True)
    }


# lme4's default lmer optimizer (nloptwrap, ftol 1e-6) can stop short of the optimum on larger
# three-level models (the demo's symptoms_growth: "failed to converge", estimates off by 3e-4);
# bobyqa run to a small trust region reaches the optimum the engine reports.
LMER_CONTROL = 'lmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5, rhoend = 1e-10))'


def _lmer_call(formula: str, reml: bool) -> str:
    """The lme4 call that reproduces the fit (bobyqa to a tight tolerance: LMER_CONTROL)."""
    return (
        f"lmer({formula}, data = data, REML = {'TRUE' if reml else 'FALSE'}, "
        f"control = {LMER_CONTROL})"
    )


def _glmer_call(formula: str, weights: str | None) -> str:
    """The lme4 call that reproduces the fit (tight PIRLS tolerance: see module docstring)."""
    w = f", weights = {weights}" if weights else ""
    return (
        f"glmer({formula}, data = data, family = binomial{w}, "
        "control = glmerControl(tolPwrss = 1e-10))"
    )
