"""Publication tables: one `Table` object, written as CSV, Markdown, LaTeX (booktabs) and HTML.

Builders turn pipeline results into `Table`s of already-formatted strings (all number formatting
goes through `alliance.render.apa`), so the four files of a table always show the same digits.
Writers are pure functions of the table: the same table gives the same bytes.

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

import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from alliance import files
from alliance.errors import InputError
from alliance.render import apa

INDENT_CSV = "  "
INDENT_MD = "&emsp;"
INDENT_TEX = r"\quad "
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
COEF_COLUMNS = ("term", "estimate", "std_error", "statistic", "df", "p_value", "ci_low", "ci_high")
RELIABILITY_COLUMNS = (
    *("instrument", "rater", "scale", "session", "n", "n_items", "alpha", "alpha_ci_low"),
    *("alpha_ci_high", "omega", "min_item_rest", "mean_item_rest"),
)


# ------------------------------------------------------------------------------------ the table
@dataclass
class Table:
    """A formatted table: every body cell is a string, ready for any output format.

    `column_groups` are (label, span) pairs covering the columns left to right ("" = no group
    label); `indent` gives each row's indentation level (e.g. category levels under a variable).
    """

    title: str
    body: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    column_groups: list[tuple[str, int]] = field(default_factory=list)
    indent: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        columns = list(self.body.columns)
        if not all(isinstance(c, str) for c in columns) or len(set(columns)) != len(columns):
            raise ValueError(f"table columns must be unique strings, got {columns}")
        for col in columns:
            bad = [v for v in self.body[col].tolist() if not isinstance(v, str)]
            if bad:
                raise ValueError(f"column {col!r} holds non-string cells, e.g. {bad[0]!r}")
            if any("\n" in v or "\r" in v for v in self.body[col].tolist()):
                raise ValueError(f"column {col!r} holds a line break")
        if self.column_groups and sum(s for _, s in self.column_groups) != len(columns):
            raise ValueError("column_groups spans must add up to the number of columns")
        if self.indent and len(self.indent) != len(self.body):
            raise ValueError("indent needs one level per body row")
        self.body = self.body.reset_index(drop=True)

    @property
    def header(self) -> list[str]:
        """Single-row column names; a group label is folded in as "Group: column"."""
        groups: list[str] = []
        for label, span in self.column_groups or [("", len(self.body.columns))]:
            groups += [label] * span
        return [f"{g}: {c}" if g else c for g, c in zip(groups, self.body.columns, strict=True)]

    def levels(self) -> list[int]:
        return list(self.indent) if self.indent else [0] * len(self.body)

    def rows(self) -> list[list[str]]:
        return [list(map(str, r)) for r in self.body.itertuples(index=False, name=None)]

    def flat(self) -> pd.DataFrame:
        """The CSV view: folded header, indentation as two leading spaces per level."""
        rows = [
            [INDENT_CSV * lvl + r[0], *r[1:]]
            for r, lvl in zip(self.rows(), self.levels(), strict=True)
        ]
        return pd.DataFrame(rows, columns=self.header, dtype="str")


# -------------------------------------------------------------------------------------- writers
def _md_escape(text: str) -> str:
    return re.sub(r"([\\|*_`])", r"\\\1", text)


def to_markdown(table: Table) -> str:
    """GitHub pipe table with the title in bold above and the notes below."""
    head = [_md_escape(h) for h in table.header]
    lines = [f"**{_md_escape(table.title)}**", ""]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("| " + " | ".join([":---"] + [":---:"] * (len(head) - 1)) + " |")
    for row, lvl in zip(table.rows(), table.levels(), strict=True):
        cells = [INDENT_MD * lvl + _md_escape(row[0]), *map(_md_escape, row[1:])]
        lines.append("| " + " | ".join(cells) + " |")
    for i, note in enumerate(table.notes):
        lines += ["", ("*Note.* " if i == 0 else "") + _md_escape(note)]
    return "\n".join(lines) + "\n"


_GREEK = {
    "α": "alpha", "β": "beta", "γ": "gamma", "δ": "delta", "ε": "epsilon", "ζ": "zeta",
    "η": "eta", "θ": "theta", "ι": "iota", "κ": "kappa", "λ": "lambda", "μ": "mu", "ν": "nu",
    "ξ": "xi", "π": "pi", "ρ": "rho", "σ": "sigma", "τ": "tau", "υ": "upsilon", "φ": "phi",
    "χ": "chi", "ψ": "psi", "ω": "omega", "Γ": "Gamma", "Δ": "Delta", "Θ": "Theta",
    "Λ": "Lambda", "Ξ": "Xi", "Π": "Pi", "Σ": "Sigma", "Φ": "Phi", "Ψ": "Psi", "Ω": "Omega",
}  # fmt: skip
_TEX = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"$\sim$", "^": r"\textasciicircum{}",
    "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}",
    "−": "$-$", "–": "--", "—": "---", "≥": r"$\geq$", "≤": r"$\leq$", "±": r"$\pm$",
    "×": r"$\times$", "≈": r"$\approx$", "·": r"$\cdot$", "∞": r"$\infty$", "…": r"\ldots{}",
    "²": r"\textsuperscript{2}", "³": r"\textsuperscript{3}", "°": r"\textdegree{}",
    "†": r"\dag{}", "‡": r"\ddag{}", "‘": "`", "’": "'", "“": "``", "”": "''",
    "\u00a0": "~", "\u2003": r"\quad{}",
    **{k: f"$\\{v}$" for k, v in _GREEK.items()},
}  # fmt: skip


def tex_escape(text: str) -> str:
    """Escape LaTeX specials and map symbols (−, ≥, χ², Greek) to commands pdflatex knows.

    Other non-ASCII characters pass through: Latin-1 letters work with pdflatex's UTF-8 input,
    anything else (e.g. CJK arm names) needs xelatex/lualatex.
    """
    return "".join(_TEX.get(ch, ch) for ch in text)


def _tex_label(name: str) -> str:
    return "tab:" + re.sub(r"[^A-Za-z0-9:-]+", "-", name)


def to_latex(table: Table, label: str | None = None) -> str:
    """A `table` float with a booktabs tabular, caption, optional label and notes below.

    Needs only `\\usepackage{booktabs}` in the preamble.
    """
    ncol = len(table.body.columns)
    out = [r"\begin{table}[htbp]", r"\centering", f"\\caption{{{tex_escape(table.title)}}}"]
    if label:
        out.append(f"\\label{{{_tex_label(label)}}}")
    out += [f"\\begin{{tabular}}{{@{{}}l{'c' * (ncol - 1)}@{{}}}}", r"\toprule"]
    if any(g for g, _ in table.column_groups):
        cells, rules, start = [], [], 1
        for g, span in table.column_groups:
            if g:
                cells.append(f"\\multicolumn{{{span}}}{{c}}{{{tex_escape(g)}}}")
                rules.append(f"\\cmidrule(lr){{{start}-{start + span - 1}}}")
            else:
                cells += [""] * span
            start += span
        out += [" & ".join(cells) + r" \\", " ".join(rules)]
    out.append(" & ".join(tex_escape(c) for c in table.body.columns) + r" \\")
    out.append(r"\midrule")
    for row, lvl in zip(table.rows(), table.levels(), strict=True):
        first = INDENT_TEX * lvl + tex_escape(row[0])
        # a row opening with "[" would be read as the optional argument of the previous "\\"
        cells = ["{}" + first if first.startswith("[") else first, *map(tex_escape, row[1:])]
        out.append(" & ".join(cells) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}"]
    if table.notes:
        out.append(r"\par\smallskip")
        body = [
            ("\\textit{Note.} " if i == 0 else "") + tex_escape(n)
            for i, n in enumerate(table.notes)
        ]
        out.append("{\\raggedright\\footnotesize " + "\\par\n".join(body) + "\\par}")
    out.append(r"\end{table}")
    return "\n".join(out) + "\n"


def to_html(table: Table) -> str:
    """A plain `<table>` with `<caption>`, a header (group row when grouped) and notes in tfoot."""
    esc = html.escape
    ncol = len(table.body.columns)
    out = ["<table>", f"<caption>{esc(table.title)}</caption>", "<thead>"]
    if any(g for g, _ in table.column_groups):
        cells = [
            f'<th colspan="{span}" scope="colgroup">{esc(g)}</th>'
            if span > 1
            else f"<th>{esc(g)}</th>"
            for g, span in table.column_groups
        ]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append(
        "<tr>" + "".join(f'<th scope="col">{esc(c)}</th>' for c in table.body.columns) + "</tr>"
    )
    out += ["</thead>", "<tbody>"]
    for row, lvl in zip(table.rows(), table.levels(), strict=True):
        pad = f' style="padding-left: {1.5 * lvl:g}em"' if lvl else ""
        out.append(
            f"<tr><td{pad}>{esc(row[0])}</td>"
            + "".join(f"<td>{esc(c)}</td>" for c in row[1:])
            + "</tr>"
        )
    out.append("</tbody>")
    if table.notes:
        out.append("<tfoot>")
        for i, note in enumerate(table.notes):
            lead = "<em>Note.</em> " if i == 0 else ""
            out.append(f'<tr><td colspan="{ncol}">{lead}{esc(note)}</td></tr>')
        out.append("</tfoot>")
    out.append("</table>")
    return "\n".join(out) + "\n"


def _write_text(text: str, path: Path) -> Path:
    with files.atomic_path(path) as tmp:
        tmp.write_bytes(text.encode("utf-8"))
    return path


def write_table(table: Table, stem: Path) -> list[Path]:
    """Write `stem.csv`, `stem.md`, `stem.tex` and `stem.html` atomically; return the paths."""
    stem = Path(stem)
    paths = [stem.parent / f"{stem.name}.{ext}" for ext in ("csv", "md", "tex", "html")]
    files.write_csv(table.flat(), paths[0])
    _write_text(to_markdown(table), paths[1])
    _write_text(to_latex(table, label=stem.name), paths[2])
    _write_text(to_html(table), paths[3])
    return paths


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
def _label(labels: Mapping[str, str], key: str, default: str | None = None) -> str:
    return labels.get(key, key if default is None else default)


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
        f"{_label(labels, f'{by}={a}', str(a))} (n = {apa.fmt_int(n)})"
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
            [f"{_label(labels, var)}, {stat}"]
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
        rows = [f"{_label(labels, f'{var}={lv}', _level_text(lv))}" for lv in levels]
        counts = [[int((values[m] == lv).sum()) for m in masks] for lv in levels]
        missing = values.isna().to_numpy()
        if missing.any():
            rows.append("Missing")
            counts.append([int(missing[m].sum()) for m in masks])
        body.append([f"{_label(labels, var)}, n (%)"] + [""] * len(masks))
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
    groups = [("", 1), (_label(labels, by), len(arms))] + ([("", 1)] if total else [])
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


# --------------------------------------------------------------------------------- reliability
def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise InputError(f"{what} lacks column(s) {', '.join(absent)}", column=absent[0])


def _text(value: Any) -> str:
    return "" if apa.is_missing(value) else str(value)


def reliability_table(
    rel: pd.DataFrame,
    *,
    sessions: bool = False,
    labels: Mapping[str, str] | None = None,
    digits: int = 2,
    title: str = "Internal consistency of the alliance scales",
) -> Table:
    """Alpha [95% CI], omega and item-rest r per instrument x rater x scale (pooled rows).

    `sessions=True` adds the per-session rows and a Session column. Rows keep the input order.
    Row notes from the reliability stage (e.g. "2 items: omega not identified") become notes.
    """
    _require(rel, RELIABILITY_COLUMNS, "reliability table")
    labels = dict(labels or {})
    pooled = rel["session"].astype("str") == "pooled"
    rows = rel if sessions else rel[pooled.to_numpy()]
    header = ["Instrument", "Rater", "Scale"] + (["Session"] if sessions else [])
    header += ["k", "n", "α", "95% CI", "ω", "Item–rest r, min", "Item–rest r, M"]
    body, notes = [], []
    for rec in rows.to_dict("records"):
        ident = [_label(labels, str(rec[c])) for c in ("instrument", "rater", "scale")]
        session = str(rec["session"])
        cells = ident + ([session] if sessions else [])
        cells += [
            apa.fmt_int(rec["n_items"]),
            apa.fmt_int(rec["n"]),
            apa.fmt_r(rec["alpha"], digits, check=False),
            apa.fmt_ci(rec["alpha_ci_low"], rec["alpha_ci_high"], digits, leading_zero=False),
            apa.fmt_r(rec["omega"], digits, check=False),
            apa.fmt_r(rec["min_item_rest"], digits),
            apa.fmt_r(rec["mean_item_rest"], digits),
        ]
        body.append(cells)
        note = _text(rec.get("note"))
        if note:
            where = " ".join(ident) + ("" if session == "pooled" else f", session {session}")
            notes.append(f"{where}: {note}.")
    lead = (
        "k = number of items; α = Cronbach's alpha with Feldt's 95% CI; ω = McDonald's omega "
        "total (one-factor model); item–rest r = correlation of an item with the sum of the other "
        "items."
    )
    pooling = sorted({_text(v) for v in rel.loc[pooled.to_numpy()].get("pooling", [])} - {""})
    if pooled.any():
        lead += (
            " Pooled rows: " + ("; ".join(pooling) if pooling else "all sessions together") + "."
        )
    frame = pd.DataFrame(body, columns=header, dtype="str")
    return Table(title, frame, [lead, *notes])


# --------------------------------------------------------------------------------- model table
def _bare(term: Any) -> str:
    """ "(Intercept)" -> "Intercept", so a correlation reads r(Intercept, time)."""
    text = str(term)
    return text[1:-1] if text.startswith("(") and text.endswith(")") else text


def _fmt_component(rec: Mapping[str, Any]) -> str:
    return f"{rec['term1']} {apa.fmt_num(rec.get('sd'))}"


def _variance_note(components: Sequence[Mapping[str, Any]]) -> str | None:
    groups: dict[str, list[str]] = {}
    for rec in components:
        group = str(rec.get("group"))
        t2 = _text(rec.get("term2"))
        if t2:
            text = f"r({_bare(rec['term1'])}, {_bare(t2)}) = {apa.fmt_r(rec.get('corr'))}"
        elif group == "Residual":
            text = apa.fmt_num(rec.get("sd"))
        else:
            text = _fmt_component(rec)
        groups.setdefault(group, []).append(text)
    if not groups:
        return None
    parts = [f"{g.lower() if g == 'Residual' else g} {', '.join(t)}" for g, t in groups.items()]
    return "Random effects (SD): " + "; ".join(parts) + "."


def _icc_note(icc: Any) -> str | None:
    if isinstance(icc, Mapping) and icc:
        return "ICC: " + ", ".join(f"{g} {apa.fmt_r(v)}" for g, v in icc.items()) + "."
    if icc is not None and not isinstance(icc, Mapping) and not apa.is_missing(icc):
        return f"ICC = {apa.fmt_r(icc)}."
    return None


def fit_notes(fit: Mapping[str, Any], *, finite_df: bool, infinite_df: bool) -> list[str]:
    """Note lines under a model table: tests, random effects, fit, n's, engine, convergence."""
    notes = ["b = unstandardised estimate; SE = standard error; CI = 95% confidence interval."]
    if finite_df:
        method = fit.get("df_method") or "unspecified"
        notes.append(f"t tests with {method} degrees of freedom.")
    if infinite_df:
        notes.append("z = Wald z test.")
    for line in (_variance_note(fit.get("variance_components") or []), _icc_note(fit.get("icc"))):
        if line:
            notes.append(line)
    indices = [
        f"{name} = {apa.fmt_num(fit.get(key))}"
        for key, name in (("logLik", "log-likelihood"), ("AIC", "AIC"), ("BIC", "BIC"))
        if not apa.is_missing(fit.get(key))
    ]
    if indices:
        how = {True: " (REML)", False: " (ML)"}.get(fit.get("reml"), "")
        notes.append(f"Fit{how}: " + ", ".join(indices) + ".")
    counts = [
        f"{apa.fmt_int(fit[key])} {name}"
        for key, name in (
            ("n_obs", "observations"),
            ("n_patients", "patients"),
            ("n_therapists", "therapists"),
        )
        if not apa.is_missing(fit.get(key))
    ]
    if counts:
        notes.append("n = " + ", ".join(counts) + ".")
    if fit.get("engine"):
        version = f" {fit['engine_version']}" if fit.get("engine_version") else ""
        notes.append(f"Fitted with {fit['engine']}{version}.")
    if fit.get("formula_r"):
        notes.append(f"R equivalent: {fit['formula_r']}")
    problems = []
    if fit.get("converged") is False:
        problems.append("the model did not converge")
    if fit.get("singular") is True:
        problems.append("singular fit")
    if problems:
        notes.append("Caution: " + "; ".join(problems) + ".")
    notes += [f"Engine warning: {w}" for w in fit.get("warnings") or []]
    return notes


