"""Figure `flow`: CONSORT-style participant flow from results/clean/flow.csv.

Counts are printed exactly, as CONSORT asks, unless `privacy.suppress_small_cells` is on: then
flow.csv already holds "< m" (a count from 1 to m - 1) and "s" (withheld so that no small count
can be recomputed; any value) and its own "not randomised" row, printed here as "n < m" and
"n withheld". The layout is computed in inches (the axes span the figure at 1 data unit = 1 inch),
so boxes of one row share a width and height whatever their text.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, Rectangle

from alliance.render import apa, style
from alliance.render.figures.common import (
    NothingToDraw,
    arm_classes,
    arm_order,
    require_columns,
    require_rows,
    skippable,
)
from alliance.settings import RenderSettings

LINE_IN = 7 * 1.3 / 72  # one 7 pt text line with 1.3 line spacing, in inches
PAD_IN = 0.09  # box padding above + below the text
GAP_IN = 0.2  # vertical gap between rows of boxes
LW = 0.6


@dataclass
class Box:
    x: float  # centre
    y: float  # top
    w: float
    h: float

    @property
    def bottom(self) -> float:
        return self.y - self.h


Count = int | str | None  # a count, a withheld mark ("< 5", "s") or absent


def _count(flow: pd.DataFrame, step: str, arm: str) -> Count:
    rows = flow[(flow["step"] == step) & (flow["arm"].astype(str) == arm)]
    if rows.empty or pd.isna(rows["n"].iloc[0]):
        return None
    value = rows["n"].iloc[0]
    text = str(value).strip()
    return int(value) if not isinstance(value, str) or text.isdigit() else text


def _n(n: Count) -> str:
    if isinstance(n, str):  # withheld: "< m" (1 to m - 1) or "s" (any count)
        return f"n {n}" if n.startswith("<") else "n withheld"
    return f"n = {apa.fmt_int(n)}" if n is not None else f"n = {apa.MISSING}"


def _height(lines: int) -> float:
    return lines * LINE_IN + PAD_IN


def _draw_box(ax: Axes, box: Box, text: str, *, grey: bool = False) -> None:
    ax.add_patch(Rectangle((box.x - box.w / 2, box.bottom), box.w, box.h, facecolor="white",
                           edgecolor=style.GREY if grey else "black", linewidth=LW))  # fmt: skip
    ax.text(box.x, box.y - box.h / 2, text, ha="center", va="center", fontsize=7,
            linespacing=1.3)  # fmt: skip


def _arrow(ax: Axes, start: tuple[float, float], end: tuple[float, float]) -> None:
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=6, linewidth=LW,
                                 color="black", shrinkA=0, shrinkB=0))  # fmt: skip


def _line(ax: Axes, xs: list[float], ys: list[float]) -> None:
    ax.plot(xs, ys, color="black", linewidth=LW, solid_capstyle="butt")


def _arm_steps(flow: pd.DataFrame, arm: str) -> list[list[str]]:
    """Text lines of each box below an arm's allocation box, in order (absent steps left out)."""
    out = []
    started = _count(flow, "started", arm)
    if started is not None:
        out.append(["Started treatment", _n(started)])
    done, dropped = _count(flow, "completed", arm), _count(flow, "dropped out", arm)
    outcome = ([f"Completed {_n(done)}"] if done is not None else []) + (
        [f"Dropped out {_n(dropped)}"] if dropped is not None else []
    )
    if outcome:
        out.append(outcome)
    for step, text in (("responders", "Responders"), ("followed for relapse",
                                                      "Followed for relapse")):  # fmt: skip
        n = _count(flow, step, arm)
        if n is not None:
            out.append([text, _n(n)])
    return out


