"""ML (FIML) fit of a RAM model: scoring, then Newton, then observed-information SEs.

Optimiser (deterministic): Fisher scoring with the expected information (always positive
definite where the model is identified, so it makes steady progress from rough start values),
each step halved until -log L falls and every pattern's implied covariance stays positive
definite; then Newton steps on the observed Hessian until the largest gradient element of -log L
is below `gtol`. The Hessian is the central-difference derivative of the analytic gradient.

Standard errors: inverse of that Hessian of -log L, i.e. the observed information, which is
lavaan's default for `missing = "ml"` (`information = "observed"`,
`observed.information = "hessian"`).

Convergence is reported, not assumed: `converged` needs the gradient below `gtol_report`, a
finite likelihood and a positive-definite Hessian; a negative variance estimate or a latent
covariance matrix that is not positive definite goes into `warnings` (the fit is kept, as lavaan
keeps it, but it is not admissible).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from alliance.engine.sem.fiml import PatternData, saturated_loglik
from alliance.engine.sem.ram import Ram
from alliance.engine.threads import one_blas_thread
from alliance.engine.tidy import coef_table
from alliance.errors import InputError

MIN_EIGEN = 1e-6  # smallest eigenvalue of the scaled Hessian taken as positive definite
INFORMATION = (
    "observed: inverse Hessian of -logL (central differences of the analytic gradient), "
    "as lavaan's default for missing = 'ml'"
)


@dataclass
class SemFit:
    """A fitted model: parameters by name, per-row estimates, likelihood and convergence facts."""

    model: Ram
    theta: np.ndarray
    vcov: np.ndarray
    loglik: float
    n: int
    n_empty: int
    n_patterns: int
    converged: bool
    max_gradient: float
    iterations: dict[str, int]
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    hessian_pd: bool = True
    saturated_loglik: float | None = None

    @property
    def names(self) -> list[str]:
        return self.model.names

    @property
    def n_par(self) -> int:
        return self.model.k

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(np.where(np.diag(self.vcov) >= 0, np.diag(self.vcov), np.nan))

    @property
    def aic(self) -> float:
        return -2.0 * self.loglik + 2.0 * self.n_par

    @property
    def bic(self) -> float:
        return -2.0 * self.loglik + np.log(self.n) * self.n_par

    def parameters(self) -> pd.DataFrame:
        """One row per free parameter: Wald z table (coef_table layout)."""
        return coef_table(self.names, self.theta, self.se)

    def chisq(self) -> dict[str, float] | None:
        """Likelihood-ratio test against the saturated model (None without its logL)."""
        if self.saturated_loglik is None:
            return None
        p = self.model.p
        df = p * (p + 3) // 2 - self.n_par
        stat = 2.0 * (self.saturated_loglik - self.loglik)
        from scipy import special

        return {"chisq": stat, "df": df, "p": float(special.chdtrc(df, stat)) if df > 0 else np.nan}


class Objective:
    """-log L, its gradient and information as functions of the parameter vector."""

    def __init__(self, model: Ram, data: PatternData) -> None:
        self.model, self.data = model, data

    def value(self, theta: np.ndarray) -> float:
        imp = self.model.implied(theta)
        return self.data.objective(imp.sigma, imp.mu, gradient=False)[0]

    def gradient(self, theta: np.ndarray) -> tuple[float, np.ndarray | None]:
        imp = self.model.implied(theta)
        f, g_sigma, g_mu = self.data.objective(imp.sigma, imp.mu)
        if g_sigma is None:
            return f, None
        return f, self.model.chain(imp, g_sigma, g_mu)

    def information(self, theta: np.ndarray) -> np.ndarray:
        imp = self.model.implied(theta)
        j_sigma, j_mu = self.model.jacobian(imp)
        return self.data.expected_information(imp.sigma, j_sigma, j_mu)

    def hessian(self, theta: np.ndarray, rel_step: float = 1e-5) -> np.ndarray | None:
        """Central differences of the analytic gradient, symmetrised; None off the domain."""
        k = len(theta)
        H = np.empty((k, k))
        for i in range(k):
            h = rel_step * max(1.0, abs(theta[i]))
            up, down = theta.copy(), theta.copy()
            up[i] += h
            down[i] -= h
            _, g_up = self.gradient(up)
            _, g_down = self.gradient(down)
            if g_up is None or g_down is None:
                return None
            H[i] = (g_up - g_down) / (2.0 * h)
        return 0.5 * (H + H.T)


def _line_search(
    obj: Objective, theta: np.ndarray, f: float, g: np.ndarray, step: np.ndarray
) -> tuple[np.ndarray, float, np.ndarray, float] | None:
    """Halve the step until -log L falls (Armijo) and stays defined; None if it never does.
    Returns the new point, -log L and gradient there, and the step fraction taken."""
    slope = float(g @ step)
    if slope >= 0:  # not a descent direction
        step, slope = (
            -g / max(1.0, float(np.abs(g).max())),
            -float(g @ g) / max(1.0, float(np.abs(g).max())),
        )
    alpha = 1.0
    for _ in range(60):
        new = theta + alpha * step
        f_new, g_new = obj.gradient(new)
        # accept a rise at rounding level: near the optimum f changes by less than its noise
        bound = f + 1e-4 * alpha * slope + 1e-13 * abs(f)
        if g_new is not None and np.isfinite(f_new) and f_new <= bound:
            return new, f_new, g_new, alpha
        alpha *= 0.5
    return None


def fit_sem(
    model: Ram,
    data: np.ndarray | pd.DataFrame,
    *,
    start: np.ndarray | None = None,
    gtol: float = 1e-7,
    gtol_report: float = 1e-3,
    max_scoring: int = 200,
    max_newton: int = 20,
    saturated: bool = False,
) -> SemFit:
    """FIML estimates, observed-information SEs and convergence facts (see module docstring).

    `data`: units x observed variables in the model's order (a DataFrame's columns must be the
    observed names), NaN where missing. `gtol` is on the gradient of -log L itself.
    """
    with one_blas_thread():  # small matrices: threads only add overhead
        return _fit(model, data, start, gtol, gtol_report, max_scoring, max_newton, saturated)


def _fit(
    model: Ram,
    data: np.ndarray | pd.DataFrame,
    start: np.ndarray | None,
    gtol: float,
    gtol_report: float,
    max_scoring: int,
    max_newton: int,
    saturated: bool,
) -> SemFit:
    t0 = time.perf_counter()
    if isinstance(data, pd.DataFrame):
        if list(data.columns) != model.observed:
            raise InputError(
                f"data columns {list(data.columns)} are not the model's observed variables "
                f"{model.observed}",
                check="sem.data",
            )
        data = data.to_numpy(dtype=float, na_value=np.nan)
    pdata = PatternData.from_array(data)
    if pdata.p != model.p:
        raise InputError(
            f"data have {pdata.p} columns, the model {model.p} observed variables", check="sem.data"
        )
    empty = np.flatnonzero(pdata.coverage() == 0)
    if len(empty):
        raise InputError(f"no row observes {[model.observed[i] for i in empty]}", check="sem.data")
    obj = Objective(model, pdata)
    theta = np.array(model.start if start is None else start, dtype=float)
    f, g = obj.gradient(theta)
    if g is None:
        raise InputError(
            "the start values imply a covariance matrix that is not positive definite",
            check="sem.start",
        )
    warns: list[str] = []
    iters = {"scoring": 0, "newton": 0}
    # Fisher scoring, damped (Levenberg-Marquardt) when steps must be shortened: on a flat
    # ridge of a weakly identified model the undamped step runs far along the ridge
    damping = 0.0
    for _ in range(max_scoring):
        if np.abs(g).max() < gtol:
            break
        iters["scoring"] += 1
        info = obj.information(theta)
        lhs = info + damping * np.diag(np.diag(info))
        try:
            step = np.linalg.solve(lhs, -g)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(lhs, -g, rcond=None)[0]
        found = _line_search(obj, theta, f, g, step)
        if found is None:
            break
        new, f_new, g, alpha = found
        damping = damping / 10.0 if alpha == 1.0 else max(10.0 * damping, 1e-3)
        damping = damping if damping >= 1e-6 else 0.0
        moved = np.abs(new - theta).max()
        theta, f = new, f_new
        if moved < 1e-6 * max(1.0, np.abs(theta).max()):
            break
    # Newton on the observed Hessian
    H = None
    for _ in range(max_newton):
        H = obj.hessian(theta)
        if np.abs(g).max() < gtol or H is None:
            break
        iters["newton"] += 1
        step = _newton_step(H, g)
        if step is None:
            break
        found = _line_search(obj, theta, f, g, step)
        if found is None:
            break
        moved = np.abs(found[0] - theta).max()
        theta, f, g, _ = found
        H = None
        if moved < 1e-12 * max(1.0, np.abs(theta).max()):
            break  # at the optimum to rounding: the gradient cannot fall further
    if H is None:
        H = obj.hessian(theta)
    max_grad = float(np.abs(g).max())
    vcov, hessian_pd = _invert(H, model.k)
    if not hessian_pd:
        warns.append(
            "the Hessian of -logL is not positive definite at the solution: the model may not "
            "be identified, or the optimiser stopped at a saddle point; standard errors unreliable"
        )
    if max_grad >= gtol_report:
        warns.append(f"not converged: largest |gradient| of -logL is {max_grad:.3g}")
    warns += admissibility(model, theta)
    sat = saturated_loglik(pdata) if saturated else None
    return SemFit(
        model=model, theta=theta, vcov=vcov, loglik=-f, n=pdata.n, n_empty=pdata.n_empty,
        n_patterns=len(pdata.patterns), converged=bool(hessian_pd and max_grad < gtol_report),
        max_gradient=max_grad, iterations=iters, warnings=warns,
        seconds=time.perf_counter() - t0, hessian_pd=hessian_pd, saturated_loglik=sat,
    )  # fmt: skip


def _newton_step(H: np.ndarray, g: np.ndarray) -> np.ndarray | None:
    """-H^-1 g, with H's eigenvalues made positive (absolute values, floored) where it is not
    positive definite, so the step always goes downhill (a modified Newton step)."""
    if not np.isfinite(H).all():
        return None
    lam, vec = np.linalg.eigh(H)
    floor = 1e-8 * max(1.0, float(np.abs(lam).max()))
    lam = np.maximum(np.abs(lam), floor)
    return -vec @ ((vec.T @ g) / lam)


def _invert(H: np.ndarray | None, k: int) -> tuple[np.ndarray, bool]:
    """Inverse Hessian and whether the Hessian is safely positive definite.

    Judged on its correlation form D^-1/2 H D^-1/2 (scale free): a smallest eigenvalue below
    MIN_EIGEN means a (near-)singular information, i.e. an empirically unidentified model.
    """
    if H is None or not np.isfinite(H).all():
        return np.full((k, k), np.nan), False
    diag = np.diag(H)
    ok = bool((diag > 0).all())
    if ok:
        d = 1.0 / np.sqrt(diag)
        ok = float(np.linalg.eigvalsh(H * d[:, None] * d[None, :]).min()) > MIN_EIGEN
    try:
        return np.linalg.inv(H), ok
    except np.linalg.LinAlgError:
        return np.full((k, k), np.nan), False


def admissibility(model: Ram, theta: np.ndarray) -> list[str]:
    """Warnings for negative variances, a (nearly) singular implied covariance of the observed
    scores and an implied latent covariance matrix that is not positive definite."""
    out = []
    for i in model.variance_parameters():
        if theta[i] < 0:
            out.append(f"negative variance estimate: {model.names[i]} = {theta[i]:.4g}")
    eig_obs = np.linalg.eigvalsh(model.implied(theta).sigma)
    if eig_obs.min() < 1e-8 * max(1.0, float(np.abs(eig_obs).max())):
        out.append(
            "the implied covariance matrix of the observed scores is (nearly) singular: the "
            "likelihood may be unbounded here (too few scores at some waves?)"
        )
    if model.latent:
        cov_all, _ = model.latent_moments(theta)
        lat = np.arange(model.p, model.v)
        eig = np.linalg.eigvalsh(cov_all[np.ix_(lat, lat)])
        if eig.min() < -1e-10 * max(1.0, np.abs(eig).max()):
            out.append(
                "the implied covariance matrix of the latent variables is not positive definite"
            )
    return out