def model_table(
    coefficients: pd.DataFrame,
    fit: Mapping[str, Any],
    *,
    labels: Mapping[str, str] | None = None,
    digits: int = 2,
    title: str | None = None,
) -> Table:
    """APA fixed-effects table (term, b, SE, 95% CI, test with df, p) of one model.

    Variance components, ICC, fit indices, n's, df method, engine and any convergence or
    singularity problem (engine warnings verbatim) go into the notes.
    """
    _require(coefficients, COEF_COLUMNS, "coefficient table")
    labels = dict(labels or {})
    models = sorted(set(coefficients["model"].astype("str"))) if "model" in coefficients else []
    if len(models) > 1:
        raise ValueError(f"model_table takes one model's coefficients, got {models}")
    name = models[0] if models else str(fit.get("model", "model"))
    body = []
    for rec in coefficients.to_dict("records"):
        body.append(
            [
                _label(labels, str(rec["term"])),
                apa.fmt_num(rec["estimate"], digits),
                apa.fmt_num(rec["std_error"], digits),
                apa.fmt_ci(rec["ci_low"], rec["ci_high"], digits),
                apa.fmt_stat("t", rec["statistic"], rec["df"], digits),
                apa.fmt_p(rec["p_value"]),
            ]
        )
    dfs = pd.to_numeric(coefficients["df"], errors="coerce").to_numpy(dtype=float)
    notes = fit_notes(
        fit, finite_df=bool(np.isfinite(dfs).any()), infinite_df=bool(np.isinf(dfs).any())
    )
    frame = pd.DataFrame(body, columns=["Term", "b", "SE", "95% CI", "Test", "p"], dtype="str")
    return Table(title or f"Fixed effects: {_label(labels, name)}", frame, notes)


