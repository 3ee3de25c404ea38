"""Figure `attendance_adherence`: missed sessions and doses taken by the alliance of the last
attended session, observed in bins with the model's population-level curve.

Observed shares are ratio estimates per equal-count bin of the alliance, sum(y * w) / sum(w)
(a missed slot: y = 0/1, w = 1; adherence: y = share of doses taken, w = doses prescribed, so
the bin's share is its doses taken over its doses prescribed, the binomial model's weighting).
Their 95 % CIs are clustered by patient (linearised ratio estimator: rows of one patient are
not independent). The curve comes from the model's fixed effects (`predict.predict` through
`dropout.population_curve`: other covariates at their sample means) with its 95 % Wald band
from the coefficient covariance, averaged over the fitted random intercepts (`marginal`): the
binned shares pool patients of every propensity, so the comparable curve is the mean of
expit(eta + b) over b ~ N(0, sum of the intercept variances), not expit(eta) at b = 0, which
lies further from 50 % wherever patients differ. The band is the same average at the ends of
eta's Wald interval (the average is monotone in eta; the variances are taken as known).

Where adherence is only a proportion (no dose counts), the adherence panel draws the
fractional-logit GEE `adherence_alliance_share` instead: every interval weighs 1 (w = 1, as in
its estimating equations) and the curve is population-averaged (a GEE has no random effects).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter
from scipy import special

from alliance.render import apa, style
from alliance.render.figures.common import (
    NothingToDraw,
    alliance_axis_label,
    alliance_instrument,
    equal_count_bins,
    panel_label,
    panel_note,
    skippable,
    unfitted_reason,
)
from alliance.render.figures.dropout import population_curve
from alliance.settings import RenderSettings

MAX_BINS, MIN_ROWS_PER_BIN = 10, 30  # deciles when there are rows enough
CURVE_COLOR = style.OKABE_ITO["blue"]


@dataclass(frozen=True)
class Outcome:
    """One panel: the model, its frame's columns and the words for them."""

    model: str
    x: str  # the alliance of the last attended session
    y: str  # 0/1 or a share
    weight: str | None  # trials per row (None: 1)
    title: str
    ylabel: str
    rows: str  # what a frame row is
    ratio: str  # what the odds ratio is of
    curve: str = "Model, averaged over patients\nand therapists"  # what the model line is


MISSED = Outcome("missed_sessions", "alliance", "event", None, "Missed scheduled sessions",
                 "Scheduled sessions missed", "scheduled sessions", "missing")  # fmt: skip
ADHERENCE = Outcome("adherence_alliance", "alliance_lag1", "adherence", "doses_prescribed",
                    "Medication adherence (pill arms)", "Prescribed doses taken", "intervals",
                    "taking a dose")  # fmt: skip
# adherence as a proportion only (no counts): the fractional-logit GEE, intervals unweighted, its
# odds ratio population-averaged (the legend says so)
ADHERENCE_SHARE = dataclasses.replace(
    ADHERENCE, model="adherence_alliance_share", weight=None, ylabel="Share of doses taken",
    curve="Model, population-averaged",
)  # fmt: skip


