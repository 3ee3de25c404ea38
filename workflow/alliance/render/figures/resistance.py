"""Figure `trd_slopes`: the alliance slope in patients without and with treatment-resistant
depression (TRD), from the alliance x TRD models symptoms_by_trd and dropout_hazard_by_trd, and
at each treatment-resistance stage, from dropout_hazard_by_stage.

The slope in each group is a simple slope, a linear combination of the fixed effects: b_focal
(TRD = 0) and b_focal + b_focal:trd (TRD = 1), with SE sqrt(L'VL) from the model's coefficient
covariance. A model's own simple_slopes.csv is used when it wrote one (an LMM's rows carry their
Satterthwaite df); otherwise the same helper the model stage uses
(`alliance.models.contrasts.simple_slopes`) computes them from coefficients.csv and vcov.csv as
Wald z rows, which is what the model stage writes for a GLMM. Their difference is the
interaction coefficient, drawn with the model's own test of it.

The stage panel: the slope at stage s is b_alliance + (s - centre) b_alliance:stage (`stage` is
the staging score minus `TreatmentResistanceSettings.stage_centre()`), SE from the covariance,
drawn per SD of the alliance over the model's rows (fit.json `reliability_correction.x_sd`) as
an odds ratio, for each whole stage of `staging_range`; the interaction is the ratio per stage.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import blended_transform_factory

from alliance.models import contrasts
from alliance.render import style
from alliance.render.figures.common import (
    NothingToDraw,
    alliance_instrument,
    estimate_text,
    panel_note,
    ratio_axis,
    skippable,
    unfitted_reason,
)
from alliance.render.figures.labels import MINUS, term_text
from alliance.settings import RenderSettings

BY, STAGE = "trd", "stage"
SYMPTOMS, HAZARD, STAGED = "symptoms_by_trd", "dropout_hazard_by_trd", "dropout_hazard_by_stage"
STAGE_ROW = (math.nan, "o", style.OKABE_ITO["reddish_purple"])  # a row `stage_<s>`
MAX_STAGES = 11  # whole stages drawn; a longer scale (DM-TRD 3-27) is thinned to about this
# row kind -> (moderator value, marker, colour); the difference row is the interaction
ROWS = {
    "non_trd": (0.0, "o", style.TRD_COLORS["non_trd"]),
    "trd": (1.0, "s", style.TRD_COLORS["trd"]),
    "difference": (math.nan, "D", style.OKABE_ITO["black"]),
}
ROW_IN, PANEL_IN, NOTE_ROWS = 0.2, 0.85, 3  # inches per row, per panel (title, axis); note rows


def coefficient_covariance(
    coefficients: pd.DataFrame, vcov: pd.DataFrame
) -> tuple[pd.Series, pd.DataFrame]:
    """(b, V) over the terms of vcov.csv (first column = row names): derived rows of
    coefficients.csv, such as a regression-calibrated `*_rc`, are not fitted coefficients."""
    v = vcov.set_index(vcov.columns[0])
    v.index = v.index.astype(str)
    beta = coefficients.set_index(coefficients["term"].astype(str))["estimate"].astype(float)
    terms = [t for t in v.index if t in beta.index and t in v.columns]
    return beta.loc[terms], v.loc[terms, terms].astype(float)


def focal_terms(terms: list[str]) -> list[str]:
    """The alliance terms that interact with the TRD flag, in model order."""
    return [t for t in terms if t.startswith("alliance") and not t.endswith("_rc")
            and ":" not in t and contrasts.interaction_name(t, BY, terms)]  # fmt: skip


def _model_slopes(slopes: pd.DataFrame | None, term: str) -> pd.DataFrame | None:
    """The model's rows of `term` at TRD = 0 and 1 (index non_trd, trd), or None."""
    need = {"term", "by", "value", "estimate", "std_error", "ci_low", "ci_high", "p_value"}
    if slopes is None or slopes.empty or not need <= set(slopes.columns):
        return None
    s = slopes[(slopes["term"].astype(str) == term) & (slopes["by"].astype(str) == BY)]
    rows = {k: s[pd.to_numeric(s["value"], errors="coerce") == ROWS[k][0]] for k in ROWS}
    if len(rows["non_trd"]) != 1 or len(rows["trd"]) != 1:
        return None
    return pd.concat([rows["non_trd"], rows["trd"]]).set_axis(["non_trd", "trd"])


