"""Figure `riclpm_paths`: the within-person part of the random-intercept cross-lagged panel model
(Hamaker, Kuiper & Grasman 2015) as a path diagram, from symptoms_riclpm/coefficients.csv.

Four paths between two adjacent sessions: the autoregressions (alliance_ar, symptom_ar) and the
cross-lagged paths (alliance_to_symptom, symptom_to_alliance), each with estimate [95 % CI] and
p. The cross-lagged paths are in raw units, so each arrow carries its own unit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse, FancyArrowPatch

from alliance.render import apa, style
from alliance.render.figures.common import (
    NothingToDraw,
    alliance_instrument,
    require_columns,
    require_fitted,
    require_rows,
    skippable,
)
from alliance.render.figures.labels import path_unit
from alliance.settings import RenderSettings

MODEL = "symptoms_riclpm"
CROSS = ("alliance_to_symptom", "symptom_to_alliance")
AUTO = ("alliance_ar", "symptom_ar")
# node centres (axes fractions): alliance on top, symptoms below; previous session left
NODES = {
    ("alliance", 0): (0.11, 0.85), ("alliance", 1): (0.89, 0.85),
    ("symptom", 0): (0.11, 0.15), ("symptom", 1): (0.89, 0.15),
}  # fmt: skip
NODE_W, NODE_H = 0.2, 0.15
CROSS_COLORS = {"alliance_to_symptom": style.OKABE_ITO["blue"],
                 "symptom_to_alliance": style.OKABE_ITO["vermillion"]}  # fmt: skip
CROSS_TEXT = {"alliance_to_symptom": "Alliance \N{RIGHTWARDS ARROW} next symptoms",
              "symptom_to_alliance": "Symptoms \N{RIGHTWARDS ARROW} next alliance"}  # fmt: skip
AUTO_COLOR = style.OKABE_ITO["black"]


def path_estimates(
    coefficients: pd.DataFrame, x: str = "alliance", y: str = "symptom"
) -> dict[str, pd.Series]:
    """The four within-person paths present in `coefficients`, keyed by their default names
    (CROSS, AUTO) whatever the model's x and y; NothingToDraw when a cross-lagged path is
    missing (e.g. `equal_lags: false` gives one path per session: see the model table)."""
    require_columns(coefficients, ["term", "estimate", "ci_low", "ci_high"], "coefficients.csv")
    names = {"alliance_to_symptom": f"{x}_to_{y}", "symptom_to_alliance": f"{y}_to_{x}",
             "alliance_ar": f"{x}_ar", "symptom_ar": f"{y}_ar"}  # fmt: skip
    by_term = {str(r["term"]): r for _, r in coefficients.iterrows()}
    missing = [names[t] for t in CROSS if names[t] not in by_term]
    if missing:
        per_session = any(t.startswith(f"{m}_") for m in missing for t in by_term)
        why = (
            " (one path per session, equal_lags false: see the model table)" if per_session else ""
        )
        raise NothingToDraw(f"{MODEL}/coefficients.csv lacks {', '.join(missing)}{why}")
    return {t: by_term[names[t]] for t in (*CROSS, *AUTO) if names[t] in by_term}


def path_text(row: pd.Series | None, digits: int = 2) -> str:
    """ "−0.52 [−0.90, −0.14], p = .008" (no p when there is none); "not estimated" for None."""
    if row is None:
        return "not estimated"
    ci = apa.fmt_ci(row["ci_low"], row["ci_high"], digits)
    text = f"{apa.fmt_num(row['estimate'], digits)} {ci}"
    p = row.get("p_value")
    if apa.is_missing(p):
        return text
    ptxt = apa.fmt_p(p)
    return f"{text}, p {ptxt}" if ptxt.startswith(("<", ">")) else f"{text}, p = {ptxt}"


def _digits(row: pd.Series | None) -> int:
    """Two decimals, more when the CI is narrower than 0.1 (alliance points per symptom point
    are small numbers)."""
    if row is None:
        return 2
    width = abs(float(row["ci_high"]) - float(row["ci_low"]))
    return 3 if 0 < width < 0.1 else 2


def _node(ax: Axes, key: tuple[str, int], names: Mapping[str, str]) -> Ellipse:
    x, y = NODES[key]
    shape = Ellipse((x, y), NODE_W, NODE_H, facecolor="white", edgecolor="black", linewidth=0.8)
    ax.add_patch(shape)
    when = "session t \N{MINUS SIGN} 1" if key[1] == 0 else "session t"
    ax.text(x, y, f"{names[key[0]]}\n{when}", ha="center", va="center", fontsize=7)
    return shape


def _arrow(ax: Axes, a: Ellipse, b: Ellipse, colour: str, dashed: bool) -> None:
    ax.add_patch(FancyArrowPatch(
        a.center, b.center, patchA=a, patchB=b, arrowstyle="-|>", mutation_scale=8,
        color=colour, linewidth=1.2 if not dashed else 0.9, linestyle="--" if dashed else "-",
        shrinkA=1, shrinkB=1,
    ))  # fmt: skip


@skippable
def draw_riclpm(
    fit: Mapping[str, Any], coefficients: pd.DataFrame, settings: RenderSettings
) -> Figure:
    """Within-person part of the random-intercept cross-lagged panel model symptoms_riclpm
    (Hamaker et al. 2015): each patient's alliance and symptom scores as deviations from the
    patient's own level (the random intercepts), linked from one session to the next.
    Horizontal arrows: autoregressions (a deviation carried over to the next session, points per
    point of the same measure). Diagonal arrows: the cross-lagged paths in raw units, alliance
    to next-session symptoms (blue; symptom points per alliance point) and symptoms to
    next-session alliance (vermillion; alliance points per symptom point), each labelled in its
    colour. Estimates with 95 % CIs and p, the same for every pair of adjacent sessions; a path
    whose interval excludes 0 is drawn solid, otherwise dashed. Between-patient differences in
    level are not shown.
    """
    require_fitted(fit, MODEL)
    require_rows(coefficients, f"{MODEL}/coefficients.csv")
    x, y = str(fit.get("x") or "alliance"), str(fit.get("y") or "symptom")
    paths = path_estimates(coefficients, x, y)
    sym = settings.symptoms.label if y == "symptom" else y
    ali = alliance_instrument(settings.alliance, settings.score.rater)[0] if x == "alliance" else x
    names = {"alliance": f"Alliance ({ali})" if x == "alliance" else x,
             "symptom": f"Symptoms ({sym})" if y == "symptom" else y}  # fmt: skip
    heads = dict(CROSS_TEXT) if (x, y) == ("alliance", "symptom") else {
        "alliance_to_symptom": f"{x} \N{RIGHTWARDS ARROW} next {y}",
        "symptom_to_alliance": f"{y} \N{RIGHTWARDS ARROW} next {x}"}  # fmt: skip
    fig, ax = style.new_figure("double", 3.4)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_axis_off()
    nodes = {key: _node(ax, key, names) for key in NODES}

    def excludes_zero(row: pd.Series | None) -> bool:
        return row is not None and (float(row["ci_low"]) > 0 or float(row["ci_high"]) < 0)

    # autoregressions: horizontal, labels above (alliance) and below (symptoms)
    for term, measure, dy, va in (("alliance_ar", "alliance", 0.1, "bottom"),
                                  ("symptom_ar", "symptom", -0.1, "top")):  # fmt: skip
        row = paths.get(term)
        _arrow(ax, nodes[(measure, 0)], nodes[(measure, 1)], AUTO_COLOR, not excludes_zero(row))
        ax.text(0.5, NODES[(measure, 0)][1] + dy, f"Autoregression: {path_text(row, _digits(row))}",
                ha="center", va=va, fontsize=7)  # fmt: skip
    # cross-lagged paths: the diagonals, each in its colour, labelled in the triangle it bounds
    measures = {"symptom": sym, "alliance": ali}
    for term, start, end, at in (
        ("alliance_to_symptom", ("alliance", 0), ("symptom", 1), 0.69),
        ("symptom_to_alliance", ("symptom", 0), ("alliance", 1), 0.31),
    ):
        row = paths.get(term)
        colour = CROSS_COLORS[term]
        _arrow(ax, nodes[start], nodes[end], colour, not excludes_zero(row))
        ax.text(0.5, at, f"{heads[term]}\n{path_text(row, _digits(row))}\n"
                f"({path_unit(term, measures)})", ha="center", va="center", fontsize=7,
                color=colour, linespacing=1.25,
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5})  # fmt: skip
    return fig
