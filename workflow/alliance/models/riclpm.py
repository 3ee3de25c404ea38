"""Random-intercept cross-lagged panel model of alliance and symptoms over sessions (RI-CLPM).

Question: within a patient, does a better-than-usual alliance precede lower symptoms at the next
session, and do lower symptoms precede a better alliance? (Hamaker, Kuiper & Grasman 2015;
Falkenström et al. 2022.) The model and its parameter names are alliance.engine.sem.riclpm; the
fit is full-information ML (lavaan `missing = "ml"`), checked against lavaan 0.6-14.

Frame: the session table, one row per attended session, with `patient`, `session_index` and the
x and y columns (missing cells allowed: FIML uses every observed score). Waves are session_index
1..W; later sessions are not used; a patient with no x and no y in waves 1..W is dropped and
counted. The frame written out (frame.parquet) is the wide panel fitted: one row per patient,
columns x_1..x_W, y_1..y_W, on which `formula_r` refits the model in R.

Options:
- `x` (default `alliance`), `y` (default: the spec outcome): the two repeated measures.
- `waves`: an integer W, or `auto` (default): the largest W (at most 16) at which at least half
  of the patients with any score are still observed (their last observed session >= W).
- `x_error`: a column holding each x score's squared standard error of measurement (its mean
  over the x scores used fixes x's error variance), or a number; omitted: no error (x's
  within-person part is then the error-laden score, and its paths are attenuated).
- `y_error`: y's fixed error variance, a number or `rounding` (1/12 when every y score is an
  integer: the rounding error of an integer total such as the HAM-D); omitted: none.
- `y_slope` (default true): a random linear slope of y over waves (patients' symptom
  trajectories differ).
- `equal_lags` (default true), `equal_innovations` (default false): constrain the lagged paths /
  the innovation (co)variances equal over waves. Innovations are free by default (Mulder &
  Hamaker 2021): ruptures, sudden gains and the schedule make them differ between sessions, and
  wrongly equal ones bias the lagged paths (docs/estimands.md).
Fewer than MIN_PATIENTS patients, or fewer waves than the model needs (3; 4 with a y slope) ->
Skipped.

Coefficients: every free parameter (Wald z tests, df = inf) in this order: the four lagged
within-person paths (`{x}_to_{y}`, `{y}_to_{x}`, `{x}_ar`, `{y}_ar`), between-person
(co)variances, within-person (co)variances, wave means. Extras: `waves` (per wave: scores of x
and y, patients still observed).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from alliance.engine.sem import INFORMATION, Ram, Riclpm, fit_sem, riclpm_model, start_values
from alliance.engine.tidy import coef_table
from alliance.errors import ConfigError, InputError
from alliance.models.base import COEF_COLUMNS, FitContext, ModelResult, ModelSpec, Skipped

TIME = "session_index"
MAX_WAVES = 16
RETENTION = 0.5
MIN_PATIENTS = 30
MIN_PER_WAVE = 10
ENGINE = "alliance.engine.sem (FIML; checked against lavaan 0.6-14 sem(missing = 'ml'))"


def fit(spec: ModelSpec, frame: pd.DataFrame, context: FitContext) -> ModelResult:
    """Reshape sessions to a wide panel, fit the RI-CLPM by FIML, tidy estimates and facts."""
    opts = spec.options
    x = opts.get("x") or "alliance"
    y = opts.get("y") or spec.outcome
    if x == y:
        raise ConfigError(f"model '{spec.id}': options.x and options.y are both '{x}'")
    x_error = opts.get("x_error")
    needed = ["patient", TIME, x, y] + ([x_error] if isinstance(x_error, str) else [])
    for col in needed:
        if col not in frame.columns:
            raise ConfigError(
                f"model '{spec.id}': column '{col}' is not in the model frame; the RI-CLPM needs "
                f"the session table with patient, {TIME}, x, y and the x_error column"
            )
    y_slope = bool(opts.get("y_slope", True))
    waves, wave_rule = choose_waves(frame, x, y, opts.get("waves", "auto"), spec.id)
    need = 4 if y_slope else 3
    if waves < need:
        raise Skipped(f"{wave_rule}: {waves} waves, the model needs at least {need}")
    wide, counts = wide_panel(frame, x, y, waves)
    if len(wide) < MIN_PATIENTS:
        raise Skipped(f"{len(wide)} patients with scores in waves 1-{waves}; need {MIN_PATIENTS}")
    per_wave = wide.drop(columns="patient").notna().sum()
    sparse = per_wave[per_wave < MIN_PER_WAVE]
    if len(sparse):
        raise Skipped(
            f"too few scores at some waves (need {MIN_PER_WAVE}): "
            + ", ".join(f"{c} {n}" for c, n in sparse.items())
        )
    error_var, error_info = _error_variance(frame, x, x_error, waves, spec.id)
    warns = [] if error_var is not None or not x_error else [f"x_error: {error_info['source']}"]
    y_error_var, y_error_info = _y_error_variance(frame, y, opts.get("y_error"), waves, spec.id)
    if y_error_var is None and opts.get("y_error"):
        warns.append(f"y_error: {y_error_info['source']}")
    model_spec = Riclpm(
        waves, x=x, y=y, x_error_var=error_var, y_error_var=y_error_var, y_slope=y_slope,
        equal_lags=bool(opts.get("equal_lags", True)),
        equal_innovations=bool(opts.get("equal_innovations", False)),
    )  # fmt: skip
    data = wide[model_spec.observed()]
    model = riclpm_model(model_spec, start_values(model_spec, data.to_numpy(dtype=float)))
    try:
        sem = fit_sem(model, data, saturated=True)
    except InputError as exc:
        raise InputError(f"RI-CLPM: {exc}") from None
    params = sem.parameters()
    order = _order(model_spec, list(params["term"]))
    params = params.set_index("term").loc[order].reset_index()
    table = coef_table(params["term"], params["estimate"], params["std_error"])
    table.insert(0, "model", spec.id)
    reliability = within_reliability(model, sem.theta, model_spec)
    syntax = model.lavaan_syntax()
    info: dict[str, Any] = {
        "kind": "riclpm",
        "engine": ENGINE,
        "n_obs": sem.n,
        "n_patients": sem.n,
        "n_therapists": _n_therapists(frame, wide),
        "n_scores": int(per_wave.sum()),
        **counts,
        "waves": waves,
        "waves_rule": wave_rule,
        "x": x,
        "y": y,
        "y_slope": y_slope,
        "equal_lags": model_spec.equal_lags,
        "equal_innovations": model_spec.equal_innovations,
        "x_error": error_info,
        "y_error": y_error_info,
        "within_reliability_x": reliability,
        "logLik": sem.loglik,
        "AIC": sem.aic,
        "BIC": sem.bic,
        "n_par": sem.n_par,
        "n_patterns": sem.n_patterns,
        "chisq_test": sem.chisq(),
        "converged": sem.converged,
        "max_gradient": sem.max_gradient,
        "hessian_positive_definite": sem.hessian_pd,
        "iterations": sem.iterations,
        "warnings": [*warns, *sem.warnings],
        "information": INFORMATION,
        "test": "Wald z (df = inf)",
        "key_paths": {
            f"{x}_to_{y}": f"{x} at session t-1 -> {y} at session t (within-person)",
            f"{y}_to_{x}": f"{y} at session t-1 -> {x} at session t (within-person)",
        },
        "notes": _notes(model_spec, error_info, y_error_info, reliability, waves),
        "lavaan_model": syntax,
        "formula_r": (
            f"lavaan::sem(model = '{syntax.replace(chr(10), '; ')}', data = data, "
            "missing = 'ml', meanstructure = TRUE)"
        ),
        "formula_r_data": "data = frame.parquet (one row per patient; columns x_1..x_W, y_1..y_W)",
        "note": opts.get("note"),
        "fit_seconds": sem.seconds,
    }
    extras = {"waves": _wave_table(wide, x, y, waves)}
    return ModelResult(coefficients=table[COEF_COLUMNS], fit=info, frame=wide, extras=extras)


def session_frame(spec: ModelSpec, table: pd.DataFrame) -> pd.DataFrame:
    """The session rows and columns the RI-CLPM reads, missing scores kept (FIML uses them).

    For the frame builder: the generic frame drops every row with a missing value (R's
    na.omit) and keeps only term columns, which would lose session_index, the x_error column
    and the sessions where only one of x and y was scored. Rows without patient or
    session_index are dropped; rows beyond the waves are dropped later by `fit` (and counted).
    """
    opts = spec.options
    x, y, x_error = opts.get("x") or "alliance", opts.get("y") or spec.outcome, opts.get("x_error")
    cols = ["patient", "therapist", TIME, x, y] + ([x_error] if isinstance(x_error, str) else [])
    missing = [c for c in cols if c not in table.columns and c != "therapist"]
    if missing:
        raise ConfigError(
            f"model '{spec.id}': column(s) {missing} are not in the session table; columns: "
            + ", ".join(map(str, table.columns))
        )
    cols = [c for c in dict.fromkeys(cols) if c in table.columns]
    out = table.loc[table["patient"].notna() & table[TIME].notna(), cols].reset_index(drop=True)
    for col in cols:
        if col not in ("patient", "therapist"):
            out[col] = pd.to_numeric(out[col]).to_numpy(dtype=float, na_value=np.nan)
    return out


def choose_waves(frame: pd.DataFrame, x: str, y: str, waves: Any, model_id: str) -> tuple[int, str]:
    """W and how it was chosen: the option's integer, or `auto` (see module docstring)."""
    if waves is None or waves == "auto":
        last = _last_observed(frame, x, y)
        if last.empty:
            raise Skipped(f"no patient has a score of {x} or {y}")
        retained = [(last >= w).mean() for w in range(1, MAX_WAVES + 1)]
        ok = [w for w, share in enumerate(retained, start=1) if share >= RETENTION]
        w = max(ok) if ok else 1
        share = retained[w - 1]
        return w, (
            f"auto: largest W <= {MAX_WAVES} with >= {RETENTION:.0%} of {len(last)} patients "
            f"still observed at session W ({share:.1%} at W = {w})"
        )
    if isinstance(waves, bool) or not isinstance(waves, (int, np.integer)) or waves < 1:
        raise ConfigError(f"model '{model_id}', key options.waves: {waves!r} is not auto or >= 1")
    return int(waves), f"options.waves = {int(waves)}"


