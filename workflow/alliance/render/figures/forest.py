"""Figure `forest`: the alliance effects of every fitted model, from results/models/summary.csv.

Models on different scales are drawn in separate panels, not standardised (a standardised
effect would need each outcome's SD and model-specific conversions the reader cannot check):
linear models (lmm, rsa, mediation) as unstandardised coefficients in outcome units; logistic
models (glmm, discrete-time hazard, GEE) as odds ratios and Cox models as hazard ratios, both on
a log axis; pooled correlations as r, with the sites' correlations and the meta-analytic
benchmark (Flückiger et al. 2018: r = .278 [.256, .299]) as a shaded band.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedFormatter, FixedLocator, NullLocator
from matplotlib.transforms import blended_transform_factory

from alliance.render import apa, style
from alliance.render.figures.common import (
    NothingToDraw,
    require_columns,
    require_rows,
    skippable,
)
from alliance.settings import RenderSettings

# Flückiger, Del Re, Wampold & Horvath (2018), Psychotherapy 55:316 (science notes §2); used
# when the pooled model did not write its own benchmark.csv.
BENCHMARK = {"r": 0.278, "ci_low": 0.256, "ci_high": 0.299,
             "source": "Flückiger et al. 2018"}  # fmt: skip
SCALE_OF_KIND = {
    "lmm": "linear", "rsa": "linear", "mediation": "indirect", "gee": "odds", "glmm": "odds",
    "hazard": "odds", "cox": "hazard", "pool": "correlation",
}  # fmt: skip
SCALES = ("linear", "indirect", "odds", "hazard", "correlation")
TERM_TEXT = {
    "alliance_ther": "Therapist-level alliance",
    "alliance_pat": "Patient-level alliance",
    "alliance_within": "Session-level alliance",
    "alliance_lag1": "Alliance, previous session",
    "alliance_within_lag1": "Session-level alliance, previous session",
    "alliance_within_dt_lag1": "Session-level alliance (detrended), previous session",
    "alliance_early": "Early alliance (sessions 1\N{EN DASH}3)",
    "alliance_mean": "Mean alliance",
    "alliance_last": "End-of-treatment alliance",
    "alliance_t": "Therapist-rated alliance",
    "weeks": "weeks",
    "telehealth": "telehealth",
    "agency": "agency",
    "a1": "a\u2081 slope along P = T",
    "a2": "a\u2082 curvature along P = T",
    "a3": "a\u2083 slope along P = \N{MINUS SIGN}T",
    "a4": "a\u2084 curvature along P = \N{MINUS SIGN}T",
}
PATH_TEXT = {
    "indirect": "Indirect effect via alliance",
    "a": "Path a (predictor \N{RIGHTWARDS ARROW} alliance)",
    "b": "Path b (alliance \N{RIGHTWARDS ARROW} outcome)",
    "c": "Total effect",
    "c_prime": "Direct effect",
}
ROW_IN = 0.155  # inches per row: 7 pt text with a little air
MIN_ROW_IN = 0.118  # 7 pt text (0.097 in) with the least air that still reads


def term_text(term: str) -> str:
    """Readable term: known names translated, interactions joined by a multiplication sign;
    mediation paths (`indirect.agreeableness`) and pooled correlations (`pooled_r_REML`)."""
    term = str(term)
    path, _, rest = term.partition(".")
    if rest and path in PATH_TEXT:
        return f"{PATH_TEXT[path]}: {rest}"
    if term.startswith("pooled_r"):
        method = term.removeprefix("pooled_r").strip("_")
        return f"Pooled r ({method})" if method else "Pooled r"
    parts = [TERM_TEXT.get(p, p) for p in str(term).split(":")]
    parts = [parts[0]] + [p[0].lower() + p[1:] if p[1:2].islower() else p for p in parts[1:]]
    text = " \N{MULTIPLICATION SIGN} ".join(parts)
    if not text or str(term) in ("a1", "a2", "a3", "a4"):  # a-subscript names stay lower case
        return text
    return text[0].upper() + text[1:]


def _scale_of(row: pd.Series) -> str:
    for col in ("scale", "family"):
        value = str(row.get(col, "") or "")
        if value == "gaussian":
            return "linear"
        if value in SCALES:
            return value
    return SCALE_OF_KIND.get(str(row.get("kind", "")), "linear")


def forest_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """Fitted rows with a finite estimate and CI, tagged with their scale (panel)."""
    require_columns(summary, ["model", "kind", "term", "estimate", "ci_low", "ci_high"],
                    "summary.csv")  # fmt: skip
    s = summary.copy()
    if "status" in s.columns:
        s = s[s["status"].astype(str) == "fitted"]
    s = s[np.isfinite(pd.to_numeric(s["estimate"], errors="coerce"))]
    s = s[s["term"].astype(str) != "(Intercept)"]
    if "kind" in s.columns:
        s = s[
            ~(
                (s["kind"].astype(str) == "rsa")
                & ~s["term"].astype(str).isin(["a1", "a2", "a3", "a4"])
            )
        ]
    s = s.assign(scale=[_scale_of(r) for _, r in s.iterrows()])
    return s.reset_index(drop=True)


def _interactions(formula: str, term: str) -> list[str]:
    """Columns that `term` interacts with in `formula` (fixed part, two-way terms)."""
    fixed = formula.split("~", 1)[-1]
    out = []
    for piece in fixed.split("+"):
        parts = [p.strip() for p in piece.split(":")]
        if len(parts) == 2 and term in parts and "|" not in piece:
            out.append(parts[1] if parts[0] == term else parts[0])
    return out


def conditional_note(term: str, fit: Mapping[str, Any] | None) -> str:
    """ " (in PLA-CM)" / " (at telehealth = 0)" when `term` is a main effect that the model
    also interacts with a moderator: its estimate is then the slope at the moderator's zero."""
    if not fit or ":" in term:
        return ""
    moderators = _interactions(str(fit.get("formula") or ""), term)
    if not moderators:
        return ""
    factors = ((fit.get("frame") or {}).get("factors")) or {}
    notes = []
    for col in moderators:
        owner = next((f for f, info in factors.items()
                      if col in (info.get("columns") or {}).values()), None)  # fmt: skip
        note = f"in {factors[owner].get('reference')}" if owner else f"at {col} = 0"
        if note not in notes:
            notes.append(note)
    return f" ({'; '.join(notes)})"


