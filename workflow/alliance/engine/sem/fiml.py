"""Full-information ML over missing-data patterns (lavaan `missing = "ml"`).

Rows are grouped by which variables they observe; a pattern with observed set o, n rows, sample
mean xbar and (biased) sample covariance C adds to  -log L
    n/2 [ |o| log 2 pi + log |Sigma_o| + tr(Sigma_o^-1 (C + d d')) ],   d = xbar - mu_o,
so each pattern costs one Cholesky factor whatever its n. Rows observing nothing carry no
information and are dropped (lavaan drops them too, with a warning); the count is kept.

`PatternData.objective` returns -log L with its gradient with respect to Sigma and mu (which the
model's Jacobian turns into the parameter gradient), `expected_information` the Fisher
information of the parameters, used for scoring steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alliance.errors import InputError

LOG_2PI = float(np.log(2.0 * np.pi))


@dataclass(frozen=True)
class Pattern:
    """Sufficient statistics of the rows sharing one missing-data pattern."""

    observed: np.ndarray  # indices of the observed variables
    n: int
    mean: np.ndarray
    cov: np.ndarray  # (1/n) sum (x - mean)(x - mean)'


@dataclass(frozen=True)
class PatternData:
    """A data matrix (rows = units, columns = observed variables, NaN = missing) by pattern.

    For speed every pattern is also held padded to all p variables (`mask`, `mean_pad`,
    `cov_pad`): a missing variable gets unit variance and no covariance, which leaves log |Sigma_o|
    and Sigma_o^-1 unchanged, so all patterns are evaluated in one batched linear-algebra call.
    """

    patterns: tuple[Pattern, ...]
    n: int  # rows with at least one observed value
    n_empty: int  # rows observing nothing (dropped)
    p: int
    mask: np.ndarray  # (patterns, p) observed?
    counts: np.ndarray  # (patterns,) rows
    mean_pad: np.ndarray  # (patterns, p), 0 where missing
    cov_pad: np.ndarray  # (patterns, p, p), 0 where missing

    @classmethod
    def from_array(cls, data: np.ndarray) -> PatternData:
        """Group rows by pattern (patterns sorted, so the result is deterministic)."""
        x = np.asarray(data, dtype=float)
        if x.ndim != 2:
            raise InputError("data must be a matrix (units x variables)", check="sem.data")
        if np.isinf(x).any():
            raise InputError("data contain an infinite value", check="sem.data")
        seen = ~np.isnan(x)
        keep = seen.any(axis=1)
        x, seen = x[keep], seen[keep]
        if not len(x):
            raise InputError("no row observes any variable", check="sem.data")
        keys, inverse = np.unique(seen, axis=0, return_inverse=True)
        inverse = inverse.ravel()
        p = x.shape[1]
        patterns = []
        mean_pad = np.zeros((len(keys), p))
        cov_pad = np.zeros((len(keys), p, p))
        for g, key in enumerate(keys):
            obs = np.flatnonzero(key)
            rows = x[inverse == g][:, obs]
            mean = rows.mean(axis=0)
            dev = rows - mean
            pat = Pattern(obs, len(rows), mean, dev.T @ dev / len(rows))
            patterns.append(pat)
            mean_pad[g, obs] = pat.mean
            cov_pad[g][np.ix_(obs, obs)] = pat.cov
        counts = np.array([pat.n for pat in patterns], dtype=float)
        return cls(
            tuple(patterns), int(len(x)), int((~keep).sum()), p, keys.astype(bool), counts,
            mean_pad, cov_pad,
        )  # fmt: skip

    def coverage(self) -> np.ndarray:
        """Number of rows observing each variable."""
        return (self.mask * self.counts[:, None]).sum(axis=0).astype(int)

    def _padded_inverse(self, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Per pattern: Sigma_o^-1 padded with zeros, and log |Sigma_o|; None if one is not PD."""
        both = self.mask[:, :, None] & self.mask[:, None, :]
        padded = np.where(both, sigma, 0.0)
        idx = np.arange(self.p)
        padded[:, idx, idx] += ~self.mask
        try:
            chol = np.linalg.cholesky(padded)
        except np.linalg.LinAlgError:
            return None
        logdet = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
        inv_chol = np.linalg.inv(chol)
        K = np.matmul(inv_chol.transpose(0, 2, 1), inv_chol) * both
        return K, logdet

    def objective(
        self, sigma: np.ndarray, mu: np.ndarray, *, gradient: bool = True
    ) -> tuple[float, np.ndarray | None, np.ndarray | None]:
        """-log L; with `gradient`, also d/dSigma (p x p, symmetric) and d/dmu (p).

        Returns (inf, None, None) when some pattern's Sigma_o is not positive definite.
        """
        found = self._padded_inverse(sigma)
        if found is None:
            return np.inf, None, None
        K, logdet = found
        d = (self.mean_pad - mu) * self.mask
        M = self.cov_pad + d[:, :, None] * d[:, None, :]
        quad = np.einsum("gab,gab->g", K, M)
        sizes = self.mask.sum(axis=1)
        f = 0.5 * float(self.counts @ (sizes * LOG_2PI + logdet + quad))
        if not gradient:
            return f, None, None
        KMK = np.matmul(np.matmul(K, M), K)
        g_sigma = 0.5 * np.einsum("g,gab->ab", self.counts, K - KMK)
        g_mu = -np.einsum("g,gab,gb->a", self.counts, K, d)
        return f, g_sigma, g_mu

    def expected_information(
        self, sigma: np.ndarray, j_sigma: np.ndarray, j_mu: np.ndarray
    ) -> np.ndarray:
        """Fisher information of the parameters: sum over patterns of
        n [ tr(K dSigma_i K dSigma_j) / 2 + dmu_i' K dmu_j ],  K = Sigma_o^-1 (padded)."""
        found = self._padded_inverse(sigma)
        if found is None:
            raise np.linalg.LinAlgError("implied covariance not positive definite")
        K = found[0]
        k, p = j_sigma.shape[0], self.p
        # V[a, b, c, d] = sum_g n_g K_g[a, b] K_g[c, d]; tr(K J_i K J_j) summed over patterns is
        # sum V[a, b, c, d] J_i[b, c] J_j[d, a] (J symmetric): two matrix products, no loop
        flat_k = K.reshape(len(K), p * p)
        V = (flat_k.T * self.counts) @ flat_k
        V = V.reshape(p, p, p, p).transpose(1, 2, 0, 3).reshape(p * p, p * p)  # [(b,c), (a,d)]
        flat_j = j_sigma.reshape(k, p * p)
        info = 0.5 * (flat_j @ V) @ flat_j.T
        info += j_mu @ np.einsum("g,gab->ab", self.counts, K) @ j_mu.T
        return 0.5 * (info + info.T)


