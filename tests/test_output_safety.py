"""Outputs are safe to open and share (issue #12): text from the config or the data never runs.

Every payload goes through every writer or escaper and must come out inert: CSV cells and column
names never open as spreadsheet formulas (numbers stay numbers), Markdown / LaTeX / HTML / RST
show the text as typed and never as markup, figures never switch to mathtext or TeX, and no
output names an absolute input path.
"""

from __future__ import annotations

import copy
import csv
import json
import re
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from docutils.core import publish_parts
from jinja2 import Environment
from matplotlib import cbook
from matplotlib.text import Text

from alliance import files
from alliance.clean.problems import Problems
from alliance.provenance import provenance
from alliance.render import style
from alliance.render.escape import html_escape, markdown_escape, tex_escape
from alliance.render.figures import FIGURES, draw_figure
from alliance.render.figures.common import mathtext_escape, plain_text
from alliance.render.stage import overview_html
from alliance.render.tables import Table, to_html, to_latex, to_markdown, write_table
from alliance.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "workflow" / "report"
PAYLOADS = [
    '=HYPERLINK("http://x","y")',
    "+1+cmd|' /C calc'!A0",
    "@SUM(1+1)",
    "-2+3",
    "\t=1",
    "<script>alert(1)</script>",
    "</script><img src=x onerror=alert(1)>",
    ".. include:: /etc/passwd",
    "`x`_",
    "{{ 7*7 }}",
    "{% raw %}",
    "$\\input{/etc/passwd}$",
    "\\write18{ls}",
]
FORMULA_START = tuple("=+-@\t\r\0")
PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


# ---- CSV: formula injection ------------------------------------------------------------------


def _raw_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def _inert(cell: str) -> bool:
    """Not a formula to a spreadsheet, even one that trims leading spaces."""
    text = cell.lstrip(" ")
    return not text.startswith(FORMULA_START) or bool(PLAIN_NUMBER.fullmatch(text))


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_csv_cell_is_neutralised_and_restored(payload: str) -> None:
    safe = files.neutralise_cell(payload)
    assert _inert(safe)
    if payload.startswith(FORMULA_START):
        assert safe == "'" + payload
    else:
        assert safe == payload
    assert files.restore_cell(safe) == payload


@pytest.mark.parametrize("value", ["-1.5", "-3", "+2", "1e-5", "-.5", 0, -1.5, np.float64(-2.0)])
def test_numbers_are_never_quoted(value: Any) -> None:
    assert files.neutralise_cell(value) is value


def test_quoting_is_reversible_for_values_that_already_start_with_a_quote() -> None:
    for value in ["'=x", "''-y", "'plain", "'", "''", "'  =z", "  =w", "  -1.5", "'-1.5"]:
        assert files.restore_cell(files.neutralise_cell(value)) == value
    assert files.neutralise_cell("  @SUM(1+1)") == "'  @SUM(1+1)"  # an indented Table 1 level


def test_write_csv_neutralises_cells_and_headers_and_keeps_numbers(tmp_path: Path) -> None:
    n = len(PAYLOADS)
    frame = pd.DataFrame(
        {
            "label": PAYLOADS,
            "code": pd.Categorical([PAYLOADS[(i + 1) % n] for i in range(n)]),
            "text_number": ["-1.5", "-3", "+2", "4", "1e-3", "-0", ".5"] + ["x"] * (n - 7),
            "estimate": np.linspace(-2.5, 3.0, n),
            "n": np.arange(-3, n - 3),
            "missing": [np.nan] * n,
        }
    )
    frame[PAYLOADS[0]] = -1.25  # a formula as a column name
    frame["@risk"] = pd.array(["-x"] * n, dtype="string")
    path = files.write_csv(frame, tmp_path / "out.csv")
    rows = _raw_csv(path)
    cells = [c for row in rows for c in row]
    assert all(_inert(c) for c in cells), [c for c in cells if not _inert(c)]
    assert rows[0][6] == "'" + PAYLOADS[0] and rows[0][7] == "'@risk"
    # numbers are written exactly as pandas writes them: never quoted
    numeric = frame[["estimate", "n"]].to_csv(index=False, lineterminator="\n",
                                               float_format=lambda x: repr(float(x)))  # fmt: skip
    assert [r[3:5] for r in rows] == list(csv.reader(numeric.splitlines()))
    assert [r[2] for r in rows[1:8]] == ["-1.5", "-3", "+2", "4", "1e-3", "-0", ".5"]
    back = pd.read_csv(path)
    assert back["estimate"].dtype == np.float64 and back["n"].dtype == np.int64
    # the pipeline's own reader gets the text back exactly
    restored = files.read_csv(path, dtype={"text_number": str})
    assert restored.columns.tolist() == frame.columns.tolist()
    assert restored["label"].tolist() == PAYLOADS
    assert restored["code"].tolist() == frame["code"].astype(str).tolist()
    assert restored["@risk"].tolist() == ["-x"] * n


