"""Figure `dropout_hazard`: the chance of not returning after a session by that session's
alliance, from the discrete-time hazard model dropout_hazard (docs/estimands.md).

Panel A: the model's predicted probability over sessions at the alliance 1 SD below the mean,
at the mean and 1 SD above (predictions.csv, `predictions: {x: period, by: alliance}`).
Panel B, when the model frame is there: observed rates in equal-count bins of the session's
alliance (pooled over sessions) with the model's curve at the rows' average time and covariates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from alliance.render import apa, style
from alliance.render.figures.common import (
    LEVEL_COLORS,
    NothingToDraw,
    alliance_axis_label,
    level_key,
    panel_label,
    require_columns,
    require_fitted,
    require_rows,
    skippable,
)
from alliance.render.figures.dropout import observed_bins, population_curve
from alliance.settings import RenderSettings

MODEL = "dropout_hazard"
LEVEL_TEXT = {"low": "Low (\N{MINUS SIGN}1 SD)", "mid": "Mean", "high": "High (+1 SD)"}


def _response(predictions: pd.DataFrame) -> pd.DataFrame:
    """Predictions on the probability scale: columns x, by_level, fit, ci_low, ci_high."""
    cols = ("fit_response", "ci_low_response", "ci_high_response")
    if set(cols) <= set(predictions.columns):
        out = predictions.drop(columns=["fit", "ci_low", "ci_high"], errors="ignore")
        return out.rename(columns=dict(zip(cols, ("fit", "ci_low", "ci_high"), strict=True)))
    link = pd.to_numeric(predictions["fit"], errors="coerce")
    if link.between(0, 1).all():  # already probabilities
        return predictions
    inverse = {c: 1 / (1 + np.exp(-pd.to_numeric(predictions[c], errors="coerce")))
               for c in ("fit", "ci_low", "ci_high")}  # fmt: skip
    return predictions.assign(**inverse)


def _over_sessions(ax: Axes, pred: pd.DataFrame) -> None:
    for level in dict.fromkeys(pred["by_level"].astype(str)):
        key = level_key(level)
        p = pred[pred["by_level"].astype(str) == level].sort_values("x")
        ax.fill_between(p["x"], p["ci_low"], p["ci_high"], color=LEVEL_COLORS[key], alpha=0.18,
                        linewidth=0)  # fmt: skip
        ax.plot(p["x"], p["fit"], color=LEVEL_COLORS[key], linewidth=1.2,
                linestyle="--" if key == "mid" else "-", label=LEVEL_TEXT[key])  # fmt: skip
    ax.set_xlabel("Session attended")
    ax.set_ylabel("Probability of not returning")
    ax.xaxis.get_major_locator().set_params(integer=True)


def _by_alliance(
    ax: Axes,
    frame: pd.DataFrame,
    coefficients: pd.DataFrame | None,
    fit: Mapping[str, Any],
    vcov: pd.DataFrame | None,
) -> None:
    rows = frame.rename(columns={"event": "dropout"})
    events = int(pd.to_numeric(rows["dropout"], errors="coerce").sum())
    bins = observed_bins(rows, "alliance", n_bins=int(min(8, max(2, events // 12))))
    xs = pd.to_numeric(rows["alliance"], errors="coerce").dropna()
    x_lo, x_hi = (float(q) for q in xs.quantile([0.01, 0.99]))  # no curve far from the data
    if coefficients is not None and not coefficients.empty:
        grid = np.linspace(x_lo, x_hi, 101)
        try:
            curve = population_curve(coefficients, fit, grid, frame=frame, vcov=vcov,
                                     focal="alliance")  # fmt: skip
        except NothingToDraw:
            curve = None
        if curve is not None:
            colour = LEVEL_COLORS["high"]
            if curve["ci_low"].notna().any():
                ax.fill_between(curve["x"], curve["ci_low"], curve["ci_high"], color=colour,
                                alpha=0.2, linewidth=0)  # fmt: skip
            ax.plot(curve["x"], curve["fit"], color=colour, linewidth=1.2,
                    label="Model prediction (95 % CI)")  # fmt: skip
    lo, hi = int(bins["n"].min()), int(bins["n"].max())
    span = apa.fmt_int(lo) if lo == hi else f"{apa.fmt_int(lo)}\N{EN DASH}{apa.fmt_int(hi)}"
    ax.errorbar(
        bins["x"], bins["rate"],
        yerr=[bins["rate"] - bins["ci_low"], bins["ci_high"] - bins["rate"]],
        fmt="o", color="black", markersize=3, elinewidth=0.6, capsize=1.5, capthick=0.6,
        label=f"Observed, {span} sessions per bin (95 % Wilson CI)",
    )  # fmt: skip
    ax.set_xlim(min(x_lo, float(bins["x"].min())), max(x_hi, float(bins["x"].max())))
    ax.set_ylabel("Probability of not returning")
    ax.legend(loc="upper right")
    tops = [float(bins["ci_high"].max())]
    for line in ax.get_lines():
        tops.append(float(np.nanmax(line.get_ydata())))
    ax.set_ylim(0, max(tops) * 1.45)  # head room for the legend


@skippable
def draw_dropout_hazard(
    fit: Mapping[str, Any],
    predictions: pd.DataFrame,
    coefficients: pd.DataFrame | None,
    frame: pd.DataFrame | None,
    vcov: pd.DataFrame | None,
    settings: RenderSettings,
) -> Figure:
    """Probability of not coming back after a session by the alliance rated at that session,
    from the discrete-time hazard model dropout_hazard (therapist effect at zero; arm and
    baseline at their sample means). A: predicted probability at each session attended for an
    alliance 1 SD below the mean, at the mean and 1 SD above, with 95 % Wald confidence bands.
    B: observed proportion of sessions after which the patient did not return, in equal-count
    bins of that session's alliance pooled over sessions (95 % Wilson intervals, which ignore
    that sessions are nested in patients), with the model's curve at the sessions' average time
    and covariates over the middle 98 % of observed alliance ratings. The panels have their own
    vertical scales. The observed alliance carries measurement error, so its slope is attenuated
    by the score's reliability.
    """
    require_fitted(fit, MODEL)
    require_rows(predictions, f"{MODEL}/predictions.csv")
    require_columns(predictions, ["x", "by_level", "fit", "ci_low", "ci_high"], "predictions.csv")
    pred = _response(predictions)
    with_b = frame is not None and {"event", "alliance"} <= set(frame.columns) and not frame.empty
    fig, axes = style.new_figure("double" if with_b else "single", 2.6, ncols=2 if with_b else 1)
    ax_a = axes[0] if with_b else axes
    _over_sessions(ax_a, pred)
    label = alliance_axis_label(settings.alliance, settings.score.rater, settings.score.scale,
                                "Alliance of the session")  # fmt: skip
    handles, labels = ax_a.get_legend_handles_labels()
    handles.append(Patch(facecolor=style.GREY, alpha=0.3))
    labels.append("95 % CI")
    ax_a.legend(handles, labels, title=label, loc="upper right", alignment="left")
    ax_a.set_ylim(0, float(np.nanmax(pred["ci_high"].to_numpy(dtype=float))) * 1.9)
    if with_b:
        assert frame is not None
        ax_b = axes[1]
        _by_alliance(ax_b, frame, coefficients, fit, vcov)
        ax_b.set_xlabel(label)
        for ax, letter in ((ax_a, "A"), (ax_b, "B")):
            panel_label(ax, letter)
    if not handles:
        raise NothingToDraw("predictions.csv has no prediction levels")
    return fig
