"""Regression calibration with a continuous moderator (alliance.models.calibration):
recovery of a slope and its interaction with an error-free moderator that the naive fit
attenuates, agreement with the per-group lambdas when the moderator is 0/1, reduction to the
single-x lambda when it is 0, and the GLS parts against a dense V."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from alliance.models.base import ModelSpec
from alliance.models.calibration import _gls_lambda, calibration_matrix, moderated_parts
from alliance.models.run import fit_model
from alliance.settings import Settings

MODEL = Settings.from_config(
    {"data": {"sessions": "x.csv"}, "columns": {"patient": "id"}, "symptoms": {"column": "s"}}
).model_stage()
AVAIL = {k: {"available": True, "reason": ""} for k in ("therapist", "symptom")}
BETA, BETA_Z, GAMMA = -2.0, 0.6, 0.5  # slope at z = 0, its change per unit of z, z's own effect


def _trial(patients: int, per: int, seed: int) -> pd.DataFrame:
    """y = 1 + BETA tau + BETA_Z tau z + GAMMA z + patient + noise, z a patient-level stage
    0..5 centred at 2.5; x = tau + error of known variance (0.03 or 0.06 by row)."""
    rng = np.random.default_rng(seed)
    patient = np.repeat(np.arange(patients), per)
    z = (rng.integers(0, 6, patients) - 2.5)[patient]
    tau = rng.normal(0, np.sqrt(0.15), patients)[patient] + rng.normal(0, 0.3, len(patient))
    error = np.where(rng.random(len(patient)) < 0.5, 0.03, 0.06)
    y = (1 + BETA * tau + BETA_Z * tau * z + GAMMA * z + rng.normal(0, 2, patients)[patient]
         + rng.normal(0, 1.5, len(patient)))  # fmt: skip
    return pd.DataFrame({
        "patient": [f"p{i}" for i in patient], "session_index": np.tile(np.arange(1, per + 1),
        patients), "symptom": y, "x": tau + rng.normal(0, np.sqrt(error)), "x_error_var": error,
        "z": z, "weeks": rng.normal(0, 1, len(patient)),
    })  # fmt: skip


def _spec() -> ModelSpec:
    options = {"reml": True, "x": "x", "x_error": "x_error_var", "x_mod": "z"}
    return ModelSpec(id="m", kind="lmm", outcome="symptom", fixed=("x", "z", "x:z", "weeks"),
                     random="(1 | patient)", options=options)  # fmt: skip


def test_calibrated_slope_and_interaction_recover_the_truth_the_naive_ones_miss():
    """16,000 rows: the calibrated rows hold the generating values within 3 SE (the SE is the
    estimate's sampling SD); the naive ones are attenuated by more than 4 SE."""
    res, _ = fit_model(_spec(), _trial(2000, 8, 11), None, AVAIL, MODEL)
    c = res.coefficients.set_index("term")
    rc = res.fit["reliability_correction"]
    assert rc["metric"].startswith("GLS") and rc["moderator"] == "z"
    for naive, corrected, truth in (("x", "x_rc", BETA), ("x:z", "x_rc:z", BETA_Z)):
        est, se = c.loc[corrected, "estimate"], c.loc[corrected, "std_error"]
        assert abs(est - truth) < 3 * se, (corrected, est, se)
        assert abs(c.loc[naive, "estimate"] - truth) > 4 * se, (naive, c.loc[naive, "estimate"])
        assert abs(c.loc[naive, "estimate"]) < abs(truth)  # attenuated towards 0
    assert res.fit["derived_terms"] == ["x_rc", "x_rc:z"]
    terms = list(res.coefficients["term"])
    assert terms.index("x_rc") == terms.index("x") + 1
    assert terms.index("x_rc:z") == terms.index("x:z") + 1
    # the covariance of the calibrated pair is M V M' (delta method)
    m = np.asarray(rc["matrix"])
    v = res.extras["vcov"].set_index("term").loc[["x", "x:z"], ["x", "x:z"]].to_numpy()
    b = c.loc[["x", "x:z"], "estimate"].to_numpy()
    np.testing.assert_allclose(c.loc[["x_rc", "x_rc:z"], "estimate"], m @ b, rtol=1e-12)
    np.testing.assert_allclose(c.loc[["x_rc", "x_rc:z"], "std_error"],
                               np.sqrt(np.diag(m @ v @ m.T)), rtol=1e-10)  # fmt: skip


def _binary_data(n: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    z = (rng.random(n) < 0.4).astype(float)
    tau = rng.normal(0.2 * z, np.where(z == 1, 0.5, 0.6))
    error = np.where(z == 1, 0.08, 0.03) * rng.uniform(0.5, 1.5, n)
    x = tau + rng.normal(0, np.sqrt(error))
    y = 1 - 1.5 * tau + 0.7 * tau * z + 0.3 * z + rng.normal(0, 1, n)
    return x, z, error, y


def test_binary_moderator_without_random_effects_is_the_per_group_lambdas():
    """z 0/1, the intercept and z the only other terms, OLS: M b gives b_0 / lambda_0 and
    (b_0 + b_1) / lambda_1 - b_0 / lambda_0, lambda_g = 1 - (n_g - 1) mean_g(s2) / sum_g (x -
    mean_g x)^2 computed directly; M also equals (W'PW - E)^-1 W'PW with P the dense OLS
    residual maker."""
    x, z, error, y = _binary_data(3000, 4)
    n = len(x)
    others = np.column_stack([np.ones(n), z])
    design = np.column_stack([others, x, x * z])
    b = np.linalg.lstsq(design, y, rcond=None)[0][2:]
    wpw, errors = moderated_parts(others, x, z, error, np.ones(n), [])
    got = calibration_matrix(wpw, errors) @ b
    lam = []
    for g in (0.0, 1.0):
        rows = z == g
        centred = x[rows] - x[rows].mean()
        lam.append(1 - (rows.sum() - 1) * error[rows].mean() / (centred @ centred))
    want = [b[0] / lam[0], (b[0] + b[1]) / lam[1] - b[0] / lam[0]]
    np.testing.assert_allclose(got, want, rtol=1e-10)
    p = np.eye(n) - others @ np.linalg.solve(others.T @ others, others.T)
    w = np.column_stack([x, x * z])
    dense_wpw = w.T @ p @ w
    dense_e = (np.diag(p) * error * np.column_stack([np.ones(n), z]).T) @ np.column_stack(
        [np.ones(n), z]
    )
    np.testing.assert_allclose(wpw, dense_wpw, rtol=1e-10)
    np.testing.assert_allclose(errors, dense_e, rtol=1e-10)
    np.testing.assert_allclose(
        calibration_matrix(wpw, errors), np.linalg.solve(dense_wpw - dense_e, dense_wpw),
        rtol=1e-10, atol=1e-12,
    )  # fmt: skip


def test_moderator_zero_everywhere_reduces_to_the_single_x_lambda():
    """z = 0 on every row: M[0, 0] = 1 / lambda of the single-x calibration (in a GLS metric
    with nested random intercepts), the rest of M 0."""
    rng = np.random.default_rng(9)
    n = 400
    patient = np.repeat(np.arange(80), 5)
    therapist = patient // 8
    others = np.column_stack([np.ones(n), rng.normal(size=n)])
    x = rng.normal(size=n)
    error = rng.uniform(0.02, 0.08, n)
    weights = np.full(n, 1 / 1.7)
    levels = [(patient, 0.9), (therapist, 0.2)]
    m = calibration_matrix(*moderated_parts(others, x, np.zeros(n), error, weights, levels))
    lam = _gls_lambda(others, x, error, weights, levels)
    assert m[0, 0] == pytest.approx(1 / lam, rel=1e-10)
    np.testing.assert_allclose([m[0, 1], m[1, 0], m[1, 1]], 0.0, atol=1e-12)


def test_gls_parts_match_a_dense_v_with_patient_intercepts():
    """W'PW and E from the Sherman-Morrison metric equal the dense computation with
    V = s2 I + sp2 J_patient."""
    frame = _trial(40, 5, 3)
    n = len(frame)
    s2, sp2 = 2.2, 3.5
    codes = pd.factorize(frame["patient"], sort=True)[0]
    others = np.column_stack([np.ones(n), frame["z"], frame["weeks"]])
    x, z = frame["x"].to_numpy(), frame["z"].to_numpy()
    error = frame["x_error_var"].to_numpy()
    wpw, errors = moderated_parts(others, x, z, error, np.full(n, 1 / s2), [(codes, sp2)])
    same = (codes[:, None] == codes[None, :]).astype(float)
    v_inv = np.linalg.inv(s2 * np.eye(n) + sp2 * same)
    p = v_inv - v_inv @ others @ np.linalg.solve(others.T @ v_inv @ others, others.T @ v_inv)
    w = np.column_stack([x, x * z])
    ones_z = np.column_stack([np.ones(n), z])
    np.testing.assert_allclose(wpw, w.T @ p @ w, rtol=1e-9)
    np.testing.assert_allclose(errors, (np.diag(p) * error * ones_z.T) @ ones_z, rtol=1e-9)


def test_random_slopes_use_ols_p_and_other_x_terms_skip_the_correction():
    """Where V^-1 is not applied exactly the metric is the OLS one, and fit.json says so; a
    further term with x (x:weeks) would belong in W, so no calibrated rows are added."""
    frame = _trial(60, 6, 7)
    spec = _spec()
    slopes = dataclasses.replace(spec, random="(1 + weeks | patient)")
    res, _ = fit_model(slopes, frame, None, AVAIL, MODEL)
    rc = res.fit["reliability_correction"]
    assert rc["metric"].startswith("unit weights") and "random slopes" in rc["metric"]
    assert {"x_rc", "x_rc:z"} <= set(res.coefficients["term"])
    tangled = dataclasses.replace(spec, fixed=(*spec.fixed, "x:weeks"))
    res, _ = fit_model(tangled, frame, None, AVAIL, MODEL)
    assert "x_rc" not in set(res.coefficients["term"])
    assert any("other terms with 'x' (x:weeks)" in w for w in res.fit["warnings"])
