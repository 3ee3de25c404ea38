"""`alliance init` on hostile exports (issue #12: config and data never execute code).

Codes, value labels, column names and file names full of YAML syntax, control characters and
templating markers must come back from the written starter config exactly, as plain strings, with
no extra key at any level; the project's safe reader must accept the file; comments and the
printed summary must stay one line each; and nothing may be written outside the test directory.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any

import jsonschema
import pandas as pd
import pyreadstat
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from alliance.clean import readers
from alliance.config import TEMPLATING_KEYS, load_schema, load_yaml_mapping
from alliance.errors import InputError
from alliance.onboard import starter
from alliance.onboard.cli import main
from alliance.onboard.inspection import inspect_export
from alliance.onboard.starter import _V, _emit, _plain, starter_config
from alliance.onboard.yamltext import SHOWN, SIMPLE_KEY_MAX, key, scalar, visible

HOSTILE = {
    "newline_keys": "x\n__use_yte__: true\nseed: 1",
    "yte_key": "__use_yte__",
    "yte_if": "?if True",
    "question_space": "? x",
    "python_tag": "!!python/object/apply:os.system ['touch pwned']",
    "anchor": "&a x",
    "alias": "*a",
    "hash": "a #b",
    "colon_space": "a: b",
    "quotes": "'\"'",
    "backslashes": "a\\b\\",
    "tab": "a\tb",
    "cr": "a\rb",  # the CSV reader refuses a bare CR inside a cell: a named error
    "crlf": "a\r\nb",
    "nul": "a\x00b",
    "separators": "a\u2028b\u2029c\x85d",
    "bom": "\ufeffa",
    "terminal_escape": "\x1b[31mred",
    "formula": '=HYPERLINK("http://evil.example","click")',
    "html": "<script>alert(1)</script>",
    "long": "L" * 10_000,
    "indicators": "- %@`{[|>!&*,",
    "directive": "%YAML 1.1",
    "doc_markers": "---\n...",
    "bool_like": "yes",
    "number_like": "1.0",
    "traversal": "../../../../tmp/alliance-pwned",
}
TEMPLATING = {"yte_key", "yte_if", "question_space"}  # cannot be config keys: left out, noted
REFUSED_BY_READER = {"cr"}
TOP = {"trial_name", "seed", "data", "columns", "codings", "symptoms", "alliance", "dropout",
       "privacy"}  # fmt: skip
_HIDDEN = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


# ------------------------------------------------------------------------------------ exports
def _codes(code: str, others: list[str], n: int) -> list[str]:
    cycle = [code, *others]
    return [cycle[i % len(cycle)] for i in range(n)]


def long_export(d: Path, code: str, names: dict[str, str] | None = None) -> tuple[Path, Path]:
    """Sessions + patients CSVs; `code` is one of the arm, modality and status codes; `names`
    renames columns (role -> hostile name)."""
    n = 8
    names = names or {}
    pids = [f"S{i:02d}" for i in range(n)]
    patients = pd.DataFrame({
        "subject": pids,
        "arm": _codes(code, ["CBT", "PLA-CM"], n),
        "modality": _codes(code, ["video"], n),
        "status": _codes(code, ["completed", "dropout"], n),
        "age": [30 + i for i in range(n)],
        "agreeableness": [40.5 + i for i in range(n)],
    })  # fmt: skip
    rows = []
    for i, pid in enumerate(pids):
        for visit in (1, 2, 3):
            row = {"subject": pid, "visit": visit, "hamd": 20 + i - 2 * visit}
            row |= {f"wai_p_{k:02d}": 1 + (i + k + visit) % 5 for k in range(1, 13)}
            rows.append(row)
    sessions = pd.DataFrame(rows)
    if names:
        items = {f"wai_p_{k:02d}": f"{names['items']}{k:02d}" for k in range(1, 13)}
        rename = {role: name for role, name in names.items() if role != "items"}
        sessions = sessions.rename(columns={**rename, **items})
        patients = patients.rename(columns=rename)
    d.mkdir(parents=True, exist_ok=True)
    s, p = d / "sessions.csv", d / "patients.csv"
    sessions.to_csv(s, index=False)
    patients.to_csv(p, index=False)
    return s, p


def wide_export(d: Path, code: str) -> Path:
    """One row per patient, session columns `hamd_s1..s4`; `code` in arm, modality and status."""
    n = 8
    frame = pd.DataFrame({
        "subject": [f"S{i:02d}" for i in range(n)],
        "arm": _codes(code, ["CBT", "PLA-CM"], n),
        "modality": _codes(code, ["video"], n),
        "status": _codes(code, ["completed", "dropout"], n),
    })  # fmt: skip
    for s in range(1, 5):
        frame[f"hamd_s{s}"] = [20 + i - 2 * s for i in range(n)]
    d.mkdir(parents=True, exist_ok=True)
    path = d / "trial_wide.csv"
    frame.to_csv(path, index=False)
    return path


# ------------------------------------------------------------------------------------ checks
def run_init(tmp_path: Path, monkeypatch, capsys, *files: Path) -> tuple[int, str, str, Path]:
    """`alliance init` into tmp_path/out from an empty working directory; asserts that no file
    appears outside tmp_path and that only the config appears inside it."""
    out = tmp_path / "out" / "alliance.yaml"
    out.parent.mkdir(exist_ok=True)
    cwd = tmp_path / "cwd"
    cwd.mkdir(exist_ok=True)
    monkeypatch.chdir(cwd)
    siblings = sorted(p.name for p in tmp_path.parent.iterdir())
    inside = {p for p in tmp_path.rglob("*")}
    args = [str(files[0])] + (["--patients", str(files[1])] if len(files) > 1 else [])
    rc = main([*args, "--out", str(out)])
    captured = capsys.readouterr()
    assert sorted(p.name for p in tmp_path.parent.iterdir()) == siblings
    assert list(cwd.iterdir()) == []
    assert {p for p in tmp_path.rglob("*")} - inside == ({out} if rc == 0 else set())
    assert not Path("/tmp/alliance-pwned").exists() and not (cwd / "pwned").exists()
    return rc, captured.out, captured.err, out


def one_line_text(text: str) -> None:
    """No hidden character but the line feed: no value or comment can start a new line."""
    bad = {ch for ch in text if ch != "\n" and unicodedata.category(ch) in _HIDDEN}
    assert not bad, sorted(map(hex, map(ord, bad)))


def _keys(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [k for k, v in node.items() for k in (k, *_keys(v))]
    return [k for v in node for k in _keys(v)] if isinstance(node, list) else []


def read_back(out: Path) -> dict[str, Any]:
    """The written config, checked: safe reader agrees with safe_load, no extra keys (schema),
    no templating key anywhere, every key a string, one line per value and comment."""
    text = out.read_text(encoding="utf-8")
    one_line_text(text)
    raw = yaml.safe_load(text)
    assert load_yaml_mapping(out) == raw
    assert set(raw) == TOP
    extra = [
        k
        for e in jsonschema.Draft202012Validator(load_schema()).iter_errors(raw)
        if e.validator == "additionalProperties"
        for k in set(e.instance) - set(e.schema.get("properties", {}))
    ]
    assert all(k.startswith("TODO_rater") for k in extra), extra  # init's own placeholder key
    for k in _keys(raw):
        assert isinstance(k, str) and k not in TEMPLATING_KEYS and not k.startswith("?"), k
    return raw


def expected_codes(value: str) -> str:
    """A code as the profile compares it (stripped, as the clean stage does)."""
    return value.strip()


# ------------------------------------------------------------------------------------ tests
@pytest.mark.parametrize("name", list(HOSTILE))
@pytest.mark.parametrize("layout", ["long", "wide"])
def test_hostile_codes_round_trip(tmp_path, monkeypatch, capsys, name, layout):
    value = HOSTILE[name]
    files = (
        long_export(tmp_path / "in", value)
        if layout == "long"
        else (wide_export(tmp_path / "in", value),)
    )
    rc, out_text, err, out = run_init(tmp_path, monkeypatch, capsys, *files)
    assert "Traceback" not in out_text + err
    if name in REFUSED_BY_READER:
        assert rc == 1 and err.startswith("alliance init: ") and err.count("\n") == 1
        return
    assert rc == 0, err
    one_line_text(out_text)
    raw = read_back(out)
    code = expected_codes(value)
    assert raw["data"]["layout"] == layout
    assert raw["columns"]["arm"] == "arm" and raw["columns"]["status"] == "status"
    others = {"arm": {"CBT", "PLA-CM"}, "modality": {"video"}, "status": {"completed", "dropout"}}
    for role, known in others.items():
        assert raw["columns"][role] == role
        if name in TEMPLATING:
            assert set(raw["codings"][role]) == known
            assert f"# note: {role} code '{visible(code)}' cannot be a key" in out.read_text()
            assert f"note: {role} code '{visible(code)}' cannot be a key" in out_text
        else:
            assert set(raw["codings"][role]) == known | {code}
            assert raw["codings"][role][code] in ("psychotherapy", "drug", "placebo", "other",
                                                  "in_person", "telehealth", "completed",
                                                  "dropout", "not_started") or \
                raw["codings"][role][code].startswith("TODO: ")  # fmt: skip


COLUMN_NAMES = {
    "subject": "subject<script>alert(1)</script>",
    "arm": "arm\n__use_yte__: true\nseed: 1",
    "status": "status: &a *a #x",
    "age": "age\n?if",
    "agreeableness": "agreeableness\t'\"\\ !!python/object/apply:os.system",
    "hamd": 'hamd\u2029=HYPERLINK("http://evil.example")',
    "items": "wai: &a *a #\\p_",
}


def test_hostile_column_names_round_trip(tmp_path, monkeypatch, capsys):
    files = long_export(tmp_path / "in", "CBT", COLUMN_NAMES)
    rc, out_text, err, out = run_init(tmp_path, monkeypatch, capsys, *files)
    assert rc == 0, err
    one_line_text(out_text)
    raw = read_back(out)
    cols = raw["columns"]
    assert cols["patient"] == COLUMN_NAMES["subject"]
    assert cols["arm"] == COLUMN_NAMES["arm"] and cols["status"] == COLUMN_NAMES["status"]
    assert cols["covariates"] == [COLUMN_NAMES["age"]]
    assert cols["personality"] == {"agreeableness": COLUMN_NAMES["agreeableness"]}
    assert raw["symptoms"]["column"] == COLUMN_NAMES["hamd"]
    pattern = raw["alliance"]["raters"]["patient"]["items"]
    item_cols = [f"{COLUMN_NAMES['items']}{k:02d}" for k in range(1, 13)]
    assert [int(re.match(pattern, c).group(1)) for c in item_cols] == list(range(1, 13))


def test_hostile_file_names_round_trip(tmp_path, monkeypatch, capsys):
    d = tmp_path / "in\n__use_yte__: true\n# x"
    s, p = long_export(d, "CBT")
    s = s.rename(d / "sess: &a *a !!python\u2028.csv")
    p = p.rename(d / "?if 'pat\"ients'.csv")
    rc, out_text, err, out = run_init(tmp_path, monkeypatch, capsys, s, p)
    assert rc == 0, err
    one_line_text(out_text)
    raw = read_back(out)
    # written relative to the config's folder, the rule the pipeline reads paths by
    for role, path in (("sessions", s), ("patients", p)):
        assert (out.parent / raw["data"][role]).resolve() == path.resolve()
    assert raw["trial_name"] == s.stem


@pytest.mark.parametrize(
    "label", ["x\n__use_yte__: true\nseed: 1", "!!python/object/apply:os.system", "a\rb",
              "a\u2028b", "?if True", "'\"\\", "a\x00b", "L" * 10_000]
)  # fmt: skip
def test_hostile_spss_value_labels_round_trip(tmp_path, monkeypatch, capsys, label):
    """Value labels become codes; the SAV format cuts at NUL and 120 bytes, so the code to find
    is the label as the reader returns it."""
    n = 9
    frame = pd.DataFrame({
        "subject": [f"S{i:02d}" for i in range(n)],
        "arm": [float(i % 3 + 1) for i in range(n)],
        **{f"hamd_s{s}": [float(20 + i - 2 * s) for i in range(n)] for s in range(1, 5)},
    })  # fmt: skip
    path = tmp_path / "in" / "trial.sav"
    path.parent.mkdir()
    labels = {"arm": {1.0: label, 2.0: "CBT", 3.0: "PLA-CM"}}
    pyreadstat.write_sav(frame, str(path), variable_value_labels=labels)
    code = expected_codes(readers.read_table(path).frame["arm"].iloc[0])
    rc, out_text, err, out = run_init(tmp_path, monkeypatch, capsys, path)
    assert rc == 0, err
    raw = read_back(out)
    arm = raw["codings"]["arm"]
    assert set(arm) == {"CBT", "PLA-CM"} | (set() if code.startswith("?") else {code})


def test_a_writer_that_fails_to_quote_is_a_named_error(tmp_path, monkeypatch, capsys):
    """Defence in depth: had the writer emitted a value raw, the read-back check refuses the file
    instead of writing it."""
    files = long_export(tmp_path / "in", HOSTILE["newline_keys"])
    monkeypatch.setattr(starter, "key", str)
    with pytest.raises(InputError, match="reads back|safe starter config"):
        starter_config(inspect_export(*files))
    rc, out_text, err, out = run_init(tmp_path, monkeypatch, capsys, *files)
    assert rc == 1 and err.startswith("alliance init: ") and not out.exists()
    assert "Traceback" not in err


# ------------------------------------------------------------------------------------ properties
@settings(max_examples=400, deadline=None)
@given(st.text())
def test_any_text_round_trips_through_the_emitter(text):
    assert yaml.safe_load(f"k: {scalar(text)}  # c") == {"k": text}
    k = key(text)
    assert yaml.safe_load(f"? {k}\n: v" if len(k) > SIMPLE_KEY_MAX else f"{k}: v") == {text: "v"}
    assert yaml.safe_load(f"k: {scalar([text, 'x', text])}") == {"k": [text, "x", text]}
    for line in (scalar(text), k, visible(text)):
        one_line_text(line)
    assert len(visible(text)) <= SHOWN


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(), st.text(), max_size=4), st.text(), st.text())
def test_any_codes_and_comments_round_trip_through_the_writer(codes, note, value):
    node = {
        "codings": {"arm": _V({c: _V(v, guessed=note) for c, v in codes.items()})},
        "columns": {"arm": _V(value, note), "covariates": _V([value, note], guessed=value)},
    }
    lines: list[str] = []
    _emit(node, 0, lines)
    text = "\n".join(lines) + "\n"
    one_line_text(text)
    assert yaml.safe_load(text) == _plain(node)


@pytest.mark.parametrize("value", ["CBT", "in-person", "data/demo/sessions.csv", r"^wai_p_(\d+)$",
                                   "HAM-D 17", "not_started", "_s(\\d+)$"])  # fmt: skip
def test_ordinary_values_stay_as_before(value):
    """Quoting only where it is needed: what PyYAML writes on its own is kept."""
    before = yaml.safe_dump(value, width=10**6, allow_unicode=True).removesuffix("\n...\n")
    assert scalar(value) == before.strip() == key(value)
