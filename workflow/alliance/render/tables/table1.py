"""Table 1 (baseline characteristics by arm) and complementary small-cell suppression.

Table 1 choices a reader should know:
- Continuous variables are "M (SD)" unless skewed: listed in `skewed=`, or, when `skewed` is
  None, with |sample skewness| > 1 (adjusted Fisher-Pearson G1, pooled over arms, n >= 3). One
  rule per variable, so every column of a row shows the same statistic. Quartiles use linear
  interpolation (R type 7, pandas' default).
- Percentages are of the arm's n (people with a missing value included, shown in a "Missing"
  row), so a variable's percentages add to 100 within rounding.
- Small counts (0 < n < min_cell) print as "< min_cell" without a percentage. Then, so a reader
  cannot get them back by subtraction, complementary cells are withheld too (shown as "s"):
  while a row (arms sum to the total) or a column (levels sum to the arm's n) holds exactly
  one withheld cell, the smallest non-zero visible cell of that line is withheld as well.
  Summary statistics of very small arms are not suppressed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from alliance.errors import InputError
from alliance.render import apa
from alliance.render.tables.formats import Table, label_of

SKEW_THRESHOLD = 1.0
DEFAULT_CONTINUOUS = ("age", "baseline_symptom")
DEFAULT_CATEGORICAL = ("sex", "modality", "site")
DEFAULT_LABELS: dict[str, str] = {
    "arm": "Arm",
    "arm_class": "Treatment class",
    "age": "Age (years)",
    "sex": "Sex",
    "site": "Site",
    "modality": "Modality",
    "modality=in_person": "In person",
    "modality=telehealth": "Telehealth",
    "telehealth": "Telehealth",
    "baseline_symptom": "Baseline symptom score",
    "n_sessions": "Sessions attended",
    "agency": "Agency",
    "dropout": "Dropout",
    "response": "Response",
    "remission": "Remission",
}


# ---------------------------------------------------------------------------------- suppression
def complementary_suppression(
    counts: np.ndarray, min_cell: int, *, rows: bool = True, columns: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(primary, complementary) masks for a block of counts whose lines have known sums.

    Primary: 0 < n < min_cell. Complementary: while a constrained line (every row when
    `rows`, every column when `columns`) holds exactly one withheld cell, withhold its smallest
    non-zero visible cell (a zero only when nothing else is left), scanning lines in order.
    """
    counts = np.asarray(counts, dtype=float)
    primary = (counts > 0) & (counts < min_cell)
    hidden = primary.copy()
    lines: list[tuple[Any, ...]] = []
    if rows:
        lines += [(i, slice(None)) for i in range(counts.shape[0])]
    if columns:
        lines += [(slice(None), j) for j in range(counts.shape[1])]
    changed = True
    while changed:
        changed = False
        for line in lines:
            if hidden[line].sum() != 1:
                continue
            values, mask = counts[line], hidden[line]
            visible = [k for k in range(len(values)) if not mask[k]]
            if not visible:
                continue
            nonzero = [k for k in visible if values[k] > 0]
            pick = min(nonzero or visible, key=lambda k: (values[k], k))
            idx = (line[0], pick) if isinstance(line[1], slice) else (pick, line[1])
            hidden[idx] = True
            changed = True
    return primary, hidden & ~primary


# ------------------------------------------------------------------------------------- table 1
def _level_text(value: Any) -> str:
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _levels(values: pd.Series) -> list[Any]:
    if isinstance(values.dtype, pd.CategoricalDtype):
        return list(values.cat.categories)
    present = list(pd.unique(values.dropna()))
    try:
        return sorted(present)
    except TypeError:
        return sorted(present, key=str)


def _numeric(frame: pd.DataFrame, column: str, rows: np.ndarray) -> pd.Series:
    """Column as float; `rows` are the 1-based rows of `frame` in the user's file (for errors)."""
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce").astype("float64")
    bad = values.isna() & raw.notna()
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            "a continuous Table 1 variable holds a non-numeric value",
            column=column,
            row=int(rows[pos]),
            value=raw.iloc[pos],
            check="table1",
        )
    return values


def is_skewed(values: pd.Series) -> bool:
    """The documented Table 1 rule: |adjusted sample skewness| > 1 (needs 3+ values)."""
    x = values.dropna().to_numpy(dtype=float)
    if len(x) < 3 or np.ptp(x) == 0:
        return False
    return bool(abs(stats.skew(x, bias=False)) > SKEW_THRESHOLD)


def _summary(x: pd.Series, median: bool, digits: int) -> str:
    x = x.dropna()
    if x.empty:
        return apa.MISSING
    if median:
        q1, med, q3 = np.percentile(x.to_numpy(dtype=float), [25, 50, 75])
        return apa.fmt_median_iqr(med, q1, q3, digits)
    sd = float(x.std(ddof=1)) if len(x) > 1 else math.nan
    return apa.fmt_mean_sd(float(x.mean()), sd, digits)


def _count_rows(
    counts: np.ndarray, totals: list[int], min_cell: int, *, rows: bool, columns: bool
) -> tuple[list[list[str]], bool, bool]:
    primary, comp = complementary_suppression(counts, min_cell, rows=rows, columns=columns)
    out = []
    for i in range(counts.shape[0]):
        cells = []
        for j in range(counts.shape[1]):
            n = int(counts[i, j])
            if primary[i, j]:
                cells.append(apa.suppress(n, min_cell))
            elif comp[i, j]:
                cells.append(apa.COMPLEMENTARY)
            else:
                cells.append(apa.fmt_n_pct(n, totals[j]))
        out.append(cells)
    return out, bool(primary.any()), bool(comp.any())


