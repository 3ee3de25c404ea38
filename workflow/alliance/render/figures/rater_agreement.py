"""Figure `rater_agreement`: agreement of every rater pair session by session, from
scores/agreement.csv (patient-therapist, patient-observer, therapist-observer: the pairs the data
have). Aggregates only; a session with fewer pairs than privacy.min_cell is left out."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from alliance.render import apa, style
from alliance.render.figures.common import (
    NothingToDraw,
    panel_label,
    require_columns,
    require_rows,
    skippable,
)
from alliance.settings import RenderSettings

PAIR_STYLE = {  # colour and marker per pair: apart in colour and in greyscale
    ("patient", "therapist"): (style.OKABE_ITO["blue"], "o"),
    ("patient", "observer"): (style.OKABE_ITO["vermillion"], "s"),
    ("therapist", "observer"): (style.OKABE_ITO["bluish_green"], "^"),
}
NEEDED = ["rater_a", "rater_b", "session", "n_pairs", "icc_a1", "r", "mean_diff", "n_patients",
          "sessions"]  # fmt: skip


def pair_name(a: str, b: str) -> str:
    """ "Patient–therapist" (en dash, first letter capital)."""
    return f"{a.capitalize()}\N{EN DASH}{b}"


def sessions_text(sessions: object, most: int = 6) -> str:
    """ "1, 3, 5, 16" from agreement.csv's ";"-joined list; longer lists keep the first
    `most` - 1 and the last ("1, 2, 3, 5, 7, …, 15")."""
    parts = [p for p in str(sessions if not apa.is_missing(sessions) else "").split(";") if p]
    if len(parts) > most:
        parts = [*parts[: most - 1], "\N{HORIZONTAL ELLIPSIS}", parts[-1]]
    return ", ".join(parts)


def legend_text(pooled: pd.Series) -> str:
    """A pair's legend entry: pooled ICC(A,1) and r, pairs, patients and sessions it rests on."""
    name = pair_name(str(pooled["rater_a"]), str(pooled["rater_b"]))
    where = sessions_text(pooled["sessions"])
    return (
        f"{name}: ICC(A,1) = {apa.fmt_r(pooled['icc_a1'], check=False)}, "
        f"r = {apa.fmt_r(pooled['r'])}; {apa.fmt_int(pooled['n_pairs'])} pairs of "
        f"{apa.fmt_int(pooled['n_patients'])} patients, sessions {where}"
    )


def _draw_pair(ax_icc: Axes, ax_diff: Axes, rows: pd.DataFrame, pooled: pd.Series, key) -> None:
    colour, marker = PAIR_STYLE.get(key, (style.GREY, "D"))
    x = pd.to_numeric(rows["session"]).to_numpy()
    for ax, column in ((ax_icc, "icc_a1"), (ax_diff, "mean_diff")):
        y = rows[column].to_numpy(dtype=float)
        ax.plot(x, y, color=colour, marker=marker, markersize=3.2, linewidth=0.9)
        ax.axhline(float(pooled[column]), color=colour, linewidth=0.7, linestyle="--")


@skippable
def draw_rater_agreement(agreement: pd.DataFrame, settings: RenderSettings) -> Figure:
    """Agreement between every pair of raters on the sessions both rated (scores/agreement.csv):
    (A) absolute agreement ICC(A,1) per session and (B) the mean difference between the two
    raters' scores (first rater minus second, alliance points) per session; dashed lines are
    each pair's pooled value over all its pairs. Each pair rests on different sessions (the
    therapist and the observer rate some sessions only); the legend gives the pooled ICC(A,1)
    and r with the pairs, patients and sessions behind them. Sessions with fewer pairs than the
    smallest reported cell are not drawn.
    """
    require_rows(agreement, "scores/agreement.csv")
    require_columns(agreement, NEEDED, "scores/agreement.csv")
    frame = agreement.assign(session=agreement["session"].astype(str))
    pooled_rows = frame[frame["session"] == "pooled"]
    per_session = frame[frame["session"] != "pooled"]
    per_session = per_session[per_session["n_pairs"] >= max(settings.privacy.min_cell, 2)]
    pairs = [
        (str(r["rater_a"]), str(r["rater_b"]))
        for _, r in pooled_rows.iterrows()
        if r["n_pairs"] >= max(settings.privacy.min_cell, 2)
    ]
    if not pairs:
        raise NothingToDraw("agreement.csv has no rater pair with enough paired sessions")
    fig, (ax_icc, ax_diff) = style.new_figure("double", 2.2 + 0.16 * len(pairs), ncols=2)
    handles = []
    for key in pairs:
        a, b = key
        mine = (frame["rater_a"] == a) & (frame["rater_b"] == b)
        pooled = pooled_rows[mine.loc[pooled_rows.index]].iloc[0]
        rows = per_session[mine.loc[per_session.index]]
        _draw_pair(ax_icc, ax_diff, rows, pooled, key)
        colour, marker = PAIR_STYLE.get(key, (style.GREY, "D"))
        handles.append(Line2D([], [], color=colour, marker=marker, markersize=3.2,
                              linewidth=0.9, label=legend_text(pooled)))  # fmt: skip
    sessions = pd.to_numeric(per_session["session"])
    ticks = np.unique(sessions.to_numpy(dtype=int)) if len(sessions) else []
    for ax, letter in ((ax_icc, "A"), (ax_diff, "B")):
        ax.set_xlabel("Session")
        ax.set_xticks(ticks)
        panel_label(ax, letter)
    low = min(0.0, float(np.nanmin(frame["icc_a1"].to_numpy(dtype=float))))
    ax_icc.set_ylim(low if np.isfinite(low) else 0.0, 1.0)
    ax_icc.set_ylabel("Absolute agreement, ICC(A,1)")
    ax_diff.axhline(0.0, color="black", linewidth=0.5, linestyle=":")
    ax_diff.set_ylabel("Mean difference (points),\nfirst \N{MINUS SIGN} second rater")
    fig.legend(handles=handles, loc="outside lower center", ncols=1, fontsize=7)
    return fig