def binned_shares(
    frame: pd.DataFrame,
    x: str,
    y: str,
    weight: str | None = None,
    *,
    cluster: str = "patient",
    n_bins: int | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """Observed share per equal-count bin of `x`: x (bin mean), x_min, x_max, rows, weight
    (sum of w), share = sum(y * w) / sum(w), ci_low, ci_high (clustered by `cluster` when the
    frame has it, else by row). Up to MAX_BINS bins of at least MIN_ROWS_PER_BIN rows."""
    cols = [x, y] + ([weight] if weight else [])
    d = frame[cols].apply(pd.to_numeric, errors="coerce")
    d["w"] = d[weight] if weight else 1.0
    d["c"] = frame[cluster].astype(str) if cluster in frame.columns else np.arange(len(frame))
    d = d.dropna(subset=[x, y, "w"])
    d = d[d["w"] > 0]
    if d.empty:
        raise NothingToDraw(f"no row has both {x} and {y}")
    if n_bins is None:
        n_bins = int(min(MAX_BINS, max(1, len(d) // MIN_ROWS_PER_BIN)))
    d = d.assign(bin=equal_count_bins(d[x], n_bins), yw=d[y] * d["w"])
    z = float(special.ndtri(0.5 + level / 2))
    out = []
    for _, g in d.groupby("bin", sort=True):
        total = float(g["w"].sum())
        share = float(g["yw"].sum()) / total
        # ratio estimator: residual totals per cluster, sum_c e_c^2 * C / (C - 1) / W^2
        e = (g["yw"] - share * g["w"]).groupby(g["c"]).sum()
        k = len(e)
        se = math.sqrt(float((e**2).sum()) * k / (k - 1)) / total if k > 1 else math.nan
        out.append({"x": float(g[x].mean()), "x_min": float(g[x].min()),
                    "x_max": float(g[x].max()), "rows": len(g), "weight": total,
                    "share": share, "ci_low": max(0.0, share - z * se),
                    "ci_high": min(1.0, share + z * se)})  # fmt: skip
    return pd.DataFrame(out)


def odds_ratio_lines(coefficients: pd.DataFrame, outcome: Outcome, unit: str) -> list[str]:
    """The model's odds ratio per alliance point and, when the model has the row `<x>_rc`, the
    same corrected for item error, e.g. "Odds ratio of missing per WAI-SR point: 0.47 [0.41,
    0.53]", "corrected for item error: 0.43 [0.37, 0.50]"."""
    coefs = coefficients.set_index(coefficients["term"].astype(str))
    out = []
    for term, words in ((outcome.x, f"Odds ratio of {outcome.ratio} per {unit} point"),
                        (f"{outcome.x}_rc", "corrected for item error")):  # fmt: skip
        if term in coefs.index:
            r = coefs.loc[term]
            ci = apa.fmt_ci(math.exp(r["ci_low"]), math.exp(r["ci_high"]))
            out.append(f"{words}: {apa.fmt_num(math.exp(r['estimate']))} {ci}")
    return out


def _curve(
    outcome: Outcome,
    fit: Mapping[str, Any],
    coefficients: pd.DataFrame,
    frame: pd.DataFrame,
    vcov: pd.DataFrame | None,
) -> pd.DataFrame:
    """The population-level curve over the middle 98 % of observed alliance ratings; derived
    rows (a regression-calibrated `*_rc`) are not coefficients of the fitted model."""
    derived = set(fit.get("derived_terms") or [])
    fitted = coefficients[~coefficients["term"].astype(str).isin(derived)]
    xs = pd.to_numeric(frame[outcome.x], errors="coerce").dropna()
    grid = np.linspace(*(float(q) for q in xs.quantile([0.01, 0.99])), 101)
    curve = population_curve(fitted, fit, grid, frame=frame, vcov=vcov, focal=outcome.x)
    return marginal(curve, fit)


GAUSS_HERMITE = 40  # nodes of the average over the random intercepts (exact to ~1e-12 here)


def marginal(curve: pd.DataFrame, fit: Mapping[str, Any]) -> pd.DataFrame:
    """`curve` (response scale, fit and band) averaged over the model's random intercepts:
    E[expit(logit(p) + b)], b ~ N(0, sum of the intercept variances) (patients nested in
    therapists: the intercepts add), by Gauss-Hermite quadrature. Unchanged without random
    effects (the GEE's population-averaged curve); random slopes are refused (the variance of
    b would depend on x)."""
    parts = [c for c in fit.get("variance_components") or [] if c.get("group") != "Residual"]
    if any(c.get("term1") != "(Intercept)" or c.get("term2") for c in parts):
        raise NothingToDraw("random slopes: the curve cannot be averaged over intercepts alone")
    variance = float(sum(float(c["variance"]) for c in parts))
    if variance <= 0.0:
        return curve
    nodes, weights = np.polynomial.hermite.hermgauss(GAUSS_HERMITE)
    shifts = math.sqrt(2.0 * variance) * nodes

    def average(p: pd.Series) -> np.ndarray:
        link = special.logit(p.to_numpy(dtype=float))
        return special.expit(link[:, None] + shifts[None, :]) @ weights / math.sqrt(math.pi)

    out = curve.copy()
    for col in ("fit", "ci_low", "ci_high"):
        out[col] = average(curve[col])
    return out


def _panel(
    ax: Axes,
    outcome: Outcome,
    fit: Mapping[str, Any],
    coefficients: pd.DataFrame,
    frame: pd.DataFrame,
    vcov: pd.DataFrame | None,
) -> None:
    bins = binned_shares(frame, outcome.x, outcome.y, outcome.weight)
    curve = _curve(outcome, fit, coefficients, frame, vcov)
    band = ax.fill_between(curve["x"], curve["ci_low"], curve["ci_high"], color=CURVE_COLOR,
                           alpha=0.2, linewidth=0)  # fmt: skip
    (line,) = ax.plot(curve["x"], curve["fit"], color=CURVE_COLOR, linewidth=1.2)
    lo, hi = int(bins["rows"].min()), int(bins["rows"].max())
    span = apa.fmt_int(lo) if lo == hi else f"{apa.fmt_int(lo)}\N{EN DASH}{apa.fmt_int(hi)}"
    points = ax.errorbar(
        bins["x"], bins["share"],
        yerr=[bins["share"] - bins["ci_low"], bins["ci_high"] - bins["share"]],
        fmt="o", color="black", markersize=3, elinewidth=0.6, capsize=1.5, capthick=0.6,
    )  # fmt: skip
    with_band = bool(curve["ci_low"].notna().any())  # no band without vcov.csv
    handles = [(band, line) if with_band else line, points]
    labels = [
        outcome.curve + (" (95 % CI)" if with_band else ""),
        f"Observed, {span} {outcome.rows} per bin\n(95 % CI clustered by patient)",
    ]
    rising = float(curve["fit"].iloc[-1]) > float(curve["fit"].iloc[0])
    values = np.concatenate([bins[["ci_low", "ci_high"]].to_numpy().ravel(),
                             curve[["ci_low", "ci_high", "fit"]].to_numpy().ravel()])  # fmt: skip
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    span_y = high - low
    # head room on the side the legend goes (opposite the rising end of the curve)
    if rising:
        ax.set_ylim(max(0.0, low - 0.9 * span_y), min(1.0, high + 0.08 * span_y))
        ax.legend(handles, labels, loc="lower right")
    else:
        ax.set_ylim(max(0.0, low - 0.08 * span_y), min(1.0, high + 0.9 * span_y))
        ax.legend(handles, labels, loc="upper right")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_ylabel(outcome.ylabel)


def _inputs(
    outcome: Outcome,
    fit: Mapping[str, Any] | None,
    coefficients: pd.DataFrame | None,
    frame: pd.DataFrame | None,
) -> str | None:
    """Why the panel shows a note instead of data, or None."""
    reason = unfitted_reason(fit, outcome.model)
    if reason is not None:
        return reason
    if coefficients is None or coefficients.empty:
        return f"model {outcome.model}: coefficients.csv not found"
    need = {outcome.x, outcome.y} | ({outcome.weight} if outcome.weight else set())
    if frame is None or frame.empty or not need <= set(frame.columns):
        return f"model {outcome.model}: frame.parquet lacks {', '.join(sorted(need))}"
    return None


Panel = tuple[Outcome, Mapping[str, Any] | None, pd.DataFrame | None, pd.DataFrame | None,
              pd.DataFrame | None]  # fmt: skip


def adherence_panel(counts: Panel, share: Panel) -> Panel:
    """The adherence panel's model: the binomial GLMM of counted doses when fitted, else the
    proportion-only GEE when fitted, else the GLMM (its note then gives both reasons)."""
    for panel in (counts, share):
        if unfitted_reason(panel[1], panel[0].model) is None:
            return panel
    return counts


@skippable
def draw_attendance_adherence(
    missed_fit: Mapping[str, Any] | None,
    missed_coefficients: pd.DataFrame | None,
    missed_frame: pd.DataFrame | None,
    missed_vcov: pd.DataFrame | None,
    adherence_fit: Mapping[str, Any] | None,
    adherence_coefficients: pd.DataFrame | None,
    adherence_frame: pd.DataFrame | None,
    adherence_vcov: pd.DataFrame | None,
    settings: RenderSettings,
    share_fit: Mapping[str, Any] | None = None,
    share_coefficients: pd.DataFrame | None = None,
    share_frame: pd.DataFrame | None = None,
    share_vcov: pd.DataFrame | None = None,
) -> Figure:
    """Attendance and adherence by the alliance rated at the last attended session, i.e.
    before the outcome. A: share of scheduled sessions missed (cancelled or no-show) among the
    slots after an attended session up to the next attended one, model missed_sessions. B:
    share of prescribed doses taken over the interval until the next attended session, in the
    pill arms, model adherence_alliance (doses counted) or, where adherence is only a
    proportion, adherence_alliance_share (fractional-logit GEE; every interval weighs 1).
    Points: observed shares in up to ten equal-count bins (deciles) of that alliance at the bin
    mean (rows per bin in the legend; B pools the bin's doses when they are counted), with 95 %
    CIs clustered by patient. Line and band: the binomial model's prediction averaged over its
    patient and therapist intercepts (so it describes the same mix of patients as the binned
    shares; other covariates at their sample means) and its 95 % Wald band, over the middle
    98 % of ratings; the GEE's curve is the population-averaged share itself. Below each panel
    the odds ratio per alliance point and, when the model has it, the same corrected for the
    item error of one session's score (regression calibration). A panel whose model was not
    fitted says why.
    """
    given = [
        (MISSED, missed_fit, missed_coefficients, missed_frame, missed_vcov),
        adherence_panel(
            (ADHERENCE, adherence_fit, adherence_coefficients, adherence_frame, adherence_vcov),
            (ADHERENCE_SHARE, share_fit, share_coefficients, share_frame, share_vcov),
        ),
    ]
    reasons = [_inputs(o, f, c, d) for o, f, c, d, _ in given]
    share_reason = unfitted_reason(share_fit, ADHERENCE_SHARE.model)
    if given[1][0] is ADHERENCE and reasons[1] and share_reason:
        reasons[1] = f"{reasons[1]}; {share_reason}"
    if all(reasons):
        raise NothingToDraw("; ".join(str(r) for r in reasons))
    fig, axes = style.new_figure("double", 3.2, ncols=2)
    label = alliance_axis_label(settings.alliance, settings.score.rater, settings.score.scale,
                                "Alliance at the last attended session")  # fmt: skip
    ali, _ = alliance_instrument(settings.alliance, settings.score.rater)
    for ax, letter, reason, (outcome, fit, coefs, frame, vcov) in zip(
        axes, "AB", reasons, given, strict=True
    ):
        panel_label(ax, letter)
        if reason is not None:
            ax.set_title(outcome.title, loc="left")
            panel_note(ax, f"Not fitted: {reason}")
            continue
        assert fit is not None and coefs is not None and frame is not None
        try:
            _panel(ax, outcome, fit, coefs, frame, vcov)
        except NothingToDraw as exc:
            panel_note(ax, f"Not drawn: {exc.reason}")
        ax.set_title(outcome.title, loc="left")
        ax.set_xlabel(label)
        ax.annotate("\n".join(odds_ratio_lines(coefs, outcome, ali)), xy=(0, 0),
                    xycoords="axes fraction", xytext=(0, -32), textcoords="offset points",
                    ha="left", va="top", fontsize=7)  # fmt: skip
    return fig
