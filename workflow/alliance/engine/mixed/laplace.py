"""The Laplace deviance of a binomial-logit GLMM and its optimisation (lme4 glmer, nAGQ = 1).

Why our own: the engine's joint objective solves the conditional mode u with beta held fixed
by a native PIRLS that stalls on larger crossed designs (issue #16: on the 120k-row suicidality
frame, two random intercepts, 9,170 random effects, it stops unconverged at most theta, e.g.
deviance 29510.87 instead of 29376.93 at theta = (1.0024, 0.000685)); the objective then
returns +inf, the optimiser stops next to its start (patient SD 1.002) and the finite-difference
Hessian is not finite. Here the mode is found by Newton's method with step halving on the
penalised deviance (a strictly convex problem, so it always converges), with the logit
log-likelihood written through log1p(exp(.)) so no linear predictor overflows, and the sparse
system factor reused: its symbolic analysis is done once per theta pattern.

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
from scipy.sparse.linalg import splu
from scipy.special import expit, xlogy

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


class _Factor:
    """Cholesky-like factor of the SPD matrix H = ZL' W ZL + I: solve and log-determinant.

    A diagonal H (one random-effect column per row) is handled directly; otherwise SuperLU in
    symmetric mode with a minimum-degree ordering on H's fixed pattern (no pivoting, so the
    diagonal of U gives the log-determinant).
    """

    def __init__(self, h: sparse.csc_matrix | np.ndarray) -> None:
        if isinstance(h, np.ndarray):
            self._diag: np.ndarray | None = h
            self._lu = None
            self.logdet = float(np.sum(np.log(h)))
            return
        self._diag = None
        self._lu = splu(
            h, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
            options={"SymmetricMode": True},
        )  # fmt: skip
        d = self._lu.U.diagonal()
        if np.any(d <= 0) or not np.all(np.isfinite(d)):
            raise np.linalg.LinAlgError("random-effects system not positive definite")
        self.logdet = float(np.sum(np.log(d)))

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        if self._diag is not None:
            return rhs / self._diag
        assert self._lu is not None
        return self._lu.solve(rhs)


@dataclass
class _PairLayout:
    """Where each row's products Z_ia Z_ib land in H = Lambda Z' W Z Lambda + I (scalar terms).

    Built once from Z's pattern, so each Newton step assembles H by one weighted bincount
    instead of two sparse matrix products.
    """

    rows: np.ndarray
    prod: np.ndarray
    a: np.ndarray
    b: np.ndarray
    target: np.ndarray
    mirror: np.ndarray
    off: np.ndarray
    diag: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray
    q: int

    @classmethod
    def build(cls, z: sparse.csc_matrix) -> _PairLayout:
        zr = sparse.csr_matrix(z)
        zr.sort_indices()
        q = int(zr.shape[1])
        counts = np.diff(zr.indptr)
        rows, prod, a, b = [], [], [], []
        for j1 in range(int(counts.max(initial=0))):
            for j2 in range(j1, int(counts.max(initial=0))):
                has = np.flatnonzero(counts > j2)
                e1, e2 = zr.indptr[has] + j1, zr.indptr[has] + j2
                rows.append(has)
                prod.append(zr.data[e1] * zr.data[e2])
                a.append(zr.indices[e1])
                b.append(zr.indices[e2])
        r, pr = np.concatenate(rows), np.concatenate(prod)
        aa, bb = np.concatenate(a), np.concatenate(b)
        diag = np.arange(q)
        # CSC keys (column * q + row) of both triangles and the diagonal
        keys = np.unique(np.concatenate([bb * q + aa, aa * q + bb, diag * q + diag]))
        indices, cols = keys % q, keys // q
        indptr = np.searchsorted(cols, np.arange(q + 1))
        off = aa != bb
        return cls(
            rows=r, prod=pr, a=aa, b=bb, target=np.searchsorted(keys, bb * q + aa),
            mirror=np.searchsorted(keys, (aa * q + bb)[off]), off=off,
            diag=np.searchsorted(keys, diag * q + diag), indices=indices, indptr=indptr, q=q,
        )  # fmt: skip

    def coefficients(self, lam: np.ndarray) -> np.ndarray:
        """Z_ia Z_ib lambda_a lambda_b per row pair (fixed for one theta)."""
        return self.prod * lam[self.a] * lam[self.b]

    def precision(self, weights: np.ndarray, coef: np.ndarray) -> sparse.csc_matrix:
        """H = Lambda Z' W Z Lambda + I as CSC with the fixed pattern (coef: `coefficients`)."""
        v = coef * weights[self.rows]
        n = len(self.indices)
        data = np.bincount(self.target, weights=v, minlength=n)
        data += np.bincount(self.mirror, weights=v[self.off], minlength=n)
        data[self.diag] += 1.0
        return sparse.csc_matrix((data, self.indices, self.indptr), shape=(self.q, self.q))


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
        self._rows = self._one_column_rows()
        self._pairs = _PairLayout.build(self.Z) if self._scalar_terms() else None
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

    def _factor_at(self, zl: Any, zlt: Any, squares: Any, mu: np.ndarray) -> _Factor:
        """Factor of H = ZL' W ZL + I with the GLM weights W at the means mu."""
        t0 = time.perf_counter()
        weights = self.w * mu * (1.0 - mu)
        if squares is not None:
            h: Any = squares @ weights + 1.0
        elif self._pairs is not None:
            h = self._pairs.precision(weights, self._pair_coef)
        else:
            h = (zlt @ sparse.diags(weights) @ zl + sparse.identity(self.q)).tocsc()
        f = _Factor(h)
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
        factor: _Factor | None = None
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

    def random_effects(self, theta: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, float]:
        """b = Lambda u at the mode and the Laplace deviance there."""
        pdev, logdet, u, _ = self.mode(theta, self.X @ beta + self.offset)
        zl_lambda = self._lambda(theta)
        return np.asarray(zl_lambda @ u).ravel(), pdev + logdet

    def _lambda(self, theta: np.ndarray) -> sparse.csc_matrix:
        from mixedlm.estimation.reml import _build_lambda  # engine internal, see docstring

        return _build_lambda(np.asarray(theta, dtype=float), self.matrices.random_structures)

    def _scalar_terms(self) -> bool:
        """Every random term scalar: Lambda is diagonal, Z Lambda keeps Z's pattern."""
        return self.q > 0 and all(int(s.n_terms) == 1 for s in self.matrices.random_structures)

    # ------------------------------------------------------------------ analytic gradient
    def _one_column_rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(column of each row, its Z value, d lambda_k / d theta) when every random term is
        scalar and each row has at most one random-effect column; else None."""
        if self.q == 0 or any(int(s.n_terms) != 1 for s in self.matrices.random_structures):
            return None
        zr = sparse.csr_matrix(self.Z)
        zr.eliminate_zeros()
        counts = np.diff(zr.indptr)
        if np.any(counts > 1):
            return None
        col = np.full(len(counts), -1)
        val = np.zeros(len(counts))
        has = counts == 1
        col[has] = zr.indices
        val[has] = zr.data
        # Lambda is diagonal and linear in theta: column k scales by theta[t(k)]
        dlam = np.stack(
            [self._lambda(np.eye(self.n_theta)[t]).diagonal() for t in range(self.n_theta)]
        )
        return col, val, dlam

    @property
    def has_gradient(self) -> bool:
        """Whether `value_and_gradient` is analytic (one scalar random-effect column per row)."""
        return self._rows is not None

    def value_and_gradient(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        """Laplace deviance and its exact gradient in (theta, beta) (one column per row).

        Envelope theorem for the penalised deviance at the mode, plus the derivative of
        log h_k = log(1 + lambda_k^2 sum_i z_i^2 W_i) through W (via eta, including the mode's
        own movement du_k/dphi from the implicit mode equation) and through lambda_k.
        """
        assert self._rows is not None
        col, z, dlam = self._rows
        params = np.asarray(params, dtype=float)
        theta, beta = params[: self.n_theta], params[self.n_theta :]
        f = self.deviance(params)
        if not np.isfinite(f):
            return f, np.full(len(params), np.nan)
        u = self._u
        lam = dlam.T @ theta  # lambda_k
        has = col >= 0
        k = np.where(has, col, 0)
        zz = np.where(has, z, 0.0)
        lk, uk = lam[k], u[k]
        eta = self.X @ beta + self.offset + zz * lk * uk
        mu = _expit(eta)
        wgt = self.w * mu * (1.0 - mu)  # W_i
        dwgt = wgt * (1.0 - 2.0 * mu)  # dW_i / d eta_i
        r = 2.0 * self.w * (mu - self.y)  # d pdev / d eta_i
        a = np.bincount(k, weights=zz * zz * wgt, minlength=self.q)
        h = 1.0 + lam * lam * a
        c = (lk * lk) * zz * zz * dwgt / h[k]  # d log h_k(i) / d eta_i
        # beta: direct + through the mode, du_k/dbeta_j = -sum_{i in k} W_i x_ij z_i lam_k / h_k
        xz = zz * lk * wgt
        m = np.zeros((self.q, self.p))
        for j in range(self.p):
            m[:, j] = np.bincount(k, weights=xz * self.X[:, j], minlength=self.q)
        du_dbeta = -m / h[:, None]
        cz = np.bincount(k, weights=c * zz, minlength=self.q)  # sum_{i in k} c_i z_i
        g_beta = self.X.T @ (r + c) + (cz * lam) @ du_dbeta
        # theta: d eta_i / d lambda_k = z_i u_k at fixed u; the mode moves by
        # du_k/dlambda_k = -(2 lambda_k u_k a_k + sum_{i in k} r_i z_i) / (2 h_k)
        rz = np.bincount(k, weights=r * zz, minlength=self.q)
        du_dlam = -(2.0 * lam * u * a + rz) / (2.0 * h)
        g_lam = rz * u + 2.0 * lam * a / h + cz * (u + lam * du_dlam)
        return f, np.r_[dlam @ g_lam, g_beta]

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
