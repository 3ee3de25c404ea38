"""The trial's design and people: therapists, randomisation, everyone assessed, visit dates.

Why: the TDCRP-like structure (sites, therapist types per arm, screen fails, weekly visits)
comes from its own streams (`design`, `people`, `dates`), so changing the alliance or outcome
model never changes who is in the trial or when they are seen.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from alliance.simulate.params import ARMS


def therapist_rating_sessions(n_sessions: int) -> list[int]:
    """Sessions with a therapist WAI-SR: 1, 2, 3, then every second session (5, 7, ...)."""
    return [s for s in (1, 2, 3) if s <= n_sessions] + list(range(5, n_sessions + 1, 2))


def trait_z(rng: np.random.Generator, n: int) -> np.ndarray:
    """Agreeableness, extraversion, openness per person, standardised (n x 3)."""
    return rng.normal(0.0, 1.0, (n, 3))


def trial_design(
    rng: np.random.Generator, p: dict[str, Any], n_patients: int, n_therapists: int
) -> dict[str, Any]:
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


def assessed_people(
    rng: np.random.Generator, p: dict[str, Any], design: dict[str, Any], n_patients: int
) -> dict[str, Any]:
    """Everyone assessed: randomised people first, then screen fails (no arm/therapist)."""
    n_fail = round(n_patients * p["screen_fail_share"] / (1 - p["screen_fail_share"]))
    n_all = n_patients + n_fail
    fail_sites = list(rng.choice(p["sites"], n_fail))
    site = np.array([design["t_site"][k] for k in design["therapist"]] + fail_sites)
    subject = _subject_ids(rng, list(site), n_all)
    traits_z = trait_z(rng, n_all)
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


def trial_dates(
    rng: np.random.Generator, p: dict[str, Any], n_patients: int, people: dict[str, Any], T: int
) -> tuple[dt.date, np.ndarray, np.ndarray]:
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