def test_a_frame_without_formulas_is_written_byte_for_byte_as_before(tmp_path: Path) -> None:
    frame = pd.DataFrame({"arm": ["CBT", "PLA-CM"], "b": [-0.5, 1e-9], "step": ["mean", "-1.5"]})
    path = files.write_csv(frame, tmp_path / "x.csv")
    expected = frame.to_csv(index=False, lineterminator="\n",
                            float_format=lambda x: repr(float(x)))  # fmt: skip
    assert path.read_text(encoding="utf-8") == expected


def test_every_table_csv_goes_through_the_neutralising_writer(tmp_path: Path) -> None:
    table = _payload_table()
    paths = write_table(table, tmp_path / "t")
    cells = [c for row in _raw_csv(paths[0]) for c in row]
    assert all(_inert(c) for c in cells), [c for c in cells if not _inert(c)]
    assert "'@SUM(1+1)" in cells and "'-2+3" in cells


# ---- Markdown, LaTeX, HTML -------------------------------------------------------------------


def _payload_table() -> Table:
    body = pd.DataFrame(
        {"Arm": PAYLOADS, "b": ["-0.50"] * len(PAYLOADS), PAYLOADS[5]: PAYLOADS[::-1]},
        dtype="str",
    )
    notes = [PAYLOADS[7], "# heading? " + PAYLOADS[6], "1. " + PAYLOADS[8], "- " + PAYLOADS[11]]
    return Table(title="Table " + PAYLOADS[6], body=body, notes=notes)


_MD_ENTITIES = {"&lt;": "<", "&gt;": ">", "&amp;": "&"}


def _md_text(escaped: str) -> str:
    """What CommonMark shows for escaped inline text: backslash escapes and entities decoded."""
    out = re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", escaped)
    return re.sub(r"&(lt|gt|amp);", lambda m: _MD_ENTITIES[m.group(0)], out)


def _md_inert(escaped: str) -> bool:
    """Nothing left that starts Markdown markup: emphasis, code, pipes, strikethrough, math or a
    backslash unescaped; no `<`/`>` that could open or close a tag; no link or entity."""
    plain = re.sub(r"\\[!-/:-@\[-`{-~]|&(?:lt|gt|amp);", "", escaped)
    markup = r"[`*_|$\\]|~(?=\S)|(?<=\S)~|<(?!\s|$)|(?<=\S)>|\](?=\s*[(\[{:])|&(?=#?\w+;)"
    return not re.search(markup, plain)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_markdown_escape_shows_the_text_as_typed(payload: str) -> None:
    escaped = markdown_escape(payload)
    assert _md_inert(escaped), escaped
    assert _md_text(escaped) == payload.replace("\n", " ")
    assert "\n" not in markdown_escape(payload + "\n\n# h\r\n")


def test_markdown_escape_at_line_start_and_entities() -> None:
    assert markdown_escape("# not a heading", line_start=True) == "\\# not a heading"
    assert markdown_escape("1. not a list", line_start=True) == "1\\. not a list"
    assert markdown_escape("- no", line_start=True) == "\\- no"
    assert markdown_escape("=3", line_start=True) == "\\=3"
    assert markdown_escape("a & b &lt; c") == "a & b &amp;lt; c"  # typed text, not an entity
    assert markdown_escape("[x](javascript:alert(1))") == "[x\\](javascript:alert(1))"
    assert markdown_escape("[0.25, 0.41], p < .001, y ~ x") == "[0.25, 0.41], p < .001, y ~ x"
    assert markdown_escape("~~gone~~ ~sub~") == "\\~\\~gone\\~\\~ \\~sub\\~"
    assert markdown_escape("<b>x</b>") == "&lt;b&gt;x&lt;/b&gt;"
    assert markdown_escape("> quote", line_start=True) == "&gt; quote"
    assert markdown_escape("[ref]: http://x", line_start=True) == "\\[ref\\]: http://x"