# ------------------------------------------------------------------------------- summary table
def _skipped(rec: Mapping[str, Any]) -> bool:
    status = _text(rec.get("status")).lower()
    if status:
        return status == "skipped"
    flag = rec.get("skipped")
    if not apa.is_missing(flag) and flag is not None:
        return str(flag).lower() in {"true", "1", "yes"}
    return apa.is_missing(rec.get("estimate")) and bool(_text(rec.get("reason")))


def summary_table(
    summary: pd.DataFrame,
    *,
    labels: Mapping[str, str] | None = None,
    digits: int = 2,
    title: str = "Alliance effects across models",
) -> Table:
    """One row per model x key alliance term, plus one row per skipped model with its reason.

    Reads columns model, term, estimate, std_error, ci_low, ci_high, p_value and, when present,
    statistic, df, status ("skipped"), reason, converged, singular.
    """
    _require(summary, ["model"], "model summary")
    labels = dict(labels or {})
    has_test = "statistic" in summary.columns
    body, skipped = [], 0
    for rec in summary.to_dict("records"):
        model = _label(labels, str(rec["model"]))
        if _skipped(rec):
            skipped += 1
            reason = _text(rec.get("reason")) or "no reason recorded"
            row = [model, _label(labels, _text(rec.get("term"))) or apa.MISSING]
            row += [apa.MISSING] * (5 if has_test else 4) + [f"Skipped: {reason}"]
            body.append(row)
            continue
        flags = []
        if "converged" in rec and str(rec["converged"]).lower() in {"false", "0"}:
            flags.append("not converged")
        if "singular" in rec and str(rec["singular"]).lower() in {"true", "1"}:
            flags.append("singular fit")
        row = [
            model,
            _label(labels, _text(rec.get("term"))),
            apa.fmt_num(rec.get("estimate"), digits),
            apa.fmt_num(rec.get("std_error"), digits),
            apa.fmt_ci(rec.get("ci_low"), rec.get("ci_high"), digits),
        ]
        if has_test:
            row.append(apa.fmt_stat("t", rec.get("statistic"), rec.get("df"), digits))
        row += [apa.fmt_p(rec.get("p_value")), "; ".join(flags)]
        body.append(row)
    header = ["Model", "Term", "b", "SE", "95% CI"] + (["Test"] if has_test else []) + ["p", "Note"]
    notes = ["b = unstandardised estimate; SE = standard error; CI = 95% confidence interval."]
    if has_test:
        notes.append("t tests with the model's df method; z = Wald z test.")
    if skipped:
        notes.append(f"{skipped} model(s) skipped; the Note column gives the reason.")
    return Table(title, pd.DataFrame(body, columns=header, dtype="str"), notes)
