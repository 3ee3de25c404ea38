"""Treatment resistance in the simulated trial: prior failures, staging, missed appointments,
medication adherence and self-reported symptoms, each with known generating values.

Why: issue #14's analyses (alliance and biological or behavioural resistance) need data whose
truth is known. Everything here is drawn from its own random streams (`resistance`, `missed`,
`adherence`, `self_report`). Prior failures are drawn before attendance because TRD moderates
the dropout hazard (`dropout_beta_alliance_trd`, simulate.outcomes.attendance) and the
alliance's between-level symptom effects (`beta_alliance_trd_attenuation`,
simulate.outcomes.latent_hamd); otherwise this module only ADDS to the trial: the dates and
every score the rest of the simulator makes are untouched (missed appointments are extra
scheduled slots between attended sessions, never a replacement of one).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

DRUG_ARMS = ("IMI-CM", "PLA-CM")  # arms taking pills (active or placebo); CBT and IPT take none
STAGE_MAX = 5  # Thase-Rush stages 0-5
TRD_MIN_FAILED = 2  # TRD = at least this many failed adequate trials in this episode


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def prior_resistance(
    rng: np.random.Generator, p: dict[str, Any], slope_z: np.ndarray
) -> dict[str, np.ndarray]:
    """Per randomised patient: failed adequate trials, Thase-Rush stage, episode months.

    Failures: cumulative logit with cut-points from `trd_failed_probs` at slope_z = 0 and a
    loading `trd_slope_loading` on the patient's standardised symptom-slope effect (more failed
    trials among patients who improve less). Stage: 0 / I for 0 / 1 failures, II for 2, and
    one more stage per further failure with probability `trd_stage_step_p` (III: a TCA failed,
    IV: an MAOI, V: ECT). Episode months: log-normal, longer with more failures.
    """
    n = len(slope_z)
    probs = np.asarray(p["trd_failed_probs"], dtype=float)
    cuts = np.log(np.cumsum(probs)[:-1] / (1 - np.cumsum(probs)[:-1]))
    eta = p["trd_slope_loading"] * slope_z
    u = rng.random(n)
    failed = np.sum(u[:, None] > _expit(cuts[None, :] - eta[:, None]), axis=1).astype(int)
    extra = rng.binomial(np.clip(failed - 2, 0, 3), p["trd_stage_step_p"])
    stage = np.minimum(np.minimum(failed, 2) + extra, STAGE_MAX)
    log_m = (
        np.log(p["episode_months_median"])
        + p["episode_months_per_failure"] * failed
        + rng.normal(0.0, p["episode_months_log_sd"], n)
    )
    months = np.round(np.exp(log_m), 1)
    return {"failed": failed, "stage": stage, "months": months}


def missed_slots(
    rng: np.random.Generator,
    p: dict[str, Any],
    attended: np.ndarray,
    a_true: np.ndarray,
    visit_day: np.ndarray,
) -> list[tuple[int, int, int, str]]:
    """Missed scheduled sessions as (patient, visit, day, status).

    After attended session t (the last attended one), each further scheduled slot is missed
    with logit P = `missed_alpha` + `missed_beta_alliance` * (A_t - alliance_mu): a run of
    misses until the next attended session, at most `missed_max_run` and fewer than the days
    between the two visits (each slot gets its own day). A dropout no-shows 1 + Binomial(2, .5)
    times after the last attended session, a week apart. A missed slot carries the number of
    the next attended visit (it was booked as that session); `missed_cancelled_share` of the
    misses before the last attended session are cancellations, the rest no-shows.
    """
    n, T = attended.shape
    max_run = int(p["missed_max_run"])
    u = rng.random((n, T, max_run))
    kind = rng.random((n, T, max_run))
    tail = rng.binomial(2, 0.5, n)
    n_att = attended.sum(axis=1).astype(int)
    pr = _expit(p["missed_alpha"] + p["missed_beta_alliance"] * (a_true - p["alliance_mu"]))
    # a run of misses after attended session t: leading draws below pr, capped by the gap
    run = np.cumprod(u < pr[..., None], axis=2).sum(axis=2)
    gap = np.zeros((n, T), dtype=int)
    gap[:, :-1] = np.diff(visit_day, axis=1)
    t_idx = np.arange(T)[None, :]
    between = t_idx + 1 < n_att[:, None]  # not the last attended session
    k = np.where(between, np.minimum(run, np.minimum(max_run, gap - 1)), 0).clip(min=0)
    last = (t_idx == n_att[:, None] - 1) & (n_att < T)[:, None]  # a dropout's last session
    k = np.where(last, 1 + tail[:, None], k)
    out: list[tuple[int, int, int, str]] = []
    for i, t in zip(*np.nonzero(k), strict=True):  # row-major: patient, then session order
        for j in range(int(k[i, t])):
            if last[i, t]:  # no-shows before the case is closed, a week apart
                out.append((int(i), int(t) + 2, int(visit_day[i, t] + 7 * (j + 1)), "no_show"))
                continue
            day = int(visit_day[i, t] + round((j + 1) * gap[i, t] / (k[i, t] + 1)))
            status = "cancelled" if kind[i, t, j] < p["missed_cancelled_share"] else "no_show"
            out.append((int(i), int(t) + 2, day, status))
    return out


def adherence_counts(
    rng: np.random.Generator,
    p: dict[str, Any],
    arm: np.ndarray,
    attended: np.ndarray,
    a_true: np.ndarray,
    visit_day: np.ndarray,
    first_gap: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Doses prescribed and taken since the previous attended session (pill arms only).

    One dose a day: prescribed = days since the previous attended session (the first session:
    since randomisation). Taken ~ Binomial(prescribed, q) with logit q = `adherence_alpha` +
    `adherence_beta_alliance` * (A_{t-1} - alliance_mu) (0 at session 1) + a patient effect
    N(0, `adherence_patient_sd`): a better alliance at the last session, better adherence.
    """
    n, T = attended.shape
    pills = np.isin(arm, DRUG_ARMS)
    gaps = np.column_stack([first_gap, np.diff(visit_day, axis=1)]).astype(int)
    re = rng.normal(0.0, p["adherence_patient_sd"], n)
    lag = np.column_stack([np.full(n, p["alliance_mu"]), a_true[:, :-1]])
    q = _expit(p["adherence_alpha"] + p["adherence_beta_alliance"] * (lag - p["alliance_mu"])
               + re[:, None])  # fmt: skip
    taken = rng.binomial(gaps, q).astype(float)
    keep = pills[:, None] & attended
    return np.where(keep, gaps, np.nan), np.where(keep, taken, np.nan)


