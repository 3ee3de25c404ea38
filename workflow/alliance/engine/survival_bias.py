"""Bootstrap bias correction of a Cox estimate (ordinary or Firth-penalised partial likelihood).

Why: with a few dozen events the Cox estimate is biased away from zero by O(1/events). Firth's
penalty (R coxphf) removes only the curvature part of that bias (Cox & Snell's 1/2 kappa_rtu);
the part from the partial likelihood's random information, which covaries with the score
(kappa_rt,u), stays, and in the relapse model it is most of the bias (docs/estimands.md
"Relapse"). kappa_rt,u is an expectation over how the risk sets evolve in other samples of the
same design, which one sample's risk sets do not show. A bootstrap from the fitted model
regenerates them: it estimates the whole O(1/n) bias of exactly the estimator used, at the
estimate, whatever its parts (Efron & Tibshirani 1993, ch. 10): bias* = mean(b*) - b_hat, and
the corrected estimate is 2 b_hat - mean(b*).

Resampling: the conditional model-based bootstrap for censored data (Davison & Hinkley 1997,
Algorithm 7.3), covariates held fixed. Each patient's event time is drawn from the fitted model,
S(t | x) = exp(-H0(t) exp(x'b_hat)), H0 the Breslow cumulative baseline hazard at b_hat (a step
at each observed event time; past the last one no event); a censored patient keeps their own
censoring time, a patient with an event draws one from the Kaplan-Meier estimate of the
censoring distribution beyond their event time (none left: followed to the end). Resampling
patients instead (cases) over-corrected: duplicated patients make a bootstrap sample hold fewer
distinct ones than the data, and its bias is larger (docs/estimands.md "Relapse").

Replicate b uses two uniforms per patient from its own stream `numpy.random.default_rng([seed,
b])` (`alliance.engine.bootstrap.replicate_rng`), so the result depends only on (data, seed, B);
each is refitted with the same estimator (ties, penalty) by the Newton-Raphson of
`alliance.engine.survival_firth`, started at b_hat. A replicate whose refit does not converge, or
runs off to an infinite estimate (without the penalty, a monotone likelihood: a coefficient
whose information has collapsed), is left out and counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alliance.engine.bootstrap import replicate_rng
from alliance.engine.survival import CoxFit
from alliance.engine.survival_firth import likelihood, maximise, risk_sets

SEPARATED = 1e-8  # a refit's information below this share of the data's: an infinite estimate


@dataclass
class CoxResampler:
    """The fitted model's pieces the draws need: Breslow H0 at the event times and the
    censoring Kaplan-Meier at the censoring times."""

    time: np.ndarray
    status: np.ndarray
    risk: np.ndarray  # exp(x'b_hat)
    event_times: np.ndarray
    cumhaz: np.ndarray  # Breslow H0 at each event time (x = 0)
    censor_times: np.ndarray
    censor_surv: np.ndarray  # P(C > t) at each censoring time (reverse Kaplan-Meier)

    @classmethod
    def fitted(cls, time: np.ndarray, status: np.ndarray, x: np.ndarray, beta: np.ndarray):
        """Breslow H0 and the censoring Kaplan-Meier of the data at b_hat."""
        time = np.asarray(time, float)
        status = np.asarray(status, float)
        risk = np.exp(x @ beta)
        ev = np.unique(time[status == 1])
        ct = np.unique(time[status == 0])
        order = np.argsort(time, kind="stable")
        first = np.searchsorted(time[order], ev, side="left")  # the first row with time >= t
        at_risk = np.cumsum(risk[order][::-1])[::-1][first]
        deaths = np.bincount(np.searchsorted(ev, time[status == 1]), minlength=len(ev))
        censored = np.bincount(np.searchsorted(ct, time[status == 0]), minlength=len(ct))
        n_risk = len(time) - np.searchsorted(time[order], ct, side="left")
        return cls(time, status, risk, ev, np.cumsum(deaths / at_risk), ct,
                   np.cumprod(1.0 - censored / n_risk))  # fmt: skip

    def draw(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One replicate's (time, status) from uniforms u (2 x n: event, censoring)."""
        # event: the first event time with H0(t) exp(x'b) >= -log(u0); none: no event
        k = np.searchsorted(self.cumhaz, -np.log(u[0]) / self.risk, side="left")
        t_event = np.where(k < len(self.event_times), self.event_times[np.minimum(k, len(
            self.event_times) - 1)], np.inf)  # fmt: skip
        # censoring: their own if censored; else the first censoring time c > y with
        # G(c) / G(y) <= u1 (G non-increasing), none: followed to the end
        g = np.r_[1.0, self.censor_surv]
        before = np.searchsorted(self.censor_times, self.time, side="right")  # G(y) = g[before]
        j = np.searchsorted(-self.censor_surv, -u[1] * g[before], side="left")
        j = np.maximum(j, before)  # only times after y (u1 = 1 would also take y's own step)
        drawn = np.where(j < len(self.censor_times), self.censor_times[np.minimum(j, len(
            self.censor_times) - 1)], np.inf)  # fmt: skip
        t_censor = np.where(self.status == 1, drawn, self.time)
        status = (t_event <= t_censor).astype(float)
        time = np.minimum(t_event, t_censor)
        return np.where(np.isfinite(time), time, self.time.max()), status


