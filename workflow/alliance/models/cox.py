"""Cox regression of time to relapse (among responders), as R `survival::coxph` fits it.

Weck et al. 2013: alliance predicted time to relapse after CBT. The fit, the cluster-robust
SEs, the proportional-hazards test and the Kaplan-Meier / log-rank pieces come from
`alliance.engine.survival` (checked against R survival 3.5-3); this module turns them into the
model stage's outputs.

Spec: `outcome` names the event column (the frame builder needs one; `options.event` wins when
both are given), `fixed` the covariates (already coded as 0/1 columns for factors), `subset`
selects the patients (e.g. `response == 1 and relapse_followed == 1`).

Options:
- `duration` (default `relapse_time`): time to event or censoring, > 0.
- `event` (default: the spec outcome): 1 = event, 0 = censored.
- `cluster` (e.g. `therapist`): the clustering column (counted in fit.json; the robust SEs of
  `se`: robust / robust_cr1 are summed within it, as R `cluster()`).
- `se`: `model` (inverse information), `robust` (R's cluster() sandwich, Wald z) or
  `robust_cr1` (that times G/(G-1), Wald t with G-1 df: the plain sandwich is anticonservative
  with 20-40 clusters). Default (null): `robust` with a cluster, else `model`. With `model` and a
  cluster, the robust SE is still shown in `hazard_ratios` (`robust_se`).
- `firth` (default false): Firth-penalised partial likelihood (R coxphf; Heinze & Schemper
  2001), which stays finite under monotone likelihood and removes the part of the Cox MLE's
  small-sample bias that comes from the likelihood's curvature; the part from the random risk
  sets stays (relapse_cox at 40 relapses: -5.9 % vs -6.6 %; docs/estimands.md "Relapse").
- `bias_correction` (default null; relapse_cox: `bootstrap`) with `n_boot` (default 1000;
  relapse_cox 200): adds `<term>_bc` after each key term's row, the estimate minus its
  bootstrap bias, 2 b - mean(b*), b* the same estimator (ties, Firth or not) refitted on n_boot
  data sets drawn from the fitted model (`alliance.engine.survival_bias`: the conditional
  bootstrap of Davison & Hinkley 1997, Alg. 7.3, covariates fixed; its seed from the config seed
  and the model id). It removes the whole O(1/events) bias, the risk-set part Firth leaves
  included (docs/estimands.md "Relapse"). Resampling patients instead over-corrected (duplicated
  patients leave fewer distinct ones). The row keeps the uncorrected row's SE and df, with a
  Wald CI and test around the corrected value; fit.json `bias_correction` has the bias per term
  and the bootstrap SD; the uncorrected rows stay what R gives, and the _bc rows are
  `derived_terms` (left out of the multiplicity families). More than 5 % of refits without a
  finite estimate (monotone likelihood without the penalty): no _bc rows, with a warning.
- `profile` (default null: true with `firth` and `se: model`, coxphf's `pl = TRUE`): profile
  (penalised) likelihood CIs and likelihood-ratio p values instead of Wald ones; model-based
  only. relapse_cox sets it false: in its recovery study the Wald CIs covered better.
- `ties` (`efron`, R's default, or `breslow`; R coxphf itself has Breslow only).
- `tertile_of` (e.g. `alliance_mean`): cut at its tertiles (R quantile type 7, lowest value
  included) into low / middle / high for Kaplan-Meier curves and the log-rank test.
Fewer than MIN_EVENTS events -> Skipped (too few to fit a Cox model credibly).

Coefficients are log hazard ratios with z tests (df = inf; t with G-1 df for `robust_cr1`;
with Firth and model SEs the statistic is the signed root of the likelihood-ratio chi-square,
whose p value is reported). fit.json names the estimator, SE, CI and test methods. Extras:
`hazard_ratios` (exp of the estimates and CI, with the model-based and robust SEs beside),
`schoenfeld` (R cox.zph score test with transform "km": per covariate and GLOBAL), and with
`tertile_of`: `km` (R `summary(survfit)` per tertile), `km_at_risk` (numbers at risk at the
figure's tick times), `logrank` (chi2, df, p across tertiles).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd

from alliance.engine.bootstrap import derive_seed
from alliance.engine.survival import CoxFit, fit_cox, kaplan_meier, logrank, schoenfeld_test
from alliance.engine.survival_bias import cox_bootstrap_bias
from alliance.engine.tidy import coef_table
from alliance.errors import ConfigError
from alliance.models.base import COEF_COLUMNS, FitContext, ModelResult, ModelSpec, Skipped
from alliance.models.calibration import add_derived, insert_after

MIN_EVENTS = 10
TERTILE_LABELS = ("low", "middle", "high")
BIAS_CORRECTIONS = (None, "bootstrap")
MAX_FAILED_SHARE = 0.05  # more failed replicates than this: the bias estimate is not made
BIAS_METHOD = (
    "bootstrap bias correction (Efron & Tibshirani 1993, ch. 10): 2 b - mean(b*), b* the same "
    "estimator refitted on data sets drawn from the fitted model (conditional bootstrap, "
    "Davison & Hinkley 1997, Algorithm 7.3: event times from the Breslow baseline hazard at b, "
    "censoring from its Kaplan-Meier beyond each event time, covariates fixed); SE of the "
    "uncorrected row, Wald CI and test around the corrected estimate"
)


def fit(spec: ModelSpec, frame: pd.DataFrame, context: FitContext) -> ModelResult:
    """Cox PH model with optional cluster-robust SEs, PH test, and KM/log-rank by tertile."""
    import statsmodels

    opts = spec.options
    duration = opts.get("duration") or "relapse_time"
    event = opts.get("event") or spec.outcome
    cluster = opts.get("cluster") or None
    ties = opts.get("ties") or "efron"
    firth = bool(opts.get("firth"))
    se = opts.get("se") or None
    profile = opts.get("profile")
    covariates = list(spec.fixed)
    for col in [duration, event, *covariates] + ([cluster] if cluster else []):
        if col not in frame.columns:
            raise ConfigError(
                f"model '{spec.id}': column '{col}' is not in the model frame; name it in the "
                "spec (outcome, fixed or the options key that uses it) so the frame keeps it"
            )
    if not covariates:
        raise Skipped("no covariate left to model the hazard with")
    status = pd.to_numeric(frame[event])
    # R's Surv() also takes 1/2 coding (2 = event); fit_cox validates the coding itself
    n_events = int((status == (2 if status.min() >= 1 and status.max() == 2 else 1)).sum())
    if n_events < MIN_EVENTS:
        raise Skipped(
            f"only {n_events} events ({event}) among {len(frame)} patients; "
            f"a Cox model needs at least {MIN_EVENTS}"
        )
    if cluster is not None and frame[cluster].nunique() < 2:
        raise Skipped(f"cluster-robust SEs need at least 2 levels of '{cluster}'")
    if se in ("robust", "robust_cr1") and cluster is None:
        raise ConfigError(f"model '{spec.id}': se '{se}' needs options.cluster")
    if opts.get("bias_correction") not in BIAS_CORRECTIONS:
        raise ConfigError(f"model '{spec.id}': options.bias_correction must be null or 'bootstrap'")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cox = fit_cox(
            frame, duration, event, covariates, cluster=cluster, ties=ties, firth=firth, se=se,
            profile=None if profile is None else bool(profile),
        )  # fmt: skip
        zph = schoenfeld_test(cox, transform="km")
    msgs = [str(w.message) for w in caught]
    converged = not any("converge" in m.lower() for m in msgs)

    coefs = cox.coefficients
    table = coefs.assign(model=spec.id)[COEF_COLUMNS]
    hr = coefs[["term", "hazard_ratio", "hr_ci_low", "hr_ci_high"]].rename(
        columns={"hr_ci_low": "ci_low", "hr_ci_high": "ci_high"}
    )
    hr["std_error"] = coefs["std_error"]
    for col in ("naive_se", "robust_se"):
        if col in coefs:
            hr[col] = coefs[col]
    extras: dict[str, pd.DataFrame] = {"hazard_ratios": hr, "schoenfeld": zph}

    k = len(coefs)
    lr = 2.0 * (cox.loglik - cox.loglik_null)
    if cox.loglik_penalised is not None:  # coxphf's test: penalised log-likelihoods
        lr = 2.0 * (cox.loglik_penalised[1] - cox.loglik_penalised[0])
    info: dict[str, Any] = {
        "kind": "cox",
        "engine": (
            "alliance.engine.survival_firth (penalised Newton-Raphson)"
            if firth
            else f"statsmodels {statsmodels.__version__} PHReg + alliance.engine.survival"
        ),
        "n_obs": cox.n,
        "n_events": cox.n_events,
        "n_patients": _n_unique(frame, "patient"),
        "n_therapists": _n_unique(frame, "therapist"),
        "n_clusters": _n_unique(frame, cluster) if cluster else None,
        "estimator": cox.estimator,
        "logLik": cox.loglik,
        "logLik_null": cox.loglik_null,
        # R: AIC on the partial likelihood; BIC with the number of events as n
        "AIC": -2.0 * cox.loglik + 2.0 * k,
        "BIC": -2.0 * cox.loglik + math.log(cox.n_events) * k,
        "lr_test": {
            "chi2": lr,
            "df": k,
            "p": _chi2_sf(lr, k),
            "likelihood": "penalised" if cox.loglik_penalised else "partial",
        },
        "concordance": cox.concordance,
        "converged": converged,
        "warnings": msgs,
        "ties": ties,
        "se_method": cox.se_method,
        "ci_method": cox.ci_method,
        "test": cox.test,
        "formula_r": cox.formula_r,
        "hazard_ratios": _hr_json(hr),
        "schoenfeld_global_p": float(zph.loc[zph["term"] == "GLOBAL", "p"].iloc[0]),
        "schoenfeld_transform": "km",
    }
    if cox.loglik_penalised is not None:
        info["logLik_penalised"] = cox.loglik_penalised[1]
        info["logLik_penalised_null"] = cox.loglik_penalised[0]
    notes = _notes(cox, cluster, se)
    if notes:
        info["notes"] = notes
    result = ModelResult(coefficients=table, fit=info, frame=frame, extras=extras)
    if opts.get("bias_correction") == "bootstrap":
        bias_corrected(result, cox, spec, context.seed, int(opts.get("n_boot") or 1000))
    tertile_of = opts.get("tertile_of")
    if tertile_of:
        result.frame, km_extras, km_info = _by_tertile(frame, duration, event, tertile_of)
        extras.update(km_extras)
        info.update(km_info)
    return result


def bias_corrected(
    result: ModelResult, cox: CoxFit, spec: ModelSpec, seed: int, n_boot: int
) -> None:
    """Add `{term}_bc` after each key term's row in place: the bootstrap bias-corrected estimate
    2 b - mean(b*) with the row's own SE (module docstring, option `bias_correction`)."""
    stream = derive_seed(int(seed), spec.id)
    boot = cox_bootstrap_bias(cox, n_boot, stream)
    coefs = result.coefficients
    names = list(cox.coefficients["term"])
    terms = [t for t in spec.key_terms if t in names] or names
    info: dict[str, Any] = {
        "method": BIAS_METHOD,
        "n_boot": n_boot,
        "seed": stream,
        "seed_from": f"sha256 of config seed {seed} and model id '{spec.id}'",
        "rng": "numpy default_rng([seed, replicate]) per replicate",
        "n_failed": boot.n_failed,
        "terms": {},
    }
    result.fit["bias_correction"] = info
    if boot.n_failed > MAX_FAILED_SHARE * n_boot:
        result.fit["warnings"].append(
            f"bias correction skipped: {boot.n_failed} of {n_boot} bootstrap refits did not "
            "converge (monotone likelihood?); the mean of the others would be a biased estimate"
        )
        return
    hr = result.extras["hazard_ratios"]
    for term in terms:
        j = names.index(term)
        naive = coefs.loc[coefs["term"] == term].iloc[0]
        row = coef_table([f"{term}_bc"], boot.corrected[[j]], [naive["std_error"]], naive["df"])
        row.insert(0, "model", spec.id)
        coefs = insert_after(coefs, term, row[COEF_COLUMNS])
        info["terms"][term] = {
            "estimate": float(boot.beta[j]),
            "bias": float(boot.bias[j]),
            "corrected": float(boot.corrected[j]),
            "bootstrap_se": float(boot.se[j]),
        }
        hr_row = hr.loc[hr["term"] == term].copy()
        hr_row["term"] = f"{term}_bc"
        for col, src in (
            ("hazard_ratio", "estimate"),
            ("ci_low", "ci_low"),
            ("ci_high", "ci_high"),
        ):
            hr_row[col] = math.exp(float(row[src].iloc[0]))
        hr = insert_after(hr, term, hr_row)
        add_derived(result, f"{term}_bc")
    result.coefficients = coefs
    result.extras["hazard_ratios"] = hr
    rows = ", ".join(f"{t}_bc" for t in terms)
    result.fit.setdefault("notes", []).append(
        f"{rows}: small-sample bias-corrected, 2 b - mean(b*) over {n_boot} refits on data "
        f"drawn from the fitted model ({boot.n_failed} left out); SE of the uncorrected row, "
        "Wald CI around the corrected value; the uncorrected rows are R's estimate, the "
        "corrected ones are left out of the multiplicity families"
    )
    result.fit["hazard_ratios"] = _hr_json(hr)


