"""Figure `therapists`: caterpillar plots of therapist effects on outcome and on alliance.

Therapists are shown by rank only: their pseudonyms never reach the figure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from scipy import special

from alliance.render import apa, style
from alliance.render.figures.common import (
    NothingToDraw,
    alliance_instrument,
    mean_ci,
    panel_label,
    require_columns,
    require_fitted,
    require_rows,
    skippable,
)
from alliance.settings import RenderSettings

INTERCEPT = "(Intercept)"
Z95 = float(special.ndtri(0.975))


def outcome_icc(fit: Mapping[str, Any]) -> tuple[float | None, str]:
    """Therapist share of outcome variance and how it was obtained.

    The model's own ICC when it has one (random intercepts only); with a random time slope the
    share depends on time, so it is computed at time 0 (intercept variances only).
    """
    icc = fit.get("icc") or {}
    if "therapist" in icc and icc["therapist"] is not None:
        return float(icc["therapist"]), ""
    comps = fit.get("variance_components") or []
    var = {}
    for c in comps:
        if c.get("term2"):
            continue
        if c.get("group") == "Residual" or c.get("term1") in (INTERCEPT, ""):
            var[str(c.get("group"))] = float(c.get("variance") or 0.0)
    if "therapist" not in var:
        return None, ""
    total = sum(var.values())
    return (var["therapist"] / total if total > 0 else None), " at week 0"


def alliance_therapist_icc(alliance_icc: pd.DataFrame | None) -> float | None:
    """Therapist share of patient-rated alliance variance (scores/alliance_icc.csv)."""
    if alliance_icc is None or alliance_icc.empty or "share" not in alliance_icc.columns:
        return None
    rows = alliance_icc[alliance_icc["level"].astype(str) == "therapist"]
    if "column" in rows.columns and (rows["column"] == "alliance").any():
        rows = rows[rows["column"] == "alliance"]
    return float(rows["share"].iloc[0]) if len(rows) else None


def therapist_alliance(analysis: pd.DataFrame) -> pd.DataFrame:
    """Per therapist: centred mean alliance (mean of its patients' means) with a t CI over its
    patients (NaN with one patient): columns estimate, ci_low, ci_high, n."""
    require_columns(analysis, ["therapist", "patient", "alliance_ther", "alliance_pat"],
                    "analysis.parquet")  # fmt: skip
    per = (
        analysis.dropna(subset=["therapist", "alliance_ther", "alliance_pat"])
        .groupby("patient", sort=True)
        .agg(therapist=("therapist", "first"), ther=("alliance_ther", "first"),
             pat=("alliance_pat", "first"))
    )  # fmt: skip
    if per.empty:
        raise NothingToDraw("no therapist-level alliance in analysis.parquet")
    per["centred"] = per["ther"] + per["pat"]  # patient mean - grand mean
    rows = []
    for _, g in per.groupby("therapist", sort=True):
        _, lo, hi, n = mean_ci(g["centred"])
        rows.append({"estimate": float(g["ther"].iloc[0]), "ci_low": lo, "ci_high": hi, "n": n})
    return pd.DataFrame(rows)


def _caterpillar(ax: Axes, est: pd.DataFrame, xlabel: str) -> None:
    d = est.sort_values("estimate", kind="mergesort").reset_index(drop=True)
    y = np.arange(1, len(d) + 1)
    ax.hlines(y, d["ci_low"], d["ci_high"], color=style.GREY, linewidth=0.6)
    ax.plot(d["estimate"], y, "o", color="black", markersize=2.2)
    ax.axvline(0, color="black", linewidth=0.5, linestyle=":")
    ax.set_ylim(0, len(d) + 1)
    ax.set_yticks([1, len(d)])
    ax.set_xlabel(xlabel)


@skippable
def draw_therapists(
    fit: Mapping[str, Any],
    random_effects: pd.DataFrame,
    analysis: pd.DataFrame,
    alliance_icc: pd.DataFrame | None,
    settings: RenderSettings,
) -> Figure:
    """Therapists ranked by (A) their random intercept in the symptom growth model
    (symptoms_growth; conditional mode with a 95 % interval of +/- 1.96 conditional SD;
    positive = higher symptom scores than the average therapist) and (B) their mean
    patient-rated alliance (mean of their patients' means minus the grand mean, with a 95 % t
    interval over their patients). Each panel is sorted on its own estimate. Title: therapist
    intraclass correlations of alliance (three-level null model) and of the outcome.
    """
    require_fitted(fit, "symptoms_growth")
    require_rows(random_effects, "symptoms_growth/random_effects.csv")
    re = random_effects
    if "group" in re.columns:
        re = re[re["group"].astype(str) == "therapist"]
    if "term" in re.columns:
        re = re[re["term"].astype(str) == INTERCEPT]
    if re.empty:
        raise NothingToDraw("no therapist random intercepts in random_effects.csv")
    outcome = pd.DataFrame({
        "estimate": re["estimate"].to_numpy(dtype=float),
        "ci_low": (re["estimate"] - Z95 * re["cond_sd"]).to_numpy(dtype=float),
        "ci_high": (re["estimate"] + Z95 * re["cond_sd"]).to_numpy(dtype=float),
    })  # fmt: skip
    alliance = therapist_alliance(analysis)
    fig, (a, b) = style.new_figure("single", 3.4, ncols=2)
    sym = settings.symptoms.label
    _caterpillar(a, outcome, f"Random intercept\n({sym} points)")
    label, _ = alliance_instrument(settings.alliance, settings.score.rater)
    _caterpillar(b, alliance, f"Mean \N{MINUS SIGN} grand mean\n({label} points)")
    a.set_title("Symptoms", fontsize=8)
    b.set_title(f"{settings.score.rater.capitalize()}-rated alliance", fontsize=8)
    a.set_ylabel("Therapists (ranked)")
    panel_label(a, "A")
    panel_label(b, "B")
    icc_a = alliance_therapist_icc(alliance_icc)
    icc_o, where = outcome_icc(fit)
    parts = []
    if icc_a is not None:
        parts.append(f"alliance {apa.fmt_r(icc_a)}")
    if icc_o is not None and math.isfinite(icc_o):
        parts.append(f"outcome {apa.fmt_r(icc_o)}{where}")
    if parts:
        fig.suptitle(f"Therapist ICC: {'; '.join(parts)}", fontsize=8)
    return fig
