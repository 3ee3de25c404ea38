"""When is a mixed-model fit converged: the optimiser's own word is not enough.

A fit counts as converged only when (a) the optimiser reports success on its own criterion,
(b) it moved (at least one iteration), (c) lme4's checkConv gradient test passes (max of
min(|H^-1/2 g|, |g|) over the non-boundary parameters below 2e-3, with g and H the finite-
difference gradient and Hessian of the deviance at the optimum), and (d) no variance parameter
(a diagonal element of theta) sits within 1e-4 (relative) of its starting value, unless
restarts from 0.5x and 2x the start reach the same deviance (within 1e-6). A restart that
reaches a lower deviance replaces the fit. Issue #16: a 600k-row binomial GLMM stopped with the
patient SD at its start value 1 and was reported converged, 89.8 log-likelihood units short of
lme4's optimum.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# lme4 glmerControl/lmerControl check.conv.grad tolerance
GRAD_TOL = 2e-3
# a variance parameter within this relative distance of its start counts as "at the start"
AT_START_TOL = 1e-4
# two fits whose deviances differ by at most this reached the same optimum
SAME_OPTIMUM_TOL = 1e-6
RESTART_FACTORS = (0.5, 2.0)


@dataclass
class Convergence:
    """The convergence decision and the facts behind it (fit.json `convergence`)."""

    converged: bool
    message: str
    n_iterations: int
    max_rel_grad: float
    at_start: list[str] = field(default_factory=list)
    restarted: bool = False
    deviance_improvement: float = 0.0
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The JSON-ready record (reasons go to the fit's warnings instead)."""
        grad = self.max_rel_grad
        return {
            "optimizer_message": self.message,
            "n_iterations": self.n_iterations,
            "max_rel_grad": float(grad) if np.isfinite(grad) else None,
            "grad_tol": GRAD_TOL,
            "at_start": list(self.at_start),
            "restarted": self.restarted,
            "deviance_improvement": self.deviance_improvement,
            "reasons": list(self.reasons),
        }


@dataclass
class RestartOutcome:
    """What the start-value check did: the fit to keep, its warnings and the notes."""

    result: Any
    warnings: list[str]
    at_start: list[str]
    restarted: bool
    improvement: float
    failure: str | None


def variance_mask(result: Any) -> np.ndarray:
    """True for the theta elements that are variance scales (diagonal of each Cholesky block)."""
    mask: list[bool] = []
    for struct in result.matrices.random_structures:
        q = int(struct.n_terms)
        cov_type = getattr(struct, "cov_type", "us")
        if cov_type in ("cs", "ar1"):
            mask += [True] + ([False] if q > 1 else [])
        elif struct.correlated:
            mask += [i == j for i in range(q) for j in range(i + 1)]
        else:
            mask += [True] * q
    return np.array(mask, dtype=bool)


def theta_labels(result: Any) -> list[str]:
    """`theta[k] (group term)` labels, 1-based as in R, for the theta elements."""
    labels: list[str] = []
    for struct in result.matrices.random_structures:
        names = [str(t) for t in getattr(struct, "term_names", [])] or ["?"] * struct.n_terms
        q = int(struct.n_terms)
        cov_type = getattr(struct, "cov_type", "us")
        group = str(struct.grouping_factor)
        if cov_type in ("cs", "ar1"):
            pairs = [f"{group} scale"] + ([f"{group} correlation"] if q > 1 else [])
        elif struct.correlated:
            pairs = [
                f"{group} {names[i]}" if i == j else f"{group} {names[i]}:{names[j]}"
                for i in range(q)
                for j in range(i + 1)
            ]
        else:
            pairs = [f"{group} {n}" for n in names]
        labels += pairs
    return [f"theta[{k + 1}] ({lab})" for k, lab in enumerate(labels)]


def deviance_of(result: Any) -> float:
    """-2 log-likelihood (REML criterion for REML fits) of an engine result."""
    return -2.0 * float(result.logLik())


