"""Figure `ruptures`: example alliance series with detected ruptures, ruptures per patient.

Examples are chosen by rule, not by eye, so the same data always give the same patients: at the
largest drop size k for which all three kinds exist, (A) one rupture, repaired; (B) one
rupture, not repaired (and not cut off by the end of treatment); (C) two ruptures. Within a
kind the patient with the most rated sessions, then the largest drop (in SD units), then the
first pseudonym in sort order is shown. Patients appear as "Patient A/B/C", never by pseudonym.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from alliance.render import apa, style
from alliance.render.figures.common import (
    NothingToDraw,
    alliance_axis_label,
    alliance_instrument,
    require_columns,
    require_rows,
    skippable,
)
from alliance.settings import RenderSettings

SERIES_COLOR = style.OKABE_ITO["black"]
DROP_COLOR = style.OKABE_ITO["vermillion"]
REPAIR_COLOR = style.OKABE_ITO["bluish_green"]
K_COLORS = (style.OKABE_ITO["sky_blue"], style.OKABE_ITO["blue"], style.OKABE_ITO["orange"])
KINDS = (
    ("repaired", "one rupture, repaired"),
    ("unrepaired", "one rupture, not repaired"),
    ("two", "two ruptures"),
)


def _k_text(k: float) -> str:
    return f"{k:g}"


def _candidates(rp: pd.DataFrame, kind: str) -> pd.DataFrame:
    a = rp[rp["assessable"].astype(bool)]
    if kind == "repaired":
        return a[(a["n_ruptures"] == 1) & (a["n_repaired"] == 1)]
    if kind == "unrepaired":
        return a[(a["n_ruptures"] == 1) & (a["n_unrepaired"] == 1) & (a["n_censored"] == 0)]
    return a[a["n_ruptures"] == 2]


def choose_examples(
    ruptures: pd.DataFrame, rupture_patients: pd.DataFrame
) -> tuple[float, list[tuple[str, str]]]:
    """(k, [(kind, patient), ...]) by the rule in the module docstring; NothingToDraw if no k
    has even one example."""
    best: tuple[float, list[tuple[str, str]]] | None = None
    for k in sorted(rupture_patients["k"].unique(), reverse=True):
        rp = rupture_patients[rupture_patients["k"] == k]
        drops = ruptures[ruptures["k"] == k].groupby("patient")["drop_sd"].max()
        chosen: list[tuple[str, str]] = []
        for kind, _ in KINDS:
            c = _candidates(rp, kind)
            c = c[~c["patient"].isin([p for _, p in chosen])]
            if c.empty:
                continue
            c = c.assign(drop=c["patient"].map(drops).fillna(0.0))
            c = c.sort_values(["n_rated", "drop", "patient"], ascending=[False, False, True],
                              kind="mergesort")  # fmt: skip
            chosen.append((kind, str(c["patient"].iloc[0])))
        if len(chosen) == len(KINDS):
            return float(k), chosen
        if chosen and (best is None or len(chosen) > len(best[1])):
            best = (float(k), chosen)
    if best is None:
        raise NothingToDraw("no patient has a detected rupture")
    return best


def rupture_counts(rupture_patients: pd.DataFrame) -> pd.DataFrame:
    """Percentage of assessable patients with 0, 1, 2, >= 3 ruptures, per k (long table)."""
    rows = []
    for k, g in rupture_patients.groupby("k", sort=True):
        a = g[g["assessable"].astype(bool)]
        n = len(a)
        cats = np.minimum(a["n_ruptures"].astype(int), 3)
        for c in range(4):
            count = int((cats == c).sum())
            rows.append({"k": float(k), "category": c, "count": count,
                         "percent": 100.0 * count / n if n else np.nan, "n": n})  # fmt: skip
    return pd.DataFrame(rows)


@skippable
def draw_ruptures(
    ruptures: pd.DataFrame,
    rupture_patients: pd.DataFrame,
    alliance: pd.DataFrame,
    settings: RenderSettings,
) -> Figure:
    """Left: patient-rated alliance of three example patients (A-C) over sessions with the
    ruptures detected at drop size k: a session-to-session drop of at least k SD (triangle;
    dotted line = the pre-drop level), followed by a return to that level within the repair
    window (circle) or not. Examples are chosen by a fixed rule (largest k with all three
    kinds; most rated sessions, then largest drop). Right: ruptures per patient at each drop
    size k, as a percentage of patients with enough rated sessions to be assessed.
    """
    require_rows(rupture_patients, "rupture_patients.csv")
    require_columns(rupture_patients, ["k", "patient", "assessable", "n_ruptures", "n_repaired",
                                       "n_unrepaired", "n_censored", "n_rated"],
                    "rupture_patients.csv")  # fmt: skip
    if ruptures.empty:
        raise NothingToDraw("no rupture detected at any drop size k")
    require_columns(ruptures, ["k", "patient", "session_before", "session_drop", "score_before",
                               "score_drop", "repaired", "session_repair", "drop_sd"],
                    "ruptures.csv")  # fmt: skip
    k, chosen = choose_examples(ruptures, rupture_patients)
    window = settings.score.ruptures.m
    scale = settings.score.scale
    # the score stage detects ruptures on the patient-rated series of the models' scale
    series = alliance[(alliance["rater"] == "patient") & (alliance["scale"] == scale)]
    fig, _ = style.new_figure("double", 3.6)
    fig.delaxes(fig.axes[0])
    n_ex = len(chosen)
    mosaic = [[f"ex{i}", "dist"] for i in range(n_ex)]
    axd = fig.subplot_mosaic(mosaic, width_ratios=[1.55, 1.0], sharex=False)
    label, rng = alliance_instrument(settings.alliance, "patient")
    letters = "ABCDE"  # patients are named by letter, never by pseudonym
    first_ex = axd["ex0"]
    for i, (kind, pid) in enumerate(chosen):
        ax = axd[f"ex{i}"]
        s = series[series["patient"].astype(str) == pid].sort_values("session")
        ax.plot(s["session"], s["score"], "-o", color=SERIES_COLOR, markersize=2.2,
                linewidth=0.8, markerfacecolor="white", markeredgewidth=0.6)  # fmt: skip
        rows = ruptures[(ruptures["k"] == k) & (ruptures["patient"].astype(str) == pid)]
        for _, r in rows.iterrows():
            # the dotted pre-drop level spans the repair window: to the repair, else m sessions
            end = r["session_repair"] if bool(r["repaired"]) else r["session_drop"] + window
            ax.hlines(r["score_before"], r["session_before"], end, color=DROP_COLOR,
                      linewidth=0.6, linestyle=":")  # fmt: skip
            ax.plot([r["session_before"], r["session_drop"]], [r["score_before"], r["score_drop"]],
                    color=DROP_COLOR, linewidth=1.4)  # fmt: skip
            ax.plot(r["session_drop"], r["score_drop"], "v", color=DROP_COLOR, markersize=4)
            if bool(r["repaired"]) and not apa.is_missing(r["session_repair"]):
                rep = s[s["session"] == r["session_repair"]]
                if len(rep):
                    ax.plot(rep["session"], rep["score"], "o", color=REPAIR_COLOR, markersize=4)
        text = dict(KINDS)[kind]
        ax.set_title(f"Patient {letters[i]}: {text}", fontsize=7, loc="left", pad=2)
        if rng:
            ax.set_ylim(*rng)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if i < n_ex - 1:
            ax.tick_params(axis="x", labelbottom=False)
        else:
            ax.set_xlabel("Session")
        if i > 0:
            ax.sharex(first_ex)
    axd[f"ex{n_ex // 2}"].set_ylabel(
        alliance_axis_label(settings.alliance, "patient", scale, "Alliance")
    )
    handles = [
        Line2D([], [], color=DROP_COLOR, linewidth=1.4, marker="v", markersize=4,
               label=f"Rupture: drop \N{GREATER-THAN OR EQUAL TO} {_k_text(k)} SD"),
        Line2D([], [], color=DROP_COLOR, linewidth=0.6, linestyle=":", label="Pre-drop level"),
        Line2D([], [], color=REPAIR_COLOR, linestyle="none", marker="o", markersize=4,
               label="Repair: back to pre-drop level"),
    ]  # fmt: skip
    fig.legend(handles=handles, loc="outside upper left", ncols=3, handlelength=1.6,
               columnspacing=1.2)  # fmt: skip

    dist = axd["dist"]
    counts = rupture_counts(rupture_patients)
    ks = sorted(counts["k"].unique())
    width = 0.8 / max(1, len(ks))
    for j, kk in enumerate(ks):
        c = counts[counts["k"] == kk]
        x = c["category"].to_numpy() + (j - (len(ks) - 1) / 2) * width
        n = int(c["n"].iloc[0])
        dist.bar(x, c["percent"], width=width * 0.95, color=K_COLORS[j % len(K_COLORS)],
                 label=f"k = {_k_text(kk)} SD (n = {apa.fmt_int(n)})")  # fmt: skip
    dist.set_xticks(range(4), ["0", "1", "2", "\N{GREATER-THAN OR EQUAL TO}3"])
    dist.set_xlabel("Ruptures per patient")
    dist.set_ylabel("Assessable patients (%)")
    dist.legend(title="Drop size", loc="upper right")
    dist.set_title("All assessable patients", fontsize=7, loc="left", pad=2)
    return fig
