"""Cox regression, proportional-hazards test, Kaplan-Meier and log-rank, as R `survival` does.

Checked against survival 3.5-3 in tests/test_engine_survival.py. statsmodels PHReg fits the
coefficients (Efron ties, R's default; statsmodels' own default is Breslow). What R computes
and statsmodels does not, or differently, is done here from the Efron risk sets:
- cluster-robust SEs as R's `cluster()`: the sandwich D'D with D the dfbeta (Efron score
  residuals times the model variance) summed within cluster (`survival_firth.robust_vcov`).
  statsmodels' `groups=` sandwich differs from R by 0.4-1.3 % on our test data, so it is not
  used;
- `schoenfeld_test`: the score test of survival >= 3.0 `cox.zph` (not the older regression on
  scaled Schoenfeld residuals), with R's default transform "km";
- Harrell's concordance as `coxph` reports it.
Options beyond R's coxph (off by default; the default fit is unchanged): Firth's penalised
partial likelihood with profile-likelihood CIs and tests (`firth=True`, as R coxphf; the
optimiser is `alliance.engine.survival_firth`), and the few-cluster correction of the sandwich
(`se="robust_cr1"`: G / (G - 1) times R's robust variance, t with G - 1 df).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from alliance.engine.survival_firth import (
    PenalisedFit,
    RiskSets,
    cr1,
    maximise,
    penalised,
    profile_inference,
    risk_sets,
    robust_vcov,
)
from alliance.engine.tidy import coef_table
from alliance.errors import InputError

TRANSFORMS = ("km", "identity", "rank", "log")
SE_METHODS = ("model", "robust", "robust_cr1")
FIRTH = "Firth-penalised partial likelihood (Heinze & Schemper 2001; R coxphf)"


@dataclass
class CoxFit:
    """A fitted Cox model. `coefficients` adds hazard_ratio, hr_ci_low, hr_ci_high (and
    naive_se when clustered) to the shared coefficient columns."""

    coefficients: pd.DataFrame
    vcov: pd.DataFrame
    n: int
    n_events: int
    loglik: float
    loglik_null: float
    concordance: float
    ties: str
    cluster: str | None
    se_method: str
    formula_r: str
    terms: dict[str, list[str]]
    estimator: str = "maximum partial likelihood (R coxph)"
    ci_method: str = "Wald z"
    test: str = "Wald z (df = inf)"
    loglik_penalised: tuple[float, float] | None = None  # (at 0, at the estimate), Firth only
    n_clusters: int | None = None
    notes: list[str] = field(default_factory=list)
    _time: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))
    _event: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))
    _x: np.ndarray = field(repr=False, default_factory=lambda: np.empty((0, 0)))
    _naive_vcov: np.ndarray = field(repr=False, default_factory=lambda: np.empty((0, 0)))
    penalty: float = 0.0  # 0.5: Firth (coxphf), 0: the partial likelihood itself


def fit_cox(
    data: pd.DataFrame,
    duration: str,
    event: str,
    covariates: Sequence[str],
    *,
    cluster: str | None = None,
    ties: str = "efron",
    level: float = 0.95,
    firth: bool = False,
    se: str | None = None,
    profile: bool | None = None,
) -> CoxFit:
    """Cox proportional-hazards model; `cluster` gives R's robust (sandwich) SEs by cluster.

    Text, categorical and boolean covariates become treatment dummies named as R names them
    (`finyes`). `event` may be 0/1, boolean, or 1/2 coded (2 = event), as R's Surv() accepts.
    `firth`: Firth-penalised estimate (R coxphf). `se`: "model" (inverse information), "robust"
    (R cluster(); the default with a cluster) or "robust_cr1" (that times G / (G - 1), with
    t(G - 1) CIs and p). `profile` (default: with Firth and model SEs): profile-likelihood CIs
    and likelihood-ratio p values in place of Wald ones.
    """
    from statsmodels.duration.hazard_regression import PHReg

    if ties not in ("efron", "breslow"):
        raise InputError("ties must be 'efron' or 'breslow'", value=ties, check="cox.ties")
    se = se or ("robust" if cluster else "model")
    if se not in SE_METHODS or (se != "model" and cluster is None):
        raise InputError(f"se must be one of {SE_METHODS}; robust ones need a cluster", value=se)
    profile = (firth and se == "model") if profile is None else profile
    if profile and se != "model":
        raise InputError("profile-likelihood CIs are model-based: use se 'model'", value=se)
    cols = [duration, event, *covariates] + ([cluster] if cluster else [])
    frame, rows = _complete(data, cols)
    time, status = _surv(frame, duration, event, rows)
    x, names, terms = _design(frame, covariates)
    efron = ties == "efron"
    model = PHReg(time, x, status=status, ties=ties)
    notes: list[str] = []
    pen = None
    if firth or profile:
        start = np.zeros(x.shape[1])
        if not firth:  # the MLE as below, polished by the same Newton steps
            start = np.nan_to_num(np.asarray(model.fit().params, dtype=float))
        rs = risk_sets(time, status, x, efron)
        pen = maximise(rs, 0.5 if firth else 0.0, start)
        beta, naive, loglik = pen.beta, np.linalg.inv(pen.info), pen.loglik
    else:
        res = model.fit()
        beta = np.asarray(res.params, dtype=float)
        naive = np.asarray(res.cov_params(), dtype=float)
        loglik = float(res.llf)
        if not np.isfinite(beta).all():  # PHReg's uncentred Newton overflowed (R converges)
            pen = maximise(risk_sets(time, status, x, efron), 0.0, np.zeros(x.shape[1]))
            beta, naive, loglik = pen.beta, np.linalg.inv(pen.info), pen.loglik
            notes.append("statsmodels PHReg diverged (NaN); refitted by Newton-Raphson")
    if pen is not None and not pen.converged:
        warnings.warn("Cox fit did not converge", RuntimeWarning, stacklevel=2)
    groups = frame[cluster].astype(str) if cluster else None
    robust = (
        None
        if groups is None
        else robust_vcov(time, status, x, beta, naive, groups.to_numpy(), efron)
    )
    df = np.inf
    if se == "model":
        vcov, se_method = naive, "model-based (inverse information)"
    elif se == "robust":
        vcov, se_method = robust, f"robust sandwich, clustered by {cluster} (R cluster())"
    else:
        vcov, df, se_method, more = cr1(robust, groups, cluster)
        notes += more
    table = coef_table(names, beta, np.sqrt(np.diag(vcov)), df, level=level)
    ci_method = test = "Wald z" if np.isinf(df) else f"Wald t (df = {df:g}, clusters - 1)"
    if profile:
        ci_method, test = _profile_columns(table, rs, pen, 0.5 if firth else 0.0, level)
    table["hazard_ratio"] = np.exp(table["estimate"])
    table["hr_ci_low"] = np.exp(table["ci_low"])
    table["hr_ci_high"] = np.exp(table["ci_high"])
    if robust is not None:
        table["naive_se"] = np.sqrt(np.diag(naive))
        if se != "robust":
            table["robust_se"] = np.sqrt(np.diag(robust))
    formula_r, more = _formula_r(duration, event, covariates, cluster, ties, firth, se, profile)
    zero = np.zeros_like(beta)
    return CoxFit(
        coefficients=table,
        vcov=pd.DataFrame(vcov, index=names, columns=names),
        n=len(time),
        n_events=int(status.sum()),
        loglik=float(loglik),
        loglik_null=float(model.loglike(zero)),
        concordance=concordance(time, status, x @ beta),
        ties=ties,
        cluster=cluster,
        se_method=se_method,
        formula_r=formula_r,
        terms=terms,
        estimator=FIRTH if firth else "maximum partial likelihood (R coxph)",
        ci_method=ci_method,
        test=test if test != "Wald z" else "Wald z (df = inf)",
        loglik_penalised=(float(penalised(rs, zero, 0.5)[0]), pen.loglik_penalised)
        if firth
        else None,
        n_clusters=None if groups is None else int(groups.nunique()),
        notes=notes + more,
        _time=time,
        _event=status,
        _x=x,
        _naive_vcov=naive,
        penalty=0.5 if firth else 0.0,
    )


def _profile_columns(
    table: pd.DataFrame, rs: RiskSets, fit: PenalisedFit, penalty: float, level: float
) -> tuple[str, str]:
    """Replace Wald CIs and p by profile-likelihood ones (statistic: signed root of the LR)."""
    inf = profile_inference(rs, fit, penalty, level)
    table["ci_low"], table["ci_high"] = inf.ci_low, inf.ci_high
    table["statistic"] = np.sign(fit.beta) * np.sqrt(inf.chisq)
    table["p_value"] = inf.p_value
    what = "penalised" if penalty else "partial"
    return (
        f"profile {what} likelihood (R coxphf pl = TRUE)",
        f"{what} likelihood-ratio chi-square, 1 df (statistic: its signed root)",
    )


def _formula_r(
    duration: str,
    event: str,
    covariates: Sequence[str],
    cluster: str | None,
    ties: str,
    firth: bool,
    se: str,
    profile: bool,
) -> tuple[str, list[str]]:
    """The verbatim R refit, and notes on what it needs or how it differs."""
    surv = f"Surv({duration}, {event}) ~ {' + '.join(covariates)}"
    robust = f" + cluster({cluster})" if se != "model" else ""
    if not firth:
        return f'coxph({surv}{robust}, data = data, ties = "{ties}")', []
    pl = "TRUE" if profile else "FALSE"
    notes = [
        "formula_r needs the CRAN package coxphf, whose ties are Breslow's: with ties efron "
        "and tied event times it differs slightly; tests/reference/firth_coxph.R refits either "
        f'with survival only: firth_coxph({surv}, data = data, ties = "{ties}")'
    ]
    if se != "model":
        notes.append(
            f"robust variance as R computes it at the Firth estimate: coxph({surv}{robust}, "
            f'data = data, ties = "{ties}", init = coef(fit), control = '
            "coxph.control(iter.max = 0))$var" + (" times G/(G-1)" if se == "robust_cr1" else "")
        )
    return f"coxphf::coxphf({surv}, data = data, pl = {pl})", notes


def schoenfeld_test(fit: CoxFit, transform: str = "km") -> pd.DataFrame:
    """Proportional-hazards score test per covariate and GLOBAL, as R `cox.zph` (survival >= 3).

    For each term it tests adding x * g(t) to the model at the fitted beta, with g the
    transformed event time centred on the events' mean; the statistic uses the full
    information matrix of (x, x * g(t)). transform: "km" (R's default: 1 - KM(t-)), "identity",
    "rank" or "log". Columns: term, chisq, df, p.
    """
    if transform not in TRANSFORMS:
        raise InputError(
            f"transform must be one of {TRANSFORMS}", value=transform, check="zph.transform"
        )
    time, status, x = fit._time, fit._event, fit._x
    beta = fit.coefficients["estimate"].to_numpy()
    g = _time_transform(time, status, transform)
    g = g - g[status == 1].mean()
    p = x.shape[1]
    u = np.zeros(2 * p)
    imat = np.zeros((2 * p, 2 * p))
    for gt, score, info in _risk_set_terms(time, status, x, beta, fit.ties == "efron", g):
        u[:p] += score
        u[p:] += gt * score
        imat[:p, :p] += info
        imat[:p, p:] += gt * info
        imat[p:, p:] += gt * gt * info
    imat[p:, :p] = imat[:p, p:].T
    rows = []
    names = list(fit.coefficients["term"])
    for term, cols in fit.terms.items():
        jj = [names.index(c) for c in cols]
        kk = list(range(p)) + [p + j for j in jj]
        uu = np.r_[np.zeros(p), u[[p + j for j in jj]]]
        chisq = float(uu @ np.linalg.solve(imat[np.ix_(kk, kk)], uu))
        rows.append((term, chisq, len(jj)))
    uu = np.r_[np.zeros(p), u[p:]]
    rows.append(("GLOBAL", float(uu @ np.linalg.solve(imat, uu)), p))
    out = pd.DataFrame(rows, columns=["term", "chisq", "df"])
    out["p"] = stats.chi2.sf(out["chisq"], out["df"])
    out.attrs["transform"] = transform
    return out


def kaplan_meier(
    data: pd.DataFrame,
    duration: str,
    event: str,
    group: str | None = None,
    *,
    level: float = 0.95,
) -> pd.DataFrame:
    """Kaplan-Meier table at every distinct observed time (R `summary(survfit, censored=TRUE)`).

    Columns: group, time, n_risk, n_event, n_censor, survival, std_err (of S, Greenwood),
    ci_low, ci_high. The CI is R's default conf.type "log": S * exp(+-z * se(log S)), upper
    capped at 1, undefined (NaN) once S reaches 0.
    """
    cols = [duration, event] + ([group] if group else [])
    frame, rows = _complete(data, cols)
    time, status = _surv(frame, duration, event, rows)
    labels = frame[group].astype(str).to_numpy() if group else np.full(len(time), "all")
    z = stats.norm.ppf(0.5 + level / 2.0)
    parts = []
    for lab in _ordered_levels(frame[group]) if group else ["all"]:
        m = labels == lab
        t, d = time[m], status[m]
        ut = np.unique(t)
        n_event = np.array([d[t == v].sum() for v in ut])
        n_all = np.array([(t == v).sum() for v in ut])
        n_risk = np.array([(t >= v).sum() for v in ut])
        surv = np.cumprod(1.0 - n_event / n_risk)
        with np.errstate(divide="ignore", invalid="ignore"):
            var_log = np.cumsum(n_event / (n_risk * (n_risk - n_event)))
            se_log = np.sqrt(var_log)
            low = surv * np.exp(-z * se_log)
            high = np.minimum(surv * np.exp(z * se_log), 1.0)
        dead = surv <= 0
        low[dead] = np.nan
        high[dead] = np.nan
        parts.append(
            pd.DataFrame(
                {
                    "group": lab,
                    "time": ut,
                    "n_risk": n_risk,
                    "n_event": n_event.astype(int),
                    "n_censor": (n_all - n_event).astype(int),
                    "survival": surv,
                    "std_err": surv * se_log,
                    "ci_low": low,
                    "ci_high": high,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def logrank(data: pd.DataFrame, duration: str, event: str, group: str) -> dict[str, float]:
    """Log-rank test across the levels of `group` (R `survdiff`, rho = 0): chi2, df, p."""
    from statsmodels.duration.survfunc import survdiff

    frame, rows = _complete(data, [duration, event, group])
    time, status = _surv(frame, duration, event, rows)
    labels = frame[group].astype(str).to_numpy()
    k = len(np.unique(labels))
    if k < 2:
        raise InputError(
            "log-rank test needs at least two groups", column=group, check="logrank.groups"
        )
    chi2, p = survdiff(time, status, labels)
    return {"chi2": float(chi2), "df": float(k - 1), "p": float(p)}


def concordance(time: np.ndarray, status: np.ndarray, risk: np.ndarray) -> float:
    """Harrell's C as coxph reports it: a pair is comparable when the shorter time is an event
    (a censoring tied with an event counts as later); tied risk scores count one half."""
    num = 0.0
    den = 0.0
    for i in np.flatnonzero(status == 1):
        later = (time > time[i]) | ((time == time[i]) & (status == 0))
        den += later.sum()
        num += (risk[i] > risk[later]).sum() + 0.5 * (risk[i] == risk[later]).sum()
    return num / den if den > 0 else math.nan


# ---- internals ------------------------------------------------------------------------------


def _complete(data: pd.DataFrame, cols: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows complete in `cols` (R na.omit), with their 1-based positions for error messages."""
    if not isinstance(data, pd.DataFrame):
        raise InputError("data must be a pandas DataFrame", value=type(data).__name__)
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise InputError(
            f"column not found: {missing[0]}", column=missing[0], check="survival.columns"
        )
    keep = data[cols].notna().all(axis=1).to_numpy()
    if not keep.any():
        raise InputError("no complete rows", check="survival.complete_rows")
    return data.loc[keep, cols].reset_index(drop=True), np.flatnonzero(keep) + 1


def _surv(
    frame: pd.DataFrame, duration: str, event: str, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Validated (time, status 0/1) as R Surv(): booleans, 0/1, or 1/2 with 2 = event."""
    time = pd.to_numeric(frame[duration], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(time) | (time <= 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(
            "survival time must be a positive number",
            row=int(rows[i]),
            column=duration,
            value=frame[duration].iloc[i],
            check="surv.time",
        )
    raw = frame[event]
    status = (
        raw.astype(float).to_numpy()
        if pd.api.types.is_bool_dtype(raw)
        else (pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float))
    )
    if np.nanmax(status) == 2 and np.nanmin(status) >= 1:
        status = status - 1.0  # R: 1 = censored, 2 = event
    bad = ~np.isin(status, (0.0, 1.0))
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(
            "event must be 0/1, TRUE/FALSE or 1/2",
            row=int(rows[i]),
            column=event,
            value=raw.iloc[i],
            check="surv.event",
        )
    return time, status


def _ordered_levels(s: pd.Series) -> list[str]:
    if isinstance(s.dtype, pd.CategoricalDtype):
        present = set(s.astype(str))
        return [str(c) for c in s.cat.categories if str(c) in present]
    if pd.api.types.is_numeric_dtype(s):
        return [str(v) for v in sorted(s.unique())]
    return sorted(s.astype(str).unique())


def _design(
    frame: pd.DataFrame, covariates: Sequence[str]
) -> tuple[np.ndarray, list[str], dict[str, list[str]]]:
    """Numeric covariates as they are; factors as treatment dummies named var+level (R)."""
    if not covariates:
        raise InputError("at least one covariate is needed", check="cox.covariates")
    columns: list[np.ndarray] = []
    names: list[str] = []
    terms: dict[str, list[str]] = {}
    for cov in covariates:
        s = frame[cov]
        if pd.api.types.is_bool_dtype(s):
            s = s.map({False: "FALSE", True: "TRUE"})
            s = pd.Categorical(s, categories=["FALSE", "TRUE"])
            s = pd.Series(s)
        if pd.api.types.is_numeric_dtype(s) and not isinstance(s.dtype, pd.CategoricalDtype):
            columns.append(s.to_numpy(dtype=float))
            names.append(cov)
            terms[cov] = [cov]
            continue
        levels = _ordered_levels(s)
        if len(levels) < 2:
            raise InputError(
                "a factor covariate needs at least two levels",
                column=cov,
                check="cox.factor_levels",
            )
        text = s.astype(str).to_numpy()
        terms[cov] = []
        for lev in levels[1:]:
            columns.append((text == lev).astype(float))
            names.append(f"{cov}{lev}")
            terms[cov].append(f"{cov}{lev}")
    return np.column_stack(columns), names, terms


def _time_transform(time: np.ndarray, status: np.ndarray, transform: str) -> np.ndarray:
    if transform == "identity":
        return time.astype(float)
    if transform == "log":
        return np.log(time)
    if transform == "rank":
        return stats.rankdata(time)  # average ranks, as R rank()
    # "km": 1 - KM(t-) from the pooled Kaplan-Meier, left-continuous (R cox.zph)
    ut = np.unique(time)
    d = np.array([status[time == v].sum() for v in ut])
    n = np.array([(time >= v).sum() for v in ut])
    surv = np.cumprod(1.0 - d / n)
    idx = np.searchsorted(ut, time, side="left")  # number of KM times strictly before t
    return 1.0 - np.r_[1.0, surv][idx]


def _risk_set_terms(
    time: np.ndarray,
    status: np.ndarray,
    x: np.ndarray,
    beta: np.ndarray,
    efron: bool,
    g: np.ndarray | None = None,
):
    """Per distinct event time: (g at that time, score sum(x_death - xbar), information V).

    Efron's approximation removes k/d of the tied deaths' weight for the k-th of d deaths.
    """
    r = np.exp(x @ beta - np.max(x @ beta))
    for t in np.unique(time[status == 1]):
        at_risk = time >= t
        dead = (time == t) & (status == 1)
        d = int(dead.sum())
        xr, rr = x[at_risk], r[at_risk]
        s0, s1 = rr.sum(), rr @ xr
        s2 = (xr * rr[:, None]).T @ xr
        xd, rd = x[dead], r[dead]
        d0, d1 = rd.sum(), rd @ xd
        d2 = (xd * rd[:, None]).T @ xd
        score = xd.sum(axis=0)
        info = np.zeros((x.shape[1], x.shape[1]))
        for k in range(d):
            frac = k / d if efron else 0.0
            den = s0 - frac * d0
            mean = (s1 - frac * d1) / den
            score = score - mean
            info += (s2 - frac * d2) / den - np.outer(mean, mean)
        gt = float(g[dead][0]) if g is not None else 0.0
        yield gt, score, info
