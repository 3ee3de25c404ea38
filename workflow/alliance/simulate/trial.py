"""Simulate a depression-treatment trial whose alliance–outcome structure is known.

Why: every analysis in the pipeline needs data with a known generating truth, so tests can
check that estimates point where they should. The design follows the NIMH TDCRP (CBT, IPT,
imipramine + clinical management, placebo + clinical management; psychotherapists deliver
CBT or IPT, pharmacotherapists deliver both pill arms). Sessions are nested in patients,
patients in therapists, therapists in sites. Every number used is returned in `truth`.

Definitions used throughout (all on the *true*, latent patient-rated alliance, 1–5 metric):
A_tij = mu + A_T_j + A_P_ij + gamma*(t-1) + A_S_tij, with A_T = therapist deviation,
A_P = patient deviation from the therapist mean (includes trait paths and telehealth),
A_S = session deviation from the patient mean (AR(1) noise plus injected rupture dips).
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from alliance.errors import ConfigError

ARMS = ("CBT", "IPT", "IMI-CM", "PLA-CM")
N_ITEMS = 12
WAI_P = tuple(f"wai_p_{k:02d}" for k in range(1, N_ITEMS + 1))
WAI_T = tuple(f"wai_t_{k:02d}" for k in range(1, N_ITEMS + 1))
SESSION_COLUMNS = ("subject", "visit", "visit_date", "hamd", "hamd_suicide", *WAI_P, *WAI_T)
PATIENT_COLUMNS = (
    "subject", "therapist", "site", "arm", "modality", "age", "sex", "consent_date",
    "baseline_hamd", "agreeableness", "extraversion", "openness", "agency", "status",
    "relapse_weeks", "relapse",
)  # fmt: skip
# Independent random streams: adding a stream at the end never changes the others.
_STREAMS = (
    "design", "people", "alliance", "therapist_alliance", "items", "ruptures", "dropout",
    "outcome", "suicide", "dates", "relapse", "item_offsets",
)  # fmt: skip

# Every generating parameter. Units: alliance in WAI-SR item points (1–5), HAM-D in points,
# traits per SD (10 T-score points), time t = session - 1.
DEFAULT_PARAMS: dict[str, Any] = {
    # design and people
    "sites": ["PIT", "OKL", "GWU"],
    "screen_fail_share": 0.08,  # share of assessed people never randomised
    "screen_fail_below_cutoff_share": 0.70,  # of those, share with screening HAM-D < 14
    "not_started_share": 0.03,  # randomised, no session attended
    "video_share": 0.30,
    "female_share": 0.65,
    "age_mean": 38.0,
    "age_sd": 11.0,
    "age_min": 18,
    "age_max": 70,
    "recruitment_start": "2019-02-04",
    "recruitment_days": 730,
    "first_session_delay_days": [7, 21],
    "visit_jitter_days": 2,
    "baseline_hamd_mean": 20.0,
    "baseline_hamd_sd": 4.0,
    "baseline_hamd_cutoff": 14,
    "baseline_hamd_max": 36,
    "trait_mean": 50.0,
    "trait_sd": 10.0,
    # patient-rated alliance (latent, 1–5 metric)
    "alliance_mu": 3.70,
    "alliance_var_therapist": 0.025,
    "alliance_var_patient": 0.14,  # total patient-level variance, incl. trait paths, telehealth
    "alliance_var_session": 0.09,
    "alliance_ar1": 0.40,
    "alliance_growth": 0.015,  # per session
    "telehealth_smd": -0.09,  # Seuling et al. 2023, SD = total latent SD
    "a_agreeableness": 0.12,  # alliance points per trait SD (Kushner et al. 2016 direction)
    "a_extraversion": 0.05,
    "a_openness": 0.04,
    "item_noise_sd": 0.55,
    "item_offset_sd": 0.12,  # fixed item difficulty offsets, drawn once per seed
    "item_missing_p": 0.02,
    # therapist-rated alliance
    "t_alliance_shift": 0.15,  # therapists rate slightly higher
    "t_alliance_var_therapist": 0.03,
    "t_alliance_var_patient": 0.12,
    "t_alliance_var_session": 0.08,
    "t_alliance_growth": 0.01,
    "t_corr_therapist": 0.30,
    "t_corr_patient": 0.55,
    "t_corr_session": 0.20,
    "t_rupture_visibility": 0.5,  # share of a patient-rated rupture dip the therapist sees
    "t_item_missing_p": 0.01,
    # ruptures (Stiles et al. 2004 style V-shaped drops)
    "rupture_patient_p": 0.165,  # patients scheduled for a rupture (only those reached count)
    "rupture_repaired_p": 0.75,
    "rupture_depth_sd": [3.5, 4.5],  # in SDs of the observed session-to-session change
    "rupture_first_session": 3,
    "rupture_max_repair_sessions": 3,
    # outcome (HAM-D 17)
    "hamd_b0": 19.0,
    "hamd_time": -0.60,
    "hamd_base": 0.60,  # per point of baseline_hamd - hamd_baseline_centre
    "hamd_baseline_centre": 20.0,
    "beta_T": -4.0,
    "beta_P": -0.7,
    "beta_S": -1.0,
    "beta_tP": -0.09,
    "beta_P_arm_multiplier": {"CBT": 1.0, "IPT": 1.0, "IMI-CM": 0.6, "PLA-CM": 1.6},
    "agency_moderation": 0.30,  # beta_P and beta_tP scaled by (1 - kappa * agency)
    "arm_time": {"CBT": 0.0, "IPT": 0.0, "IMI-CM": -0.08, "PLA-CM": 0.10},
    "direct_agreeableness": 0.0,  # trait -> HAM-D level not via alliance, per SD
    "direct_extraversion": -0.4,
    "direct_openness": -0.3,
    "sd_patient_intercept": 3.0,
    "sd_patient_slope": 0.25,
    "corr_patient_intercept_slope": -0.2,
    "sd_therapist_outcome": 1.2,
    "sd_residual": 2.5,
    "lag_phi": 0.40,  # lagged model: AR coefficient of HAM-D deviation from trajectory
    "beta_lag": -1.2,  # lagged model: effect of A_S at t-1
    # dropout: logit P(leave before session t | attended t-1)
    "dropout_alpha": -4.3,
    "dropout_beta_alliance": -1.3,  # per alliance point of A_{t-1} - alliance_mu
    "dropout_therapist_sd": 0.4,
    # suicidality item (HAM-D item 3), cumulative logit P(item >= k)
    "suicide_thresholds": [-2.4, -4.2, -5.6, -7.0],
    "suicide_b_hamd": 0.12,  # per HAM-D point above 15 (latent total)
    "suicide_b_between": -1.0,  # per point of A_T + A_P
    "suicide_b_within": -0.8,  # per point of A_S
    "suicide_patient_sd": 1.0,
    # response and relapse
    "response_threshold": 0.5,  # final HAM-D <= threshold * baseline_hamd (completers)
    "relapse_p52": 0.32,  # P(relapse by 52 weeks) at mean alliance, exponential baseline
    "relapse_beta": -0.45,  # Cox log-HR per SD of observed mean patient alliance
    "relapse_followup_weeks": 52.0,
    "relapse_lost_p52": 0.10,  # random censoring (lost to follow-up) by 52 weeks
    # Monte-Carlo size for the expected observed variance shares
    "mc_therapists": 600,
    "mc_patients_per_therapist": 12,
}


@dataclass
class SimulatedTrial:
    """A simulated trial: long session table, patient table and the generating truth."""

    sessions: pd.DataFrame
    patients: pd.DataFrame
    truth: dict[str, Any]


def _resolve_params(overrides: dict[str, Any]) -> dict[str, Any]:
    """Defaults updated by `overrides`; unknown keys are an error, not silently ignored."""
    params = copy.deepcopy(DEFAULT_PARAMS)
    for key, value in overrides.items():
        if key not in params:
            allowed = ", ".join(sorted(params))
            raise ConfigError(f"simulate_trial: unknown parameter '{key}'. Allowed: {allowed}")
        default = params[key]
        if isinstance(default, dict):
            if not isinstance(value, dict) or set(value) - set(default):
                raise ConfigError(
                    f"simulate_trial: '{key}' must be a dict with keys {list(default)}"
                )
            params[key] = {**default, **value}
        else:
            params[key] = copy.deepcopy(value)
    return params


def _check_design(n_patients: int, n_therapists: int, n_sessions: int, model: str) -> None:
    if model not in ("growth", "lagged"):
        raise ConfigError(f"outcome_model must be 'growth' or 'lagged', got {model!r}")
    if n_therapists < 4:
        raise ConfigError("n_therapists must be >= 4 (one per treatment type at least)")
    if n_patients < n_therapists:
        raise ConfigError("n_patients must be >= n_therapists")
    if not 4 <= n_sessions <= 52:
        raise ConfigError("n_sessions must be between 4 and 52")


def _streams(seed: int) -> dict[str, np.random.Generator]:
    return {name: np.random.default_rng([seed, k]) for k, name in enumerate(_STREAMS)}


def therapist_rating_sessions(n_sessions: int) -> list[int]:
    """Sessions with a therapist WAI-SR: 1, 2, 3, then every second session (5, 7, ...)."""
    return [s for s in (1, 2, 3) if s <= n_sessions] + list(range(5, n_sessions + 1, 2))


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# --------------------------------------------------------------------------- alliance
def _latent_sd(p: dict[str, Any]) -> float:
    return math.sqrt(
        p["alliance_var_therapist"] + p["alliance_var_patient"] + p["alliance_var_session"]
    )


def _telehealth_shift(p: dict[str, Any]) -> float:
    return p["telehealth_smd"] * _latent_sd(p)


def _patient_residual_var(p: dict[str, Any]) -> float:
    a = np.array([p["a_agreeableness"], p["a_extraversion"], p["a_openness"]])
    shift = _telehealth_shift(p)
    resid = (
        p["alliance_var_patient"]
        - float(a @ a)
        - shift**2 * p["video_share"] * (1 - p["video_share"])
    )
    if resid <= 0:
        raise ConfigError("alliance_var_patient is smaller than the trait and telehealth parts")
    return resid


def _sd_change(p: dict[str, Any]) -> float:
    """Model-implied SD of the observed session-to-session change of the 12-item mean.

    Analytic, ignoring clipping: latent AR(1) change plus item noise and rounding (1/12).
    """
    latent = 2 * p["alliance_var_session"] * (1 - p["alliance_ar1"])
    measurement = 2 * (p["item_noise_sd"] ** 2 + 1 / 12) / N_ITEMS
    return math.sqrt(latent + measurement)


def _patient_level(rng, p, traits_z: np.ndarray, video: np.ndarray) -> np.ndarray:
    """A_P: trait a-paths + centred telehealth shift + residual (mean zero)."""
    a = np.array([p["a_agreeableness"], p["a_extraversion"], p["a_openness"]])
    resid = rng.normal(0.0, math.sqrt(_patient_residual_var(p)), len(video))
    return traits_z @ a + _telehealth_shift(p) * (video - p["video_share"]) + resid


def _ar1(rng, n: int, n_sessions: int, var: float, phi: float) -> np.ndarray:
    """Stationary AR(1) session deviations with marginal variance `var`."""
    eps = rng.normal(0.0, 1.0, (n, n_sessions))
    w = np.empty((n, n_sessions))
    w[:, 0] = eps[:, 0]
    for t in range(1, n_sessions):
        w[:, t] = phi * w[:, t - 1] + math.sqrt(1 - phi**2) * eps[:, t]
    return w * math.sqrt(var)


def _rupture_dips(rng, p, n: int, n_sessions: int) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """V-shaped drops; repaired ones return to the pre-drop level within 1–3 sessions.

    Returns the dip matrix and one record per scheduled episode (patient index, 1-based
    session of the drop, repaired, sessions_to_repair or None, depth in alliance points).
    """
    dips = np.zeros((n, n_sessions))
    first = p["rupture_first_session"]
    max_k = p["rupture_max_repair_sessions"]
    last = n_sessions - max_k
    draws_u = rng.random((n, 4))  # scheduled?, session, repaired?, sessions_to_repair
    depth_sd = rng.uniform(*p["rupture_depth_sd"], n)
    episodes: list[dict[str, Any]] = []
    if last < first:
        return dips, episodes
    sd = _sd_change(p)
    for i in np.flatnonzero(draws_u[:, 0] < p["rupture_patient_p"]):
        s_drop = first + int(draws_u[i, 1] * (last - first + 1))
        repaired = bool(draws_u[i, 2] < p["rupture_repaired_p"])
        depth = float(depth_sd[i] * sd)
        t0 = s_drop - 1
        if repaired:
            k = 1 + int(draws_u[i, 3] * max_k)
            for r in range(k):
                dips[i, t0 + r] = -depth * (1 - r / k)
        else:
            k = None
            dips[i, t0:] = -depth
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


def _items(rng, latent: np.ndarray, offsets: np.ndarray, noise_sd: float, miss_p: float):
    """12 items = round(clip(latent + offset + noise, 1, 5)), then MCAR non-response (NaN)."""
    noise = rng.normal(0.0, noise_sd, (*latent.shape, len(offsets)))
    items = np.rint(np.clip(latent[..., None] + offsets + noise, 1, 5))
    items[rng.random(items.shape) < miss_p] = np.nan
    return items


def _row_mean(x: np.ndarray) -> np.ndarray:
    """Mean over the last axis ignoring NaN; NaN (no warning) where nothing is observed."""
    seen = ~np.isnan(x)
    count = seen.sum(axis=-1)
    total = np.where(seen, x, 0.0).sum(axis=-1)
    return np.divide(total, count, out=np.full(count.shape, np.nan), where=count > 0)


def _item_offsets(rng, sd: float) -> np.ndarray:
    off = rng.normal(0.0, sd, N_ITEMS)
    return np.round(off - off.mean(), 3)


def _trait_z(rng, n: int) -> np.ndarray:
    return rng.normal(0.0, 1.0, (n, 3))


@functools.lru_cache(maxsize=8)
def _expected_shares_cached(params_json: str, n_sessions: int, seed: int) -> dict[str, Any]:
    p = json.loads(params_json)
    rng = np.random.default_rng([seed, 999])
    n_j, n_i = p["mc_therapists"], p["mc_patients_per_therapist"]
    n = n_j * n_i
    u = np.repeat(rng.normal(0.0, math.sqrt(p["alliance_var_therapist"]), n_j), n_i)
    video = (rng.random(n) < p["video_share"]).astype(float)
    a_p = _patient_level(rng, p, _trait_z(rng, n), video)
    w = _ar1(rng, n, n_sessions, p["alliance_var_session"], p["alliance_ar1"])
    dips, _ = _rupture_dips(rng, p, n, n_sessions)
    trend = p["alliance_growth"] * np.arange(n_sessions)
    latent = p["alliance_mu"] + u[:, None] + a_p[:, None] + trend + w + dips
    offsets = _item_offsets(
        np.random.default_rng([seed, _STREAMS.index("item_offsets")]), p["item_offset_sd"]
    )
    items = _items(rng, latent, offsets, p["item_noise_sd"], p["item_missing_p"])
    score = _row_mean(items).reshape(n_j, n_i, n_sessions)
    return {
        "observed": _nested_anova(score),
        "latent_check": _nested_anova(latent.reshape(n_j, n_i, n_sessions)),
    }


def _nested_anova(y: np.ndarray) -> dict[str, float]:
    """Balanced 3-level nested ANOVA (method of moments) variance components and shares."""
    n_j, n_i, n_t = y.shape
    grand = y.mean()
    m_j = y.mean(axis=(1, 2))
    m_ij = y.mean(axis=2)
    ms_j = n_i * n_t * ((m_j - grand) ** 2).sum() / (n_j - 1)
    ms_i = n_t * ((m_ij - m_j[:, None]) ** 2).sum() / (n_j * (n_i - 1))
    ms_t = ((y - m_ij[..., None]) ** 2).sum() / (n_j * n_i * (n_t - 1))
    var_t = ms_t
    var_i = max((ms_i - ms_t) / n_t, 0.0)
    var_j = max((ms_j - ms_i) / (n_i * n_t), 0.0)
    total = var_j + var_i + var_t
    return {
        "var_therapist": round(float(var_j), 5),
        "var_patient": round(float(var_i), 5),
        "var_session": round(float(var_t), 5),
        "share_therapist": round(float(var_j / total), 4),
        "share_patient": round(float(var_i / total), 4),
        "share_session": round(float(var_t / total), 4),
        "mean": round(float(grand), 4),
    }


# --------------------------------------------------------------------------- design
def _design(rng, p, n_patients: int, n_therapists: int) -> dict[str, Any]:
    """Therapists (site, type) and randomised patients (arm, therapist)."""
    sites = list(p["sites"])
    # cycle of types: half pharmacotherapists (both pill arms), a quarter each CBT / IPT
    type_cycle = ("pharmacotherapy", "CBT", "pharmacotherapy", "IPT")
    t_site = [sites[k % len(sites)] for k in range(n_therapists)]
    t_type = [type_cycle[k % 4] for k in range(n_therapists)]
    counters: dict[str, int] = {}
    t_id = []
    for s in t_site:
        counters[s] = counters.get(s, 0) + 1
        t_id.append(f"{s}-T{counters[s]:02d}")
    arm = np.array(ARMS)[np.resize(np.arange(4), n_patients)]
    arm = rng.permutation(arm)
    therapist = np.empty(n_patients, dtype=int)
    for kind, arms in (
        ("CBT", ("CBT",)),
        ("IPT", ("IPT",)),
        ("pharmacotherapy", ("IMI-CM", "PLA-CM")),
    ):
        pool = rng.permutation([k for k in range(n_therapists) if t_type[k] == kind])
        members = rng.permutation(np.flatnonzero(np.isin(arm, arms)))
        therapist[members] = pool[np.arange(len(members)) % len(pool)]
    return {"t_site": t_site, "t_type": t_type, "t_id": t_id, "arm": arm, "therapist": therapist}


def _subject_ids(rng, sites: list[str], n: int) -> list[str]:
    width = max(4, len(str(5 * n)))
    numbers = rng.choice(np.arange(1, 10**width), size=n, replace=False)
    return [f"{s}-P{int(k):0{width}d}" for s, k in zip(sites, numbers, strict=True)]


def _baseline_hamd(rng, p, n: int) -> np.ndarray:
    """Screening HAM-D of randomised people: normal, truncated at the entry cut-off."""
    out = np.empty(n)
    todo = np.arange(n)
    while todo.size:
        x = np.rint(rng.normal(p["baseline_hamd_mean"], p["baseline_hamd_sd"], todo.size))
        ok = (x >= p["baseline_hamd_cutoff"]) & (x <= p["baseline_hamd_max"])
        out[todo[ok]] = x[ok]
        todo = todo[~ok]
    return out.astype(int)


# --------------------------------------------------------------------------- main model
def simulate_trial(
    n_patients: int = 480,
    n_therapists: int = 40,
    n_sessions: int = 16,
    seed: int = 20261127,
    outcome_model: str = "growth",
    **overrides: Any,
) -> SimulatedTrial:
    """Simulate one trial; `n_patients` counts randomised people (screen fails are added).

    `overrides` replace entries of `DEFAULT_PARAMS` (unknown names raise ConfigError).
    """
    _check_design(n_patients, n_therapists, n_sessions, outcome_model)
    p = _resolve_params(overrides)
    rng = _streams(seed)
    design = _design(rng["design"], p, n_patients, n_therapists)
    people = _people(rng["people"], p, design, n_patients)
    al = _alliance(rng, p, design, people, n_sessions)
    attended = _dropout(rng["dropout"], p, design, people["started"], al["a_true"])
    hamd_latent = _outcome(rng["outcome"], p, outcome_model, design, people, al)
    hamd = np.clip(np.rint(hamd_latent), 0, 52).astype(int)
    suicide = _suicide_item(rng["suicide"], p, hamd_latent, al)
    # item 3 is part of the total; the other 16 items add up to at most 48
    suicide = np.clip(suicide, np.maximum(hamd - 48, 0), hamd)

    completed = attended[:, -1]
    started = people["started"]
    status = np.where(~started, "not_started", np.where(completed, "completed", "dropout"))
    base = people["baseline"][:n_patients]
    responder = completed & (hamd[:, -1] <= p["response_threshold"] * base)
    mean_alliance = _row_mean(np.where(attended, _row_mean(al["wai_p"]), np.nan))
    relapse_weeks, relapse, rel_info = _relapse(rng["relapse"], p, responder, mean_alliance)

    start, consent_day, visit_day = _dates(rng["dates"], p, n_patients, people, n_sessions)
    subject = people["subject"]
    sessions = _sessions_frame(
        subject, attended, _iso_grid(start, visit_day), hamd, suicide, al["wai_p"], al["wai_t"]
    )
    patients = _patients_frame(
        p, design, people, _iso(start, consent_day), status, relapse_weeks, relapse
    )
    episodes = _reached_episodes(al["scheduled"], attended, subject)
    truth = {
        "seed": seed,
        "n_patients_randomised": n_patients,
        "n_therapists": n_therapists,
        "n_sessions": n_sessions,
        "outcome_model": outcome_model,
        **_truth(p, seed, n_sessions, design, al, episodes, rel_info),
        "realised": realised_summary(sessions, patients, n_sessions),
    }
    return SimulatedTrial(sessions=sessions, patients=patients, truth=truth)


def _people(rng, p, design, n_patients: int) -> dict[str, Any]:
    """Everyone assessed: randomised people first, then screen fails (no arm/therapist)."""
    n_fail = round(n_patients * p["screen_fail_share"] / (1 - p["screen_fail_share"]))
    n_all = n_patients + n_fail
    fail_sites = list(rng.choice(p["sites"], n_fail))
    site = np.array([design["t_site"][k] for k in design["therapist"]] + fail_sites)
    subject = _subject_ids(rng, list(site), n_all)
    traits_z = _trait_z(rng, n_all)
    agency = rng.normal(0.0, 1.0, n_all)
    age = np.rint(rng.normal(p["age_mean"], p["age_sd"], n_all))
    age = np.clip(age, p["age_min"], p["age_max"]).astype(int)
    sex = np.where(rng.random(n_all) < p["female_share"], "F", "M")
    video = (rng.random(n_patients) < p["video_share"]).astype(float)
    baseline = _baseline_hamd(rng, p, n_all)
    # most screen fails scored below the entry cut-off; the rest declined
    below = rng.random(n_fail) < p["screen_fail_below_cutoff_share"]
    fail_low = rng.integers(6, p["baseline_hamd_cutoff"], n_fail)
    baseline[n_patients:] = np.where(below, fail_low, baseline[n_patients:])
    started = rng.random(n_patients) >= p["not_started_share"]
    return {
        "n_fail": n_fail,
        "site": site,
        "subject": subject,
        "traits_z": traits_z,
        "agency": agency,
        "age": age,
        "sex": sex,
        "video": video,
        "baseline": baseline,
        "started": started,
    }


def _alliance(rng, p, design, people, T: int) -> dict[str, Any]:
    """Latent patient- and therapist-rated alliance, rupture dips, and observed items."""
    n, th = len(design["arm"]), design["therapist"]
    tc = np.arange(T, dtype=float)
    r_a = rng["alliance"]
    u_t = r_a.normal(0.0, math.sqrt(p["alliance_var_therapist"]), len(design["t_id"]))
    a_t = u_t[th]
    a_p = _patient_level(r_a, p, people["traits_z"][:n], people["video"])
    w = _ar1(r_a, n, T, p["alliance_var_session"], p["alliance_ar1"])
    dips, scheduled = _rupture_dips(rng["ruptures"], p, n, T)
    a_s = w + dips
    a_true = p["alliance_mu"] + a_t[:, None] + a_p[:, None] + p["alliance_growth"] * tc + a_s

    # therapist-rated: correlated with the patient's rating at each level
    r_ta = rng["therapist_alliance"]

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
        + linked(w, "session")
        + p["t_rupture_visibility"] * dips
    )
    offsets = _item_offsets(rng["item_offsets"], p["item_offset_sd"])
    t_offsets = _item_offsets(rng["item_offsets"], p["item_offset_sd"])
    wai_p = _items(rng["items"], a_true, offsets, p["item_noise_sd"], p["item_missing_p"])
    wai_t = _items(rng["items"], t_true, t_offsets, p["item_noise_sd"], p["t_item_missing_p"])
    rated = np.zeros(T, dtype=bool)
    rated[np.array(therapist_rating_sessions(T)) - 1] = True
    wai_t[:, ~rated, :] = np.nan
    return {
        "a_t": a_t,
        "a_p": a_p,
        "a_s": a_s,
        "a_true": a_true,
        "scheduled": scheduled,
        "offsets": offsets,
        "t_offsets": t_offsets,
        "wai_p": wai_p,
        "wai_t": wai_t,
    }


def _dropout(rng, p, design, started: np.ndarray, a_true: np.ndarray) -> np.ndarray:
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


def _dates(rng, p, n_patients: int, people, T: int):
    """Consent days for everyone; weekly session days (+-jitter) after a short delay."""
    start = dt.date.fromisoformat(p["recruitment_start"])
    consent_day = rng.integers(0, p["recruitment_days"] + 1, len(people["subject"]))
    lo, hi = p["first_session_delay_days"]
    first_day = consent_day[:n_patients] + rng.integers(lo, hi + 1, n_patients)
    jit = p["visit_jitter_days"]
    jitter = rng.integers(-jit, jit + 1, (n_patients, T))
    jitter[:, 0] = 0
    visit_day = first_day[:, None] + 7 * np.arange(T) + jitter
    return start, consent_day, visit_day


def _reached_episodes(scheduled, attended: np.ndarray, subject: list[str]) -> list[dict]:
    """Rupture episodes whose drop session was attended (the others never happened)."""
    T = attended.shape[1]
    episodes = []
    for e in scheduled:
        i, s, k = e["index"], e["session"], e["sessions_to_repair"]
        if not attended[i, s - 1]:
            continue
        seen_to = s + (k or 0)
        episodes.append(
            {
                "subject": subject[i],
                "session": s,
                "repaired": e["repaired"],
                "sessions_to_repair": k,
                "repair_observed": bool(
                    e["repaired"] and seen_to <= T and attended[i, seen_to - 1]
                ),
                "depth": e["depth"],
                "depth_sd_change": e["depth_sd_change"],
            }
        )
    return sorted(episodes, key=lambda e: (e["subject"], e["session"]))


def _outcome(rng, p, model: str, design, people, al) -> np.ndarray:
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


def _suicide_item(rng, p, hamd_latent: np.ndarray, al) -> np.ndarray:
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


def _relapse(rng, p, responder, mean_alliance):
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


def _iso(start: dt.date, days: np.ndarray) -> list[str]:
    return [(start + dt.timedelta(days=int(k))).isoformat() for k in days]


def _iso_grid(start: dt.date, days: np.ndarray) -> np.ndarray:
    return np.array(_iso(start, days.ravel()), dtype=object).reshape(days.shape)


def _sessions_frame(subject, attended, visit_date, hamd, suicide, wai_p, wai_t) -> pd.DataFrame:
    """Long table: one row per attended session, sorted by subject and visit."""
    i, t = np.nonzero(attended)
    cols: dict[str, Any] = {
        "subject": pd.array([subject[k] for k in i], dtype="str"),
        "visit": (t + 1).astype("int64"),
        "visit_date": pd.array(list(visit_date[i, t]), dtype="str"),
        "hamd": hamd[i, t].astype("int64"),
        "hamd_suicide": suicide[i, t].astype("int64"),
    }
    for k, name in enumerate(WAI_P):
        cols[name] = pd.array(wai_p[i, t, k], dtype="Float64").astype("Int64")
    for k, name in enumerate(WAI_T):
        cols[name] = pd.array(wai_t[i, t, k], dtype="Float64").astype("Int64")
    frame = pd.DataFrame(cols)
    return frame.sort_values(["subject", "visit"], ignore_index=True)


def _patients_frame(p, design, people, consent_date, status, relapse_weeks, relapse):
    """One row per assessed person, sorted by subject; screen fails have no arm/therapist."""
    th, video = design["therapist"], people["video"]
    subject, n_fail = people["subject"], people["n_fail"]
    none = [None] * n_fail
    traits = np.round(p["trait_mean"] + p["trait_sd"] * people["traits_z"], 1)
    frame = pd.DataFrame(
        {
            "subject": pd.array(subject, dtype="str"),
            "therapist": pd.array([design["t_id"][k] for k in th] + none, dtype="str"),
            "site": pd.array(list(people["site"]), dtype="str"),
            "arm": pd.array(list(design["arm"]) + none, dtype="str"),
            "modality": pd.array(
                list(np.where(video > 0, "video", "in-person")) + none, dtype="str"
            ),
            "age": people["age"].astype("int64"),
            "sex": pd.array(list(people["sex"]), dtype="str"),
            "consent_date": pd.array(consent_date, dtype="str"),
            "baseline_hamd": people["baseline"].astype("int64"),
            "agreeableness": traits[:, 0],
            "extraversion": traits[:, 1],
            "openness": traits[:, 2],
            "agency": np.round(people["agency"], 2),
            "status": pd.array(list(status) + none, dtype="str"),
            "relapse_weeks": np.concatenate([relapse_weeks, np.full(n_fail, np.nan)]),
            "relapse": pd.array([None if r < 0 else int(r) for r in relapse] + none, dtype="Int64"),
        }
    )
    return frame.sort_values("subject", ignore_index=True)


# --------------------------------------------------------------------------- truth
def _truth(p, seed: int, T: int, design, al, episodes, rel_info) -> dict[str, Any]:
    """Every generating parameter plus derived truths (shares, mediation, ruptures)."""
    d, offsets, t_offsets, scheduled = design, al["offsets"], al["t_offsets"], al["scheduled"]
    var_u, var_v, var_w = (
        p["alliance_var_therapist"],
        p["alliance_var_patient"],
        p["alliance_var_session"],
    )
    total = var_u + var_v + var_w
    expected = _expected_shares_cached(json.dumps(p, sort_keys=True), T, seed)
    mult = p["beta_P_arm_multiplier"]
    b_final = {a: round((p["beta_P"] + p["beta_tP"] * (T - 1)) * mult[a], 4) for a in ARMS}
    b_avg = float(np.mean(list(b_final.values())))
    a_paths = {
        "agreeableness": p["a_agreeableness"],
        "extraversion": p["a_extraversion"],
        "openness": p["a_openness"],
    }
    repaired = sum(e["repaired"] for e in episodes)
    return {
        "params": p,
        "design": {
            "arms": list(ARMS),
            "therapists": [
                {"therapist": tid, "site": s, "type": ty}
                for tid, s, ty in zip(d["t_id"], d["t_site"], d["t_type"], strict=True)
            ],
            "therapist_rating_sessions": therapist_rating_sessions(T),
            "therapist_item_columns": list(WAI_T),
            "patient_item_columns": list(WAI_P),
            "time_variable": "t = visit - 1",
        },
        "definitions": {
            "alliance": "A_tij = mu + A_T_j + A_P_ij + gamma*(visit-1) + A_S_tij (latent, 1-5)",
            "A_T": "therapist deviation u_j",
            "A_P": "patient deviation: trait a-paths + centred telehealth shift + residual",
            "A_S": "session deviation: stationary AR(1) + rupture dips",
            "items": "round(clip(A + item_offset + N(0, item_noise_sd), 1, 5)); MCAR NaN",
            "hamd_growth": (
                "b0 + (hamd_time + arm_time[arm] + u1_i + beta_tP*m_i*A_P)*t + hamd_base*"
                "(baseline - centre) + beta_T*A_T + beta_P*m_i*A_P + beta_S*A_S + direct trait"
                " effects + u0_i + v_j + e; m_i = beta_P_arm_multiplier[arm]*(1 - "
                "agency_moderation*agency); rounded, clipped 0-52"
            ),
            "hamd_lagged": (
                "y_t = g_t + lag_phi*(y_{t-1} - g_{t-1}) + beta_lag*A_S_{t-1} + e_t, g_t = "
                "growth model without beta_S*A_S; so y_t on y_{t-1} has coefficient lag_phi"
            ),
            "dropout": "logit P(leave before t | attended t-1) = dropout_alpha + "
            "dropout_beta_alliance*(A_{t-1} - mu) + N(0, dropout_therapist_sd) per therapist",
            "response": "completed and hamd at last session <= response_threshold*baseline_hamd",
            "relapse": "responders; h(t) = h0*exp(relapse_beta*z), z = observed mean patient "
            "alliance (12-item mean, attended sessions) standardised among responders; "
            "censoring: exponential loss + administrative at relapse_followup_weeks",
            "suicide": "cumulative logit P(item3 >= k) = threshold_k + b_hamd*(latent HAM-D - "
            "15) + b_between*(A_T + A_P) + b_within*A_S + N(0, suicide_patient_sd); capped at "
            "hamd",
            "ruptures": "V-shaped dip of depth (rupture_depth_sd x sd_change) at `session`; "
            "repaired: linear return to 0 at session + sessions_to_repair; unrepaired: stays",
        },
        "alliance": {
            "latent_variance": {"therapist": var_u, "patient": var_v, "session": var_w},
            "latent_share": {
                "therapist": round(var_u / total, 4),
                "patient": round(var_v / total, 4),
                "session": round(var_w / total, 4),
            },
            "patient_residual_variance": round(_patient_residual_var(p), 5),
            "telehealth_shift": round(_telehealth_shift(p), 5),
            "item_offsets_patient": offsets.tolist(),
            "item_offsets_therapist": t_offsets.tolist(),
            "observed_score_expected": expected["observed"],
            "latent_expected_incl_trend_and_ruptures": expected["latent_check"],
            "observed_score_method": (
                "Monte Carlo: same generating model (incl. time trend, ruptures, item noise, "
                "rounding, clipping, item non-response; no dropout) on a balanced design of "
                "mc_therapists x mc_patients_per_therapist x n_sessions; 12-item mean score; "
                "balanced nested ANOVA (method of moments) variance components"
            ),
        },
        "mediation": {
            "a_per_sd": a_paths,
            "a_per_t_point": {k: round(v / p["trait_sd"], 5) for k, v in a_paths.items()},
            "b_final_hamd_by_arm": b_final,
            "b_final_hamd_mean": round(b_avg, 4),
            "b_definition": "effect of A_P on HAM-D at the last session (agency = 0): "
            "(beta_P + beta_tP*(n_sessions-1))*arm multiplier",
            "ab_per_sd": {k: round(v * b_avg, 4) for k, v in a_paths.items()},
            "direct_per_sd": {
                "agreeableness": p["direct_agreeableness"],
                "extraversion": p["direct_extraversion"],
                "openness": p["direct_openness"],
            },
        },
        "relapse": rel_info,
        "ruptures": {
            "sd_change": round(_sd_change(p), 5),
            "sd_change_method": "analytic: 2*var_session*(1-ar1) + 2*(item_noise_sd^2 + 1/12)/12",
            "episodes": episodes,
            "n_episodes": len(episodes),
            "n_repaired": int(repaired),
            "n_unrepaired": len(episodes) - int(repaired),
            "n_repair_observed": sum(e["repair_observed"] for e in episodes),
            "n_scheduled_not_reached": len(scheduled) - len(episodes),
        },
    }


def realised_summary(
    sessions: pd.DataFrame, patients: pd.DataFrame, n_sessions: int
) -> dict[str, Any]:
    """Naive descriptive checks computed from the tables alone (what a reader would see)."""
    rand = patients[patients["arm"].notna()]
    n_started = int((rand["status"] != "not_started").sum())
    n_drop = int((rand["status"] == "dropout").sum())
    score = sessions[list(WAI_P)].astype("float64").mean(axis=1)
    s = sessions.assign(score=score)
    per = s.groupby("subject").agg(
        alliance=("score", "mean"), n=("visit", "size"), last=("hamd", "last")
    )
    per = per.join(patients.set_index("subject")["baseline_hamd"])
    per = per[per["n"] >= 4]
    r = float(np.corrcoef(per["alliance"], per["baseline_hamd"] - per["last"])[0, 1])
    resp = patients[patients["relapse"].notna()]
    t_score = sessions[list(WAI_T)].astype("float64").mean(axis=1)
    both = s.assign(t_score=t_score).groupby("subject")[["score", "t_score"]].mean().dropna()
    first = sessions.loc[sessions["visit"] == 1, "hamd"].mean()
    last = sessions.loc[sessions["visit"] == n_sessions, "hamd"].mean()
    items = sessions[list(WAI_P)]
    return {
        "n_assessed": len(patients),
        "n_randomised": len(rand),
        "n_not_started": int((rand["status"] == "not_started").sum()),
        "n_completed": int((rand["status"] == "completed").sum()),
        "n_dropout": n_drop,
        "dropout_rate_of_started": round(n_drop / max(n_started, 1), 4),
        "n_session_rows": len(sessions),
        "mean_hamd_baseline": round(float(rand["baseline_hamd"].mean()), 3),
        "mean_hamd_session_1": round(float(first), 3),
        "mean_hamd_last_session": round(float(last), 3),
        "r_mean_alliance_improvement": round(r, 4),
        "r_definition": "patients with >= 4 sessions: corr(mean 12-item WAI-SR patient score, "
        "baseline_hamd - last hamd)",
        "n_responders": len(resp),
        "relapse_share": round(float(resp["relapse"].mean()), 4) if len(resp) else None,
        "suicide_item_any_share": round(float((sessions["hamd_suicide"] >= 1).mean()), 4),
        "r_patient_therapist_alliance": round(float(both.corr().iloc[0, 1]), 4),
        "wai_p_item_missing_share": round(float(items.isna().to_numpy().mean()), 4),
        "video_share": round(float((rand["modality"] == "video").mean()), 4),
    }