def _last_observed(frame: pd.DataFrame, x: str, y: str) -> pd.Series:
    seen = frame[x].notna() | frame[y].notna()
    return pd.to_numeric(frame.loc[seen, TIME]).groupby(frame.loc[seen, "patient"]).max()


def wide_panel(
    frame: pd.DataFrame, x: str, y: str, waves: int
) -> tuple[pd.DataFrame, dict[str, int]]:
    """One row per patient (sorted), columns patient, x_1..x_W, y_1..y_W; counts of what was
    left out (sessions beyond W, patients without any score in waves 1..W)."""
    t = pd.to_numeric(frame[TIME])
    bad = t.isna() | (t != t.round()) | (t < 1)
    if bad.any():
        raise InputError(
            f"{TIME} must be a whole number >= 1 on every session row",
            column=TIME, row=int(np.flatnonzero(bad.to_numpy())[0]) + 1, check="riclpm.waves",
        )  # fmt: skip
    key = pd.DataFrame({"patient": frame["patient"].astype(str), "t": t.astype(int)})
    dup = key.duplicated()
    if dup.any():
        raise InputError(
            f"a patient has two rows with the same {TIME}",
            column=TIME, value=str(key.loc[dup, "patient"].iloc[0]), check="riclpm.waves",
        )  # fmt: skip
    keep = (key["t"] <= waves).to_numpy()
    long = key[keep].assign(
        x=pd.to_numeric(frame.loc[keep, x]).to_numpy(dtype=float, na_value=np.nan),
        y=pd.to_numeric(frame.loc[keep, y]).to_numpy(dtype=float, na_value=np.nan),
    )
    patients = sorted(key["patient"].unique())
    cols: dict[str, Any] = {"patient": patients}
    for var, name in (("x", x), ("y", y)):
        wide = long.pivot(index="patient", columns="t", values=var).reindex(
            index=patients, columns=range(1, waves + 1)
        )
        for w in range(1, waves + 1):
            cols[f"{name}_{w}"] = wide[w].to_numpy(dtype=float)
    out = pd.DataFrame(cols)
    has = out.drop(columns="patient").notna().any(axis=1)
    counts = {
        "n_sessions_beyond_waves": int((~keep).sum()),
        "n_patients_no_scores": int((~has).sum()),
    }
    return out[has.to_numpy()].reset_index(drop=True), counts


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fixed_error(value: float, key: str, model_id: str) -> tuple[float, dict[str, Any]]:
    """An error variance given as a number in `options.<key>` (x_error, y_error): >= 0."""
    if not np.isfinite(value) or value < 0:
        raise ConfigError(f"model '{model_id}', key options.{key}: {value!r} is not >= 0")
    return float(value), {"source": f"options.{key}", "value": float(value)}


