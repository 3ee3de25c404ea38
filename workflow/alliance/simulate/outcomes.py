"""What happens to each patient: attendance (dropout), HAM-D, suicide item, relapse.

Why: each outcome depends on the alliance components in a known way (the betas in
DEFAULT_PARAMS), so the pipeline's models can be checked against those numbers. Every
alliance term an outcome uses is known before it: attendance of session t+1 and the
suicide item of session t read the alliance of the session before.
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
    trd: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Attendance matrix: P(miss session t+1 | attended t) on the latent alliance of session t.

    The alliance slope is dropout_beta_alliance, plus dropout_beta_alliance_trd for patients
    with treatment-resistant depression (`trd`, known before treatment). Attendance is monotone
    (no return after a miss), so session t is the last attended one. Returns the matrix and
    each patient's therapist effect on the logit.
    """
    n, T = a_true.shape
    r_th = rng.normal(0.0, p["dropout_therapist_sd"], len(design["t_id"]))[design["therapist"]]
    u = rng.random((n, T))
    slope = p["dropout_beta_alliance"] + p["dropout_beta_alliance_trd"] * np.asarray(trd, float)
    attended = np.zeros((n, T), dtype=bool)
    attended[:, 0] = started
    for t in range(1, T):
        logit = p["dropout_alpha"] + slope * (a_true[:, t - 1] - p["alliance_mu"]) + r_th
        attended[:, t] = attended[:, t - 1] & (u[:, t] >= _expit(logit))
    return attended, r_th


def outcome_draws(
    rng: np.random.Generator, p: dict[str, Any], design: dict[str, Any], n: int, T: int
) -> dict[str, np.ndarray]:
    """Stream `outcome`: patient (level, slope) and therapist effects, symptom innovations."""
    sd0, sd1, rho = (
        p["sd_patient_intercept"],
        p["sd_patient_slope"],
        p["corr_patient_intercept_slope"],
    )
    z = rng.normal(0.0, 1.0, (n, 2))  # (level, slope): correlated by the Cholesky factor
    re = np.column_stack([sd0 * z[:, 0], sd1 * (rho * z[:, 0] + np.sqrt(1 - rho**2) * z[:, 1])])
    v_th = rng.normal(0.0, p["sd_therapist_outcome"], len(design["t_id"]))[design["therapist"]]
    z_y = rng.normal(0.0, 1.0, (n, T))
    return {"re": re, "v_th": v_th, "z_y": z_y}


def latent_hamd(
    p: dict[str, Any],
    design: dict[str, Any],
    people: dict[str, Any],
    al: dict[str, Any],
    draws: dict[str, np.ndarray],
    w_y: np.ndarray,
    trd: np.ndarray,
) -> np.ndarray:
    """Latent (continuous) HAM-D: level_i + slope_i*(t-1) + wY_it (n x T).

    level_i = b0 + hamd_base*(baseline - centre) + beta_T*k_i*A_T + beta_P*m_i*A_P + direct
    trait effects + patient and therapist effects; slope_i = hamd_time + arm_time + patient
    slope + beta_tP*m_i*A_P; m_i = arm multiplier*(1 - agency_moderation*agency)*k_i, k_i = 1 -
    beta_alliance_trd_attenuation among TRD patients (`trd`, known before treatment), else 1.
    """
    a_t, a_p = al["a_t"], al["a_p"]
    n, T = w_y.shape
    tc = np.arange(T, dtype=float)
    arm = design["arm"]
    agency, tz = people["agency"][:n], people["traits_z"][:n]
    base = people["baseline"][:n].astype(float)
    mult = np.array([p["beta_P_arm_multiplier"][a] for a in arm])
    k = 1.0 - p["beta_alliance_trd_attenuation"] * np.asarray(trd, dtype=float)
    mult = mult * (1 - p["agency_moderation"] * agency) * k
    slope = p["hamd_time"] + np.array([p["arm_time"][a] for a in arm])
    re = draws["re"]
    direct = tz @ np.array(
        [p["direct_agreeableness"], p["direct_extraversion"], p["direct_openness"]]
    )
    level = (
        p["hamd_b0"]
        + p["hamd_base"] * (base - p["hamd_baseline_centre"])
        + p["beta_T"] * k * a_t
        + p["beta_P"] * mult * a_p
        + direct
        + re[:, 0]
        + draws["v_th"]
    )
    return level[:, None] + (slope + re[:, 1] + p["beta_tP"] * mult * a_p)[:, None] * tc + w_y


def suicide_item(
    rng: np.random.Generator, p: dict[str, Any], hamd_latent: np.ndarray, al: dict[str, Any]
) -> np.ndarray:
    """HAM-D item 3 (0–4): cumulative logit with a patient random intercept.

    eta_t = b_hamd*(latent HAM-D_t - 15) + b_between*(A_T + A_P) + b_within*wA_{t-1}, with the
    within term 0 at session 1: the alliance terms are known before session t.
    """
    a_t, a_p, w_a = al["a_t"], al["a_p"], al["w_a"]
    n, T = w_a.shape
    r_i = rng.normal(0.0, p["suicide_patient_sd"], n)
    w_prev = np.zeros((n, T))
    w_prev[:, 1:] = w_a[:, :-1]
    eta = (
        p["suicide_b_hamd"] * (hamd_latent - 15.0)
        + p["suicide_b_between"] * (a_t + a_p)[:, None]
        + p["suicide_b_within"] * w_prev
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
    """Exponential-baseline Cox model on standardised mean alliance, among responders.

    Time 0 is the end of acute treatment (the last session); `alliance_scale` (SD of the
    observed mean alliance among responders, ddof 1) turns relapse_beta into a per-point effect.
    """
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
        "time_origin": "end of acute treatment: the last session (n_sessions)",
    }
    return weeks, event, info