def _hr_json(hr: pd.DataFrame) -> dict[str, dict[str, float]]:
    """fit.json `hazard_ratios`: per term the HR and its CI."""
    return {
        r.term: {"hr": r.hazard_ratio, "ci_low": r.ci_low, "ci_high": r.ci_high}
        for r in hr.itertuples()
    }


def tertiles(values: pd.Series) -> tuple[pd.Categorical, list[float]]:
    """low / middle / high at R's type-7 tertiles, intervals right-closed, lowest included
    (R `cut(x, quantile(x, 0:3/3), include.lowest = TRUE)`)."""
    x = pd.to_numeric(values).to_numpy(dtype=float)
    cuts = np.quantile(x, [0.0, 1 / 3, 2 / 3, 1.0])
    if np.unique(cuts).size < 4:
        raise Skipped(f"'{values.name}' has too few distinct values to cut into tertiles")
    codes = np.searchsorted(cuts[1:-1], x, side="left")  # right-closed: x == cut goes below
    cat = pd.Categorical.from_codes(codes, categories=list(TERTILE_LABELS))
    return cat, [float(c) for c in cuts]


def at_risk_times(max_time: float, n_ticks: int = 6) -> np.ndarray:
    """0 and multiples of a 1-2-5 step up to max_time, at most `n_ticks` intervals."""
    if max_time <= 0:
        return np.array([0.0])
    raw = max_time / n_ticks
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    return np.arange(0.0, max_time + 1e-9, step)