def _error_variance(
    frame: pd.DataFrame, x: str, x_error: Any, waves: int, model_id: str
) -> tuple[float | None, dict[str, Any]]:
    """x's fixed error variance: a number, or the mean of a column over the x scores used."""
    if x_error is None or x_error is False:
        return None, {"source": None, "value": None}
    if _is_number(x_error):
        return _fixed_error(x_error, "x_error", model_id)
    if not isinstance(x_error, str):
        raise ConfigError(f"model '{model_id}', key options.x_error: {x_error!r} is not a column")
    used = (pd.to_numeric(frame[TIME]) <= waves) & frame[x].notna()
    values = pd.to_numeric(frame.loc[used, x_error]).dropna()
    if values.empty:
        return None, {"source": f"column '{x_error}' has no value on the {x} scores used: "
                      "no correction", "value": None}  # fmt: skip
    if (values < 0).any():
        raise InputError("a squared standard error is negative", column=x_error, check="riclpm")
    return float(values.mean()), {
        "source": f"mean of column '{x_error}' over {len(values)} {x} scores in waves 1-{waves}",
        "value": float(values.mean()),
    }


def _y_error_variance(
    frame: pd.DataFrame, y: str, y_error: Any, waves: int, model_id: str
) -> tuple[float | None, dict[str, Any]]:
    """y's fixed error variance: a number, or `rounding` = 1/12 when every y score used is an
    integer (the rounding error of an integer total, Sheppard's correction)."""
    if y_error is None or y_error is False:
        return None, {"source": None, "value": None}
    if y_error == "rounding":
        used = pd.to_numeric(frame.loc[pd.to_numeric(frame[TIME]) <= waves, y]).dropna()
        if not np.allclose(used, np.round(used)):
            return None, {"source": f"{y} has non-integer scores in waves 1-{waves}: no "
                          "rounding correction", "value": None}  # fmt: skip
        return 1 / 12, {
            "source": f"rounding of the integer {y} scores (1/12, Sheppard's correction)",
            "value": 1 / 12,
        }
    if _is_number(y_error):
        return _fixed_error(y_error, "y_error", model_id)
    raise ConfigError(
        f"model '{model_id}', key options.y_error: {y_error!r} is not a number >= 0 or 'rounding'"
    )