def trd_slopes(
    coefficients: pd.DataFrame, vcov: pd.DataFrame, slopes: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Per focal alliance term: its slope at TRD = 0 (`non_trd`) and TRD = 1 (`trd`) and the
    interaction (`difference`, TRD minus non-TRD). Columns term, row, estimate, std_error,
    ci_low, ci_high, p_value, source (simple_slopes.csv, covariance or coefficients.csv)."""
    beta, v = coefficient_covariance(coefficients, vcov)
    terms = list(beta.index)
    coefs = coefficients.set_index(coefficients["term"].astype(str))
    points = {k: ("value", ROWS[k][0], {BY: ROWS[k][0]}) for k in ("non_trd", "trd")}
    cols = ["estimate", "std_error", "ci_low", "ci_high", "p_value"]
    out = []
    for term in focal_terms(terms):
        found = _model_slopes(slopes, term)
        source = "simple_slopes.csv"
        if found is None:
            table, _ = contrasts.simple_slopes(beta, v, [term], BY, points)
            found, source = table.set_axis(["non_trd", "trd"]), "covariance"
        for row in ("non_trd", "trd"):
            out.append({"term": term, "row": row, **found.loc[row, cols].to_dict(),
                        "source": source})  # fmt: skip
        inter = coefs.loc[contrasts.interaction_name(term, BY, terms)]
        out.append({"term": term, "row": "difference", **inter[cols].to_dict(),
                    "source": "coefficients.csv"})  # fmt: skip
    frame = pd.DataFrame(out, columns=["term", "row", *cols, "source"])
    frame[cols] = frame[cols].astype(float)
    return frame


def _row_labels(settings: RenderSettings, ratio: bool) -> dict[str, str]:
    k = settings.treatment_resistance.trd_min_failed
    trials = "trial" if k == 1 else "trials"
    return {
        "non_trd": f"Non-TRD (< {k} failed {trials})",
        "trd": f"TRD (\N{GREATER-THAN OR EQUAL TO} {k} failed {trials})",
        "difference": ("Ratio TRD / non-TRD (interaction)" if ratio
                       else f"Difference TRD {MINUS} non-TRD (interaction)"),
    }  # fmt: skip


def _draw_rows(
    ax: Axes, model: str, ratio: bool, table: pd.DataFrame, labels: dict[str, str]
) -> None:
    """Forest rows: per term a bold header, then its three rows; values right of the axes.
    `ratio`: a logistic model's rows, drawn as odds ratios on a log axis."""
    lines: list[tuple[str, pd.Series | None]] = []
    for term, rows in table.groupby("term", sort=False):
        lines.append((term_text(term, "hazard" if ratio else "lmm"), None))
        lines += [(labels[r["row"]], r) for _, r in rows.iterrows()]
    n = len(lines)
    at = blended_transform_factory(ax.transAxes, ax.transData)
    ticks, tick_labels, lows, highs = [], [], [], []
    for i, (label, row) in enumerate(lines):
        y = n - 1 - i
        ticks.append(y)
        tick_labels.append(label)
        if row is None:
            continue
        est, lo, hi = (float(row[c]) for c in ("estimate", "ci_low", "ci_high"))
        if ratio:
            est, lo, hi = math.exp(est), math.exp(lo), math.exp(hi)
        _, marker, colour = ROWS.get(row["row"], STAGE_ROW)
        gid = f"{model}|{row['term']}|{row['row']}"
        ax.hlines(y, lo, hi, color=colour, linewidth=1.0, gid=gid)
        ax.plot(est, y, marker, color=colour, markersize=4 if marker == "D" else 3.5,
                markerfacecolor="white" if marker == "D" else colour, gid=gid)  # fmt: skip
        ax.vlines(1.0 if ratio else 0.0, y - 0.5, y + 0.5, color="black", linewidth=0.5,
                  linestyle=":", zorder=0)  # fmt: skip
        ax.text(1.03, y, estimate_text(est, lo, hi, row["p_value"]), transform=at, ha="left",
                va="center", fontsize=7)  # fmt: skip
        lows.append(lo)
        highs.append(hi)
    ax.set_yticks(ticks, tick_labels)
    for tick, (_, row) in zip(ax.get_yticklabels(), lines, strict=True):
        tick.set_fontweight("bold" if row is None else "normal")
    ax.set_ylim(-0.6, n - 0.4)
    ax.tick_params(axis="y", length=0)
    ax.spines["left"].set_visible(False)
    ax.text(1.03, n - 1, "Estimate [95 % CI], p", transform=at, ha="left", va="center",
            fontsize=7, fontstyle="italic")  # fmt: skip
    if ratio:
        ratio_axis(ax, min(lows), max(highs))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))


