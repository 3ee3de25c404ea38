"""The `Table` object and its writers: CSV, Markdown, LaTeX (booktabs) and HTML.

Builders (`alliance.render.tables.table1`, `alliance.render.tables.estimates`) fill a `Table` with
already-formatted strings (all number formatting goes through `alliance.render.apa`), so the four
files of a table always show the same digits. Writers are pure functions of the table: the same
table gives the same bytes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from alliance import files
from alliance.render.escape import html_escape, markdown_escape, tex_escape

INDENT_CSV = "  "
INDENT_MD = "&emsp;"
INDENT_TEX = r"\quad "


def label_of(labels: Mapping[str, str], key: str, default: str | None = None) -> str:
    """The label of `key` (a column, "column=level" or a term); else `default`, else `key`."""
    return labels.get(key, key if default is None else default)


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
def to_markdown(table: Table) -> str:
    """GitHub pipe table with the title in bold above and the notes below (all text escaped)."""
    head = [markdown_escape(h) for h in table.header]
    lines = [f"**{markdown_escape(table.title)}**", ""]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("| " + " | ".join([":---"] + [":---:"] * (len(head) - 1)) + " |")
    for row, lvl in zip(table.rows(), table.levels(), strict=True):
        cells = [INDENT_MD * lvl + markdown_escape(row[0]), *map(markdown_escape, row[1:])]
        lines.append("| " + " | ".join(cells) + " |")
    for i, note in enumerate(table.notes):
        lead = "*Note.* " if i == 0 else ""
        lines += ["", lead + markdown_escape(note, line_start=not lead)]
    return "\n".join(lines) + "\n"


def _tex_label(name: str) -> str:
    return "tab:" + re.sub(r"[^A-Za-z0-9:-]+", "-", name)


def _tex_row(cells: list[str], indent: str = "") -> str:
    """One tabular row, escaped; a row opening with "[" would be read as the optional argument
    of the command before it (`\\\\`, `\\toprule`), so it is guarded with `{}`."""
    first = indent + tex_escape(cells[0])
    first = "{}" + first if first.startswith("[") else first
    return " & ".join([first, *map(tex_escape, cells[1:])]) + r" \\"


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
    out.append(_tex_row(list(table.body.columns)))
    out.append(r"\midrule")
    for row, lvl in zip(table.rows(), table.levels(), strict=True):
        out.append(_tex_row(row, INDENT_TEX * lvl))
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
    esc = html_escape
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