def within_reliability(model: Ram, theta: np.ndarray, spec: Riclpm) -> dict[str, Any] | None:
    """Implied reliability of x's within-person part: var(w_x_t) / (var(w_x_t) + error variance),
    per wave and its mean; None without a fixed error variance."""
    if not spec.x_error_var:
        return None
    cov, _ = model.latent_moments(theta)
    idx = [model.variables.index(f"w_{spec.x}_{t}") for t in range(1, spec.waves + 1)]
    var = np.diag(cov)[idx]
    rel = var / (var + spec.x_error_var)
    return {
        "mean": float(rel.mean()),
        "by_wave": [float(r) for r in rel],
        "definition": f"var(w_{spec.x}_t) / (var(w_{spec.x}_t) + {spec.x_error_var:.6g})",
    }


def _order(spec: Riclpm, terms: list[str]) -> list[str]:
    """Key lagged paths first, then between, within and innovation (co)variances, then means."""
    lags = list(spec.lag_names().values())

    def rank(term: str) -> tuple[int, int]:
        base = term.rsplit("_", 1)[0] if term.rsplit("_", 1)[-1].isdigit() else term
        if base in lags or term in lags:
            return (0, lags.index(base if base in lags else term))
        for k, prefix in enumerate(("ri_", "slope_", "within_", "innovation_"), start=1):
            if term.startswith(prefix):
                return (k, 0)
        return (9, 0)

    return sorted(terms, key=lambda t: rank(t))  # stable: engine order within a group


