"""Simulator parameters for the power study: calibration from a finished analysis, effect sizes,
dropout rate -> hazard intercept.

Why: the next trial is planned from the last one. A results folder holds the quantities the
simulator is built from, only on the observed scale; each is mapped to its generating
parameter by the simplest model that links them (written, with its source, to
parameters.json):
- alliance therapist / patient / session variances: the null three-level model
  (scores/alliance_icc.csv); the session share of an observed score still holds item error,
  (1 - alpha) x total variance with alpha the pooled Cronbach's alpha of the patient total
  (scores/reliability.csv), which is removed and put back as item noise
  (item_noise_sd^2 = n_items x error variance - 1/12, the rounding of integer items);
- alliance mean: the grand mean (scores/score_notes.json);
- symptom patient intercept / slope SDs, their correlation, therapist SD and residual SD:
  symptoms_growth's variance components (models/symptoms_growth/fit.json);
- dropout: the share of starters who dropped out (clean/flow.csv) over that trial's planned
  sessions gives a per-session hazard, kept for every design (a cell's `dropout_rate` sets it
  instead); its alliance slope and therapist SD from dropout_hazard (alliance_rc, fit.json);
- response rate among completers (flow.csv): the mean symptom slope `hamd_time` that gives it
  under a normal approximation of the final HAM-D (`response_slope`).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from alliance import files
from alliance.errors import InputError
from alliance.simulate.params import DEFAULT_PARAMS, N_ITEMS

CALIBRATION_FILES = (
    "scores/alliance_icc.csv", "scores/reliability.csv", "scores/score_notes.json",
    "models/symptoms_growth/fit.json", "models/dropout_hazard/fit.json",
    "models/dropout_hazard/coefficients.csv", "clean/flow.csv", "clean/sessions.parquet",
)  # fmt: skip
EFFECT_PARAMS = {"therapist": "beta_T", "patient": "beta_P", "session": "beta_lag"}
LEVEL_VARIANCE = {
    "therapist": "alliance_var_therapist",
    "patient": "alliance_var_patient",
    "session": "alliance_var_session",
}


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _need(folder: Path) -> None:
    missing = [f for f in CALIBRATION_FILES if not (folder / f).is_file()]
    if missing:
        raise InputError(
            "calibrate_from: the results folder lacks files of a finished analysis (run the "
            "pipeline on that trial first, e.g. `make run`)",
            value=f"{folder}: {missing}",
            check="power.calibrate_from",
        )


def _flow(folder: Path) -> dict[str, float]:
    return {r["step"]: float(r["n"]) for r in _rows(folder / "clean/flow.csv") if r["arm"] == "all"}


def _vc(fit: Mapping[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(v["group"], v["term1"], v["term2"]): v for v in fit["variance_components"]}


def calibrate(folder: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(simulator overrides, record with the observed values and their sources) from `folder`."""
    root = Path(folder)
    _need(root)
    icc = {r["level"]: float(r["variance"]) for r in _rows(root / "scores/alliance_icc.csv")}
    alpha = next(
        float(r["alpha"])
        for r in _rows(root / "scores/reliability.csv")
        if r["rater"] == "patient" and r["scale"] == "total" and r["session"] == "pooled"
    )
    mean = json.loads((root / "scores/score_notes.json").read_text())["grand_mean"]
    total = sum(icc.values())
    error = (1.0 - alpha) * total
    session = max(icc["session"] - error, 1e-4)
    noise_sd = math.sqrt(max(N_ITEMS * error - 1.0 / 12.0, 1e-4))
    growth = _vc(json.loads((root / "models/symptoms_growth/fit.json").read_text()))
    hazard_fit = json.loads((root / "models/dropout_hazard/fit.json").read_text())
    hazard = {r["term"]: r for r in _rows(root / "models/dropout_hazard/coefficients.csv")}
    flow = _flow(root)
    n_sessions = _planned_sessions(root)
    started = flow["started"]
    dropout = flow["dropped out"] / started
    per_session = 1.0 - (1.0 - dropout) ** (1.0 / max(n_sessions - 1, 1))
    response = flow["completer responders"] / flow["completed"]
    overrides: dict[str, Any] = {
        "alliance_mu": round(float(mean), 6),
        "alliance_var_therapist": round(icc["therapist"], 6),
        "alliance_var_patient": round(icc["patient"], 6),
        "alliance_var_session": round(session, 6),
        "item_noise_sd": round(noise_sd, 6),
        "sd_patient_intercept": round(growth[("patient", "(Intercept)", "")]["sd"], 6),
        "sd_patient_slope": round(growth[("patient", "weeks", "")]["sd"], 6),
        "corr_patient_intercept_slope": round(
            growth[("patient", "(Intercept)", "weeks")]["corr"], 6
        ),
        "sd_therapist_outcome": round(growth[("therapist", "(Intercept)", "")]["sd"], 6),
        "sd_residual": round(growth[("Residual", "", "")]["sd"], 6),
        "dropout_beta_alliance": round(float(hazard["alliance_rc"]["estimate"]), 6),
        "dropout_therapist_sd": round(_vc(hazard_fit)[("therapist", "(Intercept)", "")]["sd"], 6),
    }  # fmt: skip
    overrides["hamd_time"] = round(response_slope(response, n_sessions, overrides), 6)
    record = {
        "folder": str(root),
        "observed": {
            "alliance_variances": icc,
            "alliance_alpha_total": alpha,
            "alliance_error_variance": error,
            "planned_sessions": n_sessions,
            "dropout_share_of_starters": dropout,
            "dropout_hazard_per_session": per_session,
            "completer_response_rate": response,
        },
        "sources": {
            "alliance_*": "scores/alliance_icc.csv (null three-level model), session share "
            "less item error from scores/reliability.csv (pooled patient total alpha)",
            "item_noise_sd": "item error of the total: n_items x error variance - 1/12",
            "sd_*, corr_*": "models/symptoms_growth/fit.json variance components",
            "dropout_*": "clean/flow.csv; models/dropout_hazard (alliance_rc, therapist SD)",
            "hamd_time": "completer response rate via calibrate.response_slope",
        },
    }
    return overrides, {**record, "dropout_hazard_per_session": per_session}