def _layout(
    rows: pd.DataFrame, fits: Mapping[str, Mapping[str, Any]] | None = None
) -> list[tuple[str, list[tuple[str, pd.Series | None]]]]:
    """Per scale: (label, row or None for a model header), models in summary order."""
    out = []
    for scale in SCALES:
        sub = rows[rows["scale"] == scale]
        if sub.empty:
            continue
        lines: list[tuple[str, pd.Series | None]] = []
        for model in dict.fromkeys(sub["model"]):
            m = sub[sub["model"] == model]
            title = str(m["label"].iloc[0]) if "label" in m.columns else str(model)
            title = title.replace("->", "\N{RIGHTWARDS ARROW}")
            lines.append((title, None))
            fit = (fits or {}).get(str(model))
            lines += [(term_text(r["term"]) + conditional_note(str(r["term"]), fit), r)
                      for _, r in m.iterrows()]  # fmt: skip
        out.append((scale, lines))
    return out


def _axis_label(scale: str, sym: str) -> str:
    return {
        "linear": f"Coefficient B (outcome units; symptom models: {sym} points)",
        "indirect": "Indirect effect a \N{MULTIPLICATION SIGN} b (outcome units)",
        "odds": "Odds ratio (log scale)",
        "hazard": "Hazard ratio (log scale)",
        "correlation": "Correlation r (positive = better alliance, more improvement)",
    }[scale]


def _value_text(est: float, lo: float, hi: float, p: Any, digits: int, r_like: bool) -> str:
    """ "−1.67 [−2.47, −0.88], p < .001"; correlations without the leading zero; no p when
    there is none (site correlations, the benchmark)."""
    if r_like:
        num = apa.fmt_r(est, digits)
        ci = f"[{apa.fmt_r(lo, digits)}, {apa.fmt_r(hi, digits)}]"
    else:
        num, ci = apa.fmt_num(est, digits), apa.fmt_ci(lo, hi, digits)
    if apa.is_missing(p):
        return f"{num} {ci}"
    ptxt = apa.fmt_p(p)
    ptxt = f"p {ptxt}" if ptxt.startswith(("<", ">")) else f"p = {ptxt}"
    return f"{num} {ci}, {ptxt}"