def self_report(
    rng: np.random.Generator, p: dict[str, Any], hamd_latent: np.ndarray, a_true: np.ndarray
) -> np.ndarray:
    """A PHQ-9-like self-report total (0-27) at every session.

    PHQ = phq_b0 + phq_per_hamd * latent HAM-D + phq_beta_alliance * (A_{t-1} - alliance_mu)
    (0 at session 1) + patient bias N(0, phq_patient_sd) + N(0, phq_noise_sd), rounded and
    clipped: with a weaker alliance at the last session the patient reports fewer symptoms than
    the clinician rates (under-reporting).
    """
    n, T = hamd_latent.shape
    bias = rng.normal(0.0, p["phq_patient_sd"], n)
    noise = rng.normal(0.0, p["phq_noise_sd"], (n, T))
    lag = np.column_stack([np.zeros(n), a_true[:, :-1] - p["alliance_mu"]])
    value = (
        p["phq_b0"] + p["phq_per_hamd"] * hamd_latent + p["phq_beta_alliance"] * lag
        + bias[:, None] + noise
    )  # fmt: skip
    return np.clip(np.rint(value), 0, 27)


def missed_frame(
    subject: list[str], slots: list[tuple[int, int, int, str]], iso: Any
) -> pd.DataFrame:
    """One row per missed slot: subject, visit (the session it was booked as), date, status."""
    cols = ("subject", "visit", "visit_date", "attendance")
    if not slots:
        return pd.DataFrame(columns=list(cols))
    i, visit, day, status = (list(x) for x in zip(*slots, strict=True))
    return pd.DataFrame(
        {
            "subject": pd.array([subject[k] for k in i], dtype="str"),
            "visit": np.asarray(visit, dtype="int64"),
            "visit_date": pd.array(iso(np.asarray(day)), dtype="str"),
            "attendance": pd.array(status, dtype="str"),
        }
    )


