"""Optimising the Laplace deviance of a binomial GLMM over (theta, beta) (lme4 glmer, nAGQ = 1).

Why not the engine's optimiser: see alliance.engine.mixed.laplace (its objective stalls on
larger crossed designs). L-BFGS-B from lme4's start (theta = 1 on the scales, beta from the GLM)
with the exact gradient where `LaplaceProblem.has_gradient`, central differences otherwise;
variances sitting at 0 are probed from inside (`_edge_probe`), since every gradient vanishes
there; `newton_polish` takes one Newton step on the finite-difference Hessian at the end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize

from alliance.engine.mixed.laplace import LaplaceProblem


@dataclass
class Optimum:
    """Where the Laplace optimisation stopped and how."""

    theta: np.ndarray
    beta: np.ndarray
    deviance: float
    converged: bool
    n_iter: int
    message: str
    seconds: dict[str, float] = field(default_factory=dict)


def _central_gradient(fun: Any, x: np.ndarray, h: np.ndarray) -> tuple[float, np.ndarray]:
    f0 = fun(x)
    g = np.empty(len(x))
    for j in range(len(x)):
        e = np.zeros(len(x))
        e[j] = h[j]
        g[j] = (fun(x + e) - fun(x - e)) / (2.0 * h[j])
    return f0, g


def optimise(
    problem: LaplaceProblem, start_theta: np.ndarray | None = None, max_iter: int | None = None
) -> Optimum:
    """Minimise the Laplace deviance over (theta, beta) from lme4's start (or `start_theta`).

    L-BFGS-B on parameters scaled by the fixed-effect columns' spread, with the exact gradient
    when each row has one scalar random-effect column (`value_and_gradient`), else central
    differences of the (exact-mode) deviance; the scales are bounded below at 0, as in lme4.
    """
    t0 = time.perf_counter()
    theta0 = problem.start_theta() if start_theta is None else np.asarray(start_theta, float)
    beta0 = problem.glm_beta()
    t_start = time.perf_counter() - t0
    x0 = np.r_[theta0, beta0]
    spread = np.std(problem.X, axis=0) if problem.p else np.zeros(0)
    mean_abs = np.mean(np.abs(problem.X), axis=0) if problem.p else np.zeros(0)
    col = np.where(spread > 0, spread, np.where(mean_abs > 0, mean_abs, 1.0))
    scale = np.r_[np.ones(problem.n_theta), 1.0 / col]
    mask = problem.variance_mask()
    bounds = [(0.0, None) if m else (None, None) for m in mask] + [(None, None)] * problem.p
    step = 1e-5

    def scaled(z: np.ndarray) -> tuple[float, np.ndarray]:
        if problem.has_gradient:
            f, g = problem.value_and_gradient(z * scale)
            return f, g * scale
        # the deviance is defined (and smooth) on both sides of a scale's bound 0, so central
        # differences may step across it
        return _central_gradient(lambda v: problem(v * scale), z, np.full(len(z), step))

    z = x0 / scale
    n_iter, restarts = 0, 0
    while True:
        res = optimize.minimize(
            scaled, z, jac=True, method="L-BFGS-B", bounds=bounds,
            options={"maxiter": max_iter or 500, "ftol": 1e-14, "gtol": 1e-7, "maxcor": 20},
        )  # fmt: skip
        n_iter += int(res.nit)
        better = _edge_probe(problem, res.x * scale, mask) if restarts < EDGE_RESTARTS else None
        if better is None:
            break
        z, restarts = better / scale, restarts + 1
    x = res.x * scale
    dev = problem(x)
    message = str(res.message)
    if restarts:
        message += f"; {restarts} restart(s) off a zero variance"
    return Optimum(
        theta=x[: problem.n_theta],
        beta=x[problem.n_theta :],
        deviance=float(dev),
        converged=bool(res.success and problem.last_converged and np.isfinite(dev)),
        n_iter=n_iter,
        message=message,
        seconds={"start": t_start, "optimise": time.perf_counter() - t0 - t_start},
    )


# A scale at (or within EDGE of) its bound 0 has a zero gradient there (the deviance is even in
# it), so a gradient method cannot leave it even when a positive variance fits better; probe
# these values and restart from the best (lme4's derivative-free optimisers do not stall there).
EDGE = 1e-3
EDGE_PROBES = (1e-3, 1e-2, 1e-1, 0.3)
EDGE_RESTARTS = 3


def _edge_probe(problem: LaplaceProblem, x: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    """A point with one zero scale moved inside and a lower deviance, or None."""
    base = problem(x)
    best, best_dev = None, base - 1e-8 * (1.0 + abs(base))
    for k in np.flatnonzero(mask & (np.abs(x[: len(mask)]) <= EDGE)):
        for value in EDGE_PROBES:
            cand = x.copy()
            cand[k] = value
            dev = problem(cand)
            if np.isfinite(dev) and dev < best_dev:
                best, best_dev = cand, dev
    problem(x if best is None else best)  # leave the warm start at the point returned
    return best


def newton_polish(
    problem: LaplaceProblem, result: Any, grad: np.ndarray | None, hess: np.ndarray | None
) -> Optimum | None:
    """One Newton step x - H^-1 g on the finite-difference gradient and Hessian at the optimum.

    Kept (returned) only when it lowers the deviance and leaves every scale positive: a cheap
    last move onto the optimum that lme4's gradient check measures.
    """
    if grad is None or hess is None:
        return None
    if not (np.all(np.isfinite(grad)) and np.all(np.isfinite(hess))):
        return None
    theta = np.asarray(result.theta, dtype=float)
    x = np.r_[theta, np.asarray(result.beta, dtype=float)]
    try:
        np.linalg.cholesky(hess)
        step = -np.linalg.solve(hess, grad)
    except np.linalg.LinAlgError:
        return None
    new = x + step
    mask = problem.variance_mask()
    if np.any(new[: len(mask)][mask] <= 0) or np.any(theta[mask] <= 0):
        return None
    base = problem(x)
    dev = problem(new)
    if not (np.isfinite(dev) and dev < base - 1e-9):
        problem(x)  # back to the optimum's mode as the warm start
        return None
    return Optimum(
        theta=new[: problem.n_theta], beta=new[problem.n_theta :], deviance=float(dev),
        converged=bool(result.converged), n_iter=int(result.n_iter) + 1,
        message=f"{result.message}; Newton step on the finite-difference Hessian",
    )  # fmt: skip
