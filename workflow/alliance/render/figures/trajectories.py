"""Figures `alliance_sessions` (alliance over sessions) and `symptom_trajectories`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from alliance.render import style
from alliance.render.figures.common import (
    LEVEL_COLORS,
    TERTILE_NAMES,
    NothingToDraw,
    alliance_axis_label,
    alliance_instrument,
    arm_classes,
    arm_order,
    level_key,
    mean_ci,
    range_text,
    require_columns,
    require_fitted,
    require_rows,
    skippable,
    tertiles,
)
from alliance.render.figures.labels import term_text
from alliance.render.figures.predict import predict
from alliance.settings import RenderSettings

LINES_PER_PANEL = 12  # patient lines drawn per arm: enough to show spread, few enough to read
RATER_ORDER = ("patient", "therapist", "observer")


def _session_means(frame: pd.DataFrame, x: str, y: str, min_n: int) -> pd.DataFrame:
    rows = []
    for value, grp in frame.groupby(x, sort=True):
        m, lo, hi, n = mean_ci(grp[y])
        if n >= min_n:
            rows.append({"x": float(value), "mean": m, "low": lo, "high": hi, "n": n})
    return pd.DataFrame(rows, columns=["x", "mean", "low", "high", "n"])


def _grid(n: int) -> tuple[int, int]:
    return (1, n) if n <= 4 else (2, (n + 1) // 2)


@skippable
def draw_alliance_sessions(
    alliance: pd.DataFrame, patients: pd.DataFrame, settings: RenderSettings
) -> Figure:
    """Alliance total score over sessions, one panel per arm, one colour per rater: thin lines
    are individual patients (a seeded random subsample of up to 12 per arm), the thick line is
    the session mean with its 95 % t confidence band (sessions with at least `privacy.min_cell`
    ratings; dots mark the sessions a rater rated, e.g. the observer's coded recordings). When
    the raters answer different forms, the legend names each rater's form.
    """
    require_rows(alliance, "alliance.parquet")
    require_columns(alliance, ["patient", "session", "rater", "scale", "score"], "alliance.parquet")
    scale = settings.score.scale
    total = alliance[(alliance["scale"] == scale) & alliance["score"].notna()]
    if total.empty:
        raise NothingToDraw(f"alliance.parquet has no '{scale}' ratings")
    arm_of = (
        patients.set_index("patient")["arm"].astype("string")
        if "arm" in patients.columns
        else pd.Series(dtype="string")
    )
    data = total.assign(arm=total["patient"].map(arm_of).astype("string").fillna("all").astype(str))
    classes = arm_classes(settings.codings.arm)
    arms = arm_order(data["arm"].unique(), classes)
    raters = [r for r in RATER_ORDER if r in set(data["rater"])]
    nrow, ncol = _grid(len(arms))
    width = "double" if len(arms) > 1 else "single"
    fig, axes = style.new_figure(width, 2.3 * nrow + 0.35, nrows=nrow, ncols=ncol,
                                 sharex=True, sharey=True)  # fmt: skip
    axes = np.atleast_1d(axes).ravel()
    rng = np.random.default_rng(settings.seed)
    floor = settings.privacy.min_cell
    _, scale_range = alliance_instrument(settings.alliance, "patient")
    for ax, arm in zip(axes, arms, strict=False):
        sub = data[data["arm"] == arm]
        ids = np.sort(sub["patient"].astype(str).unique())
        shown = set(rng.choice(ids, size=min(LINES_PER_PANEL, len(ids)), replace=False))
        for rater in raters:
            colour = style.RATER_COLORS.get(rater, style.GREY)
            own = sub[sub["rater"] == rater]
            for _, grp in own[own["patient"].astype(str).isin(shown)].groupby("patient"):
                g = grp.sort_values("session")
                ax.plot(g["session"], g["score"], color=colour, alpha=0.35, linewidth=0.35)
            means = _session_means(own, "session", "score", floor)
            ax.fill_between(means["x"], means["low"], means["high"], color=colour, alpha=0.3,
                            linewidth=0)  # fmt: skip
            ax.plot(means["x"], means["mean"], color=colour, linewidth=1.4, marker="o",
                    markersize=1.8)  # fmt: skip
        cls = classes.get(arm)
        title = arm if arm != "all" else "All patients"
        title += f" ({cls})" if cls and cls != arm else ""
        ax.set_title(f"{title}\nn = {len(ids)}", fontsize=8)
        ax.set_xlabel("Session")
    for ax in axes[len(arms) :]:
        ax.set_visible(False)
    forms = {r: alliance_instrument(settings.alliance, r)[0] for r in raters}
    one_form = len(set(forms.values())) <= 1
    for ax in axes[::ncol]:
        label = alliance_axis_label(settings.alliance, "patient", scale, "Alliance")
        if not one_form and scale_range:
            label = f"Alliance ({range_text(scale_range)})"
        ax.set_ylabel(label)
    if scale_range:
        axes[0].set_ylim(*scale_range)
    axes[0].xaxis.get_major_locator().set_params(integer=True)
    handles = [
        Line2D([], [], color=style.RATER_COLORS.get(r, style.GREY), linewidth=1.4, marker="o",
               markersize=1.8, label=f"{r.capitalize()}-rated mean (95 % CI)"
               + ("" if one_form else f", {forms[r]}"))
        for r in raters
    ]  # fmt: skip
    handles.append(
        Line2D(
            [],
            [],
            color=style.GREY,
            linewidth=0.5,
            label=f"Individual patients (random {LINES_PER_PANEL} per arm)",
        )
    )
    fig.legend(handles=handles, loc="outside lower center",
               ncols=len(handles) if len(handles) <= 3 else 2)  # fmt: skip
    return fig


def marginal_predictions(
    predictions: pd.DataFrame,
    coefficients: pd.DataFrame | None,
    frame: pd.DataFrame | None,
    vcov: pd.DataFrame | None,
    fit: Mapping[str, Any],
) -> pd.DataFrame | None:
    """The model's prediction grid recomputed with factors at their sample means (the arms'
    mix, like the observed means), or None without coefficients, frame and covariance."""
    if coefficients is None or frame is None or vcov is None or frame.empty:
        return None
    x_var = str(predictions["x_variable"].iloc[0])
    by_var = str(predictions["by_variable"].iloc[0])
    if x_var not in frame.columns or by_var not in frame.columns:
        return None
    values = {x_var: predictions["x"].to_numpy(dtype=float),
              by_var: predictions["by_value"].to_numpy(dtype=float)}  # fmt: skip
    try:
        pred = predict(coefficients, fit, values, frame=frame, vcov=vcov)
    except NothingToDraw:  # a held column missing from the frame: use the model's own grid
        return None
    if pred["ci_low"].isna().all():
        return None
    keep = predictions[["x_variable", "x", "by_variable", "by_level", "by_value"]]
    return pd.concat([keep.reset_index(drop=True), pred], axis=1)


def _reference_subset(analysis: pd.DataFrame, fit: Mapping[str, Any]) -> tuple[pd.DataFrame, str]:
    """Rows of the reference level of every factor the predictions held at reference."""
    held = (fit.get("predictions") or {}).get("held_at") or {}
    factors = ((fit.get("frame") or {}).get("factors")) or {}
    names = []
    for var, info in factors.items():
        cols = [c for c in (info.get("columns") or {}).values() if c]
        if var in analysis.columns and cols and all(held.get(c, 0.0) == 0.0 for c in cols):
            analysis = analysis[analysis[var].astype(str) == str(info.get("reference"))]
            names.append(str(info.get("reference")))
    return analysis, ", ".join(names)


def observed_thirds(analysis: pd.DataFrame, by_var: str) -> pd.Series:
    """Low / Middle / High third of `by_var` for every row of `analysis` (NaN where missing).

    Cut over every patient (one value each) when the variable is constant within patients (the
    whole-treatment `alliance_pat`), as the model's SD is; over session rows when it changes
    from session to session (the running `alliance_pat_prior`), so each row is placed by what
    was known before that session.
    """
    values = pd.to_numeric(analysis[by_var], errors="coerce")
    varies = bool((values.groupby(analysis["patient"]).nunique() > 1).any())
    if varies:
        known = values.dropna()
        return tertiles(known).astype(object).reindex(analysis.index)
    per_patient = values.groupby(analysis["patient"], sort=True).first().dropna()
    return analysis["patient"].map(tertiles(per_patient).astype(object))


@skippable
def draw_symptom_trajectories(
    fit: Mapping[str, Any],
    predictions: pd.DataFrame,
    analysis: pd.DataFrame,
    coefficients: pd.DataFrame | None,
    frame: pd.DataFrame | None,
    vcov: pd.DataFrame | None,
    settings: RenderSettings,
) -> Figure:
    """Model-predicted symptom trajectories (symptoms_growth; population level, random effects
    at zero) at patient-level alliance 1 SD below the mean, at the mean and 1 SD above, with
    95 % Wald confidence bands; other predictors at their sample means. In the default model the
    patient-level alliance is known before each session (the patient's mean rating over earlier
    sessions relative to the therapist's), so the curves start at the second session. Points:
    observed mean symptom score per week (rounded) in the low, middle and high thirds of the
    same alliance variable (cut over session rows when it changes from session to session),
    with 95 % t intervals. When the model's coefficient covariance is available the curves hold
    the arm indicators at their sample means and the points pool all arms; else the curves are
    the model's own (reference arm) and the points are that arm's patients.
    """
    require_fitted(fit, "symptoms_growth")
    require_rows(predictions, "symptoms_growth/predictions.csv")
    require_columns(predictions, ["x", "by_level", "fit", "ci_low", "ci_high"], "predictions.csv")
    x_var = str(predictions["x_variable"].iloc[0]) if "x_variable" in predictions else "weeks"
    by_var = str(predictions["by_variable"].iloc[0]) if "by_variable" in predictions else None
    marginal = marginal_predictions(predictions, coefficients, frame, vcov, fit)
    observed_rows, reference = analysis, ""
    if marginal is not None:
        predictions = marginal
    else:
        observed_rows, reference = _reference_subset(analysis, fit)
    fig, ax = style.new_figure("single", 2.7)
    levels = list(dict.fromkeys(predictions["by_level"].astype(str)))
    names = {"low": "Low (\N{MINUS SIGN}1 SD)", "mid": "Mean", "high": "High (+1 SD)"}
    for level in levels:
        key = level_key(level)
        p = predictions[predictions["by_level"].astype(str) == level].sort_values("x")
        ax.fill_between(p["x"], p["ci_low"], p["ci_high"], color=LEVEL_COLORS[key], alpha=0.18,
                        linewidth=0)  # fmt: skip
        ax.plot(p["x"], p["fit"], color=LEVEL_COLORS[key], linewidth=1.2,
                linestyle="-" if key != "mid" else "--", label=names[key])  # fmt: skip
    observed = by_var is not None and {by_var, x_var, "symptom", "patient"} <= set(analysis)
    if observed:
        third = observed_thirds(analysis, by_var).reindex(observed_rows.index)
        obs = observed_rows.assign(third=third, xr=observed_rows[x_var].round())
        floor = settings.privacy.min_cell
        offsets = dict(zip(TERTILE_NAMES, (-0.18, 0.0, 0.18), strict=True))
        keys = dict(zip(TERTILE_NAMES, ("low", "mid", "high"), strict=True))
        for name in TERTILE_NAMES:
            means = _session_means(obs[obs["third"] == name], "xr", "symptom", floor)
            colour = LEVEL_COLORS[keys[name]]
            ax.errorbar(
                means["x"] + offsets[name], means["mean"],
                yerr=[means["mean"] - means["low"], means["high"] - means["mean"]],
                fmt="o", markersize=2.2, color=colour, markerfacecolor="white",
                markeredgewidth=0.6, elinewidth=0.5, capsize=0, zorder=3,
            )  # fmt: skip
    ax.set_xlabel("Weeks since first session" if x_var == "weeks" else x_var)
    ax.set_ylabel(f"{settings.symptoms.label} score")
    ax.set_ylim(bottom=0)
    label, _ = alliance_instrument(settings.alliance, settings.score.rater)
    handles, labels = ax.get_legend_handles_labels()
    if observed:
        handles += [Line2D([], [], linestyle="none", marker="o", markersize=2.5, color="black",
                           markerfacecolor="white", markeredgewidth=0.6)]  # fmt: skip
        labels += [f"Observed mean{', ' + reference if reference else ''} (thirds)"]
    handles += [Patch(facecolor=style.GREY, alpha=0.3)]
    labels += ["95 % CI"]
    # lower left: below the falling curves, which start high on the left
    title = term_text(by_var) if by_var else "Patient-level alliance"
    ax.legend(handles, labels, title=f"{title} ({label})", loc="lower left",
              handlelength=1.8, alignment="left")  # fmt: skip
    return fig
