"""Regression calibration in the fit's own GLS metric (alliance.models.calibration): lambda by
hand from the dense V, recovery of a slope a patient intercept makes lean on within-patient
differences, and the marginal fallback where V^-1 is not applied exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alliance.models.base import ModelSpec
from alliance.models.run import fit_model
from alliance.settings import Settings

MODEL = Settings.from_config(
    {"data": {"sessions": "x.csv"}, "columns": {"patient": "id"}, "symptoms": {"column": "s"}}
).model_stage()
AVAIL = {k: {"available": True, "reason": ""} for k in ("therapist", "symptom")}
ERROR_VAR = 0.04
BETA = -2.0


def _trial(patients: int, per: int, seed: int) -> pd.DataFrame:
    """y = 1 + BETA tau + patient + therapist + noise; x = tau + item-like error (ERROR_VAR);
    tau has a between-patient (0.15) and a within-patient (0.09) part; 4 patients a therapist."""
    rng = np.random.default_rng(seed)
    patient = np.repeat(np.arange(patients), per)
    tau = rng.normal(0, np.sqrt(0.15), patients)[patient] + rng.normal(0, 0.3, len(patient))
    therapist = patient // 4
    effects = rng.normal(0, 3, patients)[patient] + rng.normal(0, 0.5, patients)[therapist]
    y = 1 + BETA * tau + effects + rng.normal(0, 2, len(patient))
    return pd.DataFrame({
        "patient": [f"p{i}" for i in patient], "therapist": [f"t{j}" for j in therapist],
        "session_index": np.tile(np.arange(1, per + 1), patients), "symptom": y,
        "x": tau + rng.normal(0, np.sqrt(ERROR_VAR), len(patient)),
        "x_error_var": np.full(len(patient), ERROR_VAR), "weeks": rng.normal(0, 1, len(patient)),
    })  # fmt: skip


def _spec(random: str) -> ModelSpec:
    return ModelSpec(id="m", kind="lmm", outcome="symptom", fixed=("x", "weeks"), random=random,
                     options={"reml": True, "x": "x", "x_error": "x_error_var"})  # fmt: skip


def _dense_lambda(frame: pd.DataFrame, components: list[dict]) -> float:
    """1 - sum_r P_rr s2_r / x'P x with V = s2 I + patient and therapist intercept blocks."""
    var = {c["group"]: c["variance"] for c in components}
    same = {g: (frame[g].to_numpy()[:, None] == frame[g].to_numpy()[None, :]).astype(float)
            for g in ("patient", "therapist")}  # fmt: skip
    v = var["Residual"] * np.eye(len(frame)) + var["patient"] * same["patient"]
    v_inv = np.linalg.inv(v + var["therapist"] * same["therapist"])
    z = np.column_stack([np.ones(len(frame)), frame["weeks"]])
    p = v_inv - v_inv @ z @ np.linalg.solve(z.T @ v_inv @ z, z.T @ v_inv)
    x = frame["x"].to_numpy()
    return 1 - float(np.diag(p) @ frame["x_error_var"].to_numpy()) / float(x @ p @ x)


def test_lambda_is_the_gls_one_of_the_fitted_variances():
    res, _ = fit_model(_spec("(1 | patient) + (1 | therapist)"), _trial(60, 5, 3), None, AVAIL,
                       MODEL)  # fmt: skip
    rc = res.fit["reliability_correction"]
    assert rc["metric"].startswith("GLS")
    assert rc["lambda"] == pytest.approx(_dense_lambda(res.frame, res.fit["variance_components"]),
                                         rel=1e-9)  # fmt: skip
    c = res.coefficients.set_index("term")
    assert c.loc["x_rc", "estimate"] == pytest.approx(c.loc["x", "estimate"] / rc["lambda"])


def test_gls_lambda_recovers_the_slope_the_marginal_one_leaves_short():
    """With a large patient variance the fit leans on within-patient differences, where the error
    is a larger share (0.04 of 0.13 against 0.04 of 0.28 overall)."""
    res, _ = fit_model(_spec("(1 | patient) + (1 | therapist)"), _trial(2000, 8, 5), None, AVAIL,
                       MODEL)  # fmt: skip
    rc = res.fit["reliability_correction"]
    c = res.coefficients.set_index("term")
    se = c.loc["x_rc", "std_error"]
    assert abs(c.loc["x_rc", "estimate"] - BETA) < 3 * se
    assert rc["lambda"] < rc["lambda_marginal"] - 0.08
    marginal = c.loc["x", "estimate"] / rc["lambda_marginal"]
    assert abs(marginal - BETA) > 4 * se  # the overall reliability leaves it ~15 % short


def test_random_slopes_fall_back_to_the_marginal_lambda_and_say_so():
    res, _ = fit_model(_spec("(1 + weeks | patient)"), _trial(60, 6, 7), None, AVAIL, MODEL)
    rc = res.fit["reliability_correction"]
    assert rc["lambda"] == rc["lambda_marginal"]
    assert "random slopes" in rc["metric"]
