"""The within-person reciprocal process of alliance and symptoms: a VAR(1), shocks, gains.

Why: the random-intercept cross-lagged panel model (RI-CLPM; Hamaker et al. 2015) is the
field's answer to "does a better-than-usual alliance precede lower symptoms, and vice versa"
(Falkenström et al. 2013, 2022). Its within part is exactly this process, so its four
coefficients are the truth the pipeline's RI-CLPM must recover. For sessions t >= 2

    wA_t = rhoA wA_{t-1} + gammaYA wY_{t-1} + eA_t
    wY_t = rhoY wY_{t-1} + betaAY wA_{t-1} + eY_t

with independent normal innovations whose variances keep the stationary variances at
`alliance_var_session` and `sd_residual`², and session 1 drawn from the stationary
distribution. Ruptures enter wA and sudden gains enter wY as extra innovation shocks, so the
other variable responds to them through the cross-lagged paths.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from alliance.errors import ConfigError


def transition(p: dict[str, Any]) -> np.ndarray:
    """Phi of x_t = Phi x_{t-1} + e_t with x = (wA, wY)."""
    return np.array(
        [[p["alliance_ar1"], p["gamma_lag"]], [p["beta_lag"], p["lag_phi"]]], dtype=float
    )


def _stationary_cov(phi: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Sigma solving Sigma = Phi Sigma Phi' + Q (discrete Lyapunov, by vectorisation)."""
    k = phi.shape[0]
    vec = np.linalg.solve(np.eye(k * k) - np.kron(phi, phi), q.reshape(-1))
    return vec.reshape(k, k)


def within_system(p: dict[str, Any]) -> dict[str, Any]:
    """Phi, innovation variances and stationary covariance of the VAR(1); checks stationarity.

    The innovation variances (qA, qY) are solved so that the stationary variances of wA and
    wY equal `alliance_var_session` and `sd_residual`² (diag(Sigma) is linear in (qA, qY)).
    """
    phi = transition(p)
    eig = np.linalg.eigvals(phi)
    radius = float(np.max(np.abs(eig)))
    if radius >= 1:
        raise ConfigError(
            f"within process not stationary: spectral radius {radius:.3f} >= 1 "
            "(alliance_ar1, lag_phi, beta_lag, gamma_lag)"
        )
    unit = [_stationary_cov(phi, np.diag(e)) for e in ([1.0, 0.0], [0.0, 1.0])]
    m = np.array([[u[0, 0] for u in unit], [u[1, 1] for u in unit]])
    target = np.array([p["alliance_var_session"], p["sd_residual"] ** 2])
    q = np.linalg.solve(m, target)
    if np.any(q <= 0):
        raise ConfigError(
            "within process: no positive innovation variances give the stationary variances "
            "alliance_var_session and sd_residual^2 with these cross-lagged paths"
        )
    sigma = _stationary_cov(phi, np.diag(q))
    return {
        "phi": phi,
        "innovation_var": q,
        "stationary_cov": sigma,
        "eigenvalues": np.sort(eig.real if np.all(np.isreal(eig)) else np.abs(eig))[::-1],
        "spectral_radius": radius,
    }


