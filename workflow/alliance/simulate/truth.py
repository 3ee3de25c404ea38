"""The generating truth of a simulated trial (`truth.json`) and what its tables show naively.

Why: tests and the recovery study compare estimates with these numbers; `realised_summary`
adds what a reader computes from the two tables alone, so both can be read side by side.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

import numpy as np
import pandas as pd

from alliance.simulate.alliance import (
    item_offsets,
    item_responses,
    patient_level,
    patient_residual_var,
    row_mean,
    rupture_dips,
    sd_change,
    telehealth_shift,
)
from alliance.simulate.design import therapist_rating_sessions, trait_z
from alliance.simulate.params import ARMS, WAI_P, WAI_T, stream
from alliance.simulate.process import sudden_gains, within_state, within_system


@functools.lru_cache(maxsize=8)
def _expected_shares_cached(params_json: str, n_sessions: int, seed: int) -> dict[str, Any]:
    """Expected observed and latent variance shares: the alliance model on a balanced design.

    Cached: the Monte Carlo is the slow part and repeats for equal parameters and seed.
    """
    p = json.loads(params_json)
    rng = np.random.default_rng([seed, 999])
    n_j, n_i = p["mc_therapists"], p["mc_patients_per_therapist"]
    n = n_j * n_i
    u = np.repeat(rng.normal(0.0, math.sqrt(p["alliance_var_therapist"]), n_j), n_i)
    video = (rng.random(n) < p["video_share"]).astype(float)
    a_p = patient_level(rng, p, trait_z(rng, n), video)
    z_a = rng.normal(0.0, 1.0, (n, n_sessions))
    z_y = rng.normal(0.0, 1.0, (n, n_sessions))
    dips, _ = rupture_dips(rng, p, n, n_sessions)
    gains, _ = sudden_gains(rng, p, n, n_sessions)
    w = within_state(p, z_a, z_y, dips, gains)["w_a"]
    trend = p["alliance_growth"] * np.arange(n_sessions)
    latent = p["alliance_mu"] + u[:, None] + a_p[:, None] + trend + w
    offsets = item_offsets(stream(seed, "item_offsets"), p["item_offset_sd"])
    items = item_responses(rng, latent, offsets, p["item_noise_sd"], p["item_missing_p"])
    score = row_mean(items)
    observed = _nested_anova(score.reshape(n_j, n_i, n_sessions))
    error_var = float(np.nanvar(score - latent))
    true_score = expected_score(latent, offsets, p["item_noise_sd"])
    return {
        "observed": observed,
        "latent_check": _nested_anova(latent.reshape(n_j, n_i, n_sessions)),
        "reliability": {
            "error_var": round(error_var, 5),
            "session_score": round(1 - error_var / float(np.nanvar(score)), 4),
            "within_patient": round(1 - error_var / observed["var_session"], 4),
            "scale_total": round(_slope(true_score, latent), 4),
            "scale_within": round(_slope(_demean(true_score), _demean(w)), 4),
        },
    }


def expected_score(latent: np.ndarray, offsets: np.ndarray, noise_sd: float) -> np.ndarray:
    """True score E[observed item mean | latent]: items are round(clip(L + o + e, 1, 5)).

    E[item] = 1 + sum over k = 1..4 of P(L + o + e >= k + 0.5). Item non-response is at random,
    so it does not change the expectation. The true score is a bent (ceiling and floor) function
    of the latent alliance: the models see the alliance on this observed scale.
    """
    from scipy.stats import norm

    z = latent[..., None] + offsets
    cuts = np.arange(1, 5) + 0.5
    probs = norm.sf((cuts - z[..., None]) / noise_sd)  # P(latent + o + e >= cut)
    return 1.0 + probs.sum(axis=-1).mean(axis=-1)


def _demean(x: np.ndarray) -> np.ndarray:
    return x - x.mean(axis=1, keepdims=True)


def _slope(y: np.ndarray, x: np.ndarray) -> float:
    """OLS slope of y on x over all cells (both centred)."""
    xc, yc = x - x.mean(), y - y.mean()
    return float((xc * yc).sum() / (xc * xc).sum())


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


def reached_episodes(
    scheduled: list[dict[str, Any]], attended: np.ndarray, subject: list[str]
) -> list[dict[str, Any]]:
    """Rupture episodes whose drop session was attended (the others are never observed)."""
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


def reached_gains(
    scheduled: list[dict[str, Any]], attended: np.ndarray, subject: list[str]
) -> list[dict[str, Any]]:
    """Sudden gains whose session was attended: subject, session, size (HAM-D points)."""
    gains = [
        {"subject": subject[g["index"]], "session": g["session"], "size": g["size"]}
        for g in scheduled
        if attended[g["index"], g["session"] - 1]
    ]
    return sorted(gains, key=lambda g: (g["subject"], g["session"]))


DEFINITIONS = {
    "alliance": "A_tij = mu + A_T_j + A_P_ij + alliance_growth*(visit-1) + wA_tij (latent, 1-5)",
    "A_T": "therapist deviation u_j",
    "A_P": "patient deviation: trait a-paths + centred telehealth shift + residual",
    "wA": "within-person alliance state of the VAR(1) (within_process), rupture shocks included",
    "items": "round(clip(A + item_offset + N(0, item_noise_sd), 1, 5)); MCAR NaN",
    "hamd": (
        "Y_ti = level_i + slope_i*(visit-1) + wY_ti, rounded, clipped 0-52; level_i = b0 + "
        "hamd_base*(baseline - centre) + beta_T*A_T + beta_P*m_i*A_P + direct trait effects + "
        "u0_i + v_j; slope_i = hamd_time + arm_time[arm] + u1_i + beta_tP*m_i*A_P; m_i = "
        "beta_P_arm_multiplier[arm]*(1 - agency_moderation*agency); baseline_hamd is the "
        "pre-treatment screening score, distinct from session 1"
    ),
    "within_process": (
        "VAR(1), t >= 2: wA_t = alliance_ar1*wA_{t-1} + gamma_lag*wY_{t-1} + eA_t; wY_t = "
        "lag_phi*wY_{t-1} + beta_lag*wA_{t-1} + eY_t; eA, eY independent normal with the "
        "variances in within_process.innovation_var (stationary var(wA) = alliance_var_session, "
        "var(wY) = sd_residual^2); session 1 drawn from the stationary distribution; no "
        "same-session (contemporaneous) effect in either direction"
    ),
    "dropout": "attended[t+1] = attended[t] and not leaving; logit P(miss session t+1 | "
    "attended session t) = dropout_alpha + (dropout_beta_alliance + dropout_beta_alliance_trd*"
    "TRD)*(latent A_t - mu) + N(0, dropout_therapist_sd) per therapist; A_t is the alliance of "
    "the last attended session; TRD (>= 2 prior failures, known before treatment) moderates the "
    "alliance slope only (no TRD main effect)",
    "response": "completed and hamd at last session <= response_threshold*baseline_hamd",
    "relapse": "responders; time 0 = the last acute session (end of treatment); h(t) = "
    "h0*exp(relapse_beta*z), z = observed mean patient alliance (12-item mean, attended "
    "sessions) standardised among responders (relapse.alliance_centre, alliance_scale, ddof 1);"
    " censoring: exponential loss + administrative at relapse_followup_weeks",
    "suicide": "cumulative logit P(item3 >= k) = threshold_k + b_hamd*(latent HAM-D_t - 15) + "
    "b_between*(A_T + A_P) + b_within*wA_{t-1} (0 at session 1) + N(0, suicide_patient_sd); "
    "capped at hamd",
    "ruptures": "innovation shocks of wA: a drop of depth (rupture_depth_sd x sd_change) at "
    "`session` that decays at alliance_ar1 (-depth*rho^r, r sessions later); rupture_repair = "
    "process (default): that is the whole episode (the VAR(1) holds; repaired / "
    "sessions_to_repair are null: the detector decides what looks repaired); linear: a "
    "scheduled repaired episode instead returns linearly, -depth*(1 - r/k), back at the "
    "pre-drop level at session + sessions_to_repair (k), through repair-session shocks that "
    "are predictable from the past; symptoms respond through beta_lag; the therapist sees "
    "t_rupture_visibility of the rupture-driven part",
    "sudden_gains": "with probability sudden_gain_p per patient one innovation shock of "
    "sudden_gain_size HAM-D points in eY at a session in sudden_gain_first_session..n_sessions-2 "
    "(Tang & DeRubeis 1999); transient (decays at lag_phi); the next alliance rises through "
    "gamma_lag",
    "prior_failed_trials": "n_failed_trials (0-5): cumulative logit with cut-points from "
    "trd_failed_probs and loading trd_slope_loading on the patient's standardised symptom-slope "
    "effect u1_i/sd_patient_slope (more failures, less improvement); TRD = >= 2; TRD moderates "
    "the dropout hazard's alliance slope (dropout_beta_alliance_trd); the symptom process has "
    "no TRD moderation (only the slope loading)",
    "staging": "thase_rush_stage = min(failed, 2) + Binomial(min(failed - 2, 3), "
    "trd_stage_step_p) for failed > 2, capped at 5: stage >= 2 exactly when TRD",
    "episode_months": "exp(log(episode_months_median) + episode_months_per_failure*failed + "
    "N(0, episode_months_log_sd)), 1 decimal",
    "missed": "after attended session t (the last attended), each scheduled slot is missed with "
    "logit P = missed_alpha + missed_beta_alliance*(latent A_t - mu), a run until the next "
    "attended session (at most missed_max_run, fewer than the days between the visits); a "
    "missed slot carries the visit number of the next attended session; "
    "missed_cancelled_share cancelled, else no_show; a dropout no-shows 1 + Binomial(2, .5) "
    "times a week apart after the last attended session. Attended sessions are unchanged",
    "adherence": "IMI-CM and PLA-CM only: pills_prescribed = days since the previous attended "
    "session (session 1: since consent), one dose a day; pills_taken ~ Binomial(prescribed, q), "
    "logit q = adherence_alpha + adherence_beta_alliance*(latent A_{t-1} - mu) (0 at session 1) "
    "+ N(0, adherence_patient_sd) per patient",
    "self_report": "phq9_total = round(clip(phq_b0 + phq_per_hamd*latent HAM-D_t + "
    "phq_beta_alliance*(latent A_{t-1} - mu) (0 at session 1) + N(0, phq_patient_sd) per "
    "patient + N(0, phq_noise_sd), 0, 27)): a weaker alliance last session, fewer symptoms "
    "reported than rated (self-clinician discrepancy in POMP: 100*phq/27 - 100*hamd/52)",
}


def generating_truth(
    p: dict[str, Any],
    seed: int,
    T: int,
    design: dict[str, Any],
    al: dict[str, Any],
    episodes: list[dict[str, Any]],
    n_scheduled: int,
    rel_info: dict[str, Any],
) -> dict[str, Any]:
    """Every generating parameter plus derived truths (shares, within process, ruptures, ...)."""
    d, offsets, t_offsets = design, al["offsets"], al["t_offsets"]
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
    linear = p["rupture_repair"] == "linear"
    repaired = sum(bool(e["repaired"]) for e in episodes) if linear else None
    system = within_system(p)
    return {
        "params": p,
        "design": {
            "arms": list(ARMS),
            "arm_counts": {a: int((d["arm"] == a).sum()) for a in ARMS},
            "therapists": [
                {"therapist": tid, "site": s, "type": ty}
                for tid, s, ty in zip(d["t_id"], d["t_site"], d["t_type"], strict=True)
            ],
            "therapist_rating_sessions": therapist_rating_sessions(T),
            "therapist_item_columns": list(WAI_T),
            "patient_item_columns": list(WAI_P),
            "time_variable": "t = visit - 1",
        },
        "definitions": dict(DEFINITIONS),
        "within_process": {
            "order": ["wA", "wY"],
            "phi": np.round(system["phi"], 6).tolist(),
            "innovation_var": np.round(system["innovation_var"], 6).tolist(),
            "stationary_cov": np.round(system["stationary_cov"], 6).tolist(),
            "eigenvalues": np.round(system["eigenvalues"], 6).tolist(),
            "spectral_radius": round(system["spectral_radius"], 6),
            "stationary": True,
        },
        "alliance": {
            "latent_variance": {"therapist": var_u, "patient": var_v, "session": var_w},
            "latent_share": {
                "therapist": round(var_u / total, 4),
                "patient": round(var_v / total, 4),
                "session": round(var_w / total, 4),
            },
            "patient_residual_variance": round(patient_residual_var(p), 5),
            "telehealth_shift": round(telehealth_shift(p), 5),
            "item_offsets_patient": offsets.tolist(),
            "item_offsets_therapist": t_offsets.tolist(),
            "observed_score_expected": expected["observed"],
            "latent_expected_incl_trend_and_ruptures": expected["latent_check"],
            "observed_score_reliability": expected["reliability"],
            "observed_score_method": (
                "Monte Carlo: same generating model (incl. time trend, within VAR(1), ruptures, "
                "sudden gains, item noise, rounding, clipping, item non-response; no dropout) on "
                "a balanced design of mc_therapists x mc_patients_per_therapist x n_sessions; "
                "12-item mean score; balanced nested ANOVA (method of moments) variance "
                "components; reliability = 1 - var(score - latent) / var (all or within-patient); "
                "scale_total / scale_within = slope of the true score E[score | latent] on the "
                "latent alliance (all cells / within patient): observed points per latent point, "
                "below 1 because items are rounded and clipped at 1 and 5"
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
            "sd_change": round(sd_change(p), 5),
            "sd_change_method": "analytic: 2*(Sigma_AA - Cov(wA_t, wA_{t-1})) of the within "
            "VAR(1) + 2*(item_noise_sd^2 + 1/12)/12",
            "episodes": episodes,
            "n_episodes": len(episodes),
            "repair": p["rupture_repair"],
            "n_repaired": repaired,
            "n_unrepaired": None if repaired is None else len(episodes) - repaired,
            "n_repair_observed": sum(e["repair_observed"] for e in episodes) if linear else None,
            "n_scheduled_not_reached": n_scheduled - len(episodes),
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