@skippable
def draw_flow(flow: pd.DataFrame, settings: RenderSettings) -> Figure:
    """Participant flow (CONSORT): assessed -> randomised (with those not randomised) -> per
    arm: allocated (and did not start) -> started treatment -> completed / dropped out ->
    responders -> followed for relapse. Steps a dataset does not record are left out; a dataset
    without arms gets one column.
    """
    require_rows(flow, "flow.csv")
    require_columns(flow, ["step", "arm", "n"], "flow.csv")
    classes = arm_classes(settings.codings.arm)
    arms = [a for a in arm_order(flow["arm"].astype(str), classes) if a != "all"]
    columns = arms or ["all"]
    assessed = _count(flow, "assessed", "all")
    randomised = _count(flow, "randomised", "all")
    if randomised is None and assessed is None:
        raise NothingToDraw("flow.csv has neither an 'assessed' nor a 'randomised' count")
    heads = []
    for arm in columns:
        cls = classes.get(arm)
        head = "Allocated" if arm == "all" else (f"{arm} ({cls})" if cls and cls != arm else arm)
        lines = [head]
        allocated = _count(flow, "randomised", arm)
        if allocated is not None and arm != "all":
            lines.append(f"Allocated {_n(allocated)}")
        not_started = _count(flow, "not started", arm)
        if not_started:
            lines.append(f"Did not start {_n(not_started)}")
        heads.append(lines)
    steps = [_arm_steps(flow, arm) for arm in columns]
    n_steps = max(len(s) for s in steps)

    width_in = style.WIDTHS["double" if len(columns) > 2 else "single"]
    col_w = width_in / len(columns)
    box_w = min(col_w - 0.14, 1.75)
    top_w = min(width_in * 0.42, 1.9)
    # "not randomised" is a row of its own when counts are suppressed, else the difference
    not_randomised = _count(flow, "not randomised", "all")
    if not_randomised is None and isinstance(assessed, int) and isinstance(randomised, int):
        not_randomised = assessed - randomised
    shown = isinstance(not_randomised, str) or (not_randomised or 0) > 0
    side = assessed is not None and randomised is not None and shown
    # vertical plan, top down (inches from the top)
    plan: list[tuple[str, float]] = []
    if assessed is not None:
        plan.append(("assessed", _height(2)))
    if randomised is not None:
        plan.append(("randomised", _height(2)))
    plan.append(("arms", _height(max(len(h) for h in heads))))
    for k in range(n_steps):
        rows = [len(s[k]) for s in steps if k < len(s)]
        plan.append((f"step{k}", _height(max(rows))))
    gaps = [GAP_IN] * (len(plan) - 1)
    if side:
        gaps[0] = _height(2) + 2 * 0.08  # room for the side box between assessed and randomised
    split = randomised is not None or assessed is not None
    if split and len(columns) > 1:
        gaps[len(plan) - n_steps - 2] += 0.08  # room for the CONSORT split bar
    height_in = sum(h for _, h in plan) + sum(gaps) + 0.1
    fig, ax = style.new_figure(width_in, height_in)
    fig.get_layout_engine().set(w_pad=0, h_pad=0, wspace=0, hspace=0)
    ax.set_position((0, 0, 1, 1))
    ax.set_axis_off()
    ax.set_xlim(0, width_in)
    ax.set_ylim(0, height_in)

    y = height_in - 0.05
    centre = width_in / 2
    tops: dict[str, float] = {}
    for i, (name, h) in enumerate(plan):
        tops[name] = y
        y -= h + (gaps[i] if i < len(gaps) else 0)
    prev: Box | None = None
    if assessed is not None:
        box = Box(centre, tops["assessed"], top_w, _height(2))
        _draw_box(ax, box, f"Assessed for eligibility\n{_n(assessed)}")
        prev = box
    if randomised is not None:
        box = Box(centre, tops["randomised"], top_w, _height(2))
        _draw_box(ax, box, f"Randomised\n{_n(randomised)}")
        if prev is not None:
            _arrow(ax, (centre, prev.bottom), (centre, box.y))
            if side:
                mid = (prev.bottom + box.y) / 2
                side_w = min(1.5, (width_in - top_w) / 2 - 0.1)
                sbox = Box(centre + top_w / 2 + 0.1 + side_w / 2, mid + _height(2) / 2, side_w,
                           _height(2))  # fmt: skip
                _draw_box(ax, sbox, f"Not randomised\n{_n(not_randomised)}", grey=True)
                _arrow(ax, (centre, mid), (sbox.x - side_w / 2, mid))
        prev = box
    xs = [col_w * (i + 0.5) for i in range(len(columns))]
    arm_h = _height(max(len(h) for h in heads))
    arm_boxes = [Box(x, tops["arms"], box_w, arm_h) for x in xs]
    if prev is not None:
        if len(columns) > 1:
            bar = tops["arms"] + (prev.bottom - tops["arms"]) / 2
            _line(ax, [centre, centre], [prev.bottom, bar])
            _line(ax, [xs[0], xs[-1]], [bar, bar])
            for x in xs:
                _arrow(ax, (x, bar), (x, tops["arms"]))
        else:
            _arrow(ax, (centre, prev.bottom), (centre, tops["arms"]))
    for box, lines in zip(arm_boxes, heads, strict=True):
        _draw_box(ax, box, "\n".join(lines))
    for x, above, arm_steps in zip(xs, arm_boxes, steps, strict=True):
        for k, lines in enumerate(arm_steps):
            name = f"step{k}"
            h = dict(plan)[name]
            box = Box(x, tops[name], box_w, h)
            _draw_box(ax, box, "\n".join(lines))
            _arrow(ax, (x, above.bottom), (x, box.y))
            above = box
    return fig
