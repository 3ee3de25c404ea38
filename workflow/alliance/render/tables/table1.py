"""Table 1 (baseline characteristics by arm) and complementary small-cell suppression.

Table 1 choices a reader should know:
- Continuous variables are "M (SD)" unless skewed: listed in `skewed=`, or, when `skewed` is
  None, with |sample skewness| > 1 (adjusted Fisher-Pearson G1, pooled over arms, n >= 3). One
  rule per variable, so every column of a row shows the same statistic. Quartiles use linear
  interpolation (R type 7, pandas' default).
- Percentages are of the arm's n (people with a missing value included, shown in a "Missing"
  row), so a variable's percentages add to 100 within rounding.
- Small counts (0 < n < min_cell) print as "< min_cell" without a percentage. Then, so a reader
  cannot get them back from the totals, complementary cells are withheld too (shown as "s",
  any count): a reader knows each row sums to its total, each column to the n in its header
  and a "< m" cell lies in 1..m-1; while a withheld count is the only value consistent with
  that (exact integer audit, alliance.clean.disclosure), the cheapest further step is taken:
  withhold the smallest visible count of its row or column, or the other corners of a
  rectangle, and where "< m" itself pins a count (two "< 5" in a column of n = 8) print it "s".
  Summary statistics of very small arms are not suppressed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from alliance.clean.disclosure import Cells, protect
from alliance.errors import InputError
from alliance.render import apa
from alliance.render.tables.formats import Table, label_of

SKEW_THRESHOLD = 1.0
DEFAULT_CONTINUOUS = ("age", "baseline_symptom")
DEFAULT_CATEGORICAL = ("sex", "modality", "site")
# Design variables shown after the config's covariates when the data have them.
DESIGN_CATEGORICAL = ("modality", "site")
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
    counts: np.ndarray,
    min_cell: int,
    *,
    rows: bool = True,
    columns: bool = True,
    column_totals: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(primary, complementary) masks for a block of counts whose printed totals are known.

    Primary ("< m"): 0 < n < min_cell. `rows`: the last column is each row's total (arms sum to
    it). `columns`: each column sums to its printed n (`column_totals`, default the column sums),
    as Table 1 prints it in the header. Complementary cells ("s", any count; a primary cell whose
    "< m" would pin it moves here too) are added until no withheld count is determined by the
    printed numbers (alliance.clean.disclosure: exact audit; the smallest visible count of the
    exposed cell's row or column, or the other corners of a rectangle through it, first).
    """
    return _protect_block(counts, min_cell, rows, columns, column_totals)[:2]


def _protect_block(
    counts: np.ndarray,
    min_cell: int,
    rows: bool,
    columns: bool,
    column_totals: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """(primary, complementary, cells no withholding can protect) for one block."""
    counts = np.asarray(counts, dtype=float)
    n_rows, n_cols = counts.shape
    sums = counts.sum(axis=0) if column_totals is None else np.asarray(column_totals)
    cells = Cells()
    for k, value in enumerate(counts.ravel()):
        cells.add(int(value), upper=int(sums[k % n_cols]))  # no cell exceeds its column's n
    if rows and n_cols > 1:
        for i in range(n_rows):
            total = i * n_cols + n_cols - 1
            cells.equation({total: 1, **{i * n_cols + j: -1 for j in range(n_cols - 1)}})
    if columns:
        for j in range(n_cols):
            cells.equation({i * n_cols + j: 1 for i in range(n_rows)}, int(sums[j]))

    def rectangles(k: int) -> list[list[int]]:
        """The other corners of every rectangle through cell k: withheld together, a reader
        can move counts around them without changing any row or column total."""
        i, j = divmod(k, n_cols)
        return [
            [i * n_cols + j2, i2 * n_cols + j, i2 * n_cols + j2]
            for i2 in range(n_rows)
            for j2 in range(n_cols)
            if i2 != i and j2 != j
        ]

    shown = protect(cells, min_cell, rectangles if rows and columns else None)
    shape = counts.shape
    return (
        shown.primary.reshape(shape),
        shown.complementary.reshape(shape),
        len(shown.unprotectable),
    )


# ------------------------------------------------------------------------------------- table 1
def baseline_variables(
    patients: pd.DataFrame, covariates: Sequence[str], traits: Sequence[str]
) -> tuple[list[str], list[str]]:
    """(continuous, categorical) rows of the pipeline's Table 1, those present in `patients`.

    Continuous: the pre-treatment symptom score, every numeric covariate (config
    `columns.covariates`, in config order) and the personality traits (`columns.personality`);
    categorical: every other covariate, then modality and site. The arm is the grouping column.
    """
    present = [c for c in dict.fromkeys(covariates) if c in patients.columns]

    def numeric(column: str) -> bool:
        dtype = patients[column].dtype
        return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)

    continuous = ["baseline_symptom", *(c for c in present if numeric(c)), *traits]
    categorical = [*(c for c in present if not numeric(c)), *DESIGN_CATEGORICAL]
    continuous = [c for c in dict.fromkeys(continuous) if c in patients.columns]
    categorical = [c for c in dict.fromkeys(categorical) if c in patients.columns]
    return continuous, [c for c in categorical if c not in continuous]


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
    from scipy import stats  # here, not at the top: the overview job imports this module

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
) -> tuple[list[list[str]], bool, bool, int]:
    """Printed cells of a count block; `totals` are the header n's (the column sums)."""
    primary, comp, stuck = _protect_block(counts, min_cell, rows, columns, totals)
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
    return out, bool(primary.any()), bool(comp.any()), stuck


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
    any_stuck = 0
    used: set[str] = set()
    median_rule_applied = False

    def add_counts(labels_: list[str], counts: np.ndarray, *, columns: bool) -> None:
        nonlocal any_primary, any_comp, any_stuck
        cells, p, c, stuck = _count_rows(counts, ns, min_cell, rows=total, columns=columns)
        any_primary |= p
        any_comp |= c
        any_stuck += stuck
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
            f"{apa.COMPLEMENTARY}: a count withheld (any value, small or not) so that no withheld "
            "count can be recomputed from the printed counts, row totals and column n's."
        )
    if any_stuck:
        notes.append(
            "A withheld count that makes up its whole column (a single category) equals the "
            "column's n."
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
