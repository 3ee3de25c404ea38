"""The Laplace deviance of a binomial-logit GLMM and its optimisation (lme4 glmer, nAGQ = 1).

Why our own: the engine's joint objective solves the conditional mode u with beta held fixed
by a native PIRLS that stalls on larger crossed designs (issue #16: on the 120k-row suicidality
frame, two random intercepts, 9,170 random effects, it stops unconverged at most theta, e.g.
deviance 29510.87 instead of 29376.93 at theta = (1.0024, 0.000685)); the objective then
returns +inf, the optimiser stops next to its start (patient SD 1.002) and the finite-difference
Hessian is not finite. Here the mode is found by Newton's method with step halving on the
penalised deviance (a strictly convex problem, so it always converges), with the logit
log-likelihood written through log1p(exp(.)) so no linear predictor overflows, and the
random-effects system factored by the cheapest way its structure allows
(alliance.engine.mixed.factor).

Definitions follow lme4: u spherical random effects, b = Lambda(theta) u, eta = X beta + Z b +
offset, and the Laplace deviance sum(binomial deviance residuals) + |u|^2 + log det(L'Z'WZL + I)
at the conditional mode; the engine's result class turns it into logLik (saturated constants).
The engine's model matrices, its Lambda builder and its result class are used (engine internals
named in the package docstring).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse
from scipy.special import expit, xlogy

from alliance.engine.mixed.factor import Factor, PairLayout, SchurFactor, SchurSplit
from alliance.engine.mixed.laplace_grad import RowColumns

# The mode counts as found when a Newton step is below STEP_EXACT, or after a full step below
# STEP_CLOSE (Newton converges quadratically: the error left is of order STEP_CLOSE^2). The
# log-determinant moves at first order in u, so the mode must be exact to ~1e-11 for lme4's
# delta = 1e-4 finite-difference Hessian (deviance errors are divided by delta^2 = 1e-8).
STEP_EXACT = 1e-11
STEP_CLOSE = 1e-9
# a step may raise the penalised deviance by rounding only (relative)
ROUNDING = 1e-13
MODE_TOL = STEP_EXACT
MODE_MAXITER = 60
HALVINGS = 40


@dataclass
class Counters:
    """Work done, for the profile (README speed section)."""

    evaluations: int = 0
    newton_steps: int = 0
    halvings: int = 0
    factorizations: int = 0
    seconds_factor: float = 0.0


@dataclass
class LaplaceProblem:
    """Laplace deviance of a binomial-logit GLMM at (theta, beta), from the engine's matrices.

    The last mode found is the next start (warm start), so neighbouring evaluations (optimiser
    steps, finite differences) need two or three Newton steps.
    """

    matrices: Any
    counters: Counters = field(default_factory=Counters)

    def __post_init__(self) -> None:
        m = self.matrices
        self.y = np.asarray(m.y, dtype=float)
        self.X = np.ascontiguousarray(m.X, dtype=float)
        self.w = np.asarray(m.weights, dtype=float)
        self.offset = np.asarray(m.offset, dtype=float)
        self.Z = sparse.csc_matrix(m.Z)
        self.q = int(self.Z.shape[1])
        self.n_theta = sum(_n_theta(s) for s in m.random_structures)
        self.p = int(self.X.shape[1])
        # saturated part of the deviance residuals: 2 w [y log y + (1-y) log(1-y)]
        sat = 2.0 * self.w * (xlogy(self.y, self.y) + xlogy(1 - self.y, 1 - self.y))
        self._sat_total = float(np.sum(sat))
        self._u = np.zeros(self.q)
        self._pairs = PairLayout.build(self.Z) if self._scalar_terms() else None
        self._split = self._schur_split()
        self._rows = self._row_columns()
        # eta and the factor of H at the last mode found (for the gradient)
        self._at_mode: tuple[np.ndarray, Factor | SchurFactor] | None = None
        self._pair_coef: np.ndarray | None = None
        self._cache: tuple[bytes, sparse.csc_matrix, sparse.csr_matrix, Any] | None = None
        self.last_converged = True

    # ------------------------------------------------------------------ pieces
    def _design(self, theta: np.ndarray) -> tuple[sparse.csc_matrix, sparse.csr_matrix, Any]:
        """Z Lambda(theta) (CSC and its transpose as CSR) and, when H is diagonal (one
        random-effect column per row), the squared entries of (Z Lambda)' (else None)."""
        key = np.asarray(theta, dtype=float).tobytes()
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1], self._cache[2], self._cache[3]
        from mixedlm.estimation.reml import _build_lambda  # engine internal, see docstring

        lam = _build_lambda(np.asarray(theta, dtype=float), self.matrices.random_structures)
        if self._pairs is not None:
            self._pair_coef = self._pairs.coefficients(np.asarray(lam.diagonal()))
        zl = sparse.csc_matrix(self.Z @ lam)
        zl.eliminate_zeros()
        zlt = zl.T.tocsr()
        one_per_row = bool(np.all(np.diff(zl.tocsr().indptr) <= 1))
        squares = zlt.multiply(zlt).tocsr() if one_per_row else None
        self._cache = (key, zl, zlt, squares)
        return zl, zlt, squares

    def _pdev(self, eta: np.ndarray, u: np.ndarray) -> float:
        """Penalised deviance: binomial deviance residuals (logit, overflow-free) + |u|^2."""
        # -[y log mu + (1-y) log(1-mu)] = log(1 + exp(eta)) - y eta, one logaddexp per row
        nll = np.logaddexp(0.0, eta) - self.y * eta
        return float(self._sat_total + 2.0 * (self.w @ nll) + u @ u)

    def _factor_at(self, zl: Any, zlt: Any, squares: Any, mu: np.ndarray) -> Factor | SchurFactor:
        """Factor of H = ZL' W ZL + I with the GLM weights W at the means mu."""
        t0 = time.perf_counter()
        weights = self.w * mu * (1.0 - mu)
        f: Factor | SchurFactor
        if squares is not None:
            f = Factor(squares @ weights + 1.0)
        elif self._pairs is not None:
            data = self._pairs.values(weights, self._pair_coef)
            f = self._split.factor(data) if self._split else Factor(self._pairs.matrix(data))
        else:
            f = Factor((zlt @ sparse.diags(weights) @ zl + sparse.identity(self.q)).tocsc())
        self.counters.factorizations += 1
        self.counters.seconds_factor += time.perf_counter() - t0
        return f

    def mode(self, theta: np.ndarray, fixed: np.ndarray) -> tuple[float, float, np.ndarray, bool]:
        """Conditional mode u at (theta, eta_fixed = X beta + offset) by damped Newton.

        Returns (penalised deviance, log det H at the mode, u, converged).
        """
        zl, zlt, squares = self._design(theta)
        u = self._u.copy() if self.q else np.zeros(0)
        eta = fixed + zl @ u
        pdev = self._pdev(eta, u)
        if not np.isfinite(pdev):
            u = np.zeros(self.q)
            eta = fixed.copy()
            pdev = self._pdev(eta, u)
        converged = False
        factor: Factor | SchurFactor | None = None
        for _ in range(MODE_MAXITER):
            mu = _expit(eta)
            factor = self._factor_at(zl, zlt, squares, mu)
            grad = zlt @ (self.w * (self.y - mu)) - u
            step = factor.solve(grad)
            size = float(np.max(np.abs(step), initial=0.0))
            if size <= STEP_EXACT:
                converged = True
                break
            self.counters.newton_steps += 1
            scale, accepted = 1.0, False
            slack = ROUNDING * (1.0 + abs(pdev))
            for _ in range(HALVINGS):
                cand_u = u + scale * step
                cand_eta = fixed + zl @ cand_u
                cand = self._pdev(cand_eta, cand_u)
                if cand <= pdev + slack:
                    accepted = True
                    break
                scale *= 0.5
                self.counters.halvings += 1
            if not accepted:
                factor = None
                break
            u, eta, pdev = cand_u, cand_eta, cand
            if scale == 1.0 and size <= STEP_CLOSE:
                # quadratic convergence: the error after this step is of order size^2
                factor = self._factor_at(zl, zlt, squares, _expit(eta))
                converged = True
                break
        if factor is None:
            factor = self._factor_at(zl, zlt, squares, _expit(eta))
        if converged:
            self._u = u
            self._at_mode = (eta, factor)
        return pdev, factor.logdet, u, converged

    def deviance(self, params: np.ndarray) -> float:
        """Laplace deviance at params = (theta, beta); +inf when it cannot be evaluated."""
        params = np.asarray(params, dtype=float)
        theta, beta = params[: self.n_theta], params[self.n_theta :]
        self.counters.evaluations += 1
        if not np.all(np.isfinite(params)):
            return np.inf
        try:
            pdev, logdet, _, ok = self.mode(theta, self.X @ beta + self.offset)
        except np.linalg.LinAlgError:
            self.last_converged = False
            return np.inf
        self.last_converged = ok
        return pdev + logdet if ok else np.inf

    __call__ = deviance

    def anchored(self) -> Any:
        """The deviance with every mode search started from the current mode (u now held).

        Finite differences around an optimum then do not depend on their evaluation order.
        """
        u0 = self._u.copy()

        def fun(params: np.ndarray) -> float:
            self._u = u0.copy()
            return self.deviance(params)

        return fun

    def anchored_value_and_gradient(self) -> Any:
        """`value_and_gradient` with every mode search started from the current mode."""
        u0 = self._u.copy()

        def fun(params: np.ndarray) -> tuple[float, np.ndarray]:
            self._u = u0.copy()
            return self.value_and_gradient(params)

        return fun

    def random_effects(self, theta: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, float]:
        """b = Lambda u at the mode and the Laplace deviance there."""
        pdev, logdet, u, _ = self.mode(theta, self.X @ beta + self.offset)
        zl_lambda = self._lambda(theta)
        return np.asarray(zl_lambda @ u).ravel(), pdev + logdet

    def _lambda(self, theta: np.ndarray) -> sparse.csc_matrix:
        from mixedlm.estimation.reml import _build_lambda  # engine internal, see docstring

        return _build_lambda(np.asarray(theta, dtype=float), self.matrices.random_structures)

    def _schur_split(self) -> SchurSplit | None:
        """Scalar terms only: eliminate the levels of the term with most of them first."""
        if self._pairs is None or len(self.matrices.random_structures) < 2:
            return None
        sizes = [int(s.n_levels) * int(s.n_terms) for s in self.matrices.random_structures]
        start = int(np.sum(sizes[: int(np.argmax(sizes))]))
        return SchurSplit.build(self._pairs, np.arange(start, start + max(sizes)))

    def _scalar_terms(self) -> bool:
        """Every random term scalar: Lambda is diagonal, Z Lambda keeps Z's pattern."""
        return self.q > 0 and all(int(s.n_terms) == 1 for s in self.matrices.random_structures)

    # ------------------------------------------------------------------ analytic gradient
    def _row_columns(self) -> RowColumns | None:
        """Each row's columns for the exact gradient (laplace_grad): scalar terms with one
        column per row, or two whose Schur complement is diagonal; else None."""
        if self._pairs is None:
            return None
        if self._split is not None and not self._split.s_diagonal:
            return None
        # Lambda is diagonal and linear in theta: column k scales by theta[t(k)]
        dlam = np.stack(
            [self._lambda(np.eye(self.n_theta)[t]).diagonal() for t in range(self.n_theta)]
        )
        return RowColumns.build(self.Z, None if self._split is None else self._split.first, dlam)

    @property
    def has_gradient(self) -> bool:
        """Whether `value_and_gradient` is analytic (alliance.engine.mixed.laplace_grad)."""
        return self._rows is not None

    def value_and_gradient(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        """Laplace deviance and its exact gradient in (theta, beta) (laplace_grad)."""
        assert self._rows is not None
        params = np.asarray(params, dtype=float)
        f = self.deviance(params)
        if not np.isfinite(f) or self._at_mode is None:
            return f, np.full(len(params), np.nan)
        eta, factor = self._at_mode
        theta = params[: self.n_theta]
        return f, self._rows.gradient(self.X, eta, self.y, self.w, self._u, theta, factor)

    # ------------------------------------------------------------------ starts and bounds
    def variance_mask(self) -> np.ndarray:
        """True for theta elements that are scales (lower bound 0), as lme4 bounds them."""
        mask: list[bool] = []
        for s in self.matrices.random_structures:
            q = int(s.n_terms)
            if s.correlated and q > 1:
                mask += [i == j for i in range(q) for j in range(i + 1)]
            else:
                mask += [True] * q
        return np.array(mask, dtype=bool)

    def start_theta(self) -> np.ndarray:
        """lme4's start: 1 on the scales, 0 elsewhere."""
        return self.variance_mask().astype(float)

    def glm_beta(self) -> np.ndarray:
        """Fixed effects of the GLM without random effects (IRLS): the start for beta."""
        beta = np.zeros(self.p)
        if self.p == 0:
            return beta
        for _ in range(50):
            eta = self.X @ beta + self.offset
            mu = _expit(eta)
            wt = self.w * mu * (1.0 - mu)
            info = self.X.T @ (wt[:, None] * self.X)
            score = self.X.T @ (self.w * (self.y - mu))
            try:
                step = np.linalg.solve(info, score)
            except np.linalg.LinAlgError:
                step = np.linalg.lstsq(info, score, rcond=None)[0]
            beta = beta + step
            if np.max(np.abs(step)) < 1e-10:
                break
        return beta


def _n_theta(struct: Any) -> int:
    q = int(struct.n_terms)
    return q * (q + 1) // 2 if struct.correlated else q


def _expit(eta: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-eta)), without overflow (scipy's expit saturates at 0 and 1)."""
    return expit(eta)