def test_markdown_table_is_inert() -> None:
    md = to_markdown(_payload_table())
    assert "<" not in md.replace("&lt;", "") and ">" not in md.replace("&gt;", "")
    rows = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert all(len(re.findall(r"(?<!\\)\|", ln)) == 4 for ln in rows)  # only the 3-column pipes
    notes = md.split("\n\n")[2:]
    assert notes[0].startswith("*Note.* ")
    assert notes[1].startswith("\\# heading") and notes[2].startswith("1\\. ")
    assert notes[3].startswith("\\- ")


_TEX_ESCAPES = re.compile(
    r"\\(?:textbackslash|textless|textgreater|textbar|textasciicircum)\{\}|\$\\sim\$|\\[{}$&#_%]"
)


@pytest.mark.parametrize("payload", [*PAYLOADS, "50% & #1 ~ ^_^ a\nb\r\x00c"])
def test_tex_escape_leaves_no_special_character(payload: str) -> None:
    escaped = tex_escape(payload)
    rest = _TEX_ESCAPES.sub("", escaped)
    assert not re.search(r"[\\{}$&#^_~%\n\r\x00]", rest), rest


def test_latex_table_has_no_command_from_the_text() -> None:
    tex = to_latex(_payload_table(), label="x")
    for command in ("\\input", "\\write18", "\\include"):
        assert command not in tex
    assert "\\textbackslash{}input" in tex and "\\textbackslash{}write18" in tex
    body = tex.split("\\midrule", 1)[1].split("\\bottomrule")[0]
    assert not re.search(r"(?<!\\)[%#_$]", _TEX_ESCAPES.sub("", body))


def test_a_latex_row_opening_with_a_bracket_is_guarded() -> None:
    table = Table("t", pd.DataFrame({"[h]": ["[x]"], "b": ["1"]}, dtype="str"))
    lines = to_latex(table).splitlines()
    assert "{}[h] & b \\\\" in lines and "{}[x] & 1 \\\\" in lines


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.text: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.add(tag)
        self.attrs += attrs

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(text: str) -> _Html:
    parser = _Html()
    parser.feed(text)
    parser.close()
    return parser


@pytest.mark.parametrize("payload", PAYLOADS)
def test_html_escape_is_text_in_content_and_attributes(payload: str) -> None:
    page = _parse(f'<p title="{html_escape(payload)}">{html_escape(payload)}</p>')
    assert page.tags == {"p"} and page.text == [payload] and page.attrs == [("title", payload)]


def test_html_table_is_inert() -> None:
    page = _parse(to_html(_payload_table()))
    assert page.tags <= {"table", "caption", "thead", "tbody", "tfoot", "tr", "th", "td", "em"}
    assert {a for a, _ in page.attrs} <= {"scope", "colspan", "style"}
    text = "".join(page.text)
    assert all(p in text for p in PAYLOADS)


def test_overview_page_is_inert(tmp_path: Path) -> None:
    results = tmp_path / "results"
    (results / "clean").mkdir(parents=True)
    summary = {"patients": 3, "arms": PAYLOADS[:3], "problems": 1}
    avail = {"summary": summary, "agency": {"available": False, "reason": PAYLOADS[6]}}
    (results / "clean" / "availability.json").write_text(json.dumps(avail))
    flow = pd.DataFrame({"step": ["randomised"] * 3, "arm": PAYLOADS[:3], "n": [1, 2, 3]})
    files.write_csv(flow, results / "clean" / "flow.csv")
    model = results / "models" / "m1"
    model.mkdir(parents=True)
    (model / "fit.json").write_text(json.dumps({"kind": "lmm", "status": "failed",
                                                "reason": PAYLOADS[5]}))  # fmt: skip
    settings = Settings.from_config(_raw_config(PAYLOADS[6], PAYLOADS[11])).render()
    page = _parse(overview_html(results, settings, {"forest": PAYLOADS[5]}))
    assert page.tags <= {"html", "head", "meta", "style", "body", "h2", "h3", "p", "table", "tr",
                         "th", "td", "ul", "li"}  # fmt: skip
    text = "".join(page.text)
    for payload in (*PAYLOADS[:3], PAYLOADS[5], PAYLOADS[6], PAYLOADS[11]):
        assert payload in text  # shown as typed (the flow arms read back without the quote)


# ---- RST: the Snakemake report's description and captions -------------------------------------


def _report_config(text: str) -> dict[str, Any]:
    config = Settings.from_config(_raw_config(trial_name=text, label=text)).to_dict()
    config["score"]["rater"] = config["score"]["scale"] = text
    return config