def _notes(
    spec: Riclpm,
    error: dict[str, Any],
    y_error: dict[str, Any],
    reliability: dict[str, Any] | None,
    waves: int,
) -> list[str]:
    x, y = spec.x, spec.y
    notes = [
        f"Within-person effects: the lagged paths link a patient's deviation from their own "
        f"expected {x} and {y} (wave mean + random intercept"
        + (f" + random {y} slope" if spec.y_slope else "")
        + ") at one session to the deviation at the next; stable differences between patients "
        "sit in the random intercepts (Hamaker et al. 2015).",
        f"Waves are attended sessions 1-{waves} (session_index): one lag is one attended "
        "session whatever the time between sessions; later sessions are not used.",
        "Assumes multivariate normal scores, linear lagged effects"
        + (" equal across sessions" if spec.equal_lags else "")
        + (", innovation (co)variances equal across sessions" if spec.equal_innovations else "")
        + ", and scores missing at random given the observed ones (full-information ML: "
        "patients who drop out contribute the sessions they attended).",
        "formula_r holds the equivalent lavaan model (every parameter explicit); fitted on "
        "frame.parquet it reproduces these estimates.",
    ]
    if spec.x_error_var:
        rel = (
            f"; implied reliability of the within-person {x}: {reliability['mean']:.3f}"
            if reliability
            else ""
        )
        notes.append(
            f"{x} measurement error variance fixed at {spec.x_error_var:.4g} ({error['source']}): "
            f"its within-person part is latent, corrected for unreliability{rel}."
        )
    else:
        notes.append(
            f"No measurement error fixed for {x}: its within-person part includes measurement "
            "error, which attenuates the paths from it."
        )
    if spec.y_error_var:
        notes.append(
            f"{y} measurement error variance fixed at {spec.y_error_var:.4g} "
            f"({y_error['source']}): the paths from and to the within-person {y} are not "
            "attenuated by it."
        )
    return notes


def _wave_table(wide: pd.DataFrame, x: str, y: str, waves: int) -> pd.DataFrame:
    seen = {w: wide[f"{x}_{w}"].notna() | wide[f"{y}_{w}"].notna() for w in range(1, waves + 1)}
    last = np.zeros(len(wide), dtype=int)
    for w, s in seen.items():
        last[s.to_numpy()] = w
    rows = []
    for w in range(1, waves + 1):
        xs, ys = wide[f"{x}_{w}"], wide[f"{y}_{w}"]
        rows.append(
            {"wave": w, f"n_{x}": int(xs.notna().sum()), f"n_{y}": int(ys.notna().sum()),
             f"mean_{x}": float(xs.mean()), f"mean_{y}": float(ys.mean()),
             "still_observed": int((last >= w).sum())}
        )  # fmt: skip
    return pd.DataFrame(rows)


def _n_therapists(frame: pd.DataFrame, wide: pd.DataFrame) -> int | None:
    if "therapist" not in frame.columns:
        return None
    used = frame["patient"].astype(str).isin(set(wide["patient"]))
    return int(frame.loc[used, "therapist"].nunique())