def _planned_sessions(root: Path) -> int:
    """Planned sessions of the analysed trial: the largest session index attended."""
    import pandas as pd  # here, not at the top: the Snakefile imports this module

    table = pd.read_parquet(root / "clean/sessions.parquet", columns=["session_index"])
    return int(table["session_index"].max())


def response_slope(rate: float, n_sessions: int, params: Mapping[str, Any]) -> float:
    """Mean HAM-D slope per session giving completer response `rate` (final <= threshold x
    baseline), final HAM-D approximated as normal around b0 + slope x (T - 1)."""
    from scipy import special  # ndtri is scipy.stats.norm.ppf, without importing scipy.stats

    p = {**DEFAULT_PARAMS, **params}
    t = n_sessions - 1
    sd = math.sqrt(
        p["sd_patient_intercept"] ** 2
        + (t * p["sd_patient_slope"]) ** 2
        + 2 * t * p["corr_patient_intercept_slope"]
        * p["sd_patient_intercept"] * p["sd_patient_slope"]
        + p["sd_therapist_outcome"] ** 2
        + p["sd_residual"] ** 2
        + ((p["hamd_base"] - p["response_threshold"]) * p["baseline_hamd_sd"]) ** 2
    )  # fmt: skip
    cut = p["response_threshold"] * p["baseline_hamd_mean"]
    rate = min(max(rate, 1e-3), 1 - 1e-3)
    return (cut - p["hamd_b0"] - sd * float(special.ndtri(rate))) / t


