"""Patient- and therapist-rated working alliance: the latent model, ruptures and WAI-SR items.

Why: the alliance decomposition is the truth every analysis is checked against. On the
latent 1–5 metric, A_tij = mu + A_T_j + A_P_ij + growth*(t-1) + wA_tij, with A_T = therapist
deviation, A_P = patient deviation from the therapist mean (includes trait paths and
telehealth), wA = the within-person state of the alliance–symptom VAR(1) (`process`), into
which ruptures enter as innovation shocks. The observed scores are 12 rounded, clipped, partly
missing items.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from alliance.errors import ConfigError
from alliance.simulate.design import therapist_rating_sessions
from alliance.simulate.params import N_ITEMS
from alliance.simulate.process import within_system


def _latent_sd(p: dict[str, Any]) -> float:
    return math.sqrt(
        p["alliance_var_therapist"] + p["alliance_var_patient"] + p["alliance_var_session"]
    )


def telehealth_shift(p: dict[str, Any]) -> float:
    """Alliance points of a video (vs in-person) patient: telehealth_smd x total latent SD."""
    return p["telehealth_smd"] * _latent_sd(p)


def patient_residual_var(p: dict[str, Any]) -> float:
    """Patient-level variance left after the trait paths and the telehealth shift."""
    a = np.array([p["a_agreeableness"], p["a_extraversion"], p["a_openness"]])
    shift = telehealth_shift(p)
    resid = (
        p["alliance_var_patient"]
        - float(a @ a)
        - shift**2 * p["video_share"] * (1 - p["video_share"])
    )
    if resid <= 0:
        raise ConfigError("alliance_var_patient is smaller than the trait and telehealth parts")
    return resid


def sd_change(p: dict[str, Any]) -> float:
    """Model-implied SD of the observed session-to-session change of the 12-item mean.

    Analytic, ignoring clipping, trend and ruptures: the stationary change of wA in the
    within VAR(1), 2 (Sigma_AA - Cov(wA_t, wA_{t-1})), plus item noise and rounding (1/12).
    """
    sys_ = within_system(p)
    sigma = sys_["stationary_cov"]
    lag1 = float((sys_["phi"] @ sigma)[0, 0])
    latent = 2 * (sigma[0, 0] - lag1)
    measurement = 2 * (p["item_noise_sd"] ** 2 + 1 / 12) / N_ITEMS
    return math.sqrt(latent + measurement)


def patient_level(
    rng: np.random.Generator, p: dict[str, Any], traits_z: np.ndarray, video: np.ndarray
) -> np.ndarray:
    """A_P: trait a-paths + centred telehealth shift + residual (mean zero)."""
    a = np.array([p["a_agreeableness"], p["a_extraversion"], p["a_openness"]])
    resid = rng.normal(0.0, math.sqrt(patient_residual_var(p)), len(video))
    return traits_z @ a + telehealth_shift(p) * (video - p["video_share"]) + resid


def rupture_dips(
    rng: np.random.Generator, p: dict[str, Any], n: int, n_sessions: int
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Rupture paths of wA (alliance-only, before symptom feedback) and their records.

    Every rupture is an innovation shock of -depth at its session, then decays at rho =
    alliance_ar1 (path -depth*rho^r, r sessions after the drop). With `rupture_repair` =
    "process" (default) that is all: the return is the within process's own, the VAR(1) holds
    exactly, and `repaired` / `sessions_to_repair` are None (the detector decides what looks
    repaired). With "linear", a scheduled repaired one returns linearly, -depth*(1 - r/k), to
    the pre-drop level at r = k (1–3 sessions), shaped by repair-session shocks that are
    predictable from the past (not a VAR(1): the RI-CLPM's misspecification scenario). Shocks
    are `process.rupture_shocks(dips)`. Returns the dip matrix and one record per scheduled
    episode (patient index, 1-based session of the drop, repaired, sessions_to_repair, depth
    in alliance points).
    """
    if p["rupture_repair"] not in ("process", "linear"):
        raise ConfigError(
            f"rupture_repair must be 'process' or 'linear', got {p['rupture_repair']!r}"
        )
    dips = np.zeros((n, n_sessions))
    first = p["rupture_first_session"]
    max_k = p["rupture_max_repair_sessions"]
    last = n_sessions - max_k
    draws_u = rng.random((n, 4))  # scheduled?, session, repaired?, sessions_to_repair
    depth_sd = rng.uniform(*p["rupture_depth_sd"], n)
    episodes: list[dict[str, Any]] = []
    if last < first:
        return dips, episodes
    sd, rho = sd_change(p), p["alliance_ar1"]
    for i in np.flatnonzero(draws_u[:, 0] < p["rupture_patient_p"]):
        s_drop = first + int(draws_u[i, 1] * (last - first + 1))
        linear = p["rupture_repair"] == "linear"
        repaired = bool(draws_u[i, 2] < p["rupture_repaired_p"]) if linear else None
        depth = float(depth_sd[i] * sd)
        r = np.arange(n_sessions - s_drop + 1, dtype=float)
        path = -depth * rho**r
        k = None
        if repaired:
            k = 1 + int(draws_u[i, 3] * max_k)
            path = np.where(r < k, -depth * (1 - r / k), 0.0)
        dips[i, s_drop - 1 :] = path
        episodes.append(
            {
                "index": int(i),
                "session": s_drop,
                "repaired": repaired,
                "sessions_to_repair": k,
                "depth": round(depth, 4),
                "depth_sd_change": round(float(depth_sd[i]), 4),
            }
        )
    return dips, episodes