@dataclass
class BootstrapBias:
    """Replicate estimates (B x p, NaN where a replicate failed) and what follows from them."""

    beta: np.ndarray
    draws: np.ndarray
    seed: int

    @property
    def n_boot(self) -> int:
        """Replicates drawn."""
        return len(self.draws)

    @property
    def n_failed(self) -> int:
        """Replicates left out (no converged finite estimate)."""
        return int((~self._ok).sum())

    @property
    def _ok(self) -> np.ndarray:
        return np.isfinite(self.draws).all(axis=1)

    @property
    def bias(self) -> np.ndarray:
        """Bootstrap bias estimate mean(b*) - b_hat over the usable replicates."""
        return self.draws[self._ok].mean(axis=0) - self.beta

    @property
    def corrected(self) -> np.ndarray:
        """b_hat - bias = 2 b_hat - mean(b*)."""
        return self.beta - self.bias

    @property
    def se(self) -> np.ndarray:
        """Bootstrap SD of the replicate estimates (ddof 1)."""
        return self.draws[self._ok].std(axis=0, ddof=1)


def replicate_uniforms(seed: int, replicate: int, n_rows: int) -> np.ndarray:
    """The uniforms (2 x n_rows: event, censoring) of one replicate; exported for the R check."""
    return replicate_rng(seed, replicate).random((2, n_rows))


def bootstrap_bias(
    time: np.ndarray,
    status: np.ndarray,
    x: np.ndarray,
    beta: np.ndarray,
    *,
    efron: bool,
    penalty: float,
    n_boot: int,
    seed: int,
) -> BootstrapBias:
    """Refit the Cox estimate (penalty 0.5: Firth; 0: the MLE) on `n_boot` data sets drawn from
    the fitted model (module docstring) and return the draws for the bias correction."""
    beta = np.asarray(beta, float)
    model = CoxResampler.fitted(time, status, x, beta)
    # information per coefficient on the data: a refit where one has collapsed has run off to
    # an infinite estimate (Newton stops only when exp() underflows)
    floor = SEPARATED * np.diag(likelihood(risk_sets(time, status, x, efron), beta)[2])
    draws = np.full((n_boot, len(beta)), np.nan)
    for b in range(n_boot):
        t, d = model.draw(replicate_uniforms(seed, b, len(time)))
        if d.sum() == 0:
            continue
        # a refit running off to an infinite estimate underflows whole risk sets (0 / 0); it is
        # recognised and left out just below
        with np.errstate(divide="ignore", invalid="ignore"):
            fit = maximise(risk_sets(t, d, x, efron), penalty, beta)
        if fit.converged and np.isfinite(fit.beta).all() and (np.diag(fit.info) > floor).all():
            draws[b] = fit.beta
    return BootstrapBias(beta=beta, draws=draws, seed=int(seed))


def cox_bootstrap_bias(fit: CoxFit, n_boot: int, seed: int) -> BootstrapBias:
    """`bootstrap_bias` of a fitted Cox model with its own estimator (ties, Firth or not)."""
    return bootstrap_bias(
        fit._time,
        fit._event,
        fit._x,
        fit.coefficients["estimate"].to_numpy(dtype=float),
        efron=fit.ties == "efron",
        penalty=fit.penalty,
        n_boot=n_boot,
        seed=seed,
    )
