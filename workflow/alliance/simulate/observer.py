"""Observer-rated alliance: coders rate recordings of a subset of sessions on the demo's own scale.

Why: observer is the third alliance perspective (docs/science.md); the pipeline's agreement and
observer models need ratings with a known generating process. No published observer key (VTAS,
VPPS, WAI-O) could be confirmed, so the demo uses its own short scale, `DEMO_OBSERVER_SCALE`
(6 items, 1-5, item 4 negatively worded), which the demo config declares inline
(`alliance.instruments`) and never passes off as a published instrument.

Generating model, on the 1-5 item metric: a coder watching the recording sees both sides of the
dyad, so the latent observer rating is

    O_ti = mu + observer_shift + w (A_ti - mu) + (1 - w) (T_ti - mu - t_alliance_shift)
           + c_k(ti) + d_i + e_ti

with A the patient-rated and T the therapist-rated latent alliance (`alliance.observe_alliance`),
w = observer_weight_patient, c_k the severity of the coder k who rated that recording, d_i the
coder team's own view of the dyad and e_ti the session's own noise. Items add fixed offsets and
noise, are rounded and clipped like the WAI-SR items. Everything is drawn from the `observer`
stream, so no other stream and no other column of the demo moves.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from alliance.simulate.alliance import item_responses

N_OBSERVER_ITEMS = 6
OBSERVER_ITEMS = tuple(f"obs_{k:02d}" for k in range(1, N_OBSERVER_ITEMS + 1))
OBSERVER_REVERSED = (4,)  # "the patient withholds or argues with the therapist's plan"
OBSERVER_RANGE = (1, 5)
# The demo's observer scale exactly as the demo config declares it (`alliance.instruments`);
# tests check that the two agree, so the key the pipeline scores is the one that generated it.
DEMO_OBSERVER_SCALE: dict[str, Any] = {
    "name": "demo_observer",
    "form": "observer",
    "items": N_OBSERVER_ITEMS,
    "range": list(OBSERVER_RANGE),
    "subscales": {},
    "reverse": list(OBSERVER_REVERSED),
    "scoring": "mean",
    "total": True,
}


def observer_rating_sessions(p: dict[str, Any], n_sessions: int) -> list[int]:
    """Sessions whose recording is coded: `observer_sessions` and, with `observer_last_session`,
    the last planned acute session."""
    chosen = {int(s) for s in p["observer_sessions"] if 1 <= int(s) <= n_sessions}
    if p["observer_last_session"]:
        chosen.add(n_sessions)
    return sorted(chosen)


def observer_items(
    rng: np.random.Generator, p: dict[str, Any], a_true: np.ndarray, t_true: np.ndarray
) -> dict[str, Any]:
    """Observer items (patient x session x item; NaN where no recording was coded) and the
    latent observer rating; item OBSERVER_REVERSED is written as the coder answered it."""
    n, T = a_true.shape
    mu = p["alliance_mu"]
    w = p["observer_weight_patient"]
    coder_bias = rng.normal(0.0, p["observer_coder_sd"], p["observer_coders"])
    coder = rng.integers(0, p["observer_coders"], (n, T))
    dyad = rng.normal(0.0, math.sqrt(p["observer_var_patient"]), n)
    own = rng.normal(0.0, math.sqrt(p["observer_var_session"]), (n, T))
    latent = (
        mu
        + p["observer_shift"]
        + w * (a_true - mu)
        + (1 - w) * (t_true - mu - p["t_alliance_shift"])
        + coder_bias[coder]
        + dyad[:, None]
        + own
    )
    off = rng.normal(0.0, p["observer_item_offset_sd"], N_OBSERVER_ITEMS)
    offsets = np.round(off - off.mean(), 3)
    items = item_responses(
        rng, latent, offsets, p["observer_item_noise_sd"], p["observer_item_missing_p"]
    )
    low, high = OBSERVER_RANGE
    for item in OBSERVER_REVERSED:
        items[..., item - 1] = low + high - items[..., item - 1]
    coded = np.zeros(T, dtype=bool)
    coded[np.array(observer_rating_sessions(p, T), dtype=int) - 1] = True
    recorded = rng.random((n, T)) >= p["observer_recording_missing_p"]
    items[~(coded[None, :] & recorded)] = np.nan
    return {"items": items, "latent": latent, "offsets": offsets, "coder_bias": coder_bias}


def observer_truth(p: dict[str, Any], n_sessions: int, obs: dict[str, Any]) -> dict[str, Any]:
    """What truth.json records about the observer ratings (design, offsets, coder severities)."""
    return {
        "instrument": dict(DEMO_OBSERVER_SCALE),
        "item_columns": list(OBSERVER_ITEMS),
        "rating_sessions": observer_rating_sessions(p, n_sessions),
        "item_offsets": obs["offsets"].tolist(),
        "coder_bias": np.round(obs["coder_bias"], 6).tolist(),
        "model": (
            "O = mu + observer_shift + w (A - mu) + (1 - w) (T - mu - t_alliance_shift) + coder "
            "severity + dyad view + session noise, w = observer_weight_patient; items add fixed "
            "offsets and noise, rounded and clipped to 1-5, item 4 reverse-worded; recordings "
            "missing at random with observer_recording_missing_p"
        ),
    }