def _panel_table(
    model: str,
    fit: Mapping[str, Any] | None,
    coefficients: pd.DataFrame | None,
    vcov: pd.DataFrame | None,
    slopes: pd.DataFrame | None,
) -> pd.DataFrame | str:
    """The panel's rows, or why the panel shows a note instead."""
    reason = unfitted_reason(fit, model)
    if reason is not None:
        return reason
    if coefficients is None or coefficients.empty or vcov is None or vcov.empty:
        return f"model {model}: coefficients.csv or vcov.csv not found"
    table = trd_slopes(coefficients, vcov, slopes)
    if table.empty:
        return f"model {model} has no alliance x TRD interaction"
    return table


def stage_points(rng: tuple[float, float], centre: float) -> dict[str, float]:
    """Row key `stage_<s>` -> s - centre for the whole stages of the scale's range (thinned to
    about MAX_STAGES on a long scale, both ends kept)."""
    low, high = math.ceil(rng[0]), math.floor(rng[1])
    step = max(1, math.ceil((high - low) / (MAX_STAGES - 1)))
    stages = sorted({*range(low, high + 1, step), high})
    return {f"stage_{s:g}": float(s) - centre for s in stages}


def stage_slopes(
    coefficients: pd.DataFrame, vcov: pd.DataFrame, points: Mapping[str, float], sd: float
) -> pd.DataFrame:
    """The alliance slope at each stage point (`stage_<s>`: b + (s - centre) b x stage) and the
    interaction (`difference`, per stage), per `sd` points of the alliance (log odds), SE from
    the covariance; columns as `trd_slopes`."""
    beta, v = coefficient_covariance(coefficients, vcov)
    terms = list(beta.index)
    inter = contrasts.interaction_name("alliance", STAGE, terms)
    cols = ["estimate", "std_error", "ci_low", "ci_high", "p_value"]
    if "alliance" not in terms or inter is None:
        return pd.DataFrame(columns=["term", "row", *cols, "source"])
    at = {k: ("value", z, {STAGE: z}) for k, z in points.items()}
    table, _ = contrasts.simple_slopes(beta, v, ["alliance"], STAGE, at)
    table = table.set_axis(list(points))[cols]
    table.loc["difference"] = coefficients.set_index(coefficients["term"].astype(str)).loc[
        inter, cols
    ]
    table = table.astype(float)
    for col in ("estimate", "std_error", "ci_low", "ci_high"):
        table[col] *= sd
    sources = ["covariance"] * len(points) + ["coefficients.csv"]
    return (
        table.rename_axis("row")
        .reset_index()
        .assign(term="alliance", source=sources)[["term", "row", *cols, "source"]]
    )


def _stage_panel(
    fit: Mapping[str, Any] | None,
    coefficients: pd.DataFrame | None,
    vcov: pd.DataFrame | None,
    settings: RenderSettings,
) -> tuple[pd.DataFrame | str, float]:
    """The stage panel's rows and the alliance SD they are per, or why there are none."""
    reason = unfitted_reason(fit, STAGED)
    if reason is not None:
        return reason, math.nan
    tr = settings.treatment_resistance
    centre = tr.stage_centre()
    sd = float(((fit or {}).get("reliability_correction") or {}).get("x_sd") or math.nan)
    if coefficients is None or vcov is None or centre is None or not tr.staging_range:
        return f"model {STAGED}: coefficients.csv, vcov.csv or staging_range not found", sd
    if not (math.isfinite(sd) and sd > 0):
        return f"model {STAGED}: fit.json has no alliance SD (reliability_correction.x_sd)", sd
    table = stage_slopes(coefficients, vcov, stage_points(tr.staging_range, centre), sd)
    if table.empty:
        return f"model {STAGED} has no alliance x stage interaction", sd
    return table, sd


def _stage_labels(settings: RenderSettings, points: list[str]) -> dict[str, str]:
    scale = settings.treatment_resistance.staging_scale or "staging"
    name = {"thase_rush": "Thase-Rush", "msm": "MSM", "mgh_s": "MGH-S", "dm_trd": "DM-TRD"}
    label = {k: f"{name.get(scale, 'Stage')} stage {k.removeprefix('stage_')}" for k in points}
    return {**label, "difference": "Ratio per stage (interaction)"}


