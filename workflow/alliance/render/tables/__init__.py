"""Publication tables: one `Table` object, written as CSV, Markdown, LaTeX (booktabs) and HTML.

`formats` holds the table and its writers, `table1` the baseline table with small-cell
suppression, `estimates` the reliability, model and summary tables. The public names of all
three are importable from here.
"""

from alliance.render.tables.estimates import (
    agreement_table,
    fit_notes,
    model_table,
    reliability_table,
    summary_table,
)
from alliance.render.tables.formats import (
    Table,
    tex_escape,
    to_html,
    to_latex,
    to_markdown,
    write_table,
)
from alliance.render.tables.table1 import complementary_suppression, is_skewed, table1

__all__ = [
    "Table",
    "complementary_suppression",
    "fit_notes",
    "is_skewed",
    "model_table",
    "agreement_table",
    "reliability_table",
    "summary_table",
    "table1",
    "tex_escape",
    "to_html",
    "to_latex",
    "to_markdown",
    "write_table",
]
