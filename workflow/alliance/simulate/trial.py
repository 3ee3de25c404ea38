"""Simulate a depression-treatment trial whose alliance–outcome structure is known.

Why: every analysis in the pipeline needs data with a known generating truth, so tests can
check that estimates point where they should. The design follows the NIMH TDCRP (CBT, IPT,
imipramine + clinical management, placebo + clinical management; psychotherapists deliver
CBT or IPT, pharmacotherapists deliver both pill arms). Sessions are nested in patients,
patients in therapists, therapists in sites. Every number used is returned in `truth`.

This module runs the stages and builds the two tables: parameters and streams in `params`,
therapists and people in `design`, the within-person alliance–symptom VAR(1) with ruptures
and sudden gains in `process`, the alliance decomposition and items in `alliance`, dropout and
outcomes in `outcomes`, `truth.json` in `truth` (its `estimands` list in `estimands`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from alliance.simulate.alliance import alliance_between, observe_alliance, row_mean, rupture_dips
from alliance.simulate.design import assessed_people, trial_dates, trial_design
from alliance.simulate.estimands import estimands
from alliance.simulate.observer import OBSERVER_ITEMS, observer_items, observer_truth
from alliance.simulate.outcomes import (
    attendance,
    latent_hamd,
    outcome_draws,
    relapse_after_response,
    suicide_item,
)
from alliance.simulate.params import WAI_P, WAI_T, check_design, resolve_params, streams
from alliance.simulate.process import sudden_gains, within_state
from alliance.simulate.resistance import (
    TRD_MIN_FAILED,
    adherence_counts,
    missed_frame,
    missed_slots,
    prior_resistance,
    realised_rates,
    resistance_truth,
    self_report,
)
from alliance.simulate.truth import (
    generating_truth,
    reached_episodes,
    reached_gains,
    realised_summary,
)

# Columns of the two tables, in order.
SESSION_COLUMNS = (
    "subject", "visit", "visit_date", "hamd", "hamd_suicide", *WAI_P, *WAI_T,
    "pills_prescribed", "pills_taken", "phq9_total", *OBSERVER_ITEMS,
)  # fmt: skip
PATIENT_COLUMNS = (
    "subject", "therapist", "site", "arm", "modality", "age", "sex", "consent_date",
    "baseline_hamd", "agreeableness", "extraversion", "openness", "agency", "status",
    "relapse_weeks", "relapse", "n_failed_trials", "thase_rush_stage", "episode_months",
)  # fmt: skip


@dataclass
class SimulatedTrial:
    """A simulated trial: long session table, patient table and the generating truth.

    `sessions` holds attended sessions only; `missed` one row per missed scheduled slot
    (subject, visit booked as, visit_date, attendance): the exports merge the two
    (`alliance.simulate.resistance.with_schedule`, or the count form in a wide table).

    `latent` holds the generating arrays (patient x session, randomised patients in design
    order): a_true, w_a, w_y, hamd_latent, attended, ...; kept out of truth.json, for tests.
    """

    sessions: pd.DataFrame
    patients: pd.DataFrame
    truth: dict[str, Any]
    latent: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    missed: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(
            columns=["subject", "visit", "visit_date", "attendance"]
        )
    )


def simulate_trial(
    n_patients: int = 480,
    n_therapists: int = 40,
    n_sessions: int = 16,
    seed: int = 20261127,
    **overrides: Any,
) -> SimulatedTrial:
    """Simulate one trial; `n_patients` counts randomised people (screen fails are added).

    `overrides` replace entries of `DEFAULT_PARAMS` (unknown names raise ConfigError).
    """
    check_design(n_patients, n_therapists, n_sessions)
    p = resolve_params(overrides)
    rngs = streams(seed)
    T = n_sessions
    design = trial_design(rngs["design"], p, n_patients, n_therapists)
    people = assessed_people(rngs["people"], p, design, n_patients)
    r_a = rngs["alliance"]
    u_t, a_p = alliance_between(r_a, p, design, people)
    z_a = r_a.normal(0.0, 1.0, (n_patients, T))
    dips, scheduled = rupture_dips(rngs["ruptures"], p, n_patients, T)
    draws = outcome_draws(rngs["outcome"], p, design, n_patients, T)
    # prior failures load on the symptom slope and, through TRD, moderate the dropout hazard and
    # the alliance's symptom effects: drawn before attendance (its own stream, so no other
    # stream's draws move)
    resist = prior_resistance(rngs["resistance"], p, draws["re"][:, 1] / p["sd_patient_slope"])
    trd = resist["failed"] >= TRD_MIN_FAILED
    gain_shocks, gains = sudden_gains(rngs["sudden_gains"], p, n_patients, T)
    within = within_state(p, z_a, draws["z_y"], dips, gain_shocks)
    al = observe_alliance(rngs, p, design, u_t, a_p, within)
    attended, dropout_th = attendance(
        rngs["dropout"], p, design, people["started"], al["a_true"], trd
    )
    hamd_latent = latent_hamd(p, design, people, al, draws, within["w_y"], trd)
    hamd = np.clip(np.rint(hamd_latent), 0, 52).astype(int)
    suicide = suicide_item(rngs["suicide"], p, hamd_latent, al)
    # item 3 is part of the total; the other 16 items add up to at most 48
    suicide = np.clip(suicide, np.maximum(hamd - 48, 0), hamd)

    completed = attended[:, -1]
    started = people["started"]
    status = np.where(~started, "not_started", np.where(completed, "completed", "dropout"))
    base = people["baseline"][:n_patients]
    responder = completed & (hamd[:, -1] <= p["response_threshold"] * base)
    mean_alliance = row_mean(np.where(attended, row_mean(al["wai_p"]), np.nan))
    relapse_weeks, relapse, rel_info = relapse_after_response(
        rngs["relapse"], p, responder, mean_alliance
    )

    start, consent_day, visit_day = trial_dates(rngs["dates"], p, n_patients, people, T)
    subject = people["subject"]
    slots = missed_slots(rngs["missed"], p, attended, al["a_true"], visit_day)
    first_gap = visit_day[:, 0] - consent_day[:n_patients]
    pills = adherence_counts(
        rngs["adherence"], p, design["arm"], attended, al["a_true"], visit_day, first_gap
    )
    phq = self_report(rngs["self_report"], p, hamd_latent, al["a_true"])
    obs = observer_items(rngs["observer"], p, al["a_true"], al["t_true"])
    sessions = _sessions_frame(
        subject, attended, _iso_grid(start, visit_day), hamd, suicide, al["wai_p"], al["wai_t"],
        (*pills, phq), obs["items"],
    )  # fmt: skip
    missed = missed_frame(list(subject), slots, lambda days: _iso(start, days))
    patients = _patients_frame(
        p, design, people, _iso(start, consent_day), status, relapse_weeks, relapse, resist
    )
    episodes = reached_episodes(scheduled, attended, subject)
    gain_records = reached_gains(gains, attended, subject)
    truth = {
        "seed": seed,
        "n_patients_randomised": n_patients,
        "n_therapists": n_therapists,
        "n_sessions": n_sessions,
        **generating_truth(p, seed, T, design, al, episodes, len(scheduled), rel_info),
        "sudden_gains": {
            "episodes": gain_records,
            "n_episodes": len(gain_records),
            "n_scheduled_not_reached": len(gains) - len(gain_records),
        },
        "realised": realised_summary(sessions, patients, n_sessions),
        "treatment_resistance": resistance_truth(p)
        | {"realised": realised_rates(sessions, missed, resist["failed"], status)},
        "observer": observer_truth(p, T, obs),
    }
    truth["estimands"] = estimands(truth)
    latent = {
        "subject": list(subject[:n_patients]),
        "a_true": al["a_true"],
        "a_t": al["a_t"],
        "a_p": al["a_p"],
        "w_a": within["w_a"],
        "w_y": within["w_y"],
        "rupture_a": within["rupture_a"],
        "shock_a": within["shock_a"],
        "gain_shocks": gain_shocks,
        "hamd_latent": hamd_latent,
        "attended": attended,
        "dropout_therapist": dropout_th,
        "z_a": z_a,
        "z_y": draws["z_y"],
        "prior_failed_trials": resist["failed"],
        "t_true": al["t_true"],
        "observer_latent": obs["latent"],
    }
    return SimulatedTrial(
        sessions=sessions, patients=patients, truth=truth, latent=latent, missed=missed
    )


def _iso(start: dt.date, days: np.ndarray) -> list[str]:
    return [(start + dt.timedelta(days=int(k))).isoformat() for k in days]


def _iso_grid(start: dt.date, days: np.ndarray) -> np.ndarray:
    return np.array(_iso(start, days.ravel()), dtype=object).reshape(days.shape)


def _sessions_frame(
    subject, attended, visit_date, hamd, suicide, wai_p, wai_t, resistance, observer
) -> pd.DataFrame:
    """Long table: one row per attended session, sorted by subject and visit.

    `resistance`: (pills prescribed, pills taken, PHQ-9 total), patient x session arrays;
    `observer`: the observer items, patient x session x item (`simulate.observer`)."""
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
    for name, values in zip(("pills_prescribed", "pills_taken", "phq9_total"), resistance,
                            strict=True):  # fmt: skip
        cols[name] = pd.array(values[i, t], dtype="Float64").astype("Int64")
    for k, name in enumerate(OBSERVER_ITEMS):
        cols[name] = pd.array(observer[i, t, k], dtype="Float64").astype("Int64")
    frame = pd.DataFrame(cols)
    return frame.sort_values(["subject", "visit"], ignore_index=True)


def _patients_frame(p, design, people, consent_date, status, relapse_weeks, relapse, resist):
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
            "n_failed_trials": pd.array([*resist["failed"], *none], dtype="Int64"),
            "thase_rush_stage": pd.array([*resist["stage"], *none], dtype="Int64"),
            "episode_months": np.concatenate([resist["months"], np.full(n_fail, np.nan)]),
        }
    )
    return frame.sort_values("subject", ignore_index=True)
