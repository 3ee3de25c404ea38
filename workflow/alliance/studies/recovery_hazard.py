"""Can the recovery study fail? The dropout hazard, aligned and misaligned with the simulator.

The simulator lets a patient who attended session t miss session t+1 with
logit P = dropout_alpha + dropout_beta_alliance * (A_t - mu) + therapist effect. Two
person-period layouts of the same trial (`hazard_rows`):
- aligned: one row per attended session t at which leaving was possible (a completer's last
  session is not a risk row), event = did not come to t+1, predictor `alliance` (A_t);
- misaligned (the old layout): every attended session, the event on the last attended row,
  predictor `alliance_lag1` (A_{t-1}), completers at risk at their final session.
Both are fitted alike (`fit_hazard`: binomial GLMM, quadratic time, therapist intercept) and
scored by `recovery_results` as a one-trial study (`calibration_rows`); the aligned CI must hold
the generating slope and the misaligned one must not (tests/test_recovery_calibration.py).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from alliance.engine.mixed import fit_glmm
from alliance.studies.recovery_results import REPLICATE_COLUMNS, typed_rows

LAYOUTS = {"aligned": "alliance", "misaligned": "alliance_lag1"}
# One trial: "coverage" is the 0/1 indicator that the CI holds the truth, so the band asks for 1.
ONE_TRIAL_BAND = (1.0, 1.0)
PARAMETER = "dropout_beta_alliance"


def hazard_rows(table: pd.DataFrame, layout: str) -> pd.DataFrame:
    """Person-period rows of the session analysis table in `layout` (see the module docstring).

    Needs patient, therapist, session_index, dropout and the layout's predictor; adds `event`,
    `period` and `period_sq`. Patients with a missing dropout status are left out.
    """
    predictor = LAYOUTS[layout]
    cols = ["patient", "therapist", "session_index", "dropout", predictor]
    out = table.loc[table["dropout"].notna(), cols].sort_values(
        ["patient", "session_index"], kind="stable"
    )
    out = out.reset_index(drop=True)
    last = ~out["patient"].duplicated(keep="last").to_numpy()
    dropped = out["dropout"].to_numpy(dtype=float) == 1
    out["event"] = (last & dropped).astype(float)
    if layout == "aligned":
        out = out.loc[~(last & ~dropped)].reset_index(drop=True)
    out["period"] = out["session_index"].astype(float)
    out["period_sq"] = out["period"] ** 2
    return out


def fit_hazard(rows: pd.DataFrame, predictor: str) -> dict[str, Any]:
    """Binomial GLMM event ~ predictor + period + period_sq + (1 | therapist): the slope's row."""
    fit = fit_glmm(f"event ~ {predictor} + period + period_sq + (1 | therapist)", rows)
    c = fit.coefficients.set_index("term").loc[predictor]
    return {
        "status": "fitted",
        "reason": "",
        "converged": fit.converged,
        "singular": fit.singular,
        "n_obs": fit.n_obs,
        "estimate": float(c["estimate"]),
        "std_error": float(c["std_error"]),
        "ci_low": float(c["ci_low"]),
        "ci_high": float(c["ci_high"]),
        "events": int(rows["event"].sum()),
    }


def calibration_rows(table: pd.DataFrame, truth: float, seed: int = 0) -> pd.DataFrame:
    """Both layouts fitted on one trial, as replicate rows (replicate 0) of two checks.

    Each check is identified with true value `truth` (the generating dropout slope), so
    `recovery_results.summarise(rows, band=ONE_TRIAL_BAND)` passes the layout whose CI holds it.
    """
    rows = []
    for position, (layout, predictor) in enumerate(LAYOUTS.items()):
        fit = fit_hazard(hazard_rows(table, layout), predictor)
        fit.pop("events")
        rows.append(
            {
                "replicate": 0, "seed": seed, "position": position,
                "check": f"dropout_hazard_{layout}:{predictor}",
                "model": f"dropout_hazard_{layout}", "term": predictor, "source": "study",
                "parameter": PARAMETER, "identified": True,
                "truth_reason": f"{layout} person-period layout", "truth": float(truth), **fit,
            }
        )  # fmt: skip
    return typed_rows(pd.DataFrame(rows, columns=REPLICATE_COLUMNS))