def dropout_intercept(hazard: float, beta: float, variance: float, therapist_sd: float) -> float:
    """Logit intercept whose hazard, averaged over latent alliance ~ N(0, variance) and a
    therapist effect ~ N(0, therapist_sd^2) (Gauss-Hermite), equals `hazard` per session."""
    from scipy import optimize, special

    x, w = np.polynomial.hermite_e.hermegauss(24)
    w = w / w.sum()
    grid = beta * math.sqrt(variance) * x[:, None] + therapist_sd * x[None, :]
    weight = w[:, None] * w[None, :]

    def gap(a: float) -> float:
        return float((special.expit(a + grid) * weight).sum()) - hazard

    return float(optimize.brentq(gap, -30.0, 10.0))


def per_session_hazard(rate: float, n_sessions: int) -> float:
    """Per-session hazard of not returning that gives `rate` of starters leaving before T."""
    return 1.0 - (1.0 - rate) ** (1.0 / max(n_sessions - 1, 1))


def raw_effect(r: float, level: str, params: Mapping[str, Any]) -> float:
    """HAM-D points per alliance point whose correlation of the level's latent alliance with a
    session's symptom score is `r`: beta = r sd_rest / (sd_A sqrt(1 - r^2)), sd_rest^2 the
    symptom variance of the other sources (patient intercept, therapist, within residual)."""
    if not -1 < r < 1:
        raise InputError("an effect on the r scale must lie in (-1, 1)", value=r, check="power")
    rest = math.sqrt(
        params["sd_patient_intercept"] ** 2
        + params["sd_therapist_outcome"] ** 2
        + params["sd_residual"] ** 2
    )
    sd_a = math.sqrt(params[LEVEL_VARIANCE[level]])
    return r * rest / (sd_a * math.sqrt(1.0 - r * r))


def cell_params(
    cell: Mapping[str, Any],
    study: Mapping[str, Any],
    calibration: tuple[dict[str, Any], dict[str, Any]] | None,
) -> dict[str, Any]:
    """Simulator overrides of one cell: dropout_beta_alliance_trd = 0 (one dropout slope), the
    calibration, then the study's `simulator`, then the cell's dropout and effects (effects on
    the r scale converted with these parameters)."""
    # one dropout slope for every patient (what dropout_alliance and a calibrated
    # dropout_hazard give), unless the study's simulator sets the TRD moderation
    over: dict[str, Any] = {"dropout_beta_alliance_trd": 0.0}
    over.update(calibration[0] if calibration else {})
    over.update(study["simulator"])
    p = {**DEFAULT_PARAMS, **over}
    if cell["dropout_alliance"] is not None:
        over["dropout_beta_alliance"] = p["dropout_beta_alliance"] = float(cell["dropout_alliance"])
    hazard = None
    if cell["dropout_rate"] is not None:
        hazard = per_session_hazard(float(cell["dropout_rate"]), int(cell["sessions"]))
    elif calibration is not None and "dropout_alpha" not in study["simulator"]:
        hazard = calibration[1]["dropout_hazard_per_session"]
    if hazard is not None:
        variance = sum(p[v] for v in LEVEL_VARIANCE.values())
        alpha = dropout_intercept(
            hazard, p["dropout_beta_alliance"], variance, p["dropout_therapist_sd"]
        )
        over["dropout_alpha"] = round(alpha, 6)
    for level, name in EFFECT_PARAMS.items():
        value = cell[f"effect_{level}"]
        if value is None:
            continue
        raw = raw_effect(float(value), level, p) if study["effects"]["scale"] == "r" else value
        over[name] = round(float(raw), 6)
    return over


def calibration_folder(folder: str | None) -> str:
    """`calibrate_from` as an absolute path ('' when null): a folder the power rules read, not
    an output of theirs (a Snakemake param)."""
    return str(Path(folder).resolve()) if folder else ""


def calibration_hash(folder: str | None) -> str:
    """SHA-256 of each calibration file ('missing' for absent ones; '' when null): a Snakemake
    param, so a new analysis in the folder reruns the study without making the study depend on
    the analysis jobs."""
    if not folder:
        return ""
    paths = [Path(folder) / f for f in CALIBRATION_FILES]
    return ",".join(files.sha256(p) if p.is_file() else "missing" for p in paths)
