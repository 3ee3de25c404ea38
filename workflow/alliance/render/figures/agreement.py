"""Figure `agreement_surface`: response surface of the outcome over patient- and therapist-rated
alliance (polynomial regression / response-surface analysis, Marmarosh & Kivlighan 2012)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import patheffects
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from alliance.render import apa, style
from alliance.render.figures.common import (
    NothingToDraw,
    alliance_instrument,
    p_text,
    require_fitted,
    require_rows,
    skippable,
)
from alliance.settings import RenderSettings

P_NAMES = ("agree_p", "P")  # the raw-scale column first: axes in the instrument's units
T_NAMES = ("agree_t", "T")
Y_NAMES = ("predicted", "fit", "estimate")
SURFACE_TERMS = ("a1", "a2", "a3", "a4")
SURFACE_TEXT = {
    "a1": "a\u2081 (slope, P = T)",
    "a2": "a\u2082 (curvature, P = T)",
    "a3": "a\u2083 (slope, P = \N{MINUS SIGN}T)",
    "a4": "a\u2084 (curvature, P = \N{MINUS SIGN}T)",
}
CMAP = "cividis"  # perceptually uniform and readable with colour-vision deficiencies


def _pick(frame: pd.DataFrame, names: Sequence[str], what: str) -> str:
    for n in names:
        if n in frame.columns:
            return n
    raise NothingToDraw(f"grid.csv has no {what} column (looked for {', '.join(names)})")


def outcome_text(outcome: str, sym: str) -> str:
    """Readable name of the RSA outcome column (`sym`: the symptom scale's label)."""
    return {
        "symptom_change": f"{sym} change (final \N{MINUS SIGN} baseline)",
        "final_symptom": f"Final {sym} score",
        "symptom": f"{sym} score",
    }.get(outcome, outcome or "Predicted outcome")


def _outcome(fit: Mapping[str, Any]) -> str:
    """Outcome column: fit.json `outcome`, else the left side of `formula` / `formula_r`."""
    if fit.get("outcome"):
        return str(fit["outcome"])
    for key in ("formula", "formula_r"):
        text = str(fit.get(key) or "")
        if "~" in text:
            return text.split("~")[0].split("(")[-1].strip()
    return ""


def _surface_lines(coefficients: pd.DataFrame | None) -> list[str]:
    if coefficients is None or coefficients.empty or "term" not in coefficients.columns:
        return []
    surface, key = coefficients, "term"
    lines = []
    for term in SURFACE_TERMS:
        rows = surface[surface[key].astype(str) == term]
        if rows.empty:
            continue
        r = rows.iloc[0]
        ci = apa.fmt_ci(r.get("ci_low"), r.get("ci_high"))
        p = p_text(r.get("p_value") if "p_value" in r.index else None)
        lines.append(f"{SURFACE_TEXT[term]} = {apa.fmt_num(r['estimate'])} {ci}, {p}")
    return lines


@skippable
def draw_agreement_surface(
    fit: Mapping[str, Any],
    grid: pd.DataFrame,
    coefficients: pd.DataFrame | None,
    patients: pd.DataFrame | None,
    settings: RenderSettings,
) -> Figure:
    """Predicted outcome (filled contours) over patient-rated (P) and therapist-rated (T)
    alliance from the response-surface model Y = b0 + b1 P + b2 T + b3 P^2 + b4 PT + b5 T^2
    (agreement_rsa), with the line of agreement (P = T, solid) and of disagreement (P = -T about
    the scale midpoint, dashed); grey dots are patients' mean ratings over sessions rated by
    both. Below: the surface parameters a1-a4 with 95 % CI and p.
    """
    require_fitted(fit, "agreement_rsa")
    require_rows(grid, "agreement_rsa/grid.csv")
    p_names = (str(fit["P"]), *P_NAMES) if fit.get("P") else P_NAMES
    t_names = (str(fit["T"]), *T_NAMES) if fit.get("T") else T_NAMES
    pc, tc, yc = _pick(grid, p_names, "P"), _pick(grid, t_names, "T"), _pick(grid, Y_NAMES, "Y")
    wide = grid.pivot_table(index=tc, columns=pc, values=yc, aggfunc="mean").sort_index()
    wide = wide.sort_index(axis=1)
    P, T = np.meshgrid(wide.columns.to_numpy(dtype=float), wide.index.to_numpy(dtype=float))
    Z = wide.to_numpy(dtype=float)
    label, rng = alliance_instrument(settings.alliance, "patient")  # P and T share the form's key
    # P = -T is taken about the point the model centred both ratings at (fit.json `centre`,
    # the scale midpoint by default); on the centred columns that point is 0
    midpoint = fit.get("centre")
    if pc == "P":
        midpoint = 0.0
    elif midpoint is None:
        midpoint = sum(rng) / 2 if rng else float(P.mean())
    lines = _surface_lines(coefficients)
    # Manual layout in inches: a square plot (the agreement line must sit at 45 degrees), the
    # colour bar beside it, legend and surface parameters below. Constrained layout cannot
    # keep an equal-aspect axes and its colour bar the same height.
    width = style.WIDTHS["single"]
    side, left, text_h = 2.0, 0.48, 0.13 * len(lines)
    bottom = 0.72 + text_h
    height = bottom + side + 0.12
    fig, first = style.new_figure("single", height)
    fig.set_layout_engine("none")
    fig.delaxes(first)
    ax = fig.add_axes((left / width, bottom / height, side / width, side / height))
    cax = fig.add_axes(((left + side + 0.1) / width, bottom / height, 0.1 / width,
                        side / height))  # fmt: skip
    filled = ax.contourf(P, T, Z, levels=12, cmap=CMAP)
    ax.contour(P, T, Z, levels=filled.levels, colors="white", linewidths=0.25, alpha=0.6)
    cbar = fig.colorbar(filled, cax=cax)
    cbar.set_label(outcome_text(_outcome(fit), settings.symptoms.label))
    cbar.ax.tick_params(labelsize=7)
    cbar.outline.set_linewidth(0.5)
    lo_x, hi_x = float(P.min()), float(P.max())
    lo_y, hi_y = float(T.min()), float(T.max())
    if patients is not None and {"agree_p", "agree_t"} <= set(patients.columns):
        obs = patients[["agree_p", "agree_t"]].dropna()
        ax.plot(obs["agree_p"], obs["agree_t"], ".", color="white", markersize=1.6, alpha=0.6,
                markeredgewidth=0)  # fmt: skip
    line = np.linspace(min(lo_x, lo_y), max(hi_x, hi_y), 50)
    # white lines with a black edge read on both ends of the colour map and in the legend
    edge = [patheffects.withStroke(linewidth=2.0, foreground="black")]
    style_a = {"color": "white", "linewidth": 1.0, "path_effects": edge}
    ax.plot(line, line, **style_a)
    dashed = (0, (3.5, 2.0))
    ax.plot(line, 2 * midpoint - line, linestyle=dashed, **style_a)
    ax.set_xlim(lo_x, hi_x)
    ax.set_ylim(lo_y, hi_y)
    ax.set_xlabel(f"Patient-rated alliance, P ({label})")
    ax.set_ylabel(f"Therapist-rated alliance, T ({label})")
    handles = [
        Line2D([], [], label="Agreement (P = T)", **style_a),
        Line2D([], [], linestyle=dashed, label="Disagreement (P = \N{MINUS SIGN}T)", **style_a),
    ]
    fig.legend(handles=handles, loc="lower center", ncols=2, handlelength=3.0,
               bbox_to_anchor=(0.5, (0.06 + text_h) / height), borderaxespad=0)  # fmt: skip
    if lines:
        fig.text(0.5, (0.04 + text_h) / height, "\n".join(lines), ha="center", va="top",
                 fontsize=7, linespacing=1.35)  # fmt: skip
    return fig
