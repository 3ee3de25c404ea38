"""Linear and generalised linear mixed models with lme4 semantics, behind one small interface.

The engine is the `mixedlm` package (lme4 formula syntax, Rust backend). It is young and
single-author, so nothing outside this module touches it: `fit_lmm` / `fit_glmm` return a plain
`MixedFit` whose numbers are checked against lme4 1.1-31 / lmerTest 3.1-3 in
tests/test_engine_mixed.py (fixtures written by tests/reference/make_reference.R).

What we add on top of the engine, and why:
- Factor coding follows R: text columns become factors with sorted levels (R's default), and
  coefficient names are R's (`treatmentBtheB`, not the engine's `treatment.1`), so `formula_r`
  refits the same model in R and the names line up.
- GLMM standard errors come from the finite-difference Hessian of the Laplace deviance over
  (theta, beta) jointly, exactly as lme4's `vcov(use.hessian = TRUE)` (`deriv12`, delta 1e-4).
  The engine's own vcov is the RX-based one (beta conditional on theta), which lme4 only uses
  with `use.hessian = FALSE`: on cbpp it gives 0.2279 where lme4 gives 0.2312.
- Satterthwaite df are computed as lmerTest computes them (`_satterthwaite_df`); the engine's
  own version matches lmerTest for REML fits but is about 1 % off for ML fits.
- `cbind(successes, failures) ~ ...` is accepted (the engine does not parse it): it becomes the
  proportion successes / (successes + failures) with prior weights successes + failures, which
  is the same binomial likelihood.

Two engine internals are used, both covered by the R-reference tests so an engine upgrade that
changes them fails loudly: `LMMOptimizer._evaluate_core` (deviance pieces at a given theta, for
the Satterthwaite df) and `LmerResult._prediction_fixed_matrix` (fixed-effect design matrix of
new data, for prediction SEs).

Known difference from lme4 defaults (GLMM only): lme4's default PIRLS tolerance
(`tolPwrss = 1e-7`) stops the inner conditional-mode iteration early, so its Laplace deviance is
slightly inexact; on cbpp its estimates move by up to 4e-4 relative and its SEs by up to 1.3 %
when the tolerance is tightened. The engine solves the inner problem exactly, so our numbers
equal lme4 run with `glmerControl(tolPwrss = 1e-10)`; `formula_r` therefore carries that
control so the R refit reproduces them.
"""

from __future__ import annotations

import math
import re
import time
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import numpy as np
import pandas as pd
from scipy import special  # not scipy.stats: its import costs ~1 s per model job

from alliance.engine.tidy import coef_table
from alliance.errors import InputError

ENGINE = "mixedlm"
# lme4's deriv12() step for the GLMM Hessian (lme4/R/deriv.R)
_HESSIAN_DELTA = 1e-4
_CBIND = re.compile(r"^\s*cbind\s*\((?P<succ>[^,]+),(?P<fail>.+)\)\s*~(?P<rhs>.+)$", re.S)
_NAME = re.compile(r"[A-Za-z_.][A-Za-z0-9_.]*")
_PROP_COLUMN = "cbind_proportion__"