@skippable
def draw_trd_slopes(
    symptoms_fit: Mapping[str, Any] | None,
    symptoms_coefficients: pd.DataFrame | None,
    symptoms_vcov: pd.DataFrame | None,
    symptoms_slopes: pd.DataFrame | None,
    hazard_fit: Mapping[str, Any] | None,
    hazard_coefficients: pd.DataFrame | None,
    hazard_vcov: pd.DataFrame | None,
    settings: RenderSettings,
    stage_fit: Mapping[str, Any] | None = None,
    stage_coefficients: pd.DataFrame | None = None,
    stage_vcov: pd.DataFrame | None = None,
) -> Figure:
    """Alliance slopes in patients without and with treatment-resistant depression (TRD: at
    least treatment_resistance.trd_min_failed failed adequate antidepressant trials in this
    episode, known before treatment), with 95 % CIs, and their difference, the alliance x TRD
    interaction, with its p value. A: symptoms_by_trd, the change in the symptom score per
    alliance point of the prior-only alliance parts, i.e. alliance rated at sessions before the
    symptom assessment (the patient's running mean relative to the therapist's, between
    patients; the last session's departure from the patient's running mean, within patients);
    negative = better alliance, fewer symptoms. B: dropout_hazard_by_trd, the odds ratio per
    alliance point of not returning after a session, the alliance rated at that session (the
    last attended one), on a log axis; below 1 = better alliance, less dropout. Each group's
    slope is b (TRD = 0) or b + b x TRD (TRD = 1), its SE from the model's coefficient
    covariance; arm, baseline and time are held in the model, random effects at zero. C:
    dropout_hazard_by_stage, the same odds ratio per SD of the alliance (over the model's rows)
    at each whole stage of the staging scale, the slope at stage s being b + (s - c) b x stage
    with c the fixed centre of the stage (treatment_resistance.staging_centre, default the
    midpoint of staging_range), so a line in stage; the interaction row is the ratio per stage.
    A and B per alliance point, C per SD; all from the naive (not item-error corrected)
    coefficients. A panel whose model was not fitted says why.
    """
    stage_table, sd = _stage_panel(stage_fit, stage_coefficients, stage_vcov, settings)
    panels = [
        ("symptoms", SYMPTOMS, _panel_table(SYMPTOMS, symptoms_fit, symptoms_coefficients,
                                            symptoms_vcov, symptoms_slopes)),
        ("hazard", HAZARD, _panel_table(HAZARD, hazard_fit, hazard_coefficients, hazard_vcov,
                                        None)),
        ("stage", STAGED, stage_table),
    ]  # fmt: skip
    if all(isinstance(t, str) for _, _, t in panels):
        raise NothingToDraw("; ".join(str(t) for _, _, t in panels))
    sizes = [NOTE_ROWS if isinstance(t, str) else len(t) + t["term"].nunique()
             for _, _, t in panels]  # fmt: skip
    height = ROW_IN * sum(sizes) + PANEL_IN * len(panels)
    fig, axes = style.new_figure("double", height, nrows=len(panels),
                                 gridspec_kw={"height_ratios": sizes})  # fmt: skip
    sym = settings.symptoms.label
    ali, _ = alliance_instrument(settings.alliance, settings.score.rater)
    titles = {
        "symptoms": (f"Symptoms ({sym}), model {SYMPTOMS}",
                     f"Slope: {sym} points per {ali} point"),
        "hazard": (f"Not returning after a session, model {HAZARD}",
                   f"Odds ratio of not returning per {ali} point (log scale)"),
        "stage": (f"Not returning after a session by treatment-resistance stage, model {STAGED}",
                  f"Odds ratio of not returning per SD of the {ali} (SD {sd:.2f} points; "
                  "log scale)"),
    }  # fmt: skip
    for ax, letter, (kind, model, table) in zip(axes, "ABC", panels, strict=True):
        title, xlabel = titles[kind]
        # at the figure's left edge, above the row labels (the axes start far right of it)
        at = blended_transform_factory(fig.transFigure, ax.transAxes)
        ax.text(0.005, 1.0, letter, transform=at, ha="left", va="bottom", fontsize=9,
                fontweight="bold")  # fmt: skip
        ax.text(0.03, 1.0, title, transform=at, ha="left", va="bottom", fontsize=8)
        if isinstance(table, str):
            panel_note(ax, f"Not fitted: {table}", width=90)
            continue
        ratio = kind != "symptoms"
        labels = (_stage_labels(settings, list(table["row"])) if kind == "stage"
                  else _row_labels(settings, ratio))  # fmt: skip
        _draw_rows(ax, model, ratio, table, labels)
        ax.set_xlabel(xlabel)
    return fig
