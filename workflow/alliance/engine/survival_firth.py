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
    set {time >= t} of every event time t is a prefix; `pairs` lists one (event time, Efron
    fraction) per death."""

    x: np.ndarray  # centred covariates, rows in decreasing time
    dead: np.ndarray  # events x rows 0/1 indicator of the deaths at each distinct event time
    ends: np.ndarray  # size of the risk set at each distinct event time
    pair_group: np.ndarray  # event-time index of each death's term
    pair_frac: np.ndarray  # k / d for the k-th of d tied deaths (Efron); 0 for Breslow
    xdead: np.ndarray  # sum of the covariates over all deaths


def risk_sets(time: np.ndarray, status: np.ndarray, x: np.ndarray, efron: bool) -> RiskSets:
    """Precompute the risk sets once; every likelihood evaluation reuses them."""
    order = np.argsort(-time, kind="stable")
    t, s = time[order], status[order]
    xs = x[order] - x.mean(axis=0)  # l, U and I are invariant to centring x
    event_times = np.unique(t[s == 1])[::-1]
    ends = np.searchsorted(-t, -event_times, side="right")
    dead = np.stack([(t == v) & (s == 1) for v in event_times]).astype(float)
    counts = dead.sum(axis=1).astype(int)
    group = np.repeat(np.arange(len(event_times)), counts)
    frac = np.concatenate([np.arange(d) / d for d in counts]) if efron else np.zeros(len(group))
    return RiskSets(xs, dead, ends, group, frac, xs[s == 1].sum(axis=0))


def likelihood(
    rs: RiskSets, beta: np.ndarray, derivs: bool = True
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray | None]:
    """Partial log-likelihood, score, information and (derivs) dI/db_r as an array [a, b, r]."""
    x = rs.x
    eta = x @ beta
    shift = float(eta.max())
    w = np.exp(eta - shift)
    wx = w[:, None] * x
    wxx = wx[:, :, None] * x[:, None, :]
    at = rs.ends - 1
    s0 = np.cumsum(w)[at]
    s1 = np.cumsum(wx, axis=0)[at]
    s2 = np.cumsum(wxx, axis=0)[at]
    d0, d1 = rs.dead @ w, rs.dead @ wx
    d2 = np.einsum("en,nab->eab", rs.dead, wxx)
    g, f = rs.pair_group, rs.pair_frac
    den = s0[g] - f * d0[g]
    m = (s1[g] - f[:, None] * d1[g]) / den[:, None]
    s2n = (s2[g] - f[:, None, None] * d2[g]) / den[:, None, None]
    v = s2n - m[:, :, None] * m[:, None, :]
    loglik = float(rs.xdead @ beta - np.sum(np.log(den) + shift))
    score = rs.xdead - m.sum(axis=0)
    info = v.sum(axis=0)
    if not derivs:
        return loglik, score, info, None
    wxxx = wxx[:, :, :, None] * x[:, None, None, :]
    s3 = np.cumsum(wxxx, axis=0)[at]
    d3 = np.einsum("en,nabc->eabc", rs.dead, wxxx)
    s3n = (s3[g] - f[:, None, None, None] * d3[g]) / den[:, None, None, None]
    # d(S2/S0)/db_r = S3_r/S0 - (S2/S0) m_r;  d m/db_r = V[:, r];  d(m m')/db_r = V_r m' + m V_r'
    dinfo = (
        s3n
        - s2n[:, :, :, None] * m[:, None, None, :]
        - np.einsum("kar,kb->kabr", v, m)
        - np.einsum("ka,kbr->kabr", m, v)
    ).sum(axis=0)
    return loglik, score, info, dinfo


def penalised(
    rs: RiskSets, beta: np.ndarray, penalty: float
) -> tuple[float, np.ndarray, np.ndarray, float]:
    """(l*, U*, I, l) at beta: l* = l + penalty * log det I; U* = U + penalty tr(I^-1 dI/db_r)."""
    loglik, score, info, dinfo = likelihood(rs, beta, derivs=penalty != 0.0)
    if penalty == 0.0:
        return loglik, score, info, loglik
    sign, logdet = np.linalg.slogdet(info)
    if sign <= 0:
        return -math.inf, score, info, loglik
    inv = np.linalg.inv(info)
    grad = np.einsum("ab,bar->r", inv, dinfo)
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
    """Per-subject score residuals (R residuals(fit, "score")), Efron or Breslow."""
    n, p = x.shape
    r = np.exp(x @ beta - np.max(x @ beta))
    resid = np.zeros((n, p))
    for t in np.unique(time[status == 1]):
        at_risk = time >= t
        dead = (time == t) & (status == 1)
        d = int(dead.sum())
        s0 = r[at_risk].sum()
        s1 = r[at_risk] @ x[at_risk]
        d0 = r[dead].sum()
        d1 = r[dead] @ x[dead]
        alive = at_risk & ~dead
        mean_sum = np.zeros(p)
        for k in range(d):
            frac = k / d if efron else 0.0
            den = s0 - frac * d0
            mean = (s1 - frac * d1) / den
            mean_sum += mean
            # every subject still at risk takes its share of the hazard increment 1/den;
            # tied deaths only the part (1 - frac) Efron leaves them
            resid[alive] -= r[alive, None] * (x[alive] - mean) / den
            resid[dead] -= (1.0 - frac) * r[dead, None] * (x[dead] - mean) / den
        resid[dead] += x[dead] - mean_sum / d
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