def check_start(
    result: Any,
    start: np.ndarray,
    warnings: list[str],
    refit: Callable[[np.ndarray], tuple[Any, list[str]]],
) -> RestartOutcome:
    """Condition (d): restart from 0.5x and 2x the start when a variance sits at its start.

    Runs nothing unless a variance parameter is within AT_START_TOL of its start, so fits that
    pass cost no extra time. A restart with a lower deviance becomes the fit.
    """
    theta = np.asarray(result.theta, dtype=float)
    start = np.asarray(start, dtype=float)
    mask = variance_mask(result)
    if len(start) != len(theta) or len(mask) != len(theta):
        return RestartOutcome(result, warnings, [], False, 0.0, None)
    near = mask & (np.abs(theta - start) <= AT_START_TOL * np.maximum(np.abs(start), 1e-12))
    labels = [lab for lab, hit in zip(theta_labels(result), near, strict=True) if hit]
    if not labels:
        return RestartOutcome(result, warnings, [], False, 0.0, None)
    base = deviance_of(result)
    runs: list[tuple[float, float, Any, list[str]]] = []
    for factor in RESTART_FACTORS:
        try:
            other, notes = refit(start * factor)
        except Exception as exc:  # a failed restart is reported, never fatal
            runs.append((factor, np.nan, None, [f"restart failed: {exc}"]))
            continue
        runs.append((factor, deviance_of(other), other, notes))
    what = "optimiser stopped at the starting value of " + ", ".join(labels)
    finite = [r for r in runs if np.isfinite(r[1])]
    best = min(finite, key=lambda r: r[1], default=None)
    if best is not None and best[1] < base - SAME_OPTIMUM_TOL:
        gain = base - best[1]
        note = (
            f"{what}; restart from {best[0]:g}x start reached a deviance {gain:.6g} lower "
            "(that fit is kept)"
        )
        return RestartOutcome(best[2], [*best[3], note], labels, True, gain, None)
    off = [r for r in runs if not (abs(r[1] - base) <= SAME_OPTIMUM_TOL)]
    if not off:
        return RestartOutcome(result, warnings, labels, True, 0.0, None)
    detail = "; ".join(
        f"restart from {f:g}x start failed" if not np.isfinite(d)
        else f"restart from {f:g}x start reached a deviance {d - base:.6g} higher"
        for f, d, _, _ in off
    )  # fmt: skip
    return RestartOutcome(result, warnings, labels, True, 0.0, f"{what}; {detail}")


def max_rel_grad(
    gradient: np.ndarray | None, hessian: np.ndarray | None, free: np.ndarray
) -> tuple[float, str]:
    """lme4 checkConv: max over free parameters of min(|solve(chol(H), g)|, |g|).

    Parameters on the boundary (`free` False) are dropped, as lme4 drops them. Without a usable
    Hessian the unscaled |g| is used, and the second value says so.
    """
    if gradient is None:
        return np.nan, "gradient not available"
    g = np.asarray(gradient, dtype=float)[free]
    if len(g) == 0:
        return 0.0, ""
    if not np.all(np.isfinite(g)):
        return np.nan, "gradient of the deviance not finite"
    note = ""
    scaled = np.abs(g)
    if hessian is not None:
        h = np.asarray(hessian, dtype=float)[np.ix_(free, free)]
        try:
            lower = np.linalg.cholesky(h)  # H = L L'; R's chol(H) is L'
            sc = np.linalg.solve(lower.T, g)
            if np.all(np.isfinite(sc)):
                scaled = np.minimum(np.abs(sc), np.abs(g))
            else:
                note = "Hessian not usable: unscaled gradient checked"
        except np.linalg.LinAlgError:
            note = "Hessian not positive definite: unscaled gradient checked"
    else:
        note = "Hessian not available: unscaled gradient checked"
    return float(np.max(scaled)), note


def assess(
    result: Any,
    outcome: RestartOutcome,
    gradient: np.ndarray | None,
    hessian: np.ndarray | None,
) -> Convergence:
    """Conditions (a)-(d) on the kept fit; `reasons` says why it is not converged."""
    reasons: list[str] = []
    message = str(getattr(result, "message", "") or "")
    n_iter = int(getattr(result, "n_iter", 0) or 0)
    if not bool(result.converged):
        reasons.append(f"optimizer did not converge: {message}" if message else
                       "optimizer did not converge")  # fmt: skip
    if n_iter < 1:
        reasons.append("optimizer did not move from its starting values (0 iterations)")
    theta = np.asarray(result.theta, dtype=float)
    n_par = 0 if gradient is None else len(gradient)
    free = np.ones(n_par, dtype=bool)
    mask = variance_mask(result)
    if len(mask) == len(theta) and n_par >= len(theta):
        free[: len(theta)] = ~(mask & (theta <= 0.0))  # variances at their bound 0 dropped
    grad, note = max_rel_grad(gradient, hessian, free)
    if not np.isfinite(grad):
        reasons.append(
            f"convergence not verified: {note} (the Laplace deviance could not be evaluated "
            "next to the optimum)"
        )
    elif grad > GRAD_TOL:
        extra = f"; {note}" if note else ""
        reasons.append(
            f"Model failed to converge with max|grad| = {grad:.3g} (tol = {GRAD_TOL:g}){extra}"
        )
    if outcome.failure:
        reasons.append(outcome.failure)
    return Convergence(
        converged=not reasons,
        message=message,
        n_iterations=n_iter,
        max_rel_grad=grad,
        at_start=outcome.at_start,
        restarted=outcome.restarted,
        deviance_improvement=outcome.improvement,
        reasons=reasons,
    )
