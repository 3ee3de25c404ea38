"""One figure style for every figure: Okabe-Ito colours, journal sizes, deterministic files.

Sizes follow common journal column widths (single 3.5 in, double 7.2 in); fonts are 7-8 pt at
that size, so never rescale a figure when placing it. Figures are built on
`matplotlib.figure.Figure` with the Agg canvas (no pyplot state, no GUI), and `save_figure`
writes PNG (300 dpi) and SVG without dates or software versions and with a fixed SVG id salt,
so the same figure gives the same bytes on every run in the same environment.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

from cycler import cycler  # noqa: E402  (matplotlib.use must run before backend imports)
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from alliance.files import atomic_path  # noqa: E402

# Okabe & Ito (2008), "Color Universal Design": distinguishable under the common colour-vision
# deficiencies. Order is the conventional one, black last so it is used after the hues.
OKABE_ITO: dict[str, str] = {
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
    "black": "#000000",
}
PALETTE: list[str] = list(OKABE_ITO.values())
GREY = "#999999"  # neutral reference lines, pooled estimates, "other"

ARM_CLASS_COLORS: dict[str, str] = {
    "psychotherapy": OKABE_ITO["blue"],
    "drug": OKABE_ITO["vermillion"],
    "placebo": OKABE_ITO["bluish_green"],
    "combination": OKABE_ITO["reddish_purple"],
    "other": GREY,
}
RATER_COLORS: dict[str, str] = {
    "patient": OKABE_ITO["orange"],
    "therapist": OKABE_ITO["sky_blue"],
    "observer": OKABE_ITO["reddish_purple"],
}
MODALITY_COLORS: dict[str, str] = {
    "in_person": OKABE_ITO["blue"],
    "telehealth": OKABE_ITO["orange"],
}
# Treatment-resistance groups; figures pair them with different markers, so they stay apart in
# greyscale too.
TRD_COLORS: dict[str, str] = {
    "non_trd": OKABE_ITO["blue"],
    "trd": OKABE_ITO["vermillion"],
}

WIDTHS: dict[str, float] = {"single": 3.5, "double": 7.2}  # inches
MAX_HEIGHT = 9.0  # inches: a full journal page less caption
DPI = 300
SVG_SALT = "alliance-outcomes"
PNG_COMPRESS_LEVEL = 3  # zlib level of the PNGs (see save_figure)

RC: dict[str, Any] = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],  # ships with matplotlib: same glyphs everywhere
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.title_fontsize": 7,
    "figure.titlesize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.linewidth": 0.6,
    "axes.prop_cycle": cycler(color=PALETTE),
    "lines.linewidth": 1.0,
    "lines.markersize": 3.5,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.major.size": 3.0,
    "ytick.major.size": 3.0,
    "legend.frameon": False,
    "figure.dpi": 100,
    "savefig.dpi": DPI,
    "svg.fonttype": "none",  # text stays text: editable in the journal's tools
    # never LaTeX, whatever a user's matplotlibrc says: labels and codes are not TeX input
    "text.usetex": False,
    "svg.hashsalt": SVG_SALT,
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "path.simplify": True,
}
MIN_FONT_PT = 7.0


def use_style() -> None:
    """Apply the style to matplotlib's global rcParams (idempotent).

    Global because artists read rcParams when they are created (legends, tick labels), so a
    context manager around figure creation alone would miss them.
    """
    matplotlib.rcParams.update(RC)


def figure_size(width: str | float = "single", height: float | None = None) -> tuple[float, float]:
    """(width, height) in inches; height defaults to width / golden ratio."""
    if isinstance(width, str):
        if width not in WIDTHS:
            raise ValueError(f"width must be one of {sorted(WIDTHS)} or inches, got {width!r}")
        w = WIDTHS[width]
    else:
        w = float(width)
    h = w / 1.618 if height is None else float(height)
    if not (0 < w <= WIDTHS["double"] and 0 < h <= MAX_HEIGHT):
        raise ValueError(f"figure size {w:g} x {h:g} in exceeds the journal page")
    return w, h


def new_figure(
    width: str | float = "single",
    height: float | None = None,
    *,
    nrows: int = 1,
    ncols: int = 1,
    **subplot_kw: Any,
) -> tuple[Figure, Any]:
    """A styled figure with constrained layout and its axes (an array when nrows*ncols > 1)."""
    use_style()
    fig = Figure(figsize=figure_size(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=True, **subplot_kw)
    return fig, axes


def colors_for(names: Iterable[str], known: Mapping[str, str] | None = None) -> dict[str, str]:
    """A colour per name: `known` colours first, then unused palette colours in order.

    Deterministic (depends only on the order of `names`), so a group keeps its colour across
    figures as long as the same names are passed.
    """
    known = known or {}
    out: dict[str, str] = {}
    used = {known[n] for n in names if n in known}
    spare = [c for c in [*PALETTE, GREY] if c not in used]
    for name in names:
        if name in out:
            continue
        if name in known:
            out[name] = known[name]
        else:
            out[name] = spare.pop(0) if spare else PALETTE[len(out) % len(PALETTE)]
    return out


def _paths(stem: str | os.PathLike[str]) -> tuple[Path, Path]:
    stem = Path(stem)
    return stem.parent / f"{stem.name}.png", stem.parent / f"{stem.name}.svg"


def save_figure(fig: Figure, stem: str | os.PathLike[str]) -> list[Path]:
    """Write `stem.png` (300 dpi) and `stem.svg` atomically and byte-reproducibly.

    The layout is computed once, for the PNG: the SVG keeps the PNG's axes positions (so the two
    files show the same layout) instead of running the constrained layout again. The PNG is
    deflated at zlib level 3 rather than PIL's 6 (the same pixels, ~7 % larger, ~30 % less
    encoding time): saving was most of the figure jobs' time (issue #16).
    """
    png, svg = _paths(stem)
    engine = fig.get_layout_engine()
    with matplotlib.rc_context({"svg.hashsalt": SVG_SALT, "svg.fonttype": RC["svg.fonttype"]}):
        with atomic_path(png) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None},
                        pil_kwargs={"compress_level": PNG_COMPRESS_LEVEL})  # fmt: skip
        fig.set_layout_engine("none")  # the positions the PNG's draw laid out stay as they are
        try:
            with atomic_path(svg) as tmp:
                fig.savefig(tmp, format="svg", metadata={"Date": None, "Creator": None})
        finally:
            fig.set_layout_engine(engine)
    return [png, svg]


def smallest_font_pt(fig: Figure) -> float:
    """Smallest font size (pt, at print size) of any visible text in `fig` (checks the style)."""
    fig.draw_without_rendering()  # lays out tick labels, which exist only after a draw
    sizes = [
        t.get_fontsize()
        for t in fig.findobj(matplotlib.text.Text)
        if t.get_visible() and t.get_text()
    ]
    return float(min(sizes)) if sizes else float("inf")