def item_responses(
    rng: np.random.Generator,
    latent: np.ndarray,
    offsets: np.ndarray,
    noise_sd: float,
    miss_p: float,
) -> np.ndarray:
    """12 items = round(clip(latent + offset + noise, 1, 5)), then MCAR non-response (NaN)."""
    noise = rng.normal(0.0, noise_sd, (*latent.shape, len(offsets)))
    items = np.rint(np.clip(latent[..., None] + offsets + noise, 1, 5))
    items[rng.random(items.shape) < miss_p] = np.nan
    return items


def row_mean(x: np.ndarray) -> np.ndarray:
    """Mean over the last axis ignoring NaN; NaN (no warning) where nothing is observed."""
    seen = ~np.isnan(x)
    count = seen.sum(axis=-1)
    total = np.where(seen, x, 0.0).sum(axis=-1)
    return np.divide(total, count, out=np.full(count.shape, np.nan), where=count > 0)


def item_offsets(rng: np.random.Generator, sd: float) -> np.ndarray:
    """Fixed item difficulty offsets, centred to mean zero (rounded to 0.001)."""
    off = rng.normal(0.0, sd, N_ITEMS)
    return np.round(off - off.mean(), 3)


def alliance_between(
    rng: np.random.Generator, p: dict[str, Any], design: dict[str, Any], people: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """Therapist deviations u_j (one per therapist) and patient deviations A_P."""
    u_t = rng.normal(0.0, math.sqrt(p["alliance_var_therapist"]), len(design["t_id"]))
    n = len(design["arm"])
    a_p = patient_level(rng, p, people["traits_z"][:n], people["video"])
    return u_t, a_p


def observe_alliance(
    rngs: dict[str, np.random.Generator],
    p: dict[str, Any],
    design: dict[str, Any],
    u_t: np.ndarray,
    a_p: np.ndarray,
    within: dict[str, np.ndarray],
) -> dict[str, Any]:
    """Latent patient- and therapist-rated alliance and the observed WAI-SR items.

    `within` is `process.within_state`: wA and its rupture-driven part. The therapist sees
    the rupture-driven part scaled by t_rupture_visibility and the rest linked at the session
    level, like every other level.
    """
    th = design["therapist"]
    w_a, rupture_a = within["w_a"], within["rupture_a"]
    T = w_a.shape[1]
    tc = np.arange(T, dtype=float)
    a_t = u_t[th]
    a_true = p["alliance_mu"] + a_t[:, None] + a_p[:, None] + p["alliance_growth"] * tc + w_a

    # therapist-rated: correlated with the patient's rating at each level
    r_ta = rngs["therapist_alliance"]

    def linked(x: np.ndarray, level: str) -> np.ndarray:
        var_x, var_y = p[f"alliance_var_{level}"], p[f"t_alliance_var_{level}"]
        rho = p[f"t_corr_{level}"]
        own = r_ta.normal(0.0, 1.0, x.shape)
        return rho * math.sqrt(var_y / var_x) * x + math.sqrt((1 - rho**2) * var_y) * own

    t_true = (
        p["alliance_mu"]
        + p["t_alliance_shift"]
        + linked(u_t, "therapist")[th][:, None]
        + linked(a_p, "patient")[:, None]
        + p["t_alliance_growth"] * tc
        + linked(w_a - rupture_a, "session")
        + p["t_rupture_visibility"] * rupture_a
    )
    offsets = item_offsets(rngs["item_offsets"], p["item_offset_sd"])
    t_offsets = item_offsets(rngs["item_offsets"], p["item_offset_sd"])
    wai_p = item_responses(rngs["items"], a_true, offsets, p["item_noise_sd"], p["item_missing_p"])
    wai_t = item_responses(
        rngs["items"], t_true, t_offsets, p["item_noise_sd"], p["t_item_missing_p"]
    )
    rated = np.zeros(T, dtype=bool)
    rated[np.array(therapist_rating_sessions(T)) - 1] = True
    wai_t[:, ~rated, :] = np.nan
    return {
        "a_t": a_t,
        "a_p": a_p,
        "w_a": w_a,
        "a_true": a_true,
        "t_true": t_true,
        "offsets": offsets,
        "t_offsets": t_offsets,
        "wai_p": wai_p,
        "wai_t": wai_t,
    }