def within_paths(
    p: dict[str, Any],
    z_a: np.ndarray,
    z_y: np.ndarray,
    shock_a: np.ndarray | None = None,
    shock_y: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """wA, wY (n x T) from standard normal draws z_a, z_y (n x T) and extra shocks.

    Column 0 of z_a, z_y gives the stationary session-1 state (Cholesky of Sigma); columns
    1.. the innovations. Shocks (n x T, optional) are added to the innovations of t >= 2 and
    to the state at session 1.
    """
    sys_ = within_system(p)
    phi, q = sys_["phi"], sys_["innovation_var"]
    chol = np.linalg.cholesky(sys_["stationary_cov"])
    n, T = z_a.shape
    s_a = np.zeros((n, T)) if shock_a is None else shock_a
    s_y = np.zeros((n, T)) if shock_y is None else shock_y
    w_a, w_y = np.empty((n, T)), np.empty((n, T))
    w_a[:, 0] = chol[0, 0] * z_a[:, 0] + s_a[:, 0]
    w_y[:, 0] = chol[1, 0] * z_a[:, 0] + chol[1, 1] * z_y[:, 0] + s_y[:, 0]
    sd_a, sd_y = math.sqrt(q[0]), math.sqrt(q[1])
    for t in range(1, T):
        a_prev, y_prev = w_a[:, t - 1], w_y[:, t - 1]
        w_a[:, t] = phi[0, 0] * a_prev + phi[0, 1] * y_prev + sd_a * z_a[:, t] + s_a[:, t]
        w_y[:, t] = phi[1, 1] * y_prev + phi[1, 0] * a_prev + sd_y * z_y[:, t] + s_y[:, t]
    return w_a, w_y


def response(
    p: dict[str, Any], shock_a: np.ndarray, shock_y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The part of (wA, wY) driven by the shocks alone (the VAR is linear: parts add up)."""
    phi = transition(p)
    r_a, r_y = np.zeros(shock_a.shape), np.zeros(shock_a.shape)
    r_a[:, 0], r_y[:, 0] = shock_a[:, 0], shock_y[:, 0]
    for t in range(1, shock_a.shape[1]):
        r_a[:, t] = phi[0, 0] * r_a[:, t - 1] + phi[0, 1] * r_y[:, t - 1] + shock_a[:, t]
        r_y[:, t] = phi[1, 1] * r_y[:, t - 1] + phi[1, 0] * r_a[:, t - 1] + shock_y[:, t]
    return r_a, r_y


def rupture_shocks(dips: np.ndarray, rho_a: float) -> np.ndarray:
    """Innovation shocks of wA whose alliance-only response (no symptom feedback) is `dips`.

    shock_t = dip_t - rhoA dip_{t-1}: the drop at the rupture session, then (repaired only)
    the shocks of the repair sessions; an unrepaired drop just decays.
    """
    shocks = dips.copy()
    shocks[:, 1:] -= rho_a * dips[:, :-1]
    return shocks


def sudden_gains(
    rng: np.random.Generator, p: dict[str, Any], n: int, n_sessions: int
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Symptom shocks of `sudden_gain_size` at one session in first..T-2 for a share of patients.

    Draws are (n x 2) uniforms whatever the parameters, so other streams and patients never
    shift. Returns the shock matrix and one record per scheduled gain (index, 1-based session).
    """
    u = rng.random((n, 2))
    shocks = np.zeros((n, n_sessions))
    first, last = p["sudden_gain_first_session"], n_sessions - 2
    scheduled: list[dict[str, Any]] = []
    if last < first:
        return shocks, scheduled
    for i in np.flatnonzero(u[:, 0] < p["sudden_gain_p"]):
        s = first + int(u[i, 1] * (last - first + 1))
        shocks[i, s - 1] = p["sudden_gain_size"]
        scheduled.append({"index": int(i), "session": s, "size": float(p["sudden_gain_size"])})
    return shocks, scheduled


def within_state(
    p: dict[str, Any],
    z_a: np.ndarray,
    z_y: np.ndarray,
    dips: np.ndarray,
    gain_shocks: np.ndarray,
) -> dict[str, np.ndarray]:
    """The within process with ruptures (`dips`, the designed alliance-only paths) and gains.

    Returns wA, wY, the rupture shocks, and `rupture_a`: the part of wA the rupture shocks
    drive (their response through the VAR, symptom feedback included).
    """
    shock_a = rupture_shocks(dips, p["alliance_ar1"])
    w_a, w_y = within_paths(p, z_a, z_y, shock_a, gain_shocks)
    rupture_a, _ = response(p, shock_a, np.zeros(shock_a.shape))
    return {"w_a": w_a, "w_y": w_y, "shock_a": shock_a, "rupture_a": rupture_a}