def _by_tertile(
    frame: pd.DataFrame, duration: str, event: str, col: str
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], dict[str, Any]]:
    group = f"{col}_tertile"
    cat, cuts = tertiles(frame[col].rename(col))
    data = frame.assign(**{group: cat})
    km = kaplan_meier(data, duration, event, group)
    test = logrank(data, duration, event, group)
    times = at_risk_times(float(data[duration].max()))
    rows = []
    for lab in TERTILE_LABELS:
        t = data.loc[data[group] == lab, duration].to_numpy(dtype=float)
        rows += [{"group": lab, "time": float(s), "n_risk": int((t >= s).sum())} for s in times]
    counts = data[group].value_counts().reindex(list(TERTILE_LABELS))
    extras = {
        "km": km,
        "km_at_risk": pd.DataFrame(rows),
        "logrank": pd.DataFrame([{**test, "groups": " / ".join(TERTILE_LABELS), "variable": col}]),
    }
    info = {
        "tertiles": {
            "variable": col,
            "cuts": cuts,
            "n": {k: int(v) for k, v in counts.items()},
            "method": "R quantile type 7; cut(include.lowest = TRUE)",
        },
        "logrank": test,
        "formula_r_km": f"survfit(Surv({duration}, {event}) ~ {group}, data = data)",
    }
    return data, extras, info


def _notes(cox: CoxFit, cluster: str | None, se: str | None) -> list[str]:
    """Why the inference is what it is (fit.json `notes`, shown under captions)."""
    notes = list(cox.notes)
    if cluster and se == "model":
        notes.insert(
            0,
            f"SEs and CIs are model-based although patients are clustered in {cluster}s: with "
            f"{cox.n_clusters} clusters R's sandwich is anticonservative (recovery study, "
            "docs/estimands.md 'Relapse': its 95 % CIs covered the truth 89-91 % of the time, "
            "model-based Wald CIs at the Firth estimate 93-94 %, profile ones 92-93 %); the "
            "robust SE is in hazard_ratios (robust_se); se: robust_cr1 guards against a "
            f"{cluster} effect on the outcome",
        )
    return notes


def _n_unique(frame: pd.DataFrame, col: str | None) -> int | None:
    if col is None or col not in frame.columns:
        return None
    return int(frame[col].nunique())


def _chi2_sf(x: float, df: int) -> float:
    from scipy import stats

    return float(stats.chi2.sf(x, df))
