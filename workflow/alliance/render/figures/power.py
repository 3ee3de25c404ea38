"""Power curves of the power study (results/power/power.csv): one figure per tested term.

Power (with its Wilson 95 % CI) against the design dimension with the most levels in the grid
(therapists, patients per therapist or sessions); one line per combination of the other varying
columns; dashed references at the target powers. Reads the table only (render never imports the
studies or the engine).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from alliance.render import style
from alliance.render.figures.common import plain_text
from alliance.render.figures.labels import term_text

AXES = {
    "therapists": "Therapists",
    "patients_per_therapist": "Patients per therapist",
    "sessions": "Planned sessions",
}
OTHER = (
    "therapists", "patients_per_therapist", "sessions", "arms", "dropout_rate",
    "dropout_alliance", "missing_rating_rate", "effect_therapist", "effect_patient",
    "effect_session",
)  # fmt: skip
SHORT = {
    "therapists": "therapists", "patients_per_therapist": "patients/therapist",
    "sessions": "sessions", "arms": "arms", "dropout_rate": "dropout",
    "dropout_alliance": "dropout slope", "missing_rating_rate": "missing ratings",
    "effect_therapist": "therapist effect", "effect_patient": "patient effect",
    "effect_session": "session effect",
}  # fmt: skip


# Terms whose shared label reads only beside another row (labels.KIND_TERM_TEXT "Same, ...").
OWN_TITLE = {"alliance_rc": "Alliance of the session just attended (error-corrected)"}


def x_axis(table: pd.DataFrame) -> str:
    """The design dimension with the most distinct values (ties: therapists first)."""
    return max(AXES, key=lambda c: (table[c].nunique(), -list(AXES).index(c)))


def _label(row: pd.Series, columns: Sequence[str]) -> str:
    """Legend entry: the values of the varying columns (names too when several vary)."""
    parts = []
    for c in columns:
        v = row[c]
        if pd.isna(v):
            v = "calibrated"
        elif isinstance(v, float):
            v = f"{v:g}"
        parts.append(f"{SHORT[c]} {v}" if len(columns) > 1 else str(v))
    return ", ".join(parts)


def power_curve(table: pd.DataFrame, model: str, term: str, targets: Sequence[float]) -> Figure:
    """Power against the grid's main design dimension for one model term."""
    part = table[(table["model"] == model) & (table["term"] == term)]
    x = x_axis(part)
    varying = [c for c in OTHER if c != x and part[c].astype(str).nunique() > 1]
    keyed = part.assign(_key=part.apply(lambda r: _label(r, varying), axis=1))
    groups = list(dict.fromkeys(keyed["_key"]))
    colors = style.colors_for(groups)
    fig, ax = style.new_figure("single", 2.6)
    for target in targets:
        ax.axhline(target, color=style.GREY, linewidth=0.6, linestyle="--", zorder=0)
        ax.text(1.0, target, f" {100 * target:.0f} %", transform=ax.get_yaxis_transform(),
                va="center", ha="left", fontsize=7, color=style.GREY)  # fmt: skip
    offsets = np.linspace(-0.015, 0.015, len(groups)) if len(groups) > 1 else [0.0]
    span = float(part[x].max() - part[x].min()) or 1.0
    for k, group in enumerate(groups):
        g = keyed[keyed["_key"] == group].sort_values(x)
        xs = g[x].to_numpy(dtype=float) + offsets[k] * span
        y = g["power"].to_numpy(dtype=float)
        err = np.vstack([y - g["power_ci_low"].to_numpy(), g["power_ci_high"].to_numpy() - y])
        ax.errorbar(xs, y, yerr=err, marker="o", color=colors[group], capsize=1.5,
                    elinewidth=0.6, label=group or None)  # fmt: skip
    ax.set_xlabel(AXES[x])
    ax.set_ylabel("Power (95 % CI)")
    ax.set_ylim(0, 1.02)
    ax.set_xticks(sorted(part[x].unique()))
    ax.set_title(f"{OWN_TITLE.get(term) or term_text(term)}\n({model})", loc="left")
    if len(groups) > 1:
        title = SHORT[varying[0]].capitalize() if len(varying) == 1 else None
        ax.legend(loc="lower right", title=title)
    return plain_text(fig)


def figure_stem(model: str, term: str) -> str:
    """File stem of a term's curve: power_<model>_<term> with `:` as `x`."""
    return f"power_{model}_{term}".replace(":", "x").replace(".", "_")


def draw_power(table: pd.DataFrame, targets: Sequence[float], folder: str | Path) -> list[Path]:
    """One curve per tested term (PNG 300 dpi + SVG) in `folder`; the files written."""
    written: list[Path] = []
    pairs = table[["model", "term"]].drop_duplicates().itertuples(index=False)
    for model, term in pairs:
        fig = power_curve(table, model, term, targets)
        written += style.save_figure(fig, Path(folder) / figure_stem(model, term))
    return written
