"""A reader's attack on published counts, written independently of alliance.clean.disclosure.

Table 1: every printed cell is parsed back ("k (p%)" known, "< m" in 1..m-1, "s" in 0..n) and
every filling of the withheld cells that fits the printed totals is enumerated (dynamic
programming over the arm columns), so each withheld cell's set of possible values is exact.
Flow: the documented relations of flow.csv, and each withheld count minimised and maximised as
an integer programme.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import Bounds, LinearConstraint, milp

N_HEADER = re.compile(r"\((?:n|N) = ([\d,]+)\)$")
COUNT = re.compile(r"^([\d,]+) \(")

Cell = tuple[str, int | None]  # ("known", k) | ("below", None): 1..m-1 | ("any", None)


def parse_cell(text: str, m: int) -> Cell:
    if text == f"< {m}":
        return ("below", None)
    if text == "s":
        return ("any", None)
    hit = COUNT.match(text)
    assert hit, f"not a count cell: {text!r}"
    return ("known", int(hit.group(1).replace(",", "")))


def table1_blocks(table: Any, m: int) -> tuple[list[int], list[tuple[str, list[list[Cell]]]]]:
    """Header n's and the count blocks: ("levels", rows) sum to the column n, ("row", rows) not."""
    body = table.body
    ns = [int(N_HEADER.search(c).group(1).replace(",", "")) for c in body.columns[1:]]
    out: list[tuple[str, list[list[Cell]]]] = []
    for label, indent, cells in zip(
        body.iloc[:, 0], table.indent, body.iloc[:, 1:].values.tolist(), strict=True
    ):
        if indent == 0:
            out.append(("levels" if label.endswith(", n (%)") else "row", []))
        else:
            out[-1][1].append([parse_cell(c, m) for c in cells])
    return ns, [b for b in out if b[1]]


def _domain(cell: Cell, m: int, limit: int) -> range:
    kind, value = cell
    if kind == "known":
        return range(value, value + 1)
    return range(1, min(m - 1, limit) + 1) if kind == "below" else range(0, limit + 1)


def _columns(cells: list[Cell], m: int, limit: int, total: int | None) -> list[tuple[int, ...]]:
    """Every column vector its cells allow (summing to `total` when given)."""
    out: list[tuple[int, ...]] = []

    def walk(i: int, acc: tuple[int, ...], s: int) -> None:
        if total is not None and s > total:
            return
        if i == len(cells):
            if total is None or s == total:
                out.append(acc)
            return
        for v in _domain(cells[i], m, limit):
            walk(i + 1, (*acc, v), s + v)

    walk(0, (), 0)
    return out