def table1(
    patients: pd.DataFrame,
    *,
    by: str = "arm",
    continuous: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    min_cell: int = 5,
    labels: Mapping[str, str] | None = None,
    skewed: Sequence[str] | None = None,
    digits: int = 1,
    total: bool = True,
    title: str = "Baseline characteristics by arm",
) -> Table:
    """Baseline characteristics per `by` group (+ total): M (SD) or Mdn [Q1, Q3], n (%).

    `continuous`/`categorical` None -> the defaults present in the data; named columns must
    exist. `labels` maps a column to its label and "column=level" to a level label (arm labels:
    "arm=CBT"). People with a missing `by` (not randomised) are left out, and a note says how
    many. See the module docstring for the median rule and small-cell suppression.
    """
    labels = {**DEFAULT_LABELS, **(labels or {})}
    if by not in patients.columns:
        raise InputError("grouping column for Table 1 not found", column=by, check="table1")

    def chosen(given: Sequence[str] | None, default: Sequence[str]) -> list[str]:
        if given is None:
            return [c for c in default if c in patients.columns]
        for c in given:
            if c not in patients.columns:
                raise InputError("Table 1 variable not found", column=c, check="table1")
        return list(given)

    cont, cat = chosen(continuous, DEFAULT_CONTINUOUS), chosen(categorical, DEFAULT_CATEGORICAL)
    kept = patients[by].notna().to_numpy()
    data = patients[kept].reset_index(drop=True)
    file_rows = np.flatnonzero(kept) + 1
    excluded = len(patients) - len(data)
    arms = [a for a in _levels(data[by]) if (data[by] == a).any()]
    masks = [(data[by] == a).to_numpy() for a in arms]
    if total:
        masks.append(np.ones(len(data), dtype=bool))
    ns = [int(m.sum()) for m in masks]
    header = ["Characteristic"] + [
        f"{label_of(labels, f'{by}={a}', str(a))} (n = {apa.fmt_int(n)})"
        for a, n in zip(arms, ns[: len(arms)], strict=True)
    ]
    if total:
        header.append(f"Total (N = {apa.fmt_int(ns[-1])})")

    body: list[list[str]] = []
    indent: list[int] = []
    any_primary = any_comp = False
    used: set[str] = set()
    median_rule_applied = False

    def add_counts(labels_: list[str], counts: np.ndarray, *, columns: bool) -> None:
        nonlocal any_primary, any_comp
        cells, p, c = _count_rows(counts, ns, min_cell, rows=total, columns=columns)
        any_primary |= p
        any_comp |= c
        for lab, row in zip(labels_, cells, strict=True):
            body.append([lab, *row])
            indent.append(1)

    for var in cont:
        values = _numeric(data, var, file_rows)
        median = is_skewed(values) if skewed is None else var in skewed
        median_rule_applied |= median and skewed is None
        stat = "Mdn [Q1, Q3]" if median else "M (SD)"
        used.add(stat)
        body.append(
            [f"{label_of(labels, var)}, {stat}"]
            + [_summary(values[m], median, digits) for m in masks]
        )
        indent.append(0)
        missing = values.isna().to_numpy()
        if missing.any():
            add_counts(
                ["Missing, n (%)"],
                np.array([[int(missing[m].sum()) for m in masks]]),
                columns=False,
            )
            used.add("n (%)")

    for var in cat:
        values = data[var]
        levels = _levels(values)
        rows = [f"{label_of(labels, f'{var}={lv}', _level_text(lv))}" for lv in levels]
        counts = [[int((values[m] == lv).sum()) for m in masks] for lv in levels]
        missing = values.isna().to_numpy()
        if missing.any():
            rows.append("Missing")
            counts.append([int(missing[m].sum()) for m in masks])
        body.append([f"{label_of(labels, var)}, n (%)"] + [""] * len(masks))
        indent.append(0)
        used.add("n (%)")
        if rows:
            add_counts(rows, np.array(counts, dtype=float), columns=True)

    notes = [_values_note(used)]
    if median_rule_applied:
        notes.append(
            f"Mdn [Q1, Q3] is shown for variables whose skewness exceeds {SKEW_THRESHOLD:g} in "
            "absolute value (all arms pooled)."
        )
    if any_primary:
        notes.append(
            f"< {min_cell}: a count between 1 and {min_cell - 1}, withheld with its percentage "
            "(small-cell suppression)."
        )
    if any_comp:
        notes.append(
            f"{apa.COMPLEMENTARY}: withheld so that a small count cannot be recomputed from the "
            "row or column totals."
        )
    if excluded:
        who = "person" if excluded == 1 else "people"
        notes.append(f"{apa.fmt_int(excluded)} {who} without a value for {by} not shown.")
    frame = pd.DataFrame(body, columns=header, dtype="str")
    groups = [("", 1), (label_of(labels, by), len(arms))] + ([("", 1)] if total else [])
    return Table(title, frame, notes, groups, indent)


def _values_note(used: set[str]) -> str:
    parts = []
    if "M (SD)" in used:
        parts.append("M (SD)")
    if "Mdn [Q1, Q3]" in used:
        parts.append("median [first quartile, third quartile]")
    if "n (%)" in used:
        parts.append("n (%) with percentages of the column's n")
    return "Values are " + (", ".join(parts) or "counts") + "."
