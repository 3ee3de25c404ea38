"""`MixedFit`: a fitted mixed model in engine-neutral form, with predictions and random effects.

The engine result stays inside (`_result`) for the two things computed on demand: conditional
modes with their SDs (`random_effects_of`) and predictions for new data (`predict`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import numpy as np
import pandas as pd
from scipy import special  # not scipy.stats: its import costs ~1 s per model job

from alliance.engine.mixed.prepare import _apply_levels
from alliance.errors import InputError

ENGINE = "mixedlm"


@dataclass
class MixedFit:
    """A fitted mixed model in engine-neutral form (methods: see alliance.engine.mixed).

    coefficients: term, estimate, std_error, statistic, df, p_value, ci_low, ci_high (R names).
    variance_components: group, term1, term2, variance, sd, corr; a row with term2 set is a
    covariance (variance column) and its correlation; the last LMM row is the residual.
    random_effects: group, level, term, estimate (conditional mode), cond_sd; computed on first
    use, and `random_effects_of(groups)` computes only some grouping factors: the conditional
    SDs take one sparse solve per 64 levels, which dominates the fit with tens of thousands of
    patients (7 s of an 11 s fit at 120k session rows).
    icc: per grouping factor, only when every random term is an intercept.
    converged: the project's decision (alliance.engine.mixed.convergence), not the optimiser's;
    convergence: its record (optimizer message, iterations, max_rel_grad, at_start, restarted,
    deviance_improvement). se_approximate: SEs are not lme4's Hessian ones (GLMM fallback to the
    RX-based vcov when the Laplace Hessian is unusable).
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
    convergence: dict[str, Any] = field(default_factory=dict)
    se_approximate: bool = False
    _result: Any = field(default=None, repr=False)
    _levels: dict[str, list[Any]] = field(default_factory=dict, repr=False)
    _re_cache: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)
    _satterthwaite: Any = field(default=None, repr=False)  # inference.Satterthwaite (LMM)

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
