"""What happens to each patient: attendance (dropout), HAM-D, suicide item, relapse.

Why: each outcome depends on the alliance components in a known way (the betas in
DEFAULT_PARAMS), so the pipeline's models can be checked against those numbers.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def attendance(
    rng: np.random.Generator,
    p: dict[str, Any],
    design: dict[str, Any],
    started: np.ndarray,
    a_true: np.ndarray,
) -> np.ndarray:
    """Attendance matrix from a discrete-time hazard on the true alliance at t-1."""
    n, T = a_true.shape
    r_th = rng.normal(0.0, p["dropout_therapist_sd"], len(design["t_id"]))[design["therapist"]]
    u = rng.random((n, T))
    attended = np.zeros((n, T), dtype=bool)
    attended[:, 0] = started
    for t in range(1, T):
        logit = (
            p["dropout_alpha"]
            + p["dropout_beta_alliance"] * (a_true[:, t - 1] - p["alliance_mu"])
            + r_th
        )
        attended[:, t] = attended[:, t - 1] & (u[:, t] >= _expit(logit))
    return attended


def latent_hamd(
    rng: np.random.Generator,
    p: dict[str, Any],
    model: str,
    design: dict[str, Any],
    people: dict[str, Any],
    al: dict[str, Any],
) -> np.ndarray:
    """Latent (continuous) HAM-D per patient x session under the growth or lagged model."""
    a_t, a_p, a_s = al["a_t"], al["a_p"], al["a_s"]
    n, T = a_s.shape
    tc = np.arange(T, dtype=float)
    arm, th = design["arm"], design["therapist"]
    agency, tz = people["agency"][:n], people["traits_z"][:n]
    base = people["baseline"][:n].astype(float)
    mult = np.array([p["beta_P_arm_multiplier"][a] for a in arm])
    mult = mult * (1 - p["agency_moderation"] * agency)
    slope = p["hamd_time"] + np.array([p["arm_time"][a] for a in arm])
    sd0, sd1, rho = (
        p["sd_patient_intercept"],
        p["sd_patient_slope"],
        p["corr_patient_intercept_slope"],
    )
    cov = np.array([[sd0**2, rho * sd0 * sd1], [rho * sd0 * sd1, sd1**2]])
    re = rng.multivariate_normal([0.0, 0.0], cov, n, method="cholesky")
    v_th = rng.normal(0.0, p["sd_therapist_outcome"], len(design["t_id"]))[th]
    direct = tz @ np.array(
        [p["direct_agreeableness"], p["direct_extraversion"], p["direct_openness"]]
    )
    level = (
        p["hamd_b0"]
        + p["hamd_base"] * (base - p["hamd_baseline_centre"])
        + p["beta_T"] * a_t
        + p["beta_P"] * mult * a_p
        + direct
        + re[:, 0]
        + v_th
    )
    g = level[:, None] + (slope + re[:, 1] + p["beta_tP"] * mult * a_p)[:, None] * tc
    e = rng.normal(0.0, p["sd_residual"], (n, T))
    if model == "growth":
        return g + p["beta_S"] * a_s + e
    y = np.empty((n, T))
    y[:, 0] = g[:, 0] + e[:, 0]
    for t in range(1, T):
        y[:, t] = (
            g[:, t]
            + p["lag_phi"] * (y[:, t - 1] - g[:, t - 1])
            + p["beta_lag"] * a_s[:, t - 1]
            + e[:, t]
        )
    return y


def suicide_item(
    rng: np.random.Generator, p: dict[str, Any], hamd_latent: np.ndarray, al: dict[str, Any]
) -> np.ndarray:
    """HAM-D item 3 (0–4) from a cumulative logit with a patient random intercept."""
    a_t, a_p, a_s = al["a_t"], al["a_p"], al["a_s"]
    n, T = a_s.shape
    r_i = rng.normal(0.0, p["suicide_patient_sd"], n)
    eta = (
        p["suicide_b_hamd"] * (hamd_latent - 15.0)
        + p["suicide_b_between"] * (a_t + a_p)[:, None]
        + p["suicide_b_within"] * a_s
        + r_i[:, None]
    )
    u = rng.random((n, T))
    item = np.zeros((n, T), dtype=int)
    for theta in p["suicide_thresholds"]:
        item += (u < _expit(theta + eta)).astype(int)
    return item


def relapse_after_response(
    rng: np.random.Generator, p: dict[str, Any], responder: np.ndarray, mean_alliance: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Exponential-baseline Cox model on standardised mean alliance, among responders."""
    n = len(responder)
    follow = p["relapse_followup_weeks"]
    h0 = -math.log(1 - p["relapse_p52"]) / follow
    h_lost = -math.log(1 - p["relapse_lost_p52"]) / follow
    resp = np.flatnonzero(responder)
    x = mean_alliance[resp]
    centre = float(x.mean()) if len(x) else 0.0
    scale = float(x.std(ddof=1)) if len(x) > 1 else 1.0
    z = (x - centre) / (scale if scale > 0 else 1.0)
    u_event, u_lost = rng.random(n), rng.random(n)
    t_event = -np.log(u_event[resp]) / (h0 * np.exp(p["relapse_beta"] * z))
    t_lost = -np.log(u_lost[resp]) / h_lost
    t_obs = np.minimum(np.minimum(t_event, t_lost), follow)
    weeks = np.full(n, np.nan)
    event = np.full(n, -1)
    weeks[resp] = np.maximum(np.round(t_obs, 1), 0.1)
    event[resp] = (t_event <= np.minimum(t_lost, follow)).astype(int)
    info = {
        "baseline_hazard_per_week": round(h0, 6),
        "lost_hazard_per_week": round(h_lost, 6),
        "alliance_centre": round(centre, 4),
        "alliance_scale": round(scale, 4),
    }
    return weeks, event, info