def possible_values(
    ns: list[int], kind: str, rows: list[list[Cell]], m: int
) -> dict[tuple[int, int], set[int]]:
    """(row, column) of each withheld cell -> every value consistent with the printed table.

    The last column is the total of the others (Table 1 with total=True)."""
    n_rows, n_cols = len(rows), len(rows[0])
    arms = n_cols - 1
    cols = [[rows[i][j] for i in range(n_rows)] for j in range(n_cols)]
    sums = kind == "levels"
    options = [_columns(cols[j], m, ns[j], ns[j] if sums else None) for j in range(arms)]
    totals = set(_columns(cols[-1], m, ns[-1], ns[-1] if sums else None))

    def add(s: tuple[int, ...], c: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(a + b for a, b in zip(s, c, strict=True))

    forward = [{(0,) * n_rows}]
    for opts in options:
        forward.append({add(s, c) for s in forward[-1] for c in opts})
    good = [set() for _ in range(arms + 1)]
    good[arms] = forward[arms] & totals
    for j in range(arms, 0, -1):
        good[j - 1] = {
            s for s in forward[j - 1] if any(add(s, c) in good[j] for c in options[j - 1])
        }
    values: dict[tuple[int, int], set[int]] = {}
    for j, opts in enumerate(options):
        for c in opts:
            if any(add(s, c) in good[j + 1] for s in good[j]):
                for i in range(n_rows):
                    values.setdefault((i, j), set()).add(c[i])
    for s in good[arms]:
        for i in range(n_rows):
            values.setdefault((i, n_cols - 1), set()).add(s[i])
    return {k: v for k, v in values.items() if rows[k[0]][k[1]][0] != "known"}


def recovered_table1(table: Any, m: int) -> list[tuple[int, int, int, int]]:
    """(block, row, column, value) of every withheld Table 1 cell the printed table fixes."""
    ns, blocks = table1_blocks(table, m)
    out = []
    for b, (kind, rows) in enumerate(blocks):
        for (i, j), vals in possible_values(ns, kind, rows, m).items():
            assert vals, "the true table must be a solution"
            if len(vals) == 1:
                out.append((b, i, j, next(iter(vals))))
    return out


def fully_withheld(counts: np.ndarray) -> list[list[Cell]]:
    """A block with every cell withheld as "s" (any count)."""
    return [[("any", None) for _ in row] for row in counts]


# ---------------------------------------------------------------------------------------- flow
ARM_STEPS = ("randomised", "started", "not started", "completed", "dropped out", "responders",
             "followed for relapse")  # fmt: skip


def flow_ranges(flow: pd.DataFrame, m: int) -> dict[tuple[str, str], tuple[int, int]]:
    """(step, arm) -> (smallest, largest) value a reader can give each withheld count and each
    unprinted difference ("status unknown", "non-responders", "responders not followed")."""
    names: list[tuple[str, str]] = []
    lo: list[float] = []
    hi: list[float] = []
    big = 10**6

    def var(name: tuple[str, str], low: float, high: float) -> int:
        names.append(name)
        lo.append(low)
        hi.append(high)
        return len(names) - 1

    index = {}
    for r in flow.itertuples():
        text = str(r.n)
        if text == f"< {m}":
            index[(r.step, r.arm)] = var((r.step, r.arm), 1, m - 1)
        elif text == "s":
            index[(r.step, r.arm)] = var((r.step, r.arm), 0, big)
        else:
            index[(r.step, r.arm)] = var((r.step, r.arm), int(text), int(text))
    rows: list[dict[int, int]] = []
    arms = sorted({a for s, a in index if s == "randomised" and a != "all"})
    for g in ["all", *arms]:
        c = {s: index.get((s, g)) for s in ARM_STEPS}
        rows.append({c["randomised"]: 1, c["started"]: -1, c["not started"]: -1})
        unknown = var(("status unknown", g), 0, big)
        rows.append({c["started"]: 1, c["completed"]: -1, c["dropped out"]: -1, unknown: -1})
        nonresp = var(("non-responders", g), 0, big)
        rows.append({c["started"]: 1, c["responders"]: -1, nonresp: -1})
        unfollowed = var(("responders not followed", g), 0, big)
        rows.append({c["responders"]: 1, c["followed for relapse"]: -1, unfollowed: -1})
    for s in ARM_STEPS:
        rows.append({index[(s, "all")]: 1, **{index[(s, a)]: -1 for a in arms}})
    rows.append({index[("assessed", "all")]: 1, index[("randomised", "all")]: -1,
                 index[("not randomised", "all")]: -1})  # fmt: skip
    a = np.zeros((len(rows), len(names)))
    for i, terms in enumerate(rows):
        for k, coef in terms.items():
            a[i, k] = coef
    constraint = LinearConstraint(a, 0, 0)
    out = {}
    for k, name in enumerate(names):
        if lo[k] == hi[k]:
            continue
        ends = []
        for sign in (1, -1):
            c = np.zeros(len(names))
            c[k] = sign
            res = milp(c, constraints=[constraint], integrality=np.ones(len(names)),
                       bounds=Bounds(lo, hi))  # fmt: skip
            assert res.status == 0, res.message
            ends.append(round(res.x[k]))
        out[name] = (ends[0], ends[1])
    return out
