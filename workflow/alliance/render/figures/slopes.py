"""Figure `arm_slopes`: alliance-outcome slope per treatment arm and class (Krupnick et al.
1996; Zilcha-Mano et al. 2015), from symptoms_by_arm/simple_slopes.csv and contrasts.csv."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from alliance.render import apa, style
from alliance.render.figures.common import (
    NothingToDraw,
    alliance_instrument,
    arm_classes,
    p_text,
    panel_label,
    require_columns,
    require_fitted,
    require_rows,
    skippable,
)
from alliance.settings import RenderSettings

CLASS_ORDER = ("placebo", "drug", "psychotherapy", "combination", "other")
TERM_TEXT = {
    "alliance_pat_prior": "Between patients\n(patient-level alliance so far)",
    "alliance_within_prior": "Within patients\n(last session's alliance vs own running mean)",
    "alliance_within_dt_prior": "Within patients\n(last session's alliance vs own trend)",
    "alliance_ther_prior": "Between therapists\n(therapist-level alliance so far)",
    "alliance_pat": "Between patients\n(patient-level alliance)",
    "alliance_within": "Within patients\n(session-level alliance)",
    "alliance_ther": "Between therapists\n(therapist-level alliance)",
}


def slope_rows(slopes: pd.DataFrame, term: str, classes: Mapping[str, str]) -> pd.DataFrame:
    """Rows to draw for one focal term, top to bottom: per class (order placebo, drug,
    psychotherapy, other; `classes` maps arm -> class) its arms, then the class average when
    the class has several arms."""
    s = slopes[slopes["term"].astype(str) == term]
    kind = s["type"].astype(str) if "type" in s.columns else pd.Series("level", index=s.index)
    arms = s[kind == "level"]
    pooled = s[kind == "class"]
    rows = []
    seen_classes = list(dict.fromkeys(classes.get(str(a), "other") for a in arms["level"]))
    order = [c for c in CLASS_ORDER if c in seen_classes] + [
        c for c in seen_classes if c not in CLASS_ORDER
    ]
    for cls in order:
        members = [r for _, r in arms.iterrows() if classes.get(str(r["level"]), "other") == cls]
        for r in members:
            text = f"{r['level']} ({cls})" if cls != str(r["level"]) else str(r["level"])
            rows.append({**r.to_dict(), "label": text, "class": cls, "pooled": False})
        pc = pooled[pooled["level"].astype(str) == cls]
        if len(members) > 1 and len(pc):
            r = pc.iloc[0]
            rows.append({**r.to_dict(), "label": f"{cls.capitalize()}, average of arms",
                         "class": cls, "pooled": True})  # fmt: skip
    return pd.DataFrame(rows)


def _contrast_text(contrasts: pd.DataFrame | None, term: str) -> str | None:
    if contrasts is None or contrasts.empty or "term" not in contrasts.columns:
        return None
    c = contrasts[contrasts["term"].astype(str) == term]
    if c.empty:
        return None
    lines = []
    for _, r in c.iterrows():
        name = f"{str(r.get('plus', '')).capitalize()} \N{MINUS SIGN} {r.get('minus', '')}"
        ci = apa.fmt_ci(r["ci_low"], r["ci_high"])
        lines.append(f"{name}: {apa.fmt_num(r['estimate'])} {ci}, {p_text(r['p_value'])}")
    return "\n".join(lines)


def _panel(ax: Axes, rows: pd.DataFrame) -> None:
    y = np.arange(len(rows))[::-1]
    for yy, (_, r) in zip(y, rows.iterrows(), strict=True):
        colour = style.ARM_CLASS_COLORS.get(r["class"], style.GREY)
        width = 1.6 if r["pooled"] else 1.0
        ax.hlines(yy, r["ci_low"], r["ci_high"], color=colour, linewidth=width)
        ax.plot(r["estimate"], yy, "D" if r["pooled"] else "o", color=colour,
                markersize=4.5 if r["pooled"] else 3.5,
                markerfacecolor="white" if r["pooled"] else colour)  # fmt: skip
    ax.axvline(0, color="black", linewidth=0.5, linestyle=":")
    ax.set_yticks(y, rows["label"])
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.tick_params(axis="y", length=0)
    ax.spines["left"].set_visible(False)


@skippable
def draw_arm_slopes(
    fit: Mapping[str, Any],
    slopes: pd.DataFrame,
    contrasts: pd.DataFrame | None,
    settings: RenderSettings,
) -> Figure:
    """Simple slopes of alliance on symptoms per treatment arm (dots) and per treatment class
    with several arms (open diamonds, the equal-weight average of its arms) with 95 % CIs, from
    the growth model with alliance x arm interactions (symptoms_by_arm); negative = higher
    alliance, lower symptom scores. One panel per alliance part, computed from ratings of
    earlier sessions only in the default model: the patient's running mean relative to the
    therapist's (between patients) and the last session's departure from the patient's running
    mean (within patients). Below each, the contrast of slopes named in the config (e.g. drug
    minus placebo) with 95 % CI and p.
    """
    require_fitted(fit, "symptoms_by_arm")
    require_rows(slopes, "symptoms_by_arm/simple_slopes.csv")
    require_columns(slopes, ["term", "level", "estimate", "ci_low", "ci_high"], "simple_slopes.csv")
    terms = [t for t in dict.fromkeys(slopes["term"].astype(str)) if t in TERM_TEXT]
    terms = terms or list(dict.fromkeys(slopes["term"].astype(str)))
    classes = arm_classes(settings.codings.arm)
    panels = [(t, slope_rows(slopes, t, classes)) for t in terms]
    panels = [(t, r) for t, r in panels if not r.empty]
    if not panels:
        raise NothingToDraw("simple_slopes.csv has no per-arm slopes")
    n_rows = max(len(r) for _, r in panels)
    fig, axes = style.new_figure("double" if len(panels) > 1 else "single", 0.22 * n_rows + 1.35,
                                 ncols=len(panels), sharey=True)  # fmt: skip
    axes = np.atleast_1d(axes)
    sym = settings.symptoms.label
    label, _ = alliance_instrument(settings.alliance, settings.score.rater)
    for i, (ax, (term, rows)) in enumerate(zip(axes, panels, strict=True)):
        _panel(ax, rows)
        ax.set_title(TERM_TEXT.get(term, term), fontsize=8)
        ax.set_xlabel(f"Slope ({sym} points per {label} point)")
        text = _contrast_text(contrasts, term)
        if text:
            ax.annotate(
                text,
                xy=(0.5, 0),
                xycoords="axes fraction",
                xytext=(0, -30),
                textcoords="offset points",
                ha="center",
                va="top",
                fontsize=7,
            )
        if len(panels) > 1:
            panel_label(ax, "ABCD"[i])
    return fig
