"""Firth-penalised Cox partial likelihood and profile-likelihood inference (R coxphf).

Why: with few events per covariate (the relapse model: about 20 relapses for 6 terms in a
240-patient trial) the Cox maximum partial-likelihood estimate is biased away from zero, and
infinite under monotone likelihood. Firth's penalty keeps the estimate finite (Heinze & Schemper
2001, Biometrics 57:114, the method of R coxphf) and removes the curvature part of the O(1/n)
bias (1/2 kappa_rtu of Cox & Snell), the whole of it in a canonical exponential family; the part
from the partial likelihood's random information (kappa_rt,u) stays, and in the relapse model it
is most of the bias (docs/estimands.md "Relapse"). Intervals and tests come from the profile of
the penalised likelihood.

As R coxphf (defaults `pl = TRUE`, `penalty = 0.5`): maximise l*(b) = l(b) + 0.5 log det I(b),
with l the partial log-likelihood (Efron or Breslow ties; coxphf itself only has Breslow) and
I = -d2l/db2 the information of the UNpenalised likelihood; the SE is sqrt(diag I(b*)^-1) at the
penalised estimate b*; the CI for b_j is {b: 2 (l*(b*) - max l*(b | b_j = b)) <= chi2_1(level)}
(the other coefficients re-maximised, the penalty keeping the full information matrix); the p
value is the penalised likelihood-ratio test of b_j = 0 on 1 df. `penalty = 0` gives the same
profile-likelihood inference for the ordinary partial likelihood. Checked against a survival-only
R refit (tests/reference/make_firth_reference.R) in tests/test_engine_survival_firth.py.

Also here, shared with the unpenalised fit: per-subject score residuals and R's robust variance
(`robust_vcov`, as coxph's cluster()), and the few-cluster correction `cr1`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

from alliance.errors import InputError

MAX_ITER = 200
MAX_HALVINGS = 40


@dataclass
class RiskSets:
    """Event-time structure of (time, status): rows sorted by decreasing time, so that the risk
    set {time >= t} of every event time t is a prefix; the deaths are `death_rows` (in row
    order, so each distinct event time's deaths are a contiguous run starting at `starts`), and
    `pairs` lists one (event time, Efron fraction) per death. Sums over each time's deaths are
    `np.add.reduceat` over those runs: O(rows), not the O(event times x rows) of an indicator
    matrix (44,000 patients with thousands of relapse times took minutes per fit)."""

    x: np.ndarray  # centred covariates, rows in decreasing time
    death_rows: np.ndarray  # row index of each death, increasing (event times decreasing)
    starts: np.ndarray  # first position in death_rows of each distinct event time
    ends: np.ndarray  # size of the risk set at each distinct event time
    pair_group: np.ndarray  # event-time index of each death's term
    pair_frac: np.ndarray  # k / d for the k-th of d tied deaths (Efron); 0 for Breslow
    xdead: np.ndarray  # sum of the covariates over all deaths

    @property
    def segments(self) -> np.ndarray:
        """Row offsets where each event time's risk set grows (rows of the next-later time)."""
        return np.r_[0, self.ends[:-1]]

    def at_deaths(self, values: np.ndarray) -> np.ndarray:
        """Per distinct event time, the sum of `values` (rows first) over its deaths."""
        return np.add.reduceat(values[self.death_rows], self.starts, axis=0)


def risk_sets(time: np.ndarray, status: np.ndarray, x: np.ndarray, efron: bool) -> RiskSets:
    """Precompute the risk sets once; every likelihood evaluation reuses them."""
    order = np.argsort(-time, kind="stable")
    t, s = time[order], status[order]
    xs = x[order] - x.mean(axis=0)  # l, U and I are invariant to centring x
    death_rows = np.flatnonzero(s == 1)
    event_times, first, counts = np.unique(-t[death_rows], return_index=True, return_counts=True)
    ends = np.searchsorted(-t, event_times, side="right")
    group = np.repeat(np.arange(len(event_times)), counts)
    frac = np.concatenate([np.arange(d) / d for d in counts]) if efron else np.zeros(len(group))
    return RiskSets(xs, death_rows, first, ends, group, frac, xs[death_rows].sum(axis=0))


@dataclass
class _Moments:
    """Per death (Efron pair) at beta: weights w = exp(x'b - shift), denominator, risk-set mean
    m and covariance v of x; the partial log-likelihood, score and information."""

    w: np.ndarray
    den: np.ndarray
    m: np.ndarray
    v: np.ndarray
    loglik: float
    score: np.ndarray
    info: np.ndarray


def _per_pair(rs: RiskSets, values: np.ndarray) -> np.ndarray:
    """Risk-set sums of per-row `values`, less the Efron share of the tied deaths, per death."""
    at_events = np.cumsum(np.add.reduceat(values, rs.segments, axis=0), axis=0)
    f = rs.pair_frac.reshape((-1,) + (1,) * (values.ndim - 1))
    return at_events[rs.pair_group] - f * rs.at_deaths(values)[rs.pair_group]


def _moments(rs: RiskSets, beta: np.ndarray) -> _Moments:
    x = rs.x
    eta = x @ beta
    shift = float(eta.max())
    w = np.exp(eta - shift)
    wx = w[:, None] * x
    den = _per_pair(rs, w)
    m = _per_pair(rs, wx) / den[:, None]
    s2n = _per_pair(rs, wx[:, :, None] * x[:, None, :]) / den[:, None, None]
    v = s2n - m[:, :, None] * m[:, None, :]
    loglik = float(rs.xdead @ beta - np.sum(np.log(den) + shift))
    return _Moments(w, den, m, v, loglik, rs.xdead - m.sum(axis=0), v.sum(axis=0))


def likelihood(rs: RiskSets, beta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Partial log-likelihood, score and information at beta."""
    mo = _moments(rs, beta)
    return mo.loglik, mo.score, mo.info


def _penalty_gradient(rs: RiskSets, mo: _Moments, inv: np.ndarray) -> np.ndarray:
    """d log det I / db_r = tr(I^-1 dI/db_r), with dI/db_r = sum over deaths of S3_r/S0 - (S2/S0)
    m_r - V_r m' - m V_r' (S3 the third risk-set moment). Contracting I^-1 into each row first
    (q_n = x_n' I^-1 x_n) leaves risk-set sums of w q and w q x: O(rows x p), not the
    O(rows x p^3) of the tensor S3."""
    x = rs.x
    wq = mo.w * np.einsum("na,na->n", x @ inv, x)
    t2 = _per_pair(rs, wq) / mo.den
    t3 = _per_pair(rs, wq[:, None] * x) / mo.den[:, None]
    vim = np.einsum("kab,kb->ka", mo.v, mo.m @ inv)
    return (t3 - t2[:, None] * mo.m - 2.0 * vim).sum(axis=0)


def penalised(
    rs: RiskSets, beta: np.ndarray, penalty: float
) -> tuple[float, np.ndarray, np.ndarray, float]:
    """(l*, U*, I, l) at beta: l* = l + penalty * log det I; U* = U + penalty tr(I^-1 dI/db_r)."""
    mo = _moments(rs, beta)
    loglik, score, info = mo.loglik, mo.score, mo.info
    if penalty == 0.0:
        return loglik, score, info, loglik
    sign, logdet = np.linalg.slogdet(info)
    if sign <= 0:
        return -math.inf, score, info, loglik
    inv = np.linalg.inv(info)
    grad = _penalty_gradient(rs, mo, inv)
    return loglik + penalty * logdet, score + penalty * grad, info, loglik


@dataclass
class PenalisedFit:
    """Maximum of l* over the free coefficients (the others held where `fixed` puts them)."""

    beta: np.ndarray
    loglik_penalised: float
    loglik: float
    info: np.ndarray
    iterations: int
    converged: bool


def maximise(
    rs: RiskSets,
    penalty: float,
    start: np.ndarray,
    free: np.ndarray | None = None,
) -> PenalisedFit:
    """Newton-Raphson on l* with the unpenalised information as the curvature (as coxphf), step
    halving while l* falls. Near the maximum, where l* no longer resolves the gain, steps are
    taken on the score alone; it stops when the step is below 1e-12 (relative)."""
    beta = np.array(start, dtype=float)
    free = np.ones(len(beta), bool) if free is None else free
    pl, u, info, ll = penalised(rs, beta, penalty)
    for it in range(1, MAX_ITER + 1):
        step = np.zeros_like(beta)
        try:
            step[free] = np.linalg.solve(info[np.ix_(free, free)], u[free])
        except np.linalg.LinAlgError:  # flat direction (e.g. monotone likelihood, no penalty)
            step[free] = np.linalg.lstsq(info[np.ix_(free, free)], u[free], rcond=None)[0]
        if np.max(np.abs(step), initial=0.0) < 1e-12 * (1.0 + np.max(np.abs(beta))):
            return PenalisedFit(beta, pl, ll, info, it - 1, True)
        new = penalised(rs, beta + step, penalty)
        if float(u[free] @ step[free]) > 1e-10:  # the gain is resolvable: insist on ascent
            for _ in range(MAX_HALVINGS):
                if new[0] >= pl or not np.isfinite(pl):
                    break
                step /= 2.0
                new = penalised(rs, beta + step, penalty)
            else:
                return PenalisedFit(beta, pl, ll, info, it, False)
        beta = beta + step
        pl, u, info, ll = new
    return PenalisedFit(beta, pl, ll, info, MAX_ITER, False)


def profile_bound(
    rs: RiskSets,
    fit: PenalisedFit,
    j: int,
    side: int,
    penalty: float,
    crit: float,
    se: float,
) -> float:
    """Where the profile deviance 2 (l*max - l*_prof(b_j)) reaches `crit` below (side -1) or
    above (+1) the estimate; +-inf when it never does within 100 SEs (monotone likelihood)."""
    free = np.ones(len(fit.beta), bool)
    free[j] = False
    warm = {"beta": fit.beta.copy()}

    def excess(b: float) -> float:
        start = warm["beta"].copy()
        start[j] = b
        prof = maximise(rs, penalty, start, free)
        warm["beta"] = prof.beta
        return 2.0 * (fit.loglik_penalised - prof.loglik_penalised) - crit

    step = math.sqrt(crit) * (se if np.isfinite(se) and se > 0 else 1.0)
    inner, outer = fit.beta[j], fit.beta[j] + side * step
    while excess(outer) < 0.0:
        inner, outer = outer, fit.beta[j] + 2.0 * (outer - fit.beta[j])
        if abs(outer - fit.beta[j]) > 100.0 * step:
            return side * math.inf
    warm["beta"] = fit.beta.copy()
    lo, hi = sorted((inner, outer))
    return float(optimize.brentq(excess, lo, hi, xtol=1e-12, rtol=1e-13, maxiter=200))


def _bound_or_nan(*args: object) -> float:
    """`profile_bound`, or NaN where the profile cannot be traced (without the penalty, an
    infinite MLE leaves the information singular along the way)."""
    try:
        return profile_bound(*args)  # type: ignore[arg-type]
    except (np.linalg.LinAlgError, ValueError, FloatingPointError):
        return math.nan


def lr_test(rs: RiskSets, fit: PenalisedFit, j: int, penalty: float) -> float:
    """Penalised likelihood-ratio statistic of b_j = 0 (the other coefficients re-maximised)."""
    free = np.ones(len(fit.beta), bool)
    free[j] = False
    start = fit.beta.copy()
    start[j] = 0.0
    prof = maximise(rs, penalty, start, free)
    return max(0.0, 2.0 * (fit.loglik_penalised - prof.loglik_penalised))


@dataclass
class ProfileInference:
    """Per coefficient: profile CI bounds, penalised LR chi-square (1 df) and its p value."""

    ci_low: np.ndarray
    ci_high: np.ndarray
    chisq: np.ndarray
    p_value: np.ndarray


def profile_inference(
    rs: RiskSets, fit: PenalisedFit, penalty: float, level: float
) -> ProfileInference:
    """coxphf's `pl = TRUE` output: profile-likelihood CIs and likelihood-ratio p values."""
    crit = float(stats.chi2.ppf(level, 1))
    se = np.sqrt(np.diag(np.linalg.inv(fit.info)))
    p = len(fit.beta)
    low = np.array([_bound_or_nan(rs, fit, j, -1, penalty, crit, se[j]) for j in range(p)])
    high = np.array([_bound_or_nan(rs, fit, j, 1, penalty, crit, se[j]) for j in range(p)])
    chisq = np.array([lr_test(rs, fit, j, penalty) for j in range(p)])
    return ProfileInference(low, high, chisq, stats.chi2.sf(chisq, 1))


# ---- R's robust variance (also used by the unpenalised fit) ---------------------------------


def score_residuals(
    time: np.ndarray, status: np.ndarray, x: np.ndarray, beta: np.ndarray, efron: bool
) -> np.ndarray:
    """Per-subject score residuals (R residuals(fit, "score")), Efron or Breslow.

    Subject i: delta_i (x_i - mean of its death time's m_j) - r_i sum_j c_ij (x_i - m_j) / den_j
    over the deaths' terms j (Efron pairs) at event times <= time_i, with c_ij = 1, except
    1 - frac_j for i's own death time (Efron leaves tied deaths that part). The sums over j are
    cumulative over event times: O(rows x p), not a pass over the rows per event time."""
    n, p = x.shape
    eta = x @ beta
    r = np.exp(eta - eta.max())
    dead = status == 1
    ev = np.unique(time[dead])  # increasing
    k_of = np.searchsorted(ev, time[dead])  # event-time index of each death
    d = np.bincount(k_of, minlength=len(ev))
    order = np.argsort(time, kind="stable")
    first = np.searchsorted(time[order], ev, side="left")  # first row at risk at each time
    rx = r[:, None] * x
    s0 = np.cumsum(r[order][::-1])[::-1][first]
    s1 = np.cumsum(rx[order][::-1], axis=0)[::-1][first]
    d0 = np.bincount(k_of, weights=r[dead], minlength=len(ev))
    d1 = np.zeros((len(ev), p))
    np.add.at(d1, k_of, rx[dead])
    g = np.repeat(np.arange(len(ev)), d)
    f = np.concatenate([np.arange(c) / c for c in d]) if efron else np.zeros(len(g))
    den = s0[g] - f * d0[g]
    mean = (s1[g] - f[:, None] * d1[g]) / den[:, None]

    def per_time(values: np.ndarray) -> np.ndarray:
        out = np.zeros((len(ev),) + values.shape[1:])
        np.add.at(out, g, values)
        return out

    hazard = np.cumsum(per_time(1.0 / den), axis=0)
    shifted = np.cumsum(per_time(mean / den[:, None]), axis=0)
    seen = np.searchsorted(ev, time, side="right")  # event times <= time_i
    a = np.where(seen > 0, hazard[np.maximum(seen - 1, 0)], 0.0)
    b = np.where(seen[:, None] > 0, shifted[np.maximum(seen - 1, 0)], 0.0)
    a[dead] -= per_time(f / den)[k_of]
    b[dead] -= per_time(f[:, None] * mean / den[:, None])[k_of]
    resid = -r[:, None] * (x * a[:, None] - b)
    resid[dead] += x[dead] - per_time(mean)[k_of] / d[k_of][:, None]
    return resid


def cr1(
    vcov: np.ndarray, clusters: pd.Series, name: str
) -> tuple[np.ndarray, float, str, list[str]]:
    """Few-cluster correction of a sandwich: times G / (G - 1), with t(G - 1) for CIs and p
    (Cameron & Miller 2015, CR1 with the usual G - 1 df); R's coxph applies neither."""
    g = int(clusters.astype(str).nunique())
    if g < 2:
        raise InputError("se 'robust_cr1' needs at least 2 clusters", column=name, check="cox.se")
    method = f"robust sandwich, clustered by {name} (R cluster()) x G/(G-1), G = {g}"
    note = (
        f"robust SEs are R's cluster({name}) sandwich times sqrt(G/(G-1)) = "
        f"{math.sqrt(g / (g - 1)):.4f} (G = {g} clusters), CIs and p from t with G - 1 = {g - 1} "
        "df: the plain sandwich is anticonservative with few clusters"
    )
    return vcov * g / (g - 1), float(g - 1), method, [note]


def robust_vcov(
    time: np.ndarray,
    status: np.ndarray,
    x: np.ndarray,
    beta: np.ndarray,
    naive: np.ndarray,
    groups: np.ndarray,
    efron: bool,
) -> np.ndarray:
    """R's robust variance with cluster(): D'D, D = dfbeta summed within each cluster."""
    dfbeta = score_residuals(time, status, x, beta, efron) @ naive
    codes, _ = pd.factorize(groups)
    summed = np.zeros((codes.max() + 1, x.shape[1]))
    np.add.at(summed, codes, dfbeta)
    return summed.T @ summed
