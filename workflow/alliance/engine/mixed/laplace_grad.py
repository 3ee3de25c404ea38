"""The exact gradient of the Laplace deviance in (theta, beta) for scalar random terms.

Why: with central differences every gradient costs 2 (n_theta + p) deviance evaluations, and
lme4's deriv12 Hessian 1 + 2 n^2 of them; the exact gradient costs one evaluation and one extra
solve, and the Hessian becomes central differences of it (`laplace_hessian`).

Each row i has at most one column per scalar term; with the deviance
L = pdev(u*, phi) + log det H, H = I + Lambda Z' W Z Lambda, at the conditional mode u*,
r_i = 2 w_i (mu_i - y_i), W_i = w_i mu_i (1 - mu_i), W'_i = W_i (1 - 2 mu_i), zl_i the row of
Z Lambda and h_i = zl_i' H^-1 zl_i (entries of H^-1 at the row's own columns only):

- envelope theorem for pdev: dL/dphi gets sum_i r_i d eta_i / dphi at fixed u;
- log det H through W: sum_i W'_i h_i d eta_i, with the mode's own movement
  du/dphi = -H^-1 (d(Lambda Z' r / 2 + u) / dphi), which needs one solve s = H^-1 Lambda Z' c
  (c_i = W'_i h_i) for all parameters;
- log det H through lambda_k: 2 sum_{i in k} W_i z_ik (H^-1 zl_i)_k.

The entries of H^-1 come from the factor (`row_inverse`): 1 / H_kk when H is diagonal, or the
Schur complement's closed form when the second term's levels are nested in the first's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.special import expit


@dataclass
class RowColumns:
    """Per row the random-effect column of each scalar term (`col`, 0 where none) and its Z
    value (`z`, 0 where none), shape (m, n) (one contiguous row per term); term 0 is the
    first (eliminated) one when m = 2."""

    col: np.ndarray
    z: np.ndarray
    dlam: np.ndarray  # d lambda_k / d theta_t, shape (n_theta, q)

    @classmethod
    def build(
        cls, z: sparse.csc_matrix, first: np.ndarray | None, dlam: np.ndarray
    ) -> RowColumns | None:
        """One column per row (first None) or one in `first` plus one other; else None."""
        zr = sparse.csr_matrix(z)
        zr.eliminate_zeros()
        zr.sort_indices()
        counts = np.diff(zr.indptr)
        m = 1 if first is None or counts.max(initial=0) <= 1 else 2
        if np.any(counts > m):
            return None
        n = len(counts)
        col = np.zeros((m, n), dtype=np.intp)
        val = np.zeros((m, n))
        row = np.repeat(np.arange(n), counts)
        if m == 1:
            slot = np.zeros(len(row), dtype=np.intp)
        else:
            slot = np.where(np.isin(zr.indices, first), 0, 1)
            # at most one column of each kind per row
            if np.any(np.bincount(row * 2 + slot, minlength=2 * n) > 1):
                return None
        col[slot, row] = zr.indices
        val[slot, row] = zr.data
        return cls(col=col, z=val, dlam=dlam)

    def gradient(
        self,
        problem_x: np.ndarray,
        eta: np.ndarray,
        y: np.ndarray,
        w: np.ndarray,
        u: np.ndarray,
        theta: np.ndarray,
        factor: object,
    ) -> np.ndarray:
        """dL/d(theta, beta) at the mode u (eta at the mode; factor: H at the mode)."""
        q = len(u)
        lam = self.dlam.T @ theta
        col, z = self.col, self.z
        zl = z * lam[col]
        mu = expit(eta)
        wgt = w * mu * (1.0 - mu)
        r = 2.0 * w * (mu - y)
        diag, off = factor.row_inverse(col)  # type: ignore[attr-defined]
        g_zl = diag * zl  # H^-1 zl_i at the row's own columns
        if off is not None:
            g_zl[0] += off * zl[1]
            g_zl[1] += off * zl[0]
        c = wgt * (1.0 - 2.0 * mu) * np.add.reduce(zl * g_zl, axis=0)

        def col_sum(values: np.ndarray) -> np.ndarray:  # sum over rows into each column
            return np.bincount(col.ravel(), weights=values.ravel(), minlength=q)

        zr = col_sum(z * r)
        zc = col_sum(z * c)
        trace = col_sum(z * wgt * g_zl)
        s = factor.solve(lam * zc)  # type: ignore[attr-defined]
        zls = np.add.reduce(zl * s[col], axis=0)  # (Z Lambda s)_i
        zwzls = col_sum(z * (wgt * zls))
        g_beta = problem_x.T @ (r + c - wgt * zls)
        g_lam = (zr + zc) * u + 2.0 * trace - 0.5 * s * zr - u * zwzls
        return np.r_[self.dlam @ g_lam, g_beta]
