"""Generating parameters of the simulated trial: defaults, overrides, design checks, streams.

Why here: every other simulate module reads the same parameter dict and random streams; one
place for the defaults keeps `truth.json["params"]` and the overrides check in step.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from alliance.errors import ConfigError

ARMS = ("CBT", "IPT", "IMI-CM", "PLA-CM")
N_ITEMS = 12
WAI_P = tuple(f"wai_p_{k:02d}" for k in range(1, N_ITEMS + 1))
WAI_T = tuple(f"wai_t_{k:02d}" for k in range(1, N_ITEMS + 1))
# Independent random streams: adding a stream at the end never changes the others.
STREAMS = (
    "design", "people", "alliance", "therapist_alliance", "items", "ruptures", "dropout",
    "outcome", "suicide", "dates", "relapse", "item_offsets", "sudden_gains",
    "resistance", "missed", "adherence", "self_report",
    "observer",
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
    "alliance_var_session": 0.09,  # stationary variance of the within process wA (no ruptures)
    "alliance_ar1": 0.40,  # rhoA: wA_t on wA_{t-1}
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
    # observer-rated alliance (simulate.observer): coders rate recordings of sessions 1, 3, 5 and
    # the last planned one on the demo's own 6-item scale. Design values, not estimates: a coder
    # sees both sides (weight 0.55 on the patient's latent alliance), rates a little lower than
    # patients, and adds their own view, so the observed observer total correlates about .5 with
    # the patient's and .4 with the therapist's score of the same session (the .4-.6 band the
    # observer literature reports; patient-therapist is .37 here, Tryon et al. 2007: .36)
    "observer_sessions": [1, 3, 5],
    "observer_last_session": True,
    "observer_recording_missing_p": 0.15,  # recordings lost, inaudible or not consented
    "observer_weight_patient": 0.55,
    "observer_shift": -0.25,
    "observer_coders": 4,
    "observer_coder_sd": 0.12,  # coder severity, one value per coder
    "observer_var_patient": 0.05,  # the coders' own view of the dyad
    "observer_var_session": 0.18,  # the coders' own view of the session
    "observer_item_offset_sd": 0.12,
    "observer_item_noise_sd": 0.55,
    "observer_item_missing_p": 0.01,
    # ruptures (Stiles et al. 2004 style V-shaped drops)
    "rupture_patient_p": 0.165,  # patients scheduled for a rupture (only those reached count)
    # "process": a rupture is one alliance innovation shock and its return is the within
    # process's own (alliance_ar1: 84 % back two sessions later), so the VAR(1) holds and
    # whether an episode looks repaired is for the detector; "linear": scheduled repairs
    # (rupture_repaired_p, rupture_max_repair_sessions) return linearly -- predictable
    # alliance changes a VAR(1) lacks (the RI-CLPM's misspecification scenario, docs/estimands.md)
    "rupture_repair": "process",
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
    # within-person reciprocal process, a VAR(1) (the RI-CLPM's within part), for t >= 2:
    # wA_t = rhoA wA_{t-1} + gammaYA wY_{t-1} + eA_t;  wY_t = rhoY wY_{t-1} + betaAY wA_{t-1} + eY_t
    "sd_residual": 2.5,  # stationary SD of the within process wY (no sudden gains)
    "lag_phi": 0.40,  # rhoY: wY_t on wY_{t-1}
    "beta_lag": -1.2,  # betaAY: HAM-D points per alliance point of wA at the previous session
    "gamma_lag": -0.015,  # gammaYA: alliance points per HAM-D point of wY at the previous session
    # sudden gains (Tang & DeRubeis 1999): one symptom innovation shock per chosen patient
    "sudden_gain_p": 0.15,
    "sudden_gain_size": -7.0,  # HAM-D points, added to eY at the gain session
    "sudden_gain_first_session": 3,  # gain session drawn from first .. n_sessions - 2
    # dropout: logit P(miss session t+1 | attended session t, the last attended)
    "dropout_alpha": -4.3,
    "dropout_beta_alliance": -1.3,  # per alliance point of latent A_t - alliance_mu
    # added slope per latent alliance point among TRD patients (>= 2 failed adequate trials,
    # known before treatment): +0.52 makes their slope -0.78, 60 % of the others'. When earlier
    # adequate treatments have failed, leaving is driven more by the expectation that no
    # treatment will work (demoralisation, side effects, cumulative non-response) and less by
    # how the last session went, so the alliance matters less for dropout; a design value (no
    # trial estimates this interaction precisely), large enough to be recoverable in big trials
    # and leaving the alliance clearly protective in TRD. No TRD main effect on dropout.
    "dropout_beta_alliance_trd": 0.52,
    "dropout_therapist_sd": 0.4,
    # share by which the alliance's effects on symptoms (beta_T, beta_P, beta_tP: which
    # therapist and which patient form a better alliance) shrink among TRD patients: 0.35 makes
    # theirs 65 % of the others'. The science notes' direction: where adequate biological
    # treatments have already failed, part of the non-response is beyond what the relationship
    # can move, so a good alliance buys less improvement; a modest design value (no trial
    # estimates it precisely; the dropout slope's TRD share is 60 %). The within-person path
    # beta_lag is not moderated: the VAR(1) stays common, so the RI-CLPM's paths stay exact.
    # 0 = the trial without it, byte for byte (no random draw depends on it).
    "beta_alliance_trd_attenuation": 0.35,
    # suicidality item (HAM-D item 3), cumulative logit P(item >= k)
    "suicide_thresholds": [-2.4, -4.2, -5.6, -7.0],
    "suicide_b_hamd": 0.12,  # per HAM-D point above 15 (latent total)
    "suicide_b_between": -1.0,  # per point of A_T + A_P
    "suicide_b_within": -0.8,  # per point of wA at the previous session (0 at session 1)
    "suicide_patient_sd": 1.0,
    # response and relapse
    "response_threshold": 0.5,  # final HAM-D <= threshold * baseline_hamd (completers)
    "relapse_p52": 0.32,  # P(relapse by 52 weeks) at mean alliance, exponential baseline
    "relapse_beta": -0.45,  # Cox log-HR per SD of observed mean patient alliance
    # relapse time is clocked from the last acute session (end of treatment)
    "relapse_followup_weeks": 52.0,
    "relapse_lost_p52": 0.10,  # random censoring (lost to follow-up) by 52 weeks
    # treatment resistance (simulate.resistance; these change attended sessions only through
    # who is TRD, whose dropout hazard has its own alliance slope: dropout_beta_alliance_trd,
    # and symptoms through beta_alliance_trd_attenuation)
    # failed adequate trials in this episode, P(0..5) at the mean symptom slope: 42 % with >= 2,
    # as in TRD-enriched MDD samples (about a third of STAR*D patients had not remitted after two
    # steps, Rush et al. 2006; 30-40 % of treated MDD meet >= 2 failures, Zhdanava et al. 2021)
    "trd_failed_probs": [0.30, 0.28, 0.22, 0.11, 0.06, 0.03],
    "trd_slope_loading": 0.5,  # cumulative-logit loading on the patient's standardised slope
    "trd_stage_step_p": 0.5,  # Thase-Rush: each failure beyond 2 adds a stage with this chance
    # episode duration: median ~8 months at entry (chronic episodes common in TRD samples;
    # median episode 3-6 months in the community, Spijker et al. 2002), longer per failure
    "episode_months_median": 8.0,
    "episode_months_per_failure": 0.25,  # log months per failed trial
    "episode_months_log_sd": 0.7,
    # missed appointments: logit P(slot missed | last attended session t) = alpha + beta (A_t -
    # mu); ~12 % of scheduled outpatient psychiatry appointments are missed (Mitchell & Selmes
    # 2007: 12-20 %); a weaker alliance at the last session, more misses (lagged effect)
    "missed_alpha": -2.0,
    "missed_beta_alliance": -0.8,  # per latent alliance point of the last attended session
    "missed_max_run": 3,
    "missed_cancelled_share": 0.45,  # of missed slots before the last attended: cancellations
    # medication adherence (pill arms): logit P(dose taken) = alpha + beta (A_{t-1} - mu) +
    # patient effect; ~85 % of doses taken (pill counts in antidepressant trials; mean
    # non-adherence ~25 % across conditions, DiMatteo 2004)
    "adherence_alpha": 1.73,  # logit(0.85)
    "adherence_beta_alliance": 0.7,  # per latent alliance point of the previous session
    "adherence_patient_sd": 1.0,
    # self-report (PHQ-9-like, 0-27) beside HAM-D: PHQ ~ 0.65 x HAM-D (HAM-D 20 ~ PHQ-9 14,
    # Furukawa et al. 2019's crosswalk); weaker alliance at the last session -> under-reporting
    "phq_b0": 1.0,
    "phq_per_hamd": 0.65,
    "phq_beta_alliance": 1.5,  # PHQ points per latent alliance point of the previous session
    "phq_patient_sd": 1.5,
    "phq_noise_sd": 2.0,
    # Monte-Carlo size for the expected observed variance shares
    "mc_therapists": 600,
    "mc_patients_per_therapist": 12,
}


def resolve_params(overrides: dict[str, Any]) -> dict[str, Any]:
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


def check_design(n_patients: int, n_therapists: int, n_sessions: int) -> None:
    """Raise ConfigError for a design the simulator cannot build."""
    if n_therapists < 4:
        raise ConfigError("n_therapists must be >= 4 (one per treatment type at least)")
    if n_patients < n_therapists:
        raise ConfigError("n_patients must be >= n_therapists")
    if not 4 <= n_sessions <= 52:
        raise ConfigError("n_sessions must be between 4 and 52")


def stream(seed: int, name: str) -> np.random.Generator:
    """The random stream `name` of `seed` (one of STREAMS)."""
    return np.random.default_rng([seed, STREAMS.index(name)])


def streams(seed: int) -> dict[str, np.random.Generator]:
    """Every random stream of `seed`, by name."""
    return {name: stream(seed, name) for name in STREAMS}
