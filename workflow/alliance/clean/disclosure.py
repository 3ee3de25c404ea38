"""Small-cell protection of published counts: primary and complementary suppression, checked
by an exact audit. Used by Table 1 and, when `privacy.suppress_small_cells` is on, by the
participant flow (`protect_flow`).

Published counts are cells tied by linear equations: arms sum to the total column, a column's
levels sum to the n in its header, randomised = started + not started. A reader who sees every
printed number can solve those equations for a withheld cell. The audit models what the reader
knows exactly:
- a printed cell is known; a locked cell (an arm size) is always printed;
- a cell printed "< m" is a count from 1 to m-1 (primary suppression);
- a cell printed "s" is withheld and may be any count from 0 up (complements, and small counts
  whose "< m" would pin them down: two "< 5" cells in a column of n = 8 are 4 and 4);
- an unprinted cell (a difference nobody prints, e.g. started - responders) is >= 0;
and no cell exceeds its known limit (the arm's n; else twice the largest count). A withheld
cell is safe when another value than its own is consistent with all of that (integer
feasibility, scipy's HiGHS MILP); an unprinted cell must be safe too when it is small.

`protect` withholds the primary cells, then, while the audit finds an exposed cell, takes the
cheapest step that makes it safe: withhold a visible count sharing an equation with it, or a
group given by the caller (the other corners of a rectangle of a table with margins), possibly
printing one "< m" cell of its equations as "s"; cheapest = fewest such re-marks, then the
smallest withheld sum, so the next smallest counts go first. Every step only widens what a
reader must allow, so the loop ends. A cell still exposed with every printable cell "s" is fixed
by the locked numbers alone (a variable with one category in a column: its count is the
column's n); it is reported in `Protection.unprotectable`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

COMPLEMENTARY = "s"  # the mark of a withheld count, any value (as alliance.render.apa)


def primary_text(min_cell: int) -> str:
    """The mark of a count from 1 to min_cell - 1 (as alliance.render.apa.suppress)."""
    return f"< {min_cell}"


@dataclass
class Cells:
    """Counts and the equations a reader knows hold between them (`equations @ x == rhs`)."""

    values: list[int] = field(default_factory=list)
    upper: list[int | None] = field(default_factory=list)
    printed: list[bool] = field(default_factory=list)
    locked: list[bool] = field(default_factory=list)
    rows: list[dict[int, int]] = field(default_factory=list)
    rhs: list[int] = field(default_factory=list)

    def add(
        self, value: int, *, upper: int | None = None, printed: bool = True, locked: bool = False
    ) -> int:
        """A new cell (`upper`: the most it could be, as a reader knows, e.g. the arm's n)."""
        self.values.append(int(value))
        self.upper.append(upper)
        self.printed.append(printed)
        self.locked.append(locked)
        return len(self.values) - 1

    def equation(self, terms: dict[int, int], rhs: int = 0) -> None:
        """sum(coefficient * cell) == rhs."""
        self.rows.append(dict(terms))
        self.rhs.append(int(rhs))

    def matrix(self) -> np.ndarray:
        """The equations as a dense matrix (one row per equation)."""
        a = np.zeros((len(self.rows), len(self.values)))
        for i, terms in enumerate(self.rows):
            for k, coef in terms.items():
                a[i, k] += coef
        return a


@dataclass(frozen=True)
class Protection:
    """Cells printed "< m" (`primary`: counts of 1..m-1) and "s" (`complementary`: withheld,
    any count, small ones among them), and the exposed cells nothing could protect."""

    primary: np.ndarray
    complementary: np.ndarray
    unprotectable: tuple[int, ...] = ()


def _domains(
    cells: Cells, min_cell: int, below: np.ndarray, withheld: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """What a reader knows of each cell: lower and upper limits."""
    values = np.asarray(cells.values, dtype=float)
    printed = np.asarray(cells.printed)
    # cells without a known limit: twice the largest count (withholding only widens ranges)
    bound = 2 * values.max() + min_cell + 1
    top = np.array([bound if u is None else u for u in cells.upper], dtype=float)
    lo, hi = values.copy(), values.copy()
    lo[below], hi[below] = 1, np.minimum(min_cell - 1, top[below])  # "< m"
    free = withheld | ~printed  # "s", or never printed
    lo[free], hi[free] = 0, top[free]
    return lo, hi


def exposed(
    cells: Cells,
    min_cell: int,
    below: np.ndarray,
    withheld: np.ndarray,
    targets: Sequence[int] | None = None,
) -> list[int]:
    """Cells printed "< m" (`below`) or "s" (`withheld`), and small unprinted cells, whose value
    the printed numbers determine (only those in `targets` when given)."""
    values = np.asarray(cells.values)
    n = len(values)
    printed = np.asarray(cells.printed)
    small = (values > 0) & (values < min_cell)
    at_risk = [k for k in range(n) if below[k] or withheld[k] or (not printed[k] and small[k])]
    if targets is not None:
        at_risk = [k for k in at_risk if k in set(targets)]
    if not at_risk:
        return []
    # here, not at the top: the overview and tables jobs import this module without solving
    from scipy.optimize import Bounds, LinearConstraint, milp

    lo, hi = _domains(cells, min_cell, below, withheld)
    a = cells.matrix()
    constraints = [LinearConstraint(a, cells.rhs, cells.rhs)] if len(a) else []

    def other_solution(k: int, low: float, high: float) -> np.ndarray | None:
        lb, ub = lo.copy(), hi.copy()
        lb[k], ub[k] = max(lb[k], low), min(ub[k], high)
        if lb[k] > ub[k]:
            return None
        res = milp(np.zeros(n), constraints=constraints, integrality=np.ones(n),
                   bounds=Bounds(lb, ub))  # fmt: skip
        return np.round(res.x) if res.status == 0 else None

    safe: set[int] = set()
    out = []
    for k in at_risk:
        if k in safe:
            continue
        other = other_solution(k, -np.inf, values[k] - 1)
        if other is None:
            other = other_solution(k, values[k] + 1, np.inf)
        if other is None:
            out.append(k)
        else:  # one other solution clears every cell it changes
            safe |= {j for j in at_risk if other[j] != values[j]}
    return out


def _line_cells(cells: Cells, k: int) -> list[int]:
    """Cells sharing an equation with `k` (k excluded)."""
    return sorted({j for terms in cells.rows if k in terms for j in terms} - {k})


def _neighbours(cells: Cells, k: int, hidden: np.ndarray) -> list[int]:
    """Visible, unlocked printed cells sharing an equation with `k`, else reachable from it
    through equations of withheld or unprinted cells."""
    printed, locked = np.asarray(cells.printed), np.asarray(cells.locked)
    open_ = printed & ~locked & ~hidden
    seen, frontier = {k}, [k]
    while frontier:
        reached = []
        for cell in frontier:
            new = [j for j in _line_cells(cells, cell) if j not in seen]
            reached += new
            seen.update(new)
        found = sorted(j for j in seen if open_[j])
        if found:
            return found
        frontier = [j for j in reached if not locked[j]]
    return []


Groups = Callable[[int], Iterable[Sequence[int]]]
Option = tuple[tuple[int, ...], tuple[int, ...]]  # (cells re-marked "< m" -> "s", cells withheld)


def protect(cells: Cells, min_cell: int, groups: Groups | None = None) -> Protection:
    """Primary suppression of 0 < n < min_cell, then complementary cells until none is exposed.

    For the first exposed cell k the options are: withhold a visible count sharing an equation
    with k, or one of `groups(k)` (cells to withhold together, e.g. the other corners of a
    rectangle in a table with margins), or nothing; each alone or with one "< m" cell of k's
    equations printed as "s" instead (a "< m" cell tells the reader it is 1..m-1, which can pin
    it: two "< 5" cells in a column of n = 8 are 4 and 4). The cheapest option that makes k safe
    is taken (fewest re-marks, then the smallest withheld sum, then the fewest cells), else the
    cheapest single withholding (or re-marking k), and the audit reruns.
    """
    values = np.asarray(cells.values)
    printed, locked = np.asarray(cells.printed, dtype=bool), np.asarray(cells.locked, dtype=bool)
    below = printed & ~locked & (values > 0) & (values < min_cell)
    withheld = np.zeros(len(values), dtype=bool)
    if min_cell <= 1:
        return Protection(below, withheld)
    stuck: set[int] = set()
    first = True
    while True:
        open_ = [k for k in exposed(cells, min_cell, below, withheld) if k not in stuck]
        if open_ and first:  # exposed even with every printable cell "s": cannot be helped
            nothing = np.zeros_like(below)
            stuck = set(exposed(cells, min_cell, nothing, printed & ~locked))
            open_ = [k for k in open_ if k not in stuck]
        first = False
        if not open_:
            break
        k = open_[0]
        hidden = below | withheld
        hides = {(j,) for j in _neighbours(cells, k, hidden)} | {()}
        for group in groups(k) if groups else ():
            if not any(locked[j] for j in group):
                hides.add(tuple(sorted(j for j in group if not hidden[j] and j != k)))
        remarks = [()] + [(j,) for j in [k, *_line_cells(cells, k)] if below[j]]
        options: list[Option] = [(r, h) for r in remarks for h in hides if r or h]

        def cost(option: Option) -> tuple[int, int, int, Option]:
            r, h = option
            return len(r), int(values[list(h)].sum()), len(h), option

        def apply(option: Option, b: np.ndarray, w: np.ndarray) -> None:
            r, h = option
            b[list(r)], w[list(r)] = False, True
            w[list(h)] = True

        chosen = None
        for option in sorted(options, key=cost):
            b, w = below.copy(), withheld.copy()
            apply(option, b, w)
            if not exposed(cells, min_cell, b, w, targets=[k]):
                chosen = option
                break
        if chosen is None:  # no single step frees k: take the cheapest and look again
            steps = [o for o in options if len(o[0]) + len(o[1]) == 1]
            if not steps:
                stuck.add(k)
                continue
            chosen = min(steps, key=cost)
        apply(chosen, below, withheld)
    return Protection(below, withheld, tuple(sorted(stuck)))


def texts(values: Sequence[int], protection: Protection, min_cell: int) -> list[str]:
    """Each cell as printed: the count, "< min_cell" (1 to min_cell - 1) or "s" (withheld, any
    count)."""
    out = []
    for k, v in enumerate(values):
        if protection.primary[k]:
            out.append(primary_text(min_cell))
        elif protection.complementary[k]:
            out.append(COMPLEMENTARY)
        else:
            out.append(str(int(v)))
    return out


# ---------------------------------------------------------------------------- participant flow
# Steps whose per-arm counts sum to the "all" count; "randomised" counts are arm sizes (locked:
# Table 1 prints them in its header whatever this switch says).
FLOW_STEPS = ("randomised", "started", "not started", "completed", "dropped out", "responders",
              "followed for relapse")  # fmt: skip
NOT_RANDOMISED = "not randomised"


def protect_flow(flow: pd.DataFrame, min_cell: int) -> pd.DataFrame:
    """flow.csv with small counts withheld ("< m") and complementary ones ("s"), as text.

    Adds the "not randomised" count (assessed - randomised, which the flow figure prints) as a
    row of its own. The reader is assumed to know: per arm, randomised = started + not started,
    started = completed + dropped out + (status unknown), responders <= started, followed for
    relapse <= responders; every step sums over arms to "all"; assessed = randomised + not
    randomised. Differences nobody prints (status unknown, started non-responders, responders not
    followed) are protected as well when small.
    """
    flow = flow.copy()
    get = {(r.step, r.arm): int(r.n) for r in flow.itertuples()}
    if ("assessed", "all") in get and ("randomised", "all") in get:
        gap = get[("assessed", "all")] - get[("randomised", "all")]
        at = int(np.flatnonzero(flow["step"].eq("randomised") & flow["arm"].eq("all"))[0]) + 1
        row = pd.DataFrame([{"step": NOT_RANDOMISED, "arm": "all", "n": gap, "note": ""}])
        flow = pd.concat([flow.iloc[:at], row, flow.iloc[at:]], ignore_index=True)
        get[(NOT_RANDOMISED, "all")] = gap
    cells = Cells()
    index = {}
    for i, r in enumerate(flow.itertuples()):
        index[(r.step, r.arm)] = i
        cells.add(int(r.n), locked=r.step == "randomised")
    arms = sorted({a for s, a in get if s in FLOW_STEPS and a != "all"})

    def cell(step: str, arm: str) -> int | None:
        return index.get((step, arm))

    def implicit(total: int, parts: list[int]) -> None:
        rest = cells.values[total] - sum(cells.values[p] for p in parts)
        if rest >= 0:  # the subset relation holds in these data
            extra = cells.add(rest, printed=False)
            cells.equation({total: 1, **{p: -1 for p in parts}, extra: -1})

    for arm in ["all", *arms]:
        r, st, ns = cell("randomised", arm), cell("started", arm), cell("not started", arm)
        if None not in (r, st, ns):
            cells.equation({r: 1, st: -1, ns: -1})
        parts = [c for c in (cell("completed", arm), cell("dropped out", arm)) if c is not None]
        if st is not None and parts:
            implicit(st, parts)
        resp, fol = cell("responders", arm), cell("followed for relapse", arm)
        if st is not None and resp is not None:
            implicit(st, [resp])
        if resp is not None and fol is not None:
            implicit(resp, [fol])
    for step in FLOW_STEPS:
        total, parts = cell(step, "all"), [cell(step, a) for a in arms]
        if total is not None and parts and None not in parts:
            cells.equation({total: 1, **{p: -1 for p in parts}})
    a, r, nr = cell("assessed", "all"), cell("randomised", "all"), cell(NOT_RANDOMISED, "all")
    if None not in (a, r, nr):
        cells.equation({a: 1, r: -1, nr: -1})
    shown = protect(cells, min_cell)
    n_rows = len(flow)
    flow["n"] = texts(cells.values[:n_rows], shown, min_cell)
    notes = flow["note"].fillna("").astype(str)
    flow["note"] = np.where(
        shown.primary[:n_rows], f"withheld: fewer than {min_cell}",
        np.where(shown.complementary[:n_rows],
                 "withheld so that a small count cannot be recomputed", notes),
    )  # fmt: skip
    return flow


def below(n: Any, min_cell: int) -> Any:
    """`n` as printed under the small-cell rule: "< min_cell" for 0 < n < min_cell."""
    if isinstance(n, int | float | np.integer | np.floating) and 0 < n < min_cell:
        return primary_text(min_cell)
    return n


def overview_counts(summary: dict[str, Any], flow: pd.DataFrame, min_cell: int) -> dict[str, Any]:
    """The overview page's "data used" counts with small counts withheld: people assessed,
    started and session rows as the protected flow prints them, the rest by `below`."""
    get = {(r.step, r.arm): r.n for r in flow.itertuples()}
    out = {k: below(v, min_cell) for k, v in summary.items()}
    for key, step in (("patients", "assessed"), ("patients_with_sessions", "started"),
                      ("session_rows", "session rows analysed")):  # fmt: skip
        if (step, "all") in get:
            out[key] = get[(step, "all")]
    return out