@dataclass
class MixedFit:
    """A fitted mixed model in engine-neutral form (see module docstring for the methods).

    coefficients: term, estimate, std_error, statistic, df, p_value, ci_low, ci_high (R names).
    variance_components: group, term1, term2, variance, sd, corr; a row with term2 set is a
    covariance (variance column) and its correlation; the last LMM row is the residual.
    random_effects: group, level, term, estimate (conditional mode), cond_sd; computed on first
    use, and `random_effects_of(groups)` computes only some grouping factors: the conditional
    SDs take one sparse solve per 64 levels, which dominates the fit with tens of thousands of
    patients (7 s of an 11 s fit at 120k session rows).
    icc: per grouping factor, only when every random term is an intercept.
    """

    formula: str
    family: str
    coefficients: pd.DataFrame
    vcov: pd.DataFrame
    variance_components: pd.DataFrame
    n_obs: int
    n_groups: dict[str, int]
    loglik: float
    aic: float
    bic: float
    reml: bool
    converged: bool
    singular: bool
    warnings: list[str]
    df_method: str
    vcov_method: str
    icc: dict[str, float] | None
    formula_r: str
    engine: str = ENGINE
    engine_version: str = ""
    fit_seconds: float = 0.0
    _result: Any = field(default=None, repr=False)
    _levels: dict[str, list[Any]] = field(default_factory=dict, repr=False)
    _re_cache: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    @property
    def random_effects(self) -> pd.DataFrame:
        """Conditional modes and SDs of every grouping factor (see the class docstring)."""
        return self.random_effects_of(
            str(st.grouping_factor) for st in self._result.matrices.random_structures
        )

    def random_effects_of(self, groups: Any) -> pd.DataFrame:
        """`random_effects` rows of the named grouping factors only (cheap for few levels)."""
        wanted = [str(g) for g in groups]
        missing = [g for g in wanted if g not in self._re_cache]
        if missing:
            self._re_cache.update(_random_effects(self._result, missing))
        order = dict.fromkeys(
            str(st.grouping_factor) for st in self._result.matrices.random_structures
        )
        parts = [self._re_cache[g] for g in order if g in wanted and g in self._re_cache]
        if not parts:
            return pd.DataFrame(columns=_RE_COLUMNS)
        return pd.concat(parts, ignore_index=True)

    def predict(
        self, newdata: pd.DataFrame, re_form: str | None = "NA", *, level: float = 0.95
    ) -> pd.DataFrame:
        """Predictions for `newdata`.

        re_form="NA" (population level, as lme4 `re.form = NA`): fit, se_fit and a Wald CI from
        the fixed-effect covariance in `self.vcov`. re_form=None: conditional on the estimated
        random effects (fit only; lme4 gives no SE there either). GLMMs add the inverse-logit
        columns fit_response, ci_low_response, ci_high_response.
        """
        nd = _apply_levels(newdata, self._levels)
        if re_form in ("NA", "~0"):
            x = np.asarray(self._result._prediction_fixed_matrix(nd), dtype=float)
            beta = self.coefficients["estimate"].to_numpy()
            fit = x @ beta
            v = self.vcov.to_numpy()
            se = np.sqrt(np.einsum("ij,jk,ik->i", x, v, x))
            q = special.ndtri(0.5 + level / 2.0)  # norm.ppf
        elif re_form is None:
            kwargs = {"type": "link"} if self.family != "gaussian" else {}
            fit = np.asarray(self._result.predict(nd, re_form=None, **kwargs), dtype=float)
            se = np.full_like(fit, np.nan)
            q = np.nan
        else:
            raise InputError(
                "re_form must be 'NA' (population level) or None (conditional)",
                value=re_form,
                check="predict.re_form",
            )
        out = pd.DataFrame(
            {"fit": fit, "se_fit": se, "ci_low": fit - q * se, "ci_high": fit + q * se},
            index=newdata.index,
        )
        if self.family == "binomial":
            for col in ("fit", "ci_low", "ci_high"):
                out[f"{col}_response"] = 1.0 / (1.0 + np.exp(-out[col]))
        return out