def with_schedule(sessions: pd.DataFrame, missed: pd.DataFrame) -> pd.DataFrame:
    """The session table as a schedule: attended rows unchanged (`attendance` = attended) plus
    one row per missed slot, sorted by subject, visit, missed before attended, date."""
    att = sessions.assign(attendance=pd.array(["attended"] * len(sessions), dtype="str"))
    out = pd.concat([att, missed], ignore_index=True)
    out["_att"] = out["attendance"].eq("attended")
    out = out.sort_values(["subject", "visit", "_att", "visit_date"], ignore_index=True)
    # whole-number columns stay whole (nullable: a missed row has no score)
    kinds = {c: "Int64" if att[c].dtype == "int64" else att[c].dtype for c in att.columns}
    return out.drop(columns="_att").astype(kinds)


def missed_counts(sessions: pd.DataFrame, missed: pd.DataFrame) -> pd.Series:
    """Per attended row: slots missed just before it (booked as its visit), the count form."""
    n = missed.groupby(["subject", "visit"]).size()
    key = pd.MultiIndex.from_arrays([sessions["subject"], sessions["visit"]])
    return pd.Series(n.reindex(key).fillna(0).to_numpy(dtype="int64"), index=sessions.index)


def resistance_truth(p: dict[str, Any]) -> dict[str, Any]:
    """truth.json's `treatment_resistance` block: the generating values of this module."""
    keys = [k for k in p if k.startswith(("trd_", "episode_months_", "missed_", "adherence_",
                                          "phq_"))]  # fmt: skip
    return {
        "params": {k: p[k] for k in keys},
        "trd_definition": f"prior_failed_trials >= {TRD_MIN_FAILED}",
        "staging_scale": "thase_rush",
        "staging_range": [0, STAGE_MAX],
        "self_report_range": [0, 27],
        "pill_arms": list(DRUG_ARMS),
    }


def realised_rates(
    sessions: pd.DataFrame, missed: pd.DataFrame, failed: np.ndarray, status: np.ndarray
) -> dict[str, Any]:
    """What a reader of the tables would see: TRD share, dropout by TRD, missed slots,
    adherence, discrepancy. `failed` and `status` per randomised patient, in the same order."""
    taken, given = sessions["pills_taken"].sum(), sessions["pills_prescribed"].sum()
    pomp = 100 * sessions["phq9_total"] / 27 - 100 * sessions["hamd"] / 52
    last = sessions.groupby("subject")["visit"].max()
    tail = missed["visit"].to_numpy() > last.reindex(missed["subject"]).to_numpy()
    before = len(missed) - int(tail.sum())
    return {
        "trd_share_of_randomised": round(float(np.mean(failed >= TRD_MIN_FAILED)), 4),
        "dropout_rate_of_started_by_trd": _dropout_rates_by_trd(failed, status),
        "trd_share_of_dropouts": _share(failed[status == "dropout"] >= TRD_MIN_FAILED),
        "n_missed_slots": len(missed),
        "n_missed_after_last_attended": int(tail.sum()),
        "missed_share_up_to_last_attended": round(before / (before + len(sessions)), 4),
        "cancelled_share_of_missed": round(float(missed["attendance"].eq("cancelled").mean()), 4),
        "adherence_doses_taken_share": round(float(taken / given), 4) if given else None,
        "report_discrepancy_mean_pomp": round(float(pomp.mean()), 3),
    }


def _share(flags: np.ndarray) -> float | None:
    """Share of True among `flags` (6 decimals; None when empty)."""
    return round(float(np.mean(flags)), 6) if len(flags) else None


def _dropout_rates_by_trd(failed: np.ndarray, status: np.ndarray) -> dict[str, float | None]:
    """Share of the started patients who dropped out, among TRD and non-TRD patients."""
    started = status != "not_started"
    trd = failed >= TRD_MIN_FAILED
    return {
        name: _share(status[started & group] == "dropout")
        for name, group in (("trd", trd), ("not_trd", ~trd))
    }