def panel_digits(lines: list[tuple[str, pd.Series | None]], ratio: bool) -> int:
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


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Ratio ticks at 1-2-5 steps covering [lo, hi], always including 1."""
    nice = [m * 10.0**e for e in range(-3, 3) for m in (1, 2, 5)]
    inside = [t for t in nice if lo <= t <= hi]
    return sorted(set(inside) | {1.0})


def _tick_text(t: float) -> str:
    return f"{t:g}"


def _draw_panel(
    fig: Figure,
    rect: tuple[float, float, float, float],
    label_x: float,
    value_x: float,
    scale: str,
    lines: list[tuple[str, pd.Series | None]],
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
            _value_text(est, lo, hi, row.get("p_value"), digits, scale == "correlation"),
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
        ax.set_xscale("log")
        lo, hi = min([*lows, 1.0]), max([*highs, 1.0])
        ax.set_xlim(lo / 1.15, hi * 1.15)
        ticks = _log_ticks(lo / 1.15, hi * 1.15)
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(FixedFormatter([_tick_text(t) for t in ticks]))
        ax.xaxis.set_minor_locator(NullLocator())
    return ax


def _units_lines(units: pd.DataFrame | None) -> list[tuple[str, pd.Series]]:
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


def _benchmark_line(bench: Mapping[str, Any]) -> tuple[str, pd.Series]:
    source = str(bench["source"]).split(",")[0]
    row = {"estimate": float(bench["r"]), "ci_low": float(bench["ci_low"]),
           "ci_high": float(bench["ci_high"]), "p_value": np.nan, "kind": "benchmark"}  # fmt: skip
    return f"Benchmark: {source}", pd.Series(row)


@skippable
def draw_forest(
    summary: pd.DataFrame,
    units: pd.DataFrame | None,
    benchmark: pd.DataFrame | None,
    fits: Mapping[str, Mapping[str, Any]] | None,
    settings: RenderSettings,
) -> Figure:
    """Alliance effects (key terms) of every fitted model with 95 % CIs, one panel per scale:
    linear coefficients in outcome units, odds ratios and hazard ratios on log axes, and the
    correlation pooled over sites (diamond) with each site's r and the published benchmark
    r = .278 [.256, .299] (Flückiger et al. 2018) as a shaded band. Not standardised: compare
    effects within a panel only. A main effect whose model also interacts it with a moderator
    is the slope at the moderator's reference level or zero, as its label says. Skipped models
    are not shown (the model table lists them).
    """
    require_rows(summary, "models/summary.csv")
    rows = forest_rows(summary)
    if rows.empty:
        raise NothingToDraw("summary.csv has no fitted model with an estimate")
    panels = _layout(rows, fits)
    extras: dict[str, list] = {}
    for i, (scale, lines) in enumerate(panels):
        if scale != "correlation":
            continue
        unit_lines = _units_lines(units)
        bench = _benchmark(benchmark)
        head, rest = lines[:1], lines[1:]
        panels[i] = (scale, head + unit_lines + rest + [_benchmark_line(bench)])

        def band(ax: Axes, b: dict[str, Any] = bench) -> None:
            ax.axvspan(float(b["ci_low"]), float(b["ci_high"]), color=style.GREY, alpha=0.25,
                       linewidth=0, zorder=0)  # fmt: skip

        extras[scale] = [band]
    # manual layout in inches: label column | plot | value column; panels stacked
    width = style.WIDTHS["double"]
    label_w, plot_w, axis_h, gap = 2.95, 2.35, 0.40, 0.1
    n_rows = sum(len(x) for _, x in panels)
    fixed = (axis_h + gap) * len(panels) + 0.2
    # rows close up to MIN_ROW_IN to keep the figure on one page
    row_in = min(ROW_IN, (style.MAX_HEIGHT - fixed) / n_rows)
    if row_in < MIN_ROW_IN:
        raise NothingToDraw(f"{n_rows} rows do not fit on one page; disable some models")
    heights = [row_in * len(lines) for _, lines in panels]
    total_h = sum(heights) + fixed
    fig, first = style.new_figure("double", total_h)
    fig.set_layout_engine("none")
    fig.delaxes(first)
    top = total_h - 0.2
    value_x = (label_w + plot_w + 0.12) / width
    for (scale, lines), h in zip(panels, heights, strict=True):
        bottom = top - h
        rect = (label_w / width, bottom / total_h, plot_w / width, h / total_h)
        ax = _draw_panel(fig, rect, 0.01, value_x, scale, lines, extras.get(scale))
        ax.set_xlabel(_axis_label(scale, settings.symptoms.label))
        top = bottom - axis_h - gap
    fig.text(value_x, (total_h - 0.06) / total_h, "Estimate [95 % CI], p", ha="left", va="top",
             fontsize=7, fontstyle="italic")  # fmt: skip
    return fig