def saturated_loglik(data: PatternData, max_iter: int = 500, tol: float = 1e-10) -> float | None:
    """log L of the unrestricted (H1) mean and covariance by EM; None if EM does not converge.

    Kept for a chi-square test against the saturated model (lavaan's `fitMeasures` baseline).
    """
    p = data.p
    mu = np.zeros(p)
    sigma = np.eye(p)
    cov = data.coverage()
    if (cov == 0).any():
        return None
    # start: pairwise-free means and variances from the patterns
    tot = np.zeros(p)
    sq = np.zeros(p)
    for pat in data.patterns:
        tot[pat.observed] += pat.n * pat.mean
        sq[pat.observed] += pat.n * (np.diag(pat.cov) + pat.mean**2)
    mu = tot / cov
    sigma = np.diag(np.maximum(sq / cov - mu**2, 1e-6))
    prev = -np.inf
    for _ in range(max_iter):
        s1 = np.zeros(p)
        s2 = np.zeros((p, p))
        for pat in data.patterns:
            o = pat.observed
            miss = np.setdiff1d(np.arange(p), o)
            xs = np.zeros(p)
            xs[o] = pat.mean
            second = np.zeros((p, p))
            second[np.ix_(o, o)] = pat.cov + np.outer(pat.mean, pat.mean)
            if len(miss):
                reg = np.linalg.solve(sigma[np.ix_(o, o)], sigma[np.ix_(o, miss)]).T  # m x o
                cond = sigma[np.ix_(miss, miss)] - reg @ sigma[np.ix_(o, miss)]
                em = mu[miss] + reg @ (pat.mean - mu[o])
                xs[miss] = em
                # E[x_m x_o'] and E[x_m x_m'] averaged over the pattern's rows
                c_mo = reg @ pat.cov + np.outer(em, pat.mean)
                second[np.ix_(miss, o)] = c_mo
                second[np.ix_(o, miss)] = c_mo.T
                second[np.ix_(miss, miss)] = cond + reg @ pat.cov @ reg.T + np.outer(em, em)
            s1 += pat.n * xs
            s2 += pat.n * second
        mu = s1 / data.n
        sigma = s2 / data.n - np.outer(mu, mu)
        f, _, _ = data.objective(sigma, mu, gradient=False)
        if not np.isfinite(f):
            return None
        if abs(prev - (-f)) < tol * max(1.0, abs(f)):
            return -f
        prev = -f
    return None
