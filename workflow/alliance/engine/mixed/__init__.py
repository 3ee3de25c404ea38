"""Linear and generalised linear mixed models with lme4 semantics, behind one small interface.

The engine is the `mixedlm` package (lme4 formula syntax, Rust backend). It is young and
single-author, so nothing outside this module touches it: `fit_lmm` / `fit_glmm` return a plain
`MixedFit` whose numbers are checked against lme4 1.1-31 / lmerTest 3.1-3 in
tests/test_engine_mixed.py (fixtures written by tests/reference/make_reference.R).

What we add on top of the engine, and why:
- Factor coding follows R: text columns become factors with sorted levels (R's default), and
  coefficient names are R's (`treatmentBtheB`, not the engine's `treatment.1`), so `formula_r`
  refits the same model in R and the names line up.
- Binomial GLMMs are fitted by our own Laplace code (`laplace`): the conditional mode by
  damped Newton to an exact solution, the optimum by L-BFGS-B over (theta, beta) with the
  exact gradient (`laplace_grad`) when each row has one scalar random-effect column or two
  whose levels are nested (patients within therapists; the random-effects system is then
  factored by a Schur complement, `factor`), central differences otherwise. The engine's own
  joint objective stalls on larger crossed designs (issue #16: the 120k-row suicidality fit
  stopped at its start, logLik 78.5 below lme4's); the engine still builds the model
  matrices, runs lme4's checks and holds the result (GlmerResult: logLik, VarCorr, RX-based
  vcov). Fits run with one BLAS thread (alliance.engine.threads).
- GLMM standard errors come from the Hessian of the Laplace deviance over (theta, beta)
  jointly, as lme4's `vcov(use.hessian = TRUE)`. Where the exact gradient exists it is central
  differences of that gradient (2n gradients, exact to ~1e-7); lme4's own deriv12 at its
  absolute step 1e-4 is only good to a few 1e-4 (truncation on wide-ranged covariates, PIRLS
  rounding), so these SEs are checked against lme4's deviance differentiated precisely
  (tests/reference/common.R `precise_hessian`: 1e-6 to 1.1e-5 at 10k and 120k rows). Elsewhere
  it is deriv12 (delta 1e-4), each evaluation starting from the optimum's mode so the result does
  not depend on the evaluation order. The engine's own vcov is the RX-based one (beta
  conditional on theta), which lme4 only uses with `use.hessian = FALSE`: on cbpp it gives
  0.2279 where lme4 gives 0.2312.
- Satterthwaite df are computed as lmerTest computes them (`inference._satterthwaite`); the
  engine's own version matches lmerTest for REML fits but is about 1 % off for ML fits. The
  pieces stay on the fit, so `contest1d` tests any linear combination L'beta with its own
  Satterthwaite df (lmerTest contest1D); GLMM combinations are Wald z tests.
- `cbind(successes, failures) ~ ...` is accepted (the engine does not parse it): it becomes the
  proportion successes / (successes + failures) with prior weights successes + failures, which
  is the same binomial likelihood.

Engine internals used, all covered by the R-reference tests so an engine upgrade that changes
them fails loudly: `LMMOptimizer._evaluate_core` (deviance pieces at a given theta, for the
Satterthwaite df), `LmerResult._prediction_fixed_matrix` (fixed-effect design matrix of new
data, for prediction SEs), and for GLMMs `GlmerMod` with `models.checks.run_model_checks`
(model matrices and lme4's checks), `estimation.reml._build_lambda` (Lambda(theta)) and the
`GlmerResult` dataclass.

`formula_r` of an LMM carries `lmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5,
rhoend = 1e-10))`: lme4's default optimizer stops early on larger three-level models (on the
demo's symptoms_growth it warns "failed to converge" and its estimates differ from the optimum by
up to 3e-4), whereas the engine reports the optimum; with the control the R refit reaches it too.

Known difference from lme4 defaults (GLMM only): lme4's default PIRLS tolerance
(`tolPwrss = 1e-7`) stops the inner conditional-mode iteration early, so its Laplace deviance is
slightly inexact; on cbpp its estimates move by up to 4e-4 relative and its SEs by up to 1.3 %
when the tolerance is tightened. The engine solves the inner problem exactly, so our numbers
equal lme4 run with `glmerControl(tolPwrss = 1e-10)`; `formula_r` therefore carries that
control so the R refit reproduces them. On larger frames lme4's default Nelder-Mead stage can
still stop short (the 120k-row dropout_hazard: max|grad| 0.17, logLik 3.9e-5 below ours);
tests/reference/glmm_scale_reference.csv then also holds a bobyqa refit to a tight trust region.

Convergence is ours, not the engine's word: `converged` needs the optimiser's success, at least
one iteration, lme4's scaled-gradient check (2e-3) and no variance parameter left at its start
value unless restarts from 0.5x and 2x the start return to it (`convergence`; fit.json records it).

Modules: `fit` (fit_lmm, fit_glmm and the tidying of the engine's result), `laplace` (the GLMM
Laplace deviance), `laplace_grad` (its exact gradient), `factor` (the random-effects system's
factor), `laplace_fit` (its optimisation), `result` (MixedFit,
predictions, random effects), `prepare` (formula columns, na.omit, R factor coding, binomial
responses), `inference` (Satterthwaite pieces, the GLMM Hessian), `contest` (tests of L'beta),
`convergence` (the convergence decision).
`_prepare` is re-exported for the benchmark (alliance.studies.bench), which times data
preparation apart from the fit.
"""

from alliance.engine.mixed.contest import CONTEST_COLUMNS, contest1d, satterthwaite_df
from alliance.engine.mixed.fit import fit_glmm, fit_lmm
from alliance.engine.mixed.prepare import _prepare as _prepare
from alliance.engine.mixed.result import ENGINE, MixedFit, engine_version

__all__ = [
    "CONTEST_COLUMNS", "ENGINE", "MixedFit", "contest1d", "engine_version", "fit_glmm",
    "fit_lmm", "satterthwaite_df",
]  # fmt: skip
