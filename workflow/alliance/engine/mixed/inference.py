"""Finite-difference inference: lmerTest Satterthwaite pieces and lme4's Hessian-based GLMM vcov.

Both need the deviance at parameter values other than the optimum, through engine internals named
in the package docstring (alliance.engine.mixed) and covered by the lme4 reference tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

# lme4's deriv12() step for the GLMM Hessian (lme4/R/deriv.R)
_HESSIAN_DELTA = 1e-4
# step of the central differences of the exact Laplace gradient (`_gradient_hessian`)
_GRADIENT_STEP = 1e-5


# lmerTest's threshold for Hessian eigenvalues (as_lmerModLT, tol = 1e-8): smaller ones are
# dropped from its generalised inverse (and reported)
_EIGEN_TOL = 1e-8


@dataclass(frozen=True)
class Satterthwaite:
    """What lmerTest keeps on a fit for Satterthwaite tests of any contrast L (contest1D).

    vcov_varpar: A = 2 H^+, the covariance of varpar = (theta, sigma) from the Moore-Penrose
    inverse of the deviance Hessian over its eigenvalues > 1e-8 (as lmerTest);
    jacobian: d Var(beta) / d varpar_i stacked as (q, p, p); vcov_beta: Var(beta) at the optimum.
    """

    vcov_varpar: np.ndarray
    jacobian: np.ndarray
    vcov_beta: np.ndarray

    def df(self, weights: np.ndarray) -> float:
        """Satterthwaite df of L'beta: 2 (L'VL)^2 / (g'Ag) with g_i = L' (dV/dvarpar_i) L.

        A zero denominator (L'VL does not depend on varpar) gives Inf, as in lmerTest.
        """
        w = np.asarray(weights, dtype=float)
        var = float(w @ self.vcov_beta @ w)
        g = np.einsum("j,ijk,k->i", w, self.jacobian, w)
        denom = float(g @ self.vcov_varpar @ g)
        if denom > 0:
            return 2.0 * var**2 / denom
        return np.inf if denom == 0 and var > 0 else np.nan

    def coefficient_df(self) -> np.ndarray:
        """df of each fixed effect (L = unit vectors): lmerTest's summary() column."""
        eye = np.eye(self.vcov_beta.shape[0])
        return np.array([self.df(row) for row in eye])


def lmm_evaluator(result: Any, reml: bool) -> Any:
    """The engine's deviance evaluator of an LMM (its native design is built once, ~3 s at 600k
    rows): shared by the start values, the convergence check and the Satterthwaite pieces."""
    from mixedlm.estimation.reml import LMMOptimizer  # engine internal, see docstring

    return LMMOptimizer(result.matrices, REML=reml)


def _satterthwaite(
    result: Any, reml: bool, evaluator: Any = None
) -> tuple[Satterthwaite | None, list[str]]:
    """Satterthwaite pieces of an LMM, computed as lmerTest 3.1 does (None when unavailable).

    lmerTest differentiates the deviance in varpar = (theta, sigma) (sigma not profiled out),
    takes A = 2 H^+ as the covariance of varpar and differentiates Var(beta) = sigma^2 (RX'RX)^-1
    in varpar. The engine's own `satterthwaite_df` profiles sigma out instead; it matches
    lmerTest for REML fits but is about 1 % off for ML fits, hence this version. Evaluating the
    deviance pieces (ldL2, ldRX2, pwrss, RX'RX) at a given theta needs the engine's internal
    evaluator. A variance at 0 (theta on the boundary) is evaluated on both sides of it (the
    deviance is even in theta), and Hessian eigenvalues at or below 1e-8 leave the inverse
    as in lmerTest, so such fits keep finite df. The pieces are kept per theta: the stencil
    points that move sigma alone, or theta and sigma together, reuse a theta already evaluated
    (74 of 113 evaluations remain with 4 thetas), with the same values.
    """
    evaluator = evaluator if evaluator is not None else lmm_evaluator(result, reml)
    n = float(result.matrices.n_obs)
    p = int(result.matrices.n_fixed)
    if p == 0:
        return None, []
    cores: dict[bytes, Any] = {}

    def core(theta: np.ndarray) -> Any:
        key = np.asarray(theta, dtype=float).tobytes()
        if key not in cores:
            c = evaluator._evaluate_core(np.asarray(theta, dtype=float))
            if c is None:
                raise np.linalg.LinAlgError("random-effects system not positive definite")
            cores[key] = c
        return cores[key]

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
        hessian = _richardson_hessian(deviance, varpar)
        grads = np.stack(_central_jacobian(cov_beta, varpar))
        v = cov_beta(varpar)
        values, vectors = np.linalg.eigh(hessian)
    except np.linalg.LinAlgError as exc:
        return None, [f"Satterthwaite df not available: {exc}"]
    if not (np.all(np.isfinite(hessian)) and np.all(np.isfinite(grads))):
        return None, ["Satterthwaite df not available: deviance not finite near the optimum"]
    notes = []
    negative, zero = values[values < -_EIGEN_TOL], values[np.abs(values) <= _EIGEN_TOL]
    for kind, vals in (("negative", negative), ("close to zero", zero)):
        if len(vals):
            listed = " ".join(f"{x:.1e}" for x in vals)
            notes.append(
                f"Hessian of the deviance in (theta, sigma) has {len(vals)} eigenvalue(s) "
                f"{kind}: {listed} (Satterthwaite df use its generalised inverse, as lmerTest)"
            )
    keep = values > _EIGEN_TOL
    a = 2.0 * (vectors[:, keep] / values[keep]) @ vectors[:, keep].T
    return Satterthwaite(vcov_varpar=a, jacobian=grads, vcov_beta=v), notes


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


def _richardson_hessian(fun: Any, x: np.ndarray, rel: float = 4e-3) -> np.ndarray:
    """Central Hessians at steps h and h/2 combined by one Richardson step (error O(h^4)).

    lmerTest's numDeriv::hessian extrapolates likewise. A plain central difference needs a step
    that balances truncation against rounding in a deviance of 1e4-1e5: at 1e-4 relative it
    was 1.3e-4 off lmerTest's df on the demo's 6,000-row symptoms_growth, at 1e-3 and with this
    extrapolation a few 1e-6 (tests/test_contest.py has the figures).
    """
    return (4.0 * _central_hessian(fun, x, rel / 2.0) - _central_hessian(fun, x, rel)) / 3.0


def _central_jacobian(fun: Any, x: np.ndarray, rel: float = 1e-5) -> list[np.ndarray]:
    """Derivative of a matrix-valued function along each coordinate."""
    h = _step(x, rel)
    out = []
    for i in range(len(x)):
        e = np.zeros(len(x))
        e[i] = h[i]
        out.append((fun(x + e) - fun(x - e)) / (2.0 * h[i]))
    return out


def _deriv12(
    fun: Any, x: np.ndarray, delta: float = _HESSIAN_DELTA
) -> tuple[np.ndarray, np.ndarray]:
    """Central-difference gradient and Hessian, the same stencil as lme4's deriv12()."""
    n = len(x)
    fx = fun(x)
    g = np.empty(n)
    h = np.empty((n, n))
    for j in range(n):
        xa = x.copy()
        xa[j] += delta
        xs = x.copy()
        xs[j] -= delta
        fa, fs = fun(xa), fun(xs)
        g[j] = (fa - fs) / (2.0 * delta)
        h[j, j] = (fa - 2.0 * fx + fs) / delta**2
        for i in range(j):
            xaa, xas, xsa, xss = xa.copy(), xa.copy(), xs.copy(), xs.copy()
            xaa[i] += delta
            xas[i] -= delta
            xsa[i] += delta
            xss[i] -= delta
            h[i, j] = h[j, i] = (fun(xaa) - fun(xas) - fun(xsa) + fun(xss)) / (4.0 * delta**2)
    return g, h


def _richardson_gradient(
    fun: Any, x: np.ndarray, g_delta: np.ndarray, delta: float = _HESSIAN_DELTA
) -> np.ndarray:
    """Central gradient at delta/2 combined with the one at delta (error O(delta^4)).

    deriv12's plain central gradient errs by delta^2/6 times the third derivative, which on a
    covariate with a large scale (period_sq up to 225 on the demo hazard model) is 0.5 in a
    deviance whose true gradient is 1e-6: enough to fail lme4's 2e-3 check at the optimum.
    """
    half = delta / 2.0
    g = np.empty(len(x))
    for j in range(len(x)):
        xa, xs = x.copy(), x.copy()
        xa[j] += half
        xs[j] -= half
        g[j] = (fun(xa) - fun(xs)) / (2.0 * half)
    return (4.0 * g - g_delta) / 3.0


def _gradient_hessian(
    value_and_grad: Any, x: np.ndarray, step: float = _GRADIENT_STEP
) -> np.ndarray:
    """The Hessian as central differences of the exact gradient, symmetrised: 2n gradients.

    Exact to about 1e-7 relative (steps 1e-5 and 3e-6 agree to 4e-8 on the 120k and 600k
    hazards), where deriv12's Hessian of deviances at its absolute step 1e-4 errs by up to
    4.5e-4 in the SEs of wide-ranged covariates (`period_sq`) and by the deviance's rounding
    divided by 1e-8 (issue #16).
    """
    n = len(x)
    jac = np.empty((n, n))
    for j in range(n):
        e = np.zeros(n)
        e[j] = step
        jac[:, j] = (np.asarray(value_and_grad(x + e)[1]) - value_and_grad(x - e)[1]) / (2 * step)
    return (jac + jac.T) / 2.0


def _deriv12_hessian(fun: Any, x: np.ndarray, delta: float = _HESSIAN_DELTA) -> np.ndarray:
    """Central-difference Hessian, the same stencil as lme4's deriv12()."""
    return _deriv12(fun, x, delta)[1]


def _profiled_derivs(
    result: Any, reml: bool, evaluator: Any = None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Gradient and Hessian of an LMM's profiled deviance in theta (lme4 checkConv for lmer)."""
    evaluator = evaluator if evaluator is not None else lmm_evaluator(result, reml)
    theta = np.asarray(result.theta, dtype=float)
    if len(theta) == 0:
        return np.zeros(0), np.zeros((0, 0))

    def fun(t: np.ndarray) -> float:
        return float(evaluator.objective(np.asarray(t, dtype=float)))

    try:
        g, h = _deriv12(fun, theta)
        return _richardson_gradient(fun, theta, g), h
    except (ValueError, FloatingPointError, np.linalg.LinAlgError):
        return None, None


def _laplace_hessian_vcov(
    devfun: Any, result: Any
) -> tuple[np.ndarray | None, str, np.ndarray | None, np.ndarray | None]:
    """lme4's GLMM vcov: 2 * inverse Hessian of the deviance in (theta, beta), beta block.

    Where the problem has the exact gradient (alliance.engine.mixed.laplace_grad), the Hessian
    is central differences of it (`_gradient_hessian`), exact to about 1e-7; lme4's own
    deriv12 Hessian is not that accurate (absolute step 1e-4: up to 4.5e-4 on the SEs of
    wide-ranged covariates, plus its PIRLS rounding; recomputing it at lme4's own optimum moved
    a 120k SE by 4.2e-4), so the reference for these SEs is lme4's deviance function
    differentiated precisely (tests/reference/common.R `precise_hessian`). Elsewhere it is
    deriv12's stencil at lme4's step, and the gradient deriv12's, Richardson-extrapolated.
    `devfun` is the Laplace deviance of (theta, beta) (alliance.engine.mixed.laplace); each
    evaluation starts its mode search from the optimum's mode (`anchored`), so the result does
    not depend on the evaluation order. Also returns the gradient and Hessian themselves (None
    when they failed) for the lme4 convergence check (alliance.engine.mixed.convergence).
    """
    theta = np.asarray(result.theta, dtype=float)
    beta = np.asarray(result.beta, dtype=float)
    g: np.ndarray | None = None
    h: np.ndarray | None = None
    x = np.r_[theta, beta]
    fun = devfun.anchored() if hasattr(devfun, "anchored") else devfun
    try:
        if getattr(devfun, "has_gradient", False):
            value_and_grad = devfun.anchored_value_and_gradient()
            g = value_and_grad(x)[1]
            h = _gradient_hessian(value_and_grad, x)
        else:
            g, h = _deriv12(fun, x)
            g = _richardson_gradient(fun, x, g)
        inv = np.linalg.inv(h)
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
        note = f"Hessian of the Laplace deviance failed ({exc}); RX-based SEs reported"
        return None, note, g, h
    v = inv + inv.T  # = 2 H^-1, symmetrised as lme4's calc.vcov.hess
    vb = v[len(theta) :, len(theta) :]
    if not np.all(np.isfinite(vb)):
        # a deviance evaluation near the optimum failed (NaN); seen on 120k-row GLMMs
        return None, "Hessian of the Laplace deviance not finite; RX-based SEs reported", g, h
    if np.any(np.linalg.eigvalsh(vb) <= 0):
        note = "Hessian of the Laplace deviance not positive definite; RX-based SEs reported"
        return None, note, g, h
    return vb, "", g, h
