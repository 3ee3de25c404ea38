"""Figure `forest`: the alliance effects of every fitted model, from results/models/summary.csv.

Models on different scales are drawn in separate panels, not standardised (a standardised
effect would need each outcome's SD and model-specific conversions the reader cannot check):
linear models (lmm, rsa) as unstandardised coefficients in outcome units; the RI-CLPM's
within-patient paths in raw units, one panel per path (symptom points per alliance point and
alliance points per symptom point); mediation's indirect effects; pooled correlations as r,
with the sites' correlations and the meta-analytic benchmark (Flückiger et al. 2018:
r = .278 [.256, .299]) as a shaded band; logistic models (glmm, discrete-time hazard, GEE) as
odds ratios and Cox models as hazard ratios, both on a log axis. What is drawn, in which order
and on how many pages: alliance.render.figures.forest_layout.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import blended_transform_factory

from alliance.render import apa, style
from alliance.render.figures.common import (
    NothingToDraw,
    alliance_instrument,
    early_window_text,
    estimate_text,
    ratio_axis,
    require_rows,
    skippable,
)
from alliance.render.figures.forest_layout import (
    AXIS_IN,
    GAP_IN,
    TOP_IN,
    Block,
    Line,
    Panel,
    conditional_note,
    forest_rows,
    model_blocks,
    page_height,
    paginate,
    row_height,
    sensitivity_models,
)
from alliance.render.figures.labels import ARROW, TIMES, term_text
from alliance.settings import RenderSettings

__all__ = ["conditional_note", "draw_forest", "forest_rows", "sensitivity_models", "term_text"]

# Flückiger, Del Re, Wampold & Horvath (2018), Psychotherapy 55:316 (science notes §2); used
# when the pooled model did not write its own benchmark.csv.
BENCHMARK = {"r": 0.278, "ci_low": 0.256, "ci_high": 0.299,
             "source": "Flückiger et al. 2018"}  # fmt: skip
LABEL_IN, PLOT_IN = 2.85, 2.15  # label column | plot | value column (the rest of the width)


def _axis_label(scale: str, settings: RenderSettings) -> str:
    sym = settings.symptoms.label
    ali, _ = alliance_instrument(settings.alliance, settings.score.rater)
    return {
        "linear": f"Coefficient B (outcome units; symptom models: {sym} points)",
        "cross_as": f"Alliance {ARROW} next symptoms: {sym} points per {ali} point",
        "cross_sa": f"Symptoms {ARROW} next alliance: {ali} points per {sym} point",
        "autoregression": "Autoregression: points per point of the same measure",
        "surface": f"Response surface coefficient (outcome units per {ali} point; a\u2082, a\u2084 "
        "per squared point)",
        "indirect": f"Indirect effect a {TIMES} b (outcome units)",
        "odds": "Odds ratio (log scale)",
        "hazard": "Hazard ratio (log scale)",
        "correlation": "Correlation r (positive = better alliance, more improvement)",
    }[scale]


def panel_digits(lines: list[Line], ratio: bool) -> int:
    """Decimals for one panel: enough that its narrowest CI shows two significant digits
    (2 to 4), so small indirect effects do not print as 0.00."""
    widths = []
    for _, row in lines:
        if row is None:
            continue
        lo, hi = float(row["ci_low"]), float(row["ci_high"])
        if ratio:
            lo, hi = math.exp(lo), math.exp(hi)
        if math.isfinite(lo) and math.isfinite(hi) and hi > lo:
            widths.append(hi - lo)
    if not widths:
        return 2
    return int(min(4, max(2, math.ceil(-math.log10(min(widths))) + 1)))


def _draw_panel(
    fig: Figure,
    rect: tuple[float, float, float, float],
    label_x: float,
    value_x: float,
    scale: str,
    lines: list[Line],
    extra: list | None = None,
) -> Axes:
    """One panel: axes at `rect` (figure fractions), labels at `label_x`, values at `value_x`."""
    ax = fig.add_axes(rect)
    ratio = scale in ("odds", "hazard")
    digits = 3 if scale == "correlation" else panel_digits(lines, ratio)
    label_at = blended_transform_factory(fig.transFigure, ax.transData)
    n = len(lines)
    lows, highs = [], []
    for i, (label, row) in enumerate(lines):
        y = n - 1 - i
        if row is None:
            ax.text(label_x, y, label, transform=label_at, ha="left", va="center", fontsize=7,
                    fontweight="bold")  # fmt: skip
            continue
        ax.text(label_x + 0.015, y, label, transform=label_at, ha="left", va="center",
                fontsize=7)  # fmt: skip
        est, lo, hi = (float(row[c]) for c in ("estimate", "ci_low", "ci_high"))
        if ratio:
            est, lo, hi = math.exp(est), math.exp(lo), math.exp(hi)
        kind = str(row.get("kind", ""))
        colour = "#555555" if kind in ("unit", "benchmark") else "black"
        if math.isfinite(lo) and math.isfinite(hi):
            ax.hlines(y, lo, hi, color=colour, linewidth=0.9)
            lows.append(lo)
            highs.append(hi)
        marker, size = {"pool": ("D", 4.0), "benchmark": ("D", 4.0), "unit": ("o", 2.5)}.get(
            kind, ("s", 3.0)
        )
        ax.plot(est, y, marker, color=colour, markersize=size)
        ax.text(
            value_x,
            y,
            estimate_text(est, lo, hi, row.get("p_value"), digits, r_like=scale == "correlation"),
            transform=label_at,
            ha="left",
            va="center",
            fontsize=7,
            color=colour if kind == "unit" else "black",
        )
    for extra_line in extra or []:
        extra_line(ax)
    # the no-effect line runs through term rows only, so it never crosses a model's title
    ref = 1.0 if ratio else 0.0
    for i, (_, row) in enumerate(lines):
        if row is not None:
            y = n - 1 - i
            ax.vlines(ref, y - 0.5, y + 0.5, color="black", linewidth=0.5, linestyle=":",
                      zorder=0)  # fmt: skip
    ax.set_ylim(-0.6, n - 0.4)
    ax.set_yticks([])
    ax.spines["left"].set_visible(False)
    if ratio:
        ratio_axis(ax, min([*lows, 1.0]), max([*highs, 1.0]))
    else:  # few ticks: long labels ("−0.025") must not run into each other
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))
    return ax


def _units_lines(units: pd.DataFrame | None) -> list[Line]:
    """One row per pooled unit (site): its r with a 95 % CI back-transformed from Fisher z."""
    if units is None or units.empty or "r" not in units.columns:
        return []
    name = next((c for c in ("unit", "site", "name", "label") if c in units.columns), None)
    z975 = 1.959963984540054
    out = []
    for i, (_, u) in enumerate(units.iterrows()):
        label = f"{u[name]}" if name else f"Unit {i + 1}"
        if "n" in units.columns and not apa.is_missing(u["n"]):
            label += f" (n = {apa.fmt_int(u['n'])})"
        lo = hi = np.nan
        if {"ci_low", "ci_high"} <= set(units.columns):
            lo, hi = u["ci_low"], u["ci_high"]
        elif "se" in units.columns:
            z = float(np.arctanh(u["r"]))  # signed r: its own z, whatever sign rule was applied
            lo, hi = math.tanh(z - z975 * u["se"]), math.tanh(z + z975 * u["se"])
        row = {"estimate": u["r"], "ci_low": lo, "ci_high": hi, "p_value": np.nan,
               "kind": "unit"}  # fmt: skip
        out.append((f"Site {label}" if name == "site" else label, pd.Series(row)))
    return out


def _benchmark(benchmark: pd.DataFrame | None) -> dict[str, Any]:
    """The published benchmark: the `benchmark` row of benchmark.csv, else BENCHMARK."""
    out = dict(BENCHMARK)
    if benchmark is None or benchmark.empty:
        return out
    rows = benchmark
    if "label" in rows.columns and (rows["label"].astype(str) == "benchmark").any():
        rows = rows[rows["label"].astype(str) == "benchmark"]
    b = rows.iloc[0]
    for key in ("r", "ci_low", "ci_high", "source"):
        if key in b.index and not apa.is_missing(b[key]):
            out[key] = b[key]
    return out


def _benchmark_line(bench: Mapping[str, Any]) -> Line:
    source = str(bench["source"]).split(",")[0]
    row = {"estimate": float(bench["r"]), "ci_low": float(bench["ci_low"]),
           "ci_high": float(bench["ci_high"]), "p_value": np.nan, "kind": "benchmark"}  # fmt: skip
    return f"Benchmark: {source}", pd.Series(row)


def _with_sites(
    blocks: list[Block], units: pd.DataFrame | None, bench: Mapping[str, Any]
) -> list[Block]:
    """Blocks with the sites' correlations under the first pooled model's title and the
    benchmark after the last pooled model."""
    where = [i for i, (scale, _, _) in enumerate(blocks) if scale == "correlation"]
    if not where:
        return blocks
    out = list(blocks)
    scale, model, lines = out[where[0]]
    out[where[0]] = (scale, model, lines[:1] + _units_lines(units) + lines[1:])
    scale, model, lines = out[where[-1]]
    out[where[-1]] = (scale, model, [*lines, _benchmark_line(bench)])
    return out


def _draw_page(panels: list[Panel], settings: RenderSettings, bench: Mapping[str, Any]) -> Figure:
    """One page: label column | plot | value column, panels stacked, sized in inches."""

    def band(ax: Axes) -> None:
        ax.axvspan(float(bench["ci_low"]), float(bench["ci_high"]), color=style.GREY, alpha=0.25,
                   linewidth=0, zorder=0)  # fmt: skip

    width = style.WIDTHS["double"]
    row_in = row_height(panels)
    total_h = page_height(panels, row_in)
    fig, first = style.new_figure("double", total_h)
    fig.set_layout_engine("none")
    fig.delaxes(first)
    top = total_h - TOP_IN
    value_x = (LABEL_IN + PLOT_IN + 0.12) / width
    for scale, lines in panels:
        h = row_in * len(lines)
        bottom = top - h
        rect = (LABEL_IN / width, bottom / total_h, PLOT_IN / width, h / total_h)
        extra = [band] if scale == "correlation" else None
        ax = _draw_panel(fig, rect, 0.01, value_x, scale, lines, extra)
        ax.set_xlabel(_axis_label(scale, settings))
        top = bottom - AXIS_IN - GAP_IN
    fig.text(value_x, (total_h - 0.06) / total_h, "Estimate [95 % CI], p", ha="left", va="top",
             fontsize=7, fontstyle="italic")  # fmt: skip
    return fig


@skippable
def draw_forest(
    summary: pd.DataFrame,
    units: pd.DataFrame | None,
    benchmark: pd.DataFrame | None,
    fits: Mapping[str, Mapping[str, Any]] | None,
    settings: RenderSettings,
) -> Figure | list[Figure]:
    """Alliance effects (key terms) of every fitted model with 95 % CIs, one panel per scale:
    linear coefficients in outcome units; the RI-CLPM's within-patient cross-lagged paths in raw
    units, one panel per path (symptom points per alliance point; alliance points per symptom
    point); indirect effects; the correlation pooled over sites (diamond) with each site's r and
    the published benchmark r = .278 [.256, .299] (Flückiger et al. 2018) as a shaded band;
    odds ratios and hazard ratios on log axes. Not standardised: compare effects within a panel
    only. A main effect whose model also interacts it with a moderator is the slope at the
    moderator's reference level or zero, as its label says. Models marked as sensitivity
    analyses (options.sensitivity) and skipped models are not drawn (the model tables list
    them). When the rows do not fit on one page they continue on a second page
    (forest_page2), split between models.
    """
    require_rows(summary, "models/summary.csv")
    rows = forest_rows(summary, fits)
    if rows.empty:
        raise NothingToDraw("summary.csv has no fitted model with an estimate")
    score = settings.score
    early = early_window_text(score.early_window, score.early_session)
    bench = _benchmark(benchmark)
    blocks = _with_sites(model_blocks(rows, fits, early), units, bench)
    figures = [_draw_page(panels, settings, bench) for panels in paginate(blocks)]
    return figures[0] if len(figures) == 1 else figures