def _render_rst(path: Path, config: dict[str, Any]) -> str:
    """What Snakemake's report does with a caption or the description (snakemake.report:
    a Jinja environment with trim_blocks and lstrip_blocks, then docutils to HTML)."""
    env = Environment(trim_blocks=True, lstrip_blocks=True)
    template = env.from_string(path.read_text(encoding="utf-8"))
    rst = template.render(snakemake=SimpleNamespace(config=config))
    return publish_parts(rst, writer="html")["html_body"]


ATTACK = "\n\n".join(["Trial", *PAYLOADS, ".. raw:: html\n\n   <script>alert(2)</script>"])


@pytest.mark.parametrize("name", sorted(p.name for p in REPORT.glob("*.rst")))
def test_report_rst_renders_config_text_inertly(name: str) -> None:
    html = _render_rst(REPORT / name, _report_config(ATTACK))
    page = _parse(html)
    assert not page.tags & {"script", "img", "a", "iframe", "object", "embed", "style"}, page.tags
    assert "<script" not in html and "<img" not in html
    assert "root:" not in html  # /etc/passwd was not included
    assert 'class="system-message"' not in html and "problematic" not in html
    if name != "workflow.rst":  # captions show no free text from the config at all
        assert "HYPERLINK" not in html and "onerror" not in html
        return
    strong = re.search(r"<strong>(.*?)</strong>", html, re.S)
    assert strong is not None
    shown = unescape(strong.group(1))
    for payload in PAYLOADS:  # as typed ({{ 7*7 }} not evaluated), line breaks as spaces
        assert " ".join(payload.split()) in shown, payload


def test_report_rst_templates_only_numbers_enums_or_the_escaped_trial_name() -> None:
    allowed = {
        '["seed"]', '["score"]["early_window"][0]', '["score"]["early_window"][1]',
        '["score"]["ruptures"]["m"]', '["score"]["ruptures"]["ks"]', '["dropout"]["rule"]',
        '["symptoms"]["response_reduction"]', '["privacy"]["min_cell"]',
        '["treatment_resistance"]["trd_min_failed"]',
    }  # fmt: skip
    for path in REPORT.glob("*.rst"):
        text = path.read_text(encoding="utf-8")
        keys = re.findall(r"snakemake\.config((?:\[[^\]]+\])+)", text)
        if path.name == "workflow.rst":
            assert keys == ['["trial_name"]']
            assert '"\\\\" ~ c' in text and ".split() | join" in text  # the escaping loop
            continue
        assert set(keys) <= allowed, (path.name, set(keys) - allowed)


def test_the_demo_description_reads_as_before() -> None:
    html = _render_rst(
        REPORT / "workflow.rst", _report_config("Demo trial (simulated, TDCRP-like)")
    )
    assert "<strong>Demo trial (simulated, TDCRP-like)</strong>" in html


def test_rule_params_are_safe_inside_a_script_element() -> None:
    params = Settings.from_config(_raw_config(trial_name=PAYLOADS[6])).render().to_json()
    assert "<" not in params and ">" not in params and "&" not in params


# ---- figures: mathtext, TeX, SVG -------------------------------------------------------------


@pytest.mark.parametrize("payload", PAYLOADS)
def test_mathtext_escape_never_gives_math(payload: str) -> None:
    escaped = mathtext_escape(payload)
    assert not cbook.is_math_text(escaped)
    assert escaped.replace("\\$", "$") == payload.replace("\t", " ")  # what matplotlib shows


