"""The random-intercept cross-lagged panel model (RI-CLPM) in RAM form, and a simulator for it.

Hamaker, Kuiper & Grasman 2015 (Psychol Methods 20:102); Falkenström et al. 2022 on the
alliance. For waves t = 1..W of two repeated measures x and y (observed `x_t`, `y_t`):

    x_t = mean_x_t + RI_x + wx_t + e_t            var(e_t) = x_error_var (0 by default)
    y_t = mean_y_t + RI_y + (t - 1) S_y + wy_t + d_t   (S_y only with y_slope)
                                                  var(d_t) = y_error_var (0 by default)
    wx_t = ar_x wx_{t-1} + b_yx wy_{t-1} + zx_t   (t >= 2)
    wy_t = ar_y wy_{t-1} + b_xy wx_{t-1} + zy_t

Between part: var(RI_x), var(RI_y), cov(RI_x, RI_y) free; with a y slope also var(S_y) and its
covariances with both intercepts (the slope's mean is absorbed by the free wave means). Within
part: var(wx_1), var(wy_1), cov(wx_1, wy_1) free and uncorrelated with the between part; the
four lagged paths equal over waves (`equal_lags`), the innovation variances and the within-wave
innovation covariance equal over t >= 2 (`equal_innovations`). The lagged paths are
within-person effects: the stable between-person differences sit in the random intercepts.

Fixing `x_error_var` (e.g. the mean squared standard error of measurement of the x scores)
makes the within-person x latent rather than the error-laden score, correcting the attenuation
of its paths; `y_error_var` does the same for y (e.g. 1/12, the rounding error of an integer
total score, Sheppard's correction).

Parameter names (lavaan labels): `{x}_to_{y}` (b_xy), `{y}_to_{x}` (b_yx), `{x}_ar`, `{y}_ar`
(suffix `_{t}` per outcome wave when lags are free), `ri_{x}_var`, `ri_{y}_var`, `ri_cov`,
`slope_{y}_var`, `slope_ri_{x}_cov`, `slope_ri_{y}_cov`, `within_{x}_var_1`,
`within_{y}_var_1`, `within_cov_1`, `innovation_{x}_var`, `innovation_{y}_var`,
`innovation_cov`, `{x}_mean_{t}`, `{y}_mean_{t}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from alliance.engine.sem.ram import ModelBuilder, Ram
from alliance.errors import InputError


@dataclass(frozen=True)
class Riclpm:
    """Which RI-CLPM: number of waves, variable names and the options of the module docstring."""

    waves: int
    x: str = "x"
    y: str = "y"
    x_error_var: float | None = None
    y_error_var: float | None = None
    y_slope: bool = False
    equal_lags: bool = True
    equal_innovations: bool = True

    def __post_init__(self) -> None:
        need = 4 if self.y_slope else 3
        if self.waves < need:
            raise InputError(
                f"an RI-CLPM{' with a y slope' if self.y_slope else ''} needs at least {need} "
                f"waves; got {self.waves}",
                check="riclpm.waves",
            )
        for name in ("x_error_var", "y_error_var"):
            value = getattr(self, name)
            if value is not None and not (np.isfinite(value) and value >= 0):
                raise InputError(f"{name} must be >= 0, got {value}", check="riclpm")

    def observed(self) -> list[str]:
        """Observed variable names: x_1..x_W, then y_1..y_W."""
        return [f"{v}_{t}" for v in (self.x, self.y) for t in range(1, self.waves + 1)]

    def lag_names(self) -> dict[str, str]:
        """Key path labels (equal lags): b_xy, b_yx, ar_x, ar_y."""
        x, y = self.x, self.y
        return {"b_xy": f"{x}_to_{y}", "b_yx": f"{y}_to_{x}", "ar_x": f"{x}_ar", "ar_y": f"{y}_ar"}


def riclpm_model(spec: Riclpm, start: Mapping[str, float] | None = None) -> Ram:
    """The RI-CLPM as a compiled RAM model; `start` overrides start values by parameter name."""
    s = dict(start or {})
    x, y, W = spec.x, spec.y, spec.waves
    waves = range(1, W + 1)
    b = ModelBuilder(spec.observed())
    rx, ry, sy = f"ri_{x}", f"ri_{y}", f"slope_{y}"
    wx = {t: f"w_{x}_{t}" for t in waves}
    wy = {t: f"w_{y}_{t}" for t in waves}
    b.add_latent(rx, ry, *([sy] if spec.y_slope else []), *wx.values(), *wy.values())

    def free(label: str, default: float) -> dict:
        return {"value": s.get(label, default), "free": True, "label": label}

    for t in waves:  # loadings, all fixed
        b.load(rx, f"{x}_{t}", 1.0)
    for t in waves:
        b.load(ry, f"{y}_{t}", 1.0)
    if spec.y_slope:
        for t in waves:
            b.load(sy, f"{y}_{t}", float(t - 1))
    for t in waves:
        b.load(wx[t], f"{x}_{t}", 1.0)
        b.load(wy[t], f"{y}_{t}", 1.0)
    lag = spec.lag_names()
    for t in range(2, W + 1):  # within-person dynamics
        tag = "" if spec.equal_lags else f"_{t}"
        b.regress(wx[t], wx[t - 1], **free(lag["ar_x"] + tag, 0.2))
        b.regress(wx[t], wy[t - 1], **free(lag["b_yx"] + tag, 0.0))
        b.regress(wy[t], wy[t - 1], **free(lag["ar_y"] + tag, 0.2))
        b.regress(wy[t], wx[t - 1], **free(lag["b_xy"] + tag, 0.0))
    b.cov(rx, rx, **free(f"ri_{x}_var", 1.0))
    b.cov(ry, ry, **free(f"ri_{y}_var", 1.0))
    b.cov(rx, ry, **free("ri_cov", 0.0))
    if spec.y_slope:
        b.cov(sy, sy, **free(f"slope_{y}_var", 0.01))
        b.cov(sy, rx, **free(f"slope_ri_{x}_cov", 0.0))
        b.cov(sy, ry, **free(f"slope_ri_{y}_cov", 0.0))
    b.cov(wx[1], wx[1], **free(f"within_{x}_var_1", 1.0))
    b.cov(wy[1], wy[1], **free(f"within_{y}_var_1", 1.0))
    b.cov(wx[1], wy[1], **free("within_cov_1", 0.0))
    for between in (rx, ry, *([sy] if spec.y_slope else [])):  # between _|_ within (explicit)
        b.cov(between, wx[1], 0.0, free=False)
        b.cov(between, wy[1], 0.0, free=False)
    for t in range(2, W + 1):
        tag = "" if spec.equal_innovations else f"_{t}"
        b.cov(wx[t], wx[t], **free(f"innovation_{x}_var{tag}", 1.0))
        b.cov(wy[t], wy[t], **free(f"innovation_{y}_var{tag}", 1.0))
        b.cov(wx[t], wy[t], **free(f"innovation_cov{tag}", 0.0))
    for v, error in ((x, spec.x_error_var), (y, spec.y_error_var)):  # measurement error, fixed
        for t in waves:
            b.cov(f"{v}_{t}", f"{v}_{t}", float(error or 0.0), free=False)
    for v in (x, y):
        for t in waves:
            b.mean(f"{v}_{t}", **free(f"{v}_mean_{t}", 0.0))
    return b.compile()


def start_values(spec: Riclpm, data: np.ndarray) -> dict[str, float]:
    """Rough, data-based start values: wave means, and each variable's variance split into a
    between part (mean covariance across waves) and a within part."""
    W = spec.waves
    out: dict[str, float] = {}
    parts = {}
    for j, v in enumerate((spec.x, spec.y)):
        block = data[:, j * W : (j + 1) * W]
        means = np.nanmean(block, axis=0)
        for t in range(W):
            out[f"{v}_mean_{t + 1}"] = float(means[t]) if np.isfinite(means[t]) else 0.0
        var = float(np.nanmean(np.nanvar(block, axis=0)))
        var = var if np.isfinite(var) and var > 0 else 1.0
        between = float(np.clip(_mean_cross_cov(block, block), 0.2 * var, 0.8 * var))
        error = float((spec.x_error_var if j == 0 else spec.y_error_var) or 0.0)
        within = max(var - between - error, 0.2 * var)
        parts[v] = (between, within)
    x, y = spec.x, spec.y
    out[f"ri_{x}_var"], out[f"ri_{y}_var"] = parts[x][0], parts[y][0]
    cross = _mean_cross_cov(data[:, :W], data[:, W:])
    bound = 0.5 * np.sqrt(parts[x][0] * parts[y][0])
    out["ri_cov"] = float(np.clip(cross, -bound, bound)) if np.isfinite(cross) else 0.0
    for v, (_, within) in parts.items():
        out[f"within_{v}_var_1"] = within
        for t in range(2, W + 1):
            out[f"innovation_{v}_var"] = out[f"innovation_{v}_var_{t}"] = within
    if spec.y_slope:
        out[f"slope_{y}_var"] = 0.05 * parts[y][1] / (W - 1) ** 2
    return out


def _mean_cross_cov(a: np.ndarray, b: np.ndarray) -> float:
    """Mean pairwise-complete covariance of a[:, s] and b[:, t] over s != t."""
    vals = []
    for s in range(a.shape[1]):
        for t in range(b.shape[1]):
            if s == t:
                continue
            ok = ~np.isnan(a[:, s]) & ~np.isnan(b[:, t])
            if ok.sum() > 2:
                vals.append(np.cov(a[ok, s], b[ok, t])[0, 1])
    return float(np.mean(vals)) if vals else float("nan")


@dataclass(frozen=True)
class Truth:
    """Generating values of `simulate_panel` (names as the model's parameters)."""

    x_ar: float = 0.3
    y_ar: float = 0.4
    x_to_y: float = -0.15
    y_to_x: float = -0.1
    ri_x_var: float = 0.5
    ri_y_var: float = 1.0
    ri_cov: float = -0.2
    slope_y_var: float = 0.0
    slope_ri_x_cov: float = 0.0
    slope_ri_y_cov: float = 0.0
    within_x_var_1: float = 0.6
    within_y_var_1: float = 1.0
    within_cov_1: float = -0.15
    innovation_x_var: float = 0.5
    innovation_y_var: float = 0.8
    innovation_cov: float = -0.1
    x_error_var: float = 0.0


def simulate_panel(
    n: int,
    waves: int,
    truth: Truth,
    rng: np.random.Generator,
    *,
    x_mean: np.ndarray | None = None,
    y_mean: np.ndarray | None = None,
    dropout: float = 0.0,
    sporadic: float = 0.0,
) -> pd.DataFrame:
    """Wide panel (columns x_1..x_W, y_1..y_W) from the RI-CLPM with `truth`.

    `dropout`: probability of leaving after each wave (from wave 2 on: monotone missingness);
    `sporadic`: probability that any remaining cell is missing.
    """
    W = waves
    xm = np.zeros(W) if x_mean is None else np.asarray(x_mean, dtype=float)
    ym = np.zeros(W) if y_mean is None else np.asarray(y_mean, dtype=float)
    tr = truth
    between_cov = np.array(
        [[tr.ri_x_var, tr.ri_cov, tr.slope_ri_x_cov],
         [tr.ri_cov, tr.ri_y_var, tr.slope_ri_y_cov],
         [tr.slope_ri_x_cov, tr.slope_ri_y_cov, tr.slope_y_var]]
    )  # fmt: skip
    between = rng.multivariate_normal(np.zeros(3), between_cov, size=n, method="eigh")
    first = np.array([[tr.within_x_var_1, tr.within_cov_1], [tr.within_cov_1, tr.within_y_var_1]])
    innov = np.array(
        [[tr.innovation_x_var, tr.innovation_cov], [tr.innovation_cov, tr.innovation_y_var]]
    )
    w = np.empty((n, W, 2))
    w[:, 0] = rng.multivariate_normal(np.zeros(2), first, size=n)
    lag = np.array([[tr.x_ar, tr.y_to_x], [tr.x_to_y, tr.y_ar]])
    for t in range(1, W):
        w[:, t] = w[:, t - 1] @ lag.T + rng.multivariate_normal(np.zeros(2), innov, size=n)
    t_idx = np.arange(W)
    x = xm + between[:, [0]] + w[:, :, 0]
    x = x + rng.normal(0.0, np.sqrt(tr.x_error_var), size=(n, W)) if tr.x_error_var else x
    y = ym + between[:, [1]] + between[:, [2]] * t_idx + w[:, :, 1]
    if dropout:
        stay = rng.random((n, W - 1)) >= dropout
        last = np.where(stay.all(axis=1), W, np.argmin(stay, axis=1) + 1)  # waves attended
        gone = t_idx[None, :] >= last[:, None]
        x[gone] = np.nan
        y[gone] = np.nan
    if sporadic:
        x[rng.random((n, W)) < sporadic] = np.nan
        y[rng.random((n, W)) < sporadic] = np.nan
    cols = [f"x_{t}" for t in range(1, W + 1)] + [f"y_{t}" for t in range(1, W + 1)]
    return pd.DataFrame(np.hstack([x, y]), columns=cols)
