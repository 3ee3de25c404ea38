"""Figure `dropout`: predicted dropout probability against early alliance, observed rates by bin.

The population curve (random effects at zero) comes from the model's coefficients with the
covariates at their sample means (alliance.render.figures.predict) and, when the model stage
wrote the fixed-effect covariance `vcov.csv`, a Wald band on the logit scale. A model
`predictions.csv` over the focal term is used instead when present. Without either covariance
source the curve is drawn without band: the coefficient SEs alone cannot give a band for a
curve that also moves with the intercept and the covariates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from alliance.render import apa, style
from alliance.render.figures.common import (
    NothingToDraw,
    alliance_axis_label,
    early_window_text,
    equal_count_bins,
    require_columns,
    require_fitted,
    require_rows,
    skippable,
    wilson_ci,
)
from alliance.render.figures.predict import predict
from alliance.settings import RenderSettings

FOCAL = "alliance_early"
CURVE_COLOR = style.OKABE_ITO["blue"]
OBSERVED_COLOR = style.OKABE_ITO["black"]


def population_curve(
    coefficients: pd.DataFrame,
    fit: Mapping[str, Any],
    x: np.ndarray,
    *,
    frame: pd.DataFrame | None = None,
    vcov: pd.DataFrame | None = None,
    focal: str = FOCAL,
    factors: str = "mean",
) -> pd.DataFrame:
    """Predicted probability over `x` (columns x, fit, ci_low, ci_high; CI NaN without vcov)."""
    if focal not in set(coefficients["term"].astype(str)):
        raise NothingToDraw(f"{focal} is not a coefficient of the model")
    pred = predict(coefficients, fit, {focal: x}, frame=frame, vcov=vcov, link="logit",
                   factors=factors)  # fmt: skip
    return pred.assign(x=x)[["x", "fit", "ci_low", "ci_high"]]


def _from_predictions(predictions: pd.DataFrame, focal: str) -> pd.DataFrame | None:
    p = predictions
    if "x_variable" in p.columns:
        p = p[p["x_variable"].astype(str) == focal]
    if "by_level" in p.columns:
        p = p[p["by_level"].astype(str) == "mean"]
    cols = ("fit_response", "ci_low_response", "ci_high_response")
    if p.empty or not set(cols) <= set(p.columns):
        return None
    out = p[["x", *cols]].rename(columns=dict(zip(cols, ("fit", "ci_low", "ci_high"),
                                                  strict=True)))  # fmt: skip
    return out.sort_values("x").reset_index(drop=True)


def observed_bins(patients: pd.DataFrame, focal: str, n_bins: int | None = None) -> pd.DataFrame:
    """Dropout rate per equal-count bin of `focal`: x (bin mean), k, n, rate, Wilson CI."""
    d = patients[[focal, "dropout"]].apply(pd.to_numeric, errors="coerce").dropna()
    if d.empty:
        raise NothingToDraw(f"no patient has both {focal} and dropout")
    if n_bins is None:
        n_bins = int(min(5, max(2, len(d) // 20)))
    d = d.assign(bin=equal_count_bins(d[focal], n_bins))
    rows = []
    for _, g in d.groupby("bin", sort=True):
        k, n = float(g["dropout"].sum()), len(g)
        lo, hi = wilson_ci(k, n)
        rows.append({"x": float(g[focal].mean()), "x_min": float(g[focal].min()),
                     "x_max": float(g[focal].max()), "k": k, "n": n, "rate": k / n,
                     "ci_low": lo, "ci_high": hi})  # fmt: skip
    return pd.DataFrame(rows)


def _bin_sizes(bins: pd.DataFrame) -> str:
    """ "n = 94 per bin" or "n = 93–94 per bin" (equal-count bins differ by one at most)."""
    lo, hi = int(bins["n"].min()), int(bins["n"].max())
    span = apa.fmt_int(lo) if lo == hi else f"{apa.fmt_int(lo)}\N{EN DASH}{apa.fmt_int(hi)}"
    return f"n = {span} per bin"


@skippable
def draw_dropout(
    fit: Mapping[str, Any],
    coefficients: pd.DataFrame,
    patients: pd.DataFrame,
    frame: pd.DataFrame | None,
    vcov: pd.DataFrame | None,
    predictions: pd.DataFrame | None,
    settings: RenderSettings,
) -> Figure:
    """Probability of dropping out of treatment against early patient-rated alliance (mean of
    the early window's sessions), among the patients the model was fitted on (by default the
    landmark set: patients still attending after the early window, so every dropout follows
    the early alliance). Line: population-level prediction of the logistic GLMM
    dropout_early_alliance (therapist effect at zero; other covariates, including early
    symptom change and the arm indicators, at their sample means, so the curve describes the
    trial's mix like the observed rates) with its 95 % confidence band when the model provides
    the coefficient covariance. Points: observed dropout rate in up to five equal-count bins of
    early alliance at the bin mean, with 95 % Wilson intervals (patients per bin in the
    legend); ticks at the bottom: individual patients.
    """
    require_fitted(fit, "dropout_early_alliance")
    require_rows(coefficients, "dropout_early_alliance/coefficients.csv")
    require_columns(patients, [FOCAL, "dropout"], "patient_analysis.parquet")
    # the patients the model was fitted on (the landmark subset), else every patient
    fitted = frame is not None and {FOCAL, "dropout"} <= set(frame.columns) and not frame.empty
    source = frame if fitted else patients
    bins = observed_bins(source, FOCAL)
    xs = pd.to_numeric(source[FOCAL], errors="coerce").dropna()
    grid = np.linspace(float(xs.min()), float(xs.max()), 101)
    curve = _from_predictions(predictions, FOCAL) if predictions is not None else None
    if curve is None:
        curve = population_curve(coefficients, fit, grid, frame=frame, vcov=vcov)
    fig, ax = style.new_figure("single", 2.6)
    if curve["ci_low"].notna().any():
        ax.fill_between(curve["x"], curve["ci_low"], curve["ci_high"], color=CURVE_COLOR,
                        alpha=0.2, linewidth=0, label="95 % CI")  # fmt: skip
    ax.plot(curve["x"], curve["fit"], color=CURVE_COLOR, linewidth=1.2, label="Model prediction")
    ax.errorbar(
        bins["x"], bins["rate"],
        yerr=[bins["rate"] - bins["ci_low"], bins["ci_high"] - bins["rate"]],
        fmt="o", color=OBSERVED_COLOR, markersize=3, elinewidth=0.6, capsize=1.5,
        capthick=0.6, label=f"Observed, {_bin_sizes(bins)} (95 % Wilson CI)",
    )  # fmt: skip
    top = float(
        np.nanmax(
            [
                bins["ci_high"].max(),
                curve["fit"].max(),
                np.nanmax(curve["ci_high"]) if curve["ci_high"].notna().any() else 0,
            ]
        )
    )
    ymax = min(1.0, top * 1.25 + 0.02)  # head room for the legend
    # rug: where the patients are, so the reader sees how far the curve extrapolates
    ax.plot(xs, np.zeros(len(xs)), "|", color=style.GREY, markersize=4, alpha=0.4,
            markeredgewidth=0.4, clip_on=False)  # fmt: skip
    ax.set_ylim(0, ymax)
    ax.set_xlim(float(xs.min()), float(xs.max()))
    ax.set_ylabel("Dropout probability")
    score = settings.score
    early = early_window_text(score.early_window, score.early_session)
    ax.set_xlabel(alliance_axis_label(settings.alliance, score.rater, score.scale,
                                      f"Early alliance, {early}"))  # fmt: skip
    ax.legend(loc="upper right")
    if curve.empty:
        raise NothingToDraw("no prediction could be computed")
    return fig