def _figure_results(tmp_path: Path) -> tuple[Path, Any]:
    """The synthetic results of test_figures with payloads as arm codes, labels, unit names."""
    from test_figures import ARMS, synthetic_results, write_results

    arm = "$5 =cmd|x$"  # an arm code with a math pair
    data = copy.deepcopy(synthetic_results())

    def rename(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {rename(k): rename(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [rename(v) for v in obj]
        return arm if isinstance(obj, str) and obj == "CBT" else obj

    for key, obj in data.items():
        if isinstance(obj, pd.DataFrame):
            data[key] = obj.map(lambda v: arm if isinstance(v, str) and v == "CBT" else v)
        else:
            data[key] = rename(obj)
    summary = data["models/summary.csv"]
    summary["label"] = [PAYLOADS[i % len(PAYLOADS)] for i in range(len(summary))]
    data["models/pooled_sites/units.csv"]["unit"] = PAYLOADS[10:13]
    data["models/pooled_sites/benchmark.csv"]["source"] = PAYLOADS[11]
    data["clean/flow.csv"]["note"] = PAYLOADS[11]
    root = tmp_path / "results"
    for rel, obj in data.items():  # as the pipeline writes them: CSVs neutralised
        if rel.endswith(".csv"):
            files.write_csv(obj, root / rel)
    write_results(root, {k: v for k, v in data.items() if not k.endswith(".csv")})
    codings = {"arm": {(arm if a == "CBT" else a): c for a, c in ARMS.items()},
               "arm_reference": "PLA"}  # fmt: skip
    config = _raw_config(label=PAYLOADS[11], codings=codings)
    config["alliance"] = {
        "instruments_dir": str(ROOT / "config" / "instruments"),
        "raters": {"patient": {"instrument": "wai_sr"}, "therapist": {"instrument": "wai_sr_t"}},
    }
    return root, Settings.from_config(config).render()


def test_figure_text_never_becomes_mathtext_or_tex(tmp_path: Path) -> None:
    results, settings = _figure_results(tmp_path)
    shown: list[str] = []
    for name, spec in FIGURES.items():
        fig = draw_figure(spec, results, settings)
        assert not isinstance(fig, str), f"{name}: {fig}"
        fig.draw_without_rendering()  # tick labels exist only after a draw
        texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text()]
        assert not [t.get_text() for t in texts if cbook.is_math_text(t.get_text())], name
        assert not [t for t in texts if t.get_usetex()], name
        shown += [t.get_text().replace("\\$", "$") for t in texts]
        svg = style.save_figure(fig, tmp_path / "fig" / name)[1].read_text(encoding="utf-8")
        assert "<script" not in svg and "<img" not in svg
        assert plain_text(fig) is fig  # applied once only
    everything = "\n".join(shown)
    for payload in ("$5 =cmd|x$", PAYLOADS[11], PAYLOADS[0], PAYLOADS[12]):
        assert payload in everything, f"{payload!r} never reached a figure"


# ---- paths -----------------------------------------------------------------------------------


def test_shareable_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    monkeypatch.chdir(project)
    assert files.shareable_path(project / "data" / "s.csv") == "data/s.csv"
    assert files.shareable_path("data/s.csv") == "data/s.csv"
    assert files.shareable_path("/home/someone/private/trial.sav") == "trial.sav"
    assert files.shareable_path("../elsewhere/p.csv") == "p.csv"
    assert files.shareable_path(str(tmp_path / "x.csv"), root=tmp_path) == "x.csv"
    assert files.shareable_path(None) is None and files.shareable_path("") == ""


def test_validation_rows_never_name_an_absolute_path(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    problems = Problems({})
    problems.add("read_note", "note", file=str(tmp_path / "data" / "s.csv"), action="note")
    problems.add("bad", "x", file="/home/someone/trial/patients.csv", value=PAYLOADS[0])
    problems.add("bad", "y", file=None)
    frame = problems.frame()
    assert frame["file"].tolist()[:2] == ["data/s.csv", "patients.csv"]
    assert pd.isna(frame["file"].iloc[2])


def test_provenance_records_inputs_without_absolute_paths(tmp_path, monkeypatch) -> None:
    project, outside = tmp_path / "project", tmp_path / "home" / "me"
    for folder in (project / "data", outside / "a", outside / "b"):
        folder.mkdir(parents=True)
    inside = project / "data" / "sessions.csv"
    twins = [outside / "a" / "patients.csv", outside / "b" / "patients.csv"]
    for i, path in enumerate([inside, *twins]):
        path.write_text(f"id\n{i}\n")
    monkeypatch.chdir(project)
    raw = _raw_config(sessions=str(inside), patients=str(twins[0]))
    raw["alliance"] = {"instruments_dir": str(outside / "instruments")}
    record = provenance(Settings.from_config(raw), [str(inside), *map(str, twins)], project,
                        tmp_path / "no-timings")  # fmt: skip
    assert sorted(record["inputs"]) == ["data/sessions.csv", "patients.csv", "patients.csv (2)"]
    assert record["config"]["data"]["sessions"] == "data/sessions.csv"
    assert record["config"]["data"]["patients"] == "patients.csv"
    assert record["config"]["alliance"]["instruments_dir"] == "instruments"
    assert str(tmp_path) not in json.dumps(record)


# ---- helpers ---------------------------------------------------------------------------------


def _raw_config(
    trial_name: str = "Trial",
    label: str = "HAM-D 17",
    sessions: str = "sessions.csv",
    patients: str | None = None,
    codings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "trial_name": trial_name,
        "data": {"sessions": sessions, "patients": patients},
        "columns": {"patient": "patient"},
        "symptoms": {"column": "symptom", "label": label, "min": 0, "max": 52},
        "codings": codings or {},
        "privacy": {"min_cell": 5},
    }