def engine_version() -> str:
    """Installed version of the mixed-model engine."""
    return metadata.version(ENGINE)


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
    result, caught = _call_engine(mixedlm.lmer, formula, frame, REML=reml, control=control)
    df, df_note = _satterthwaite_df(result, reml)
    seconds = time.perf_counter() - start
    if df_note:
        caught.append(df_note)

    terms = _r_names(list(result.fixef().keys()), levels)
    vcov = np.asarray(result.vcov(), dtype=float)
    beta = np.asarray(result.beta, dtype=float)
    coefs = coef_table(terms, beta, np.sqrt(np.diag(vcov)), df, level=level)
    vc = _variance_components(result, residual=True)
    return _mixed_fit(
        result, levels, formula=formula, family="gaussian", coefs=coefs, vcov=vcov, vc=vc,
        reml=reml, warnings=caught, seconds=seconds, df_method="Satterthwaite",
        vcov_method="sigma^2 (X'V^-1 X)^-1 at the optimum (lme4 vcov)",
        icc=_icc(vc, residual_var=None),
        formula_r=f"lmer({formula}, data = data, REML = {'TRUE' if reml else 'FALSE'})",
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
    """A MixedFit from an engine result plus what differs between LMM and GLMM (`facts`)."""
    terms = list(coefs["term"])
    return MixedFit(
        coefficients=coefs,
        vcov=pd.DataFrame(vcov, index=terms, columns=terms),
        variance_components=facts.pop("vc"),
        n_obs=int(result.nobs()),
        n_groups={str(k): int(v) for k, v in result.ngrps().items()},
        loglik=float(result.logLik()),
        aic=float(result.AIC()),
        bic=float(result.BIC()),
        converged=bool(result.converged),
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
    control = mixedlm.glmerControl(maxiter=max_iter) if max_iter is not None else None
    start = time.perf_counter()
    result, caught = _call_engine(
        mixedlm.glmer, engine_formula, frame, family=fam, weights=trials, control=control
    )
    vcov_full, hess_note = _laplace_hessian_vcov(
        mixedlm, engine_formula, frame, fam, trials, result
    )
    seconds = time.perf_counter() - start

    terms = _r_names(list(result.fixef().keys()), levels)
    beta = np.asarray(result.beta, dtype=float)
    if vcov_full is None:
        vcov = np.asarray(result.vcov(), dtype=float)
        caught.append(hess_note)
        vcov_method = "engine RX-based vcov (lme4 Hessian unusable, see warnings)"
    else:
        vcov = vcov_full
        vcov_method = "finite-difference Hessian of the Laplace deviance over (theta, beta), lme4"
    coefs = coef_table(terms, beta, np.sqrt(np.diag(vcov)), np.inf, level=level)
    vc = _variance_components(result, residual=False)
    return _mixed_fit(
        result, levels, formula=formula, family="binomial", coefs=coefs, vcov=vcov, vc=vc,
        reml=False, warnings=caught, seconds=seconds, df_method="Wald z (df = Inf)",
        vcov_method=vcov_method, icc=_icc(vc, residual_var=math.pi**2 / 3.0),
        formula_r=_glmer_call(formula, weights),
    )  # fmt: skip


# ---- data preparation -------------------------------------------------------------------------


def _prepare(
    formula: str, data: pd.DataFrame, extra: tuple[str, ...] = ()
) -> tuple[pd.DataFrame, dict[str, list[Any]], np.ndarray]:
    """Keep the formula's columns, drop incomplete rows (R na.omit) and code factors as R does.

    Also returns each kept row's 1-based position in `data`, for error messages.
    """
    if not isinstance(data, pd.DataFrame):
        raise InputError("data must be a pandas DataFrame", value=type(data).__name__)
    if "~" not in formula:
        raise InputError("formula needs a '~'", value=formula, check="formula.syntax")
    names = [*_NAME.findall(formula), *extra]
    used = [c for c in dict.fromkeys(names) if c in data.columns]
    complete = data.loc[:, used].notna().all(axis=1).to_numpy()
    rows = np.flatnonzero(complete) + 1
    frame = data.loc[complete, used].reset_index(drop=True)
    if frame.empty:
        raise InputError(
            "no complete rows for the variables in the formula",
            value=formula,
            check="formula.complete_rows",
        )
    levels: dict[str, list[Any]] = {}
    for col in used:
        s = frame[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            frame[col] = s.cat.remove_unused_categories()
            levels[col] = list(frame[col].cat.categories)
        elif pd.api.types.is_bool_dtype(s):
            # R codes a logical as a factor FALSE < TRUE and names the column xTRUE
            frame[col] = pd.Categorical(
                s.map({False: "FALSE", True: "TRUE"}), categories=["FALSE", "TRUE"]
            )
            levels[col] = ["FALSE", "TRUE"]
        elif not pd.api.types.is_numeric_dtype(s):
            cats = sorted(s.astype(str).unique())
            frame[col] = pd.Categorical(s.astype(str), categories=cats)
            levels[col] = cats
    return frame, levels, rows


def _apply_levels(newdata: pd.DataFrame, levels: dict[str, list[Any]]) -> pd.DataFrame:
    """Code `newdata` factors with the levels seen at fit time, so the design columns match."""
    nd = newdata.copy()
    for col, cats in levels.items():
        if col not in nd.columns:
            continue
        values = nd[col]
        if pd.api.types.is_bool_dtype(values):
            values = values.map({False: "FALSE", True: "TRUE"})
        elif not isinstance(values.dtype, pd.CategoricalDtype) and isinstance(cats[0], str):
            values = values.astype(str)
        unknown = set(pd.unique(values.dropna())) - set(cats)
        if unknown:
            raise InputError(
                f"level not seen when the model was fitted: {sorted(unknown)}",
                column=col,
                check="predict.levels",
            )
        nd[col] = pd.Categorical(values, categories=cats)
    return nd


def _binomial_response(
    formula: str, frame: pd.DataFrame, weights: str | None, rows: np.ndarray
) -> tuple[str, np.ndarray | None]:
    """Turn cbind()/weights into the engine's (proportion, trials) form; check 0/1 outcomes."""
    m = _CBIND.match(formula)
    if m is not None:
        succ = _eval_column(m["succ"], frame)
        fail = _eval_column(m["fail"], frame)
        if np.any(succ < 0) or np.any(fail < 0):
            raise InputError(
                "cbind() counts must be non-negative", value=formula, check="glmm.cbind"
            )
        trials = succ + fail
        if np.any(trials <= 0):
            raise InputError(
                "cbind() rows need at least one trial", value=formula, check="glmm.cbind"
            )
        frame[_PROP_COLUMN] = succ / trials
        return f"{_PROP_COLUMN} ~{m['rhs']}", trials
    response = formula.split("~", 1)[0].strip()
    if response not in frame.columns:
        raise InputError(
            "GLMM response must be a column or cbind(successes, failures)",
            value=response,
            check="glmm.response",
        )
    y = frame[response].to_numpy(dtype=float)
    if weights is None:
        bad = ~np.isin(y, (0.0, 1.0))
        if bad.any():
            raise InputError(
                "binary outcome must be 0/1 (or give weights= for proportions)",
                column=response,
                row=int(np.argmax(bad)) + 1,
                value=y[np.argmax(bad)],
                check="glmm.binary",
            )
        return formula, None
    if weights not in frame.columns:
        raise InputError("weights column not found", column=weights, check="glmm.weights")
    return formula, frame[weights].to_numpy(dtype=float)


def _eval_column(expr: str, frame: pd.DataFrame) -> np.ndarray:
    """Value of a cbind() argument: a column, or `a - b` / `a + b` of columns and numbers."""
    tokens = re.split(r"\s*([+-])\s*", expr.strip())
    total = np.zeros(len(frame))
    sign = 1.0
    for tok in tokens:
        if tok in ("+", "-"):
            sign = 1.0 if tok == "+" else -1.0
            continue
        if tok in frame.columns:
            total = total + sign * frame[tok].to_numpy(dtype=float)
        else:
            try:
                total = total + sign * float(tok)
            except ValueError:
                raise InputError(
                    "cbind() argument must name columns", value=expr, check="glmm.cbind"
                ) from None
    return total


# ---- engine calls and post-processing --------------------------------------------------------


def _call_engine(fn: Any, formula: str, frame: pd.DataFrame, **kwargs: Any) -> tuple[Any, list]:
    """Run the engine and keep its warnings verbatim (they become MixedFit.warnings)."""
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = fn(formula, frame, **kwargs)
        except (ValueError, KeyError) as exc:
            raise InputError(
                f"mixed model could not be fitted: {exc}", value=formula, check="mixed.fit"
            ) from exc
    messages = list(dict.fromkeys(str(w.message) for w in caught))
    if not bool(result.converged):
        detail = str(getattr(result, "message", "") or "")
        note = f"optimizer did not converge: {detail}" if detail else "optimizer did not converge"
        if note not in messages:
            messages.append(note)
    return result, messages


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


_RE_COLUMNS = ["group", "level", "term", "estimate", "cond_sd"]


def _random_effects(result: Any, groups: list[str]) -> dict[str, pd.DataFrame]:
    """Conditional modes with conditional SDs (lme4 ranef(condVar = TRUE)) of `groups`.

    The rows and order of `mixedlm.tidy(result, "ran_vals")`, built column-wise (tidy makes one
    dict per level and imports scipy.stats), and the conditional variances only of the groups
    asked for: the engine's `_conditional_variance_blocks` runs on those groups' rows of Lambda
    (its offsets count only the structures passed). Engine internals used here: the random
    structures' level_map, the conditional-variance helper and the factor it takes (lmer:
    `_weighted_projection`; glmer: `_working_random_system`), covered by the lme4 reference tests
    like the internals named in the module docstring.
    """
    from mixedlm.utils.variance import _conditional_variance_blocks
    from scipy import sparse

    structures = list(result.matrices.random_structures)
    values = result.ranef(condVar=False)
    kept, rows, offset = [], [], 0
    for struct in structures:
        width = struct.n_levels * struct.n_terms
        if struct.grouping_factor in groups:
            kept.append(struct)
            rows.append(np.arange(offset, offset + width))
        offset += width
    cond_var: dict[str, dict[str, np.ndarray]] = {}
    if kept:
        if hasattr(result, "_working_random_system"):  # glmer: scale fixed at 1
            system = result._working_random_system
            factor, lam, scale = system.precision, system.Lambda, 1.0
        else:
            projection = result._weighted_projection
            factor, lam = projection.random_factor, projection.lambda_matrix
            scale = float(result.sigma) ** 2
        lam_rows = sparse.csc_matrix(lam)[np.concatenate(rows), :]
        cond_var = _conditional_variance_blocks(factor, lam_rows, kept, scale=scale)
    out = {}
    for group, terms in values.items():
        if group not in groups:
            continue
        struct = next(s for s in structures if s.grouping_factor == group)
        ordered = sorted(struct.level_map.items(), key=lambda kv: kv[1])
        labels = pd.Series([lv for lv, _ in ordered], dtype=object).astype(str).to_numpy()
        parts = []
        for term, estimates in terms.items():
            est = np.asarray(estimates, dtype=np.float64)
            if len(est) != len(labels):
                raise ValueError(f"random-effect levels of '{group}' do not match the estimates")
            var = cond_var.get(group, {}).get(term)
            sd = (
                np.full(len(est), np.nan)
                if var is None
                else np.sqrt(np.maximum(np.asarray(var, dtype=np.float64), 0.0))
            )
            parts.append(
                pd.DataFrame(
                    {"group": str(group), "level": labels, "term": str(term), "estimate": est,
                     "cond_sd": sd}
                )
            )  # fmt: skip
        out[str(group)] = pd.concat(parts, ignore_index=True)[_RE_COLUMNS]
    return out


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


def _satterthwaite_df(result: Any, reml: bool) -> tuple[np.ndarray, str]:
    """Satterthwaite df per fixed effect, computed as lmerTest 3.1 does.

    lmerTest differentiates the deviance in varpar = (theta, sigma) (sigma not profiled out),
    takes A = 2 H^-1 as the covariance of varpar, differentiates Var(beta) = sigma^2 (RX'RX)^-1
    in varpar (gradient g) and sets df = 2 Var(beta_k)^2 / (g' A g). The engine's own
    `satterthwaite_df` profiles sigma out instead; it matches lmerTest for REML fits but is
    about 1 % off for ML fits, hence this version. Evaluating the deviance pieces (ldL2, ldRX2,
    pwrss, RX'RX) at a given theta needs the engine's internal evaluator.
    """
    from mixedlm.estimation.reml import LMMOptimizer  # engine internal, see docstring

    evaluator = LMMOptimizer(result.matrices, REML=reml)
    n = float(result.matrices.n_obs)
    p = int(result.matrices.n_fixed)
    if p == 0:
        return np.empty(0), ""

    def core(theta: np.ndarray) -> Any:
        c = evaluator._evaluate_core(np.asarray(theta, dtype=float))
        if c is None:
            raise np.linalg.LinAlgError("random-effects system not positive definite")
        return c

    def deviance(vp: np.ndarray) -> float:
        c = core(vp[:-1])
        s2 = vp[-1] ** 2
        dev = c.ldL2 + c.pwrss / s2 + n * math.log(2.0 * math.pi * s2)
        if reml:
            dev += c.ldRX2 - p * math.log(2.0 * math.pi * s2)
        return float(dev)

    def cov_beta(vp: np.ndarray) -> np.ndarray:
        return vp[-1] ** 2 * np.linalg.inv(core(vp[:-1]).fixed_information)

    varpar = np.r_[np.asarray(result.theta, dtype=float), float(result.sigma)]
    try:
        a = 2.0 * np.linalg.inv(_central_hessian(deviance, varpar))
        grads = _central_jacobian(cov_beta, varpar)
        v = cov_beta(varpar)
    except np.linalg.LinAlgError as exc:
        return np.full(p, np.nan), f"Satterthwaite df not available: {exc}"
    df = np.empty(p)
    for k in range(p):
        g = np.array([gk[k, k] for gk in grads])
        denom = float(g @ a @ g)
        df[k] = 2.0 * v[k, k] ** 2 / denom if denom > 0 else np.nan
    note = "" if np.all(np.isfinite(df)) else "Satterthwaite df not finite for some terms"
    return df, note


def _step(x: np.ndarray, rel: float) -> np.ndarray:
    # relative steps, floored so that parameters at or near zero still move
    return rel * np.maximum(np.abs(x), 1e-2)


def _central_hessian(fun: Any, x: np.ndarray, rel: float = 1e-4) -> np.ndarray:
    """Central-difference Hessian with parameter-relative steps."""
    n = len(x)
    h = _step(x, rel)
    f0 = fun(x)
    out = np.empty((n, n))
    for i in range(n):
        ei = np.zeros(n)
        ei[i] = h[i]
        out[i, i] = (fun(x + ei) - 2.0 * f0 + fun(x - ei)) / h[i] ** 2
        for j in range(i):
            ej = np.zeros(n)
            ej[j] = h[j]
            out[i, j] = out[j, i] = (
                fun(x + ei + ej) - fun(x + ei - ej) - fun(x - ei + ej) + fun(x - ei - ej)
            ) / (4.0 * h[i] * h[j])
    return out


def _central_jacobian(fun: Any, x: np.ndarray, rel: float = 1e-5) -> list[np.ndarray]:
    """Derivative of a matrix-valued function along each coordinate."""
    h = _step(x, rel)
    out = []
    for i in range(len(x)):
        e = np.zeros(len(x))
        e[i] = h[i]
        out.append((fun(x + e) - fun(x - e)) / (2.0 * h[i]))
    return out


def _deriv12_hessian(fun: Any, x: np.ndarray, delta: float = _HESSIAN_DELTA) -> np.ndarray:
    """Central-difference Hessian, the same stencil as lme4's deriv12()."""
    n = len(x)
    fx = fun(x)
    h = np.empty((n, n))
    for j in range(n):
        xa = x.copy()
        xa[j] += delta
        xs = x.copy()
        xs[j] -= delta
        h[j, j] = (fun(xa) - 2.0 * fx + fun(xs)) / delta**2
        for i in range(j):
            xaa, xas, xsa, xss = xa.copy(), xa.copy(), xs.copy(), xs.copy()
            xaa[i] += delta
            xas[i] -= delta
            xsa[i] += delta
            xss[i] -= delta
            h[i, j] = h[j, i] = (fun(xaa) - fun(xas) - fun(xsa) + fun(xss)) / (4.0 * delta**2)
    return h


def _laplace_hessian_vcov(
    mixedlm: Any,
    formula: str,
    frame: pd.DataFrame,
    fam: Any,
    trials: np.ndarray | None,
    result: Any,
) -> tuple[np.ndarray | None, str]:
    """lme4's GLMM vcov: 2 * inverse Hessian of the deviance in (theta, beta), beta block."""
    parsed = mixedlm.glFormula(formula, frame, family=fam, weights=trials)
    devfun = mixedlm.mkGlmerDevfun(parsed)
    theta = np.asarray(result.theta, dtype=float)
    beta = np.asarray(result.beta, dtype=float)
    try:
        h = _deriv12_hessian(devfun, np.r_[theta, beta])
        inv = np.linalg.inv(h)
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
        return None, f"Hessian of the Laplace deviance failed ({exc}); RX-based SEs reported"
    v = inv + inv.T  # = 2 H^-1, symmetrised as lme4's calc.vcov.hess
    vb = v[len(theta) :, len(theta) :]
    if not np.all(np.isfinite(vb)):
        # a deviance evaluation near the optimum failed (NaN); seen on 120k-row GLMMs
        return None, "Hessian of the Laplace deviance not finite; RX-based SEs reported"
    if np.any(np.linalg.eigvalsh(vb) <= 0):
        return None, "Hessian of the Laplace deviance not positive definite; RX-based SEs reported"
    return vb, ""


def _glmer_call(formula: str, weights: str | None) -> str:
    """The lme4 call that reproduces the fit (tight PIRLS tolerance: see module docstring)."""
    w = f", weights = {weights}" if weights else ""
    return (
        f"glmer({formula}, data = data, family = binomial{w}, "
        "control = glmerControl(tolPwrss = 1e-10))"
    )
