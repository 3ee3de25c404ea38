"""Figure `km_relapse`: Kaplan-Meier relapse-free curves by alliance third, numbers at risk."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from alliance.render import apa, style
from alliance.render.figures.common import (
    LEVEL_COLORS,
    NothingToDraw,
    alliance_instrument,
    require_columns,
    require_fitted,
    require_rows,
    skippable,
)
from alliance.settings import RenderSettings

_ORDER = {"low": 0, "t1": 0, "1": 0, "middle": 1, "mid": 1, "medium": 1, "t2": 1, "2": 1,
          "high": 2, "t3": 2, "3": 2}  # fmt: skip
VARIABLE_TEXT = {
    "alliance_mean": "Mean alliance",
    "alliance_last": "End-of-treatment alliance",
    "alliance_early": "Early alliance",
}


def _rank(label: str) -> int | None:
    head = str(label).strip().lower().split()[0] if str(label).strip() else ""
    return _ORDER.get(head.strip(":,()"))


def group_order(groups: list[str]) -> list[str]:
    """Thirds low -> high when the labels say so, else as they come."""
    ranks = [_rank(g) for g in groups]
    if all(r is not None for r in ranks) and len(set(ranks)) == len(ranks):
        return [g for _, g in sorted(zip(ranks, groups, strict=True))]
    return groups


def _display(group: str) -> str:
    text = str(group)
    return text[:1].upper() + text[1:]


def _colours(groups: list[str]) -> dict[str, str]:
    if len(groups) == 3:
        return dict(zip(groups, (LEVEL_COLORS["low"], LEVEL_COLORS["mid"], LEVEL_COLORS["high"]),
                        strict=True))  # fmt: skip
    return style.colors_for(groups)


def at_risk_table(km: pd.DataFrame, groups: list[str], times: np.ndarray) -> pd.DataFrame:
    """Numbers at risk per group at `times`: n_risk of the first KM row at or after t, else 0."""
    rows = []
    for g in groups:
        sub = km[km["group"].astype(str) == g].sort_values("time")
        for t in times:
            later = sub[sub["time"] >= t - 1e-9]
            rows.append(
                {
                    "group": g,
                    "time": float(t),
                    "n_risk": int(later["n_risk"].iloc[0]) if len(later) else 0,
                }
            )
    return pd.DataFrame(rows)


def _logrank_text(logrank: pd.DataFrame | None) -> str | None:
    if logrank is None or logrank.empty:
        return None
    row = logrank.iloc[0]
    chi2 = row.get("chi2", row.get("statistic"))
    p = row.get("p", row.get("p_value"))
    if apa.is_missing(p):
        return None
    stat = apa.fmt_stat("chi2", chi2, row.get("df")) if not apa.is_missing(chi2) else None
    return (
        f"Log-rank {stat}, p = {apa.fmt_p(p)}".replace("= <", "<")
        if stat
        else (f"Log-rank p = {apa.fmt_p(p)}".replace("= <", "<"))
    )


@skippable
def draw_km_relapse(
    fit: Mapping[str, Any],
    km: pd.DataFrame,
    at_risk: pd.DataFrame | None,
    logrank: pd.DataFrame | None,
    settings: RenderSettings,
) -> Figure:
    """Kaplan-Meier estimates of the relapse-free proportion among responders followed after
    treatment, by thirds of patient-rated alliance (Cox model relapse_cox's `tertile_of`), with
    95 % log-transformed pointwise confidence bands, censoring marks (+), the numbers at risk
    under the time axis and the log-rank test across the thirds.
    """
    require_fitted(fit, "relapse_cox")
    require_rows(km, "relapse_cox/km.csv")
    require_columns(km, ["group", "time", "n_risk", "survival"], "km.csv")
    groups = group_order(list(dict.fromkeys(km["group"].astype(str))))
    if not groups:
        raise NothingToDraw("km.csv has no groups")
    colours = _colours(groups)
    fig, (ax, tab) = style.new_figure(
        "single", 3.0, nrows=2, sharex=True, gridspec_kw={"height_ratios": [4.2, 1.0]}
    )
    t_max = float(km["time"].max())
    for g in groups:
        sub = km[km["group"].astype(str) == g].sort_values("time")
        t = np.r_[0.0, sub["time"].to_numpy(dtype=float)]
        s = np.r_[1.0, sub["survival"].to_numpy(dtype=float)]
        if {"ci_low", "ci_high"} <= set(sub.columns):
            lo = np.r_[1.0, sub["ci_low"].to_numpy(dtype=float)]
            hi = np.r_[1.0, sub["ci_high"].to_numpy(dtype=float)]
            ax.fill_between(t, lo, hi, step="post", color=colours[g], alpha=0.15, linewidth=0)
        n0 = int(sub["n_risk"].iloc[0]) if len(sub) else 0
        ax.step(t, s, where="post", color=colours[g], linewidth=1.1,
                label=f"{_display(g)} (n = {apa.fmt_int(n0)})")  # fmt: skip
        if "n_censor" in sub.columns:
            cens = sub[sub["n_censor"] > 0]
            ax.plot(cens["time"], cens["survival"], linestyle="none", marker="+",
                    markersize=3.5, markeredgewidth=0.6, color=colours[g])  # fmt: skip
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("Relapse-free proportion")
    variable = str((fit.get("tertiles") or {}).get("variable") or fit.get("tertile_of") or "")
    label, _ = alliance_instrument(settings.alliance, settings.score.rater)
    title = f"{VARIABLE_TEXT.get(variable, 'Alliance')} third ({label})"
    handles, labels = ax.get_legend_handles_labels()
    text = _logrank_text(logrank)
    if text:
        # a handle-less legend row keeps the test with the groups it compares, clear of curves
        handles.append(Line2D([], [], linestyle="none"))
        labels.append(text)
    ax.legend(handles, labels, title=title, loc="lower left", alignment="left")
    ax.set_xlim(0, t_max * 1.02)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    ticks = [t for t in ax.get_xticks() if 0 <= t <= t_max * 1.02]
    if at_risk is not None and {"group", "time", "n_risk"} <= set(at_risk.columns):
        table = at_risk
        ticks = sorted(set(table["time"].astype(float)))
    else:
        table = at_risk_table(km, groups, np.asarray(ticks, dtype=float))
    ax.set_xticks(ticks)
    tab.set_ylim(len(groups) - 0.5, -0.5)
    for i, g in enumerate(groups):
        sub = table[table["group"].astype(str) == g]
        for _, row in sub.iterrows():
            tab.text(float(row["time"]), i, apa.fmt_int(row["n_risk"]), ha="center",
                     va="center", fontsize=7, color=colours[g])  # fmt: skip
    tab.set_yticks(range(len(groups)), [_display(g) for g in groups], fontsize=7)
    for tick, g in zip(tab.get_yticklabels(), groups, strict=True):
        tick.set_color(colours[g])
    tab.tick_params(axis="y", length=0, pad=12)  # clear of the numbers centred on t = 0
    tab.spines[["left", "bottom"]].set_visible(False)
    tab.tick_params(axis="x", length=0, labelbottom=False)
    tab.set_title("Number at risk", fontsize=7, loc="left", pad=2)
    ax.set_xlabel("Weeks of follow-up")
    ax.tick_params(axis="x", labelbottom=True)
    return fig
