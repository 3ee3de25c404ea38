"""Row filters (alliance.expressions): same rows as pandas query on safe filters, clear errors
with positions on everything else, and no code run whatever the input (config is untrusted)."""

from __future__ import annotations

import ast
import dataclasses
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alliance.errors import ConfigError
from alliance.expressions import (
    MAX_DEPTH,
    MAX_LENGTH,
    And,
    Column,
    Compare,
    Constant,
    Expr,
    ExpressionError,
    IsIn,
    IsNull,
    Not,
    Or,
    evaluate,
    parse,
    row_filter,
)

MODULE = Path(__file__).resolve().parents[1] / "workflow" / "alliance" / "expressions.py"
SETTINGS = {
    "derandomize": True,
    "database": None,
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow],
}


def frame() -> pd.DataFrame:
    """Ints, floats and strings with missing values, a bool column, odd names, an odd index."""
    return pd.DataFrame(
        {
            "i": [1, 2, 3, 4, 5, 6, 7, 8],
            "f": [0.5, np.nan, -1.5, 2.0, np.nan, 1000.0, 0.0, -0.25],
            "s": ["a", "b", None, "a", "c", "B", "it's", 'say "hi"'],
            "b": [True, False, True, True, False, False, True, False],
            "relapse_followed": [1, 0, np.nan, 1, 1, 0, np.nan, 1],
            "odd name": [3, 1, 4, 1, 5, 9, 2, 6],
            "g.x": [0.1, 0.2, np.nan, 0.4, 0.5, 0.6, 0.7, 0.8],
        },
        index=[10, 11, 12, 13, 14, 15, 16, 17],
    )


FRAME = frame()


def rows(text: str, table: pd.DataFrame = FRAME) -> list:
    return list(row_filter(text, table).index)


def pandas_rows(text: str, table: pd.DataFrame = FRAME) -> list:
    return list(table.query(text, engine="python").index)


# --- watching for code being run ----------------------------------------------------------------

_WATCHED = {
    "exec", "compile", "import", "open", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
    "os.fork", "os.forkpty", "subprocess.Popen", "ctypes.dlopen", "socket.connect", "pty.spawn",
}  # fmt: skip
_AUDIT: dict[str, list | None] = {"events": None}


def _hook(event: str, args: tuple) -> None:
    events = _AUDIT["events"]
    if events is not None and (event in _WATCHED or event.startswith("os.exec")):
        events.append((event, repr(args)[:120]))


sys.addaudithook(_hook)  # audit hooks cannot be removed; this one only records inside `watched`


@contextmanager
def watched() -> Iterator[list]:
    """Record every exec/compile/import/open/process event raised inside the block."""
    events: list = []
    _AUDIT["events"] = events
    try:
        yield events
    finally:
        _AUDIT["events"] = None


def test_the_watcher_sees_code_being_run(tmp_path: Path) -> None:
    with watched() as events:
        compile("1 + 1", "<test>", "exec")
        (tmp_path / "x").open("w").close()
    kinds = {event for event, _ in events}
    assert {"compile", "open"} <= kinds


# --- the basic filter ---------------------------------------------------------------------------


def test_relapse_followed_equals_one() -> None:
    assert rows("relapse_followed == 1") == [10, 13, 14, 17]
    assert rows("relapse_followed == 1") == pandas_rows("relapse_followed == 1")
    mask = evaluate(parse("relapse_followed == 1"), FRAME)
    assert mask.dtype == bool and mask.index.equals(FRAME.index)


def test_module_uses_only_stdlib_numpy_pandas_and_alliance_errors() -> None:
    tree = ast.parse(MODULE.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module or "")
    outside = {
        n for n in names if n.split(".")[0] not in sys.stdlib_module_names | {"numpy", "pandas"}
    }
    assert outside == {"alliance.errors"}, outside
    calls = [node.func for node in ast.walk(tree) if isinstance(node, ast.Call)]
    names = {f.id for f in calls if isinstance(f, ast.Name)}
    methods = {f.attr for f in calls if isinstance(f, ast.Attribute)}
    assert not names & {"eval", "exec", "compile", "__import__", "open"}
    assert not methods & {"query", "eval", "literal_eval", "exec", "import_module"}


def test_expression_error_is_a_config_error_with_position_and_token() -> None:
    with pytest.raises(ExpressionError) as info:
        parse("a + 1 == 2")
    err = info.value
    assert isinstance(err, ConfigError)
    assert (err.position, err.token) == (3, "+")
    assert str(err) == "at position 3, '+': unexpected character: arithmetic is not supported"
    assert "arithmetic" in err.message


# --- same rows as pandas query -------------------------------------------------------------------

# (ours, pandas) - None when pandas reads the same text
SAME_AS_PANDAS = [
    ("i == 1", None),
    ("i != 3", None),
    ("f > 0.5", None),
    ("f >= 0.5", None),
    ("f < 0", None),
    ("f <= -0.25", None),
    ("f != 2.0", None),
    ("f == -1.5e0", None),
    ("f > -1E3", None),
    ("f == .5", None),
    ("f == 1.", "f == 1.0"),
    ("i > 2.5", None),
    ("s == 'a'", None),
    ('s == "a"', None),
    ("s != 'a'", None),
    ("s < 'b'", None),
    ("s >= 'a'", None),
    ("s == 'it\\'s'", None),
    ('s == "say \\"hi\\""', None),
    ("s in ['a', 'c']", None),
    ("s not in ['a', 'c']", None),
    ("i in [1, 3, 5]", None),
    ("i not in [1, 3, 5]", None),
    ("f in [0.5, 2]", None),
    ("f not in [0.5, 2]", None),
    ("i in []", None),
    ("b", None),
    ("not b", None),
    ("~b", None),
    ("b == true", "b == True"),
    ("b != True", None),
    ("i == True", None),
    ("relapse_followed != 1", None),
    ("relapse_followed == 0 or relapse_followed == 1", None),
    ("1 < i < 5", None),
    ("1 < i <= 5 and f > 0", None),
    ("3 > i", None),
    ("-1 < f", None),
    ("i == 1 | i == 2 & b", None),
    ("i == 1 or i == 2 and b", None),
    ("(i == 1 | i == 2) & b", None),
    ("not (i > 2 or b)", None),
    ("not i > 2 and b", "(not i > 2) and b"),
    ("~(f > 0) & (s == 'a')", None),
    ("`odd name` >= 4", None),
    ("`odd name` in [1, 9]", None),
    ("g.x > 0.3", "`g.x` > 0.3"),
    ("`g.x` > 0.3", None),
    ("f is null", "f.isna()"),
    ("f is not null", "f.notna()"),
    ("s is null or i == 1", "s.isna() or i == 1"),
    ("not (f is null)", "~f.isna()"),
    ("s in ['a', null]", "s.isna() | s.isin(['a'])"),
    ("relapse_followed not in [1, null]", "~(relapse_followed.isna() | (relapse_followed == 1))"),
    ("true", "i == i"),
    ("false", "i != i"),
    ("  i   ==\t1\n", None),
    ("i == 1 and True", "i == 1"),
]


@pytest.mark.parametrize(("ours", "theirs"), SAME_AS_PANDAS)
def test_same_rows_as_pandas_query(ours: str, theirs: str | None) -> None:
    assert rows(ours) == pandas_rows(theirs or ours)


# Hypothesis: random filters from the grammar, each rendered in our syntax (minimal parentheses,
# random synonyms, quoting and spacing) and in pandas syntax (fully parenthesised).

NUMBER_COLUMNS = ["i", "f", "relapse_followed", "odd name", "g.x"]
OPS = ["==", "!=", "<", "<=", ">", ">="]
numbers = st.one_of(
    st.integers(-10, 10),
    st.sampled_from([0.5, -1.5, 2.0, 1000.0, -0.25, 0.0, 1e-3, 1e3]),
    st.floats(-10, 10, allow_nan=False, width=32).map(float),
)
texts = st.one_of(
    st.sampled_from(["a", "b", "c", "B", "it's", 'say "hi"', "", "ü"]),
    st.text(alphabet="ab'\"\\ ", max_size=3),
)
booleans = st.booleans()


def _value_for(column: str) -> st.SearchStrategy:
    if column == "s":
        return texts
    if column == "b":
        return booleans
    return st.one_of(numbers, booleans) if column == "i" else numbers


@st.composite
def comparisons(draw: st.DrawFn) -> tuple:
    column = draw(st.sampled_from([*NUMBER_COLUMNS, "s", "b"]))
    kind = draw(st.sampled_from(["cmp", "cmp", "in", "null", "chain"]))
    if kind == "cmp":
        return ("cmp", column, draw(st.sampled_from(OPS)), draw(_value_for(column)), draw(booleans))
    if kind == "in":
        values = draw(st.lists(_value_for(column), max_size=3))
        return ("in", column, values, draw(booleans))
    if kind == "null":
        return ("null", column, draw(booleans))
    column = draw(st.sampled_from(NUMBER_COLUMNS))
    ops = draw(st.lists(st.sampled_from(OPS), min_size=2, max_size=2))
    return ("chain", column, ops, draw(numbers), draw(numbers))


leaves = st.one_of(comparisons(), st.just(("bare", "b")))
trees = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.tuples(st.just("not"), inner),
        st.tuples(st.sampled_from(["and", "or"]), st.lists(inner, min_size=2, max_size=3)),
    ),
    max_leaves=8,
)


def _ours_constant(value: object, draw: st.DrawFn) -> str:
    if isinstance(value, bool):
        return draw(st.sampled_from(["true", "True"] if value else ["false", "False"]))
    if isinstance(value, str):
        quote = draw(st.sampled_from(["'", '"']))
        return quote + value.replace("\\", "\\\\").replace(quote, "\\" + quote) + quote
    if isinstance(value, float):
        return draw(st.sampled_from([repr(value), f"{value:.17e}"]))
    return str(value)


def _ours_column(name: str, draw: st.DrawFn) -> str:
    return name if name != "odd name" and draw(booleans) else f"`{name}`"


PRECEDENCE = {"or": 1, "and": 2, "not": 3}


def render_ours(tree: tuple, draw: st.DrawFn, needed: int = 0) -> str:
    kind = tree[0]
    if kind in PRECEDENCE:
        if kind == "not":
            text = draw(st.sampled_from(["not ", "~", "~ "])) + render_ours(tree[1], draw, 3)
        else:
            words = {"and": [" and ", " & ", "&"], "or": [" or ", " | ", "|"]}[kind]
            parts = [render_ours(t, draw, PRECEDENCE[kind] + (kind == "and")) for t in tree[1]]
            text = parts[0]
            for part in parts[1:]:
                text += draw(st.sampled_from(words)) + part
        wrap = PRECEDENCE[kind] < needed or draw(st.integers(0, 9)) == 0
        return f"({text})" if wrap else text
    text = _ours_leaf(tree, draw)
    return f"({text})" if draw(st.integers(0, 9)) == 0 else text


def _ours_leaf(tree: tuple, draw: st.DrawFn) -> str:
    kind, column = tree[0], _ours_column(tree[1], draw)
    if kind == "cmp":
        _, _, op, value, flipped = tree
        constant = _ours_constant(value, draw)
        if flipped:
            mirror = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
            return f"{constant} {mirror[op]} {column}"
        return f"{column} {op} {constant}"
    if kind == "in":
        values = ", ".join(_ours_constant(v, draw) for v in tree[2])
        return f"{column} {'not in' if tree[3] else 'in'} [{values}]"
    if kind == "null":
        return f"{column} is {'not ' if tree[2] else ''}null"
    if kind == "chain":
        _, _, (op1, op2), low, high = tree
        return f"{_ours_constant(low, draw)} {op1} {column} {op2} {_ours_constant(high, draw)}"
    return column  # bare


def render_pandas(tree: tuple) -> str:
    kind = tree[0]
    if kind == "not":
        return f"~({render_pandas(tree[1])})"
    if kind in ("and", "or"):
        return (" & " if kind == "and" else " | ").join(f"({render_pandas(t)})" for t in tree[1])
    column = f"`{tree[1]}`"
    if kind == "cmp":
        return f"{column} {tree[2]} {tree[3]!r}"
    if kind == "in":
        return f"{column} {'not in' if tree[3] else 'in'} {list(tree[2])!r}"
    if kind == "null":
        return f"{column}.{'notna' if tree[2] else 'isna'}()"
    if kind == "chain":
        _, _, (op1, op2), low, high = tree
        return f"{low!r} {op1} {column} {op2} {high!r}"
    return column


@settings(max_examples=300, **SETTINGS)
@given(tree=trees, data=st.data())
def test_random_filters_give_the_same_rows_as_pandas_query(
    tree: tuple, data: st.DataObject
) -> None:
    ours = render_ours(tree, data.draw)
    if len(ours) > MAX_LENGTH:
        return
    theirs = render_pandas(tree)
    assert rows(ours) == pandas_rows(theirs), (ours, theirs)


@settings(max_examples=200, **SETTINGS)
@given(tree=trees, data=st.data())
def test_the_canonical_text_parses_back_to_the_same_tree(tree: tuple, data: st.DataObject) -> None:
    text = render_ours(tree, data.draw)
    expr = parse(text)
    again = parse(str(expr))
    assert again == expr and str(again) == str(expr)
    assert evaluate(again, FRAME).equals(evaluate(expr, FRAME))


TOKENS = [
    "i", "s", "b", "f", "`odd name`", "nosuch", "==", "!=", "<", ">=", "(", ")", "[", "]", ",",
    "not", "in", "is", "null", "and", "or", "&", "|", "~", "1", "-2.5e1", "'a'", '"b"', "true",
    "None", "+", ".", "@", "__class__", "x.__dict__", "(", "'", "\\", "\n", ";", "=", ":",
]  # fmt: skip


@settings(max_examples=400, **SETTINGS)
@given(
    text=st.one_of(
        st.text(max_size=60),
        st.lists(st.sampled_from(TOKENS), max_size=14).map(" ".join),
        st.lists(st.sampled_from(TOKENS), max_size=14).map("".join),
    )
)
def test_any_text_is_a_filter_or_an_expression_error_and_runs_nothing(text: str) -> None:
    with watched() as events:
        try:
            mask = evaluate(parse(text), FRAME)
        except ExpressionError as err:
            assert err.message
        else:
            assert mask.dtype == bool and len(mask) == len(FRAME)
    assert events == []


# --- hostile and malformed input ----------------------------------------------------------------

HOSTILE = [
    "__import__('os').system('touch {marker}')",
    "@os.system('touch {marker}')",
    "os.system('touch {marker}')",
    "i == 1 and __import__('os').system('touch {marker}') == 0",
    "exec(\"open('{marker}', 'w')\")",
    "eval('1')",
    "i.__class__",
    "a.__class__",
    "`i`.__class__",
    "i.__class__.__bases__[0].__subclasses__()",
    "__builtins__",
    "i.real == 1",
    "s.str.len() > 1",
    "s.str.contains('a')",
    "i == 1; import os",
    "i == 1\nimport os",
    "lambda: 1",
    "i if b else f",
    "i[0]",
    "f(i)",
    "i + 1 == 2",
    "i - 1 == 2",
    "i * 2 == 4",
    "i ** 2 == 4",
    "-i == 1",
    "i == 0x10",
    "i == 1_000",
    "i == 1j",
    "[x for x in i]",
    "{'a': 1}",
    "f'{i}' == 1",
    "s == b'x'",
    "s == 'x' 'y'",
    "s == 'a\nb'",
    "s == 'a\\nb'",
    "s == 'a\x00'",
    "i == 1 # comment",
    "i = 1",
    "i === 1",
    "i in (1, 2)",
    "i == [1, 2]",
    "i in [j]",
    "i in [1, f(2)]",
    "i == f",
    "1 == 1",
    "i == null",
    "i is 1",
    "1 in [1]",
    "'x' is null",
    "(i == 1) == true",
    "i",
    "1",
    "'a'",
    "null",
    "",
    "   ",
    "not",
    "i ==",
    "(i == 1",
    "i == 1)",
    "i == 1 and",
    "i == 'x",
    "``",
    "`i",
    "i == 1e999",
    "(" * 10_000 + "b" + ")" * 10_000,
    "not " * 10_000 + "b",
    "i == 1 or " * 200 + "i == 1",
    "s == '" + "x" * 5_000 + "'",
    "(" * 400 + "b" + ")" * 400,
    "~" * 900 + "b",
    "nosuch == 1",
]


@pytest.mark.parametrize("template", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_and_malformed_filters_raise_and_run_nothing(template: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = template.replace("{marker}", str(marker))
    with watched() as events, pytest.raises(ExpressionError) as info:
        row_filter(text, FRAME)
    assert events == []
    assert not marker.exists()
    assert list(tmp_path.iterdir()) == []
    assert not isinstance(info.value.__cause__, RecursionError)
    if text.strip():
        assert info.value.position is not None, str(info.value)


def test_no_file_appears_outside_the_temp_dir() -> None:
    pwned = Path("/tmp/pwned")
    existed = pwned.exists()
    for text in ("__import__('os').system('touch /tmp/pwned')", '@os.system("touch /tmp/pwned")'):
        with pytest.raises(ExpressionError):
            row_filter(text, FRAME)
    assert pwned.exists() == existed


# (filter, position, token) - positions are 1-based; "" is the end of the filter
POSITIONS = [
    ("i + 1 == 2", 3, "+"),
    ("f(i)", 2, "("),
    ("i[0]", 2, "["),
    ("(i == 1", 8, ""),
    ("i == 1 and", 11, ""),
    ("i == 'x", 6, "'x"),
    ("s == 'a\nb'", 8, "\n"),
    ("s == 'x\\q'", 8, "\\q"),
    ("i.__class__", 1, "i.__class__"),
    ("i == 1; import os", 7, ";"),
    ("i if b else f", 3, "if"),
    ("1", 1, "1"),
    ("i == null", 6, "null"),
    ("null != i", 1, "null"),
    ("i == f", 6, "f"),
    ("1 == 2", 1, "1"),
    ("(i == 1) == 2", 1, "("),
    ("i in (1, 2)", 6, "("),
    ("i is 1", 6, "1"),
    ("1 in [1]", 1, "1"),
    ("i == 1.2.3", 6, "1.2."),
    ("i == 1e999", 6, "1e999"),
    ("i = 1", 3, "="),
    ("@x", 1, "@"),
    ("i == 1 or i == 2 i", 18, "i"),
]


@pytest.mark.parametrize(("text", "position", "token"), POSITIONS)
def test_parse_errors_point_at_the_offending_token(text: str, position: int, token: str) -> None:
    with pytest.raises(ExpressionError) as info:
        parse(text)
    assert (info.value.position, info.value.token) == (position, token)
    assert f"at position {position}, " in str(info.value)


def test_function_calls_and_indexing_are_named() -> None:
    with pytest.raises(ExpressionError, match="function calls are not supported"):
        parse("f(i)")
    with pytest.raises(ExpressionError, match="indexing is not supported"):
        parse("i[0]")
    with pytest.raises(ExpressionError, match="is null"):
        parse("i == null")
    with pytest.raises(ExpressionError, match="must be text"):
        parse(1)  # type: ignore[arg-type]
    with pytest.raises(ExpressionError, match="empty row filter"):
        parse("  ")


# --- limits ---------------------------------------------------------------------------------------


def test_length_limit() -> None:
    text = "i == 1 or " * 99 + "i == 1" + " " * 4
    assert len(text) == MAX_LENGTH
    assert rows(text) == [10]
    with pytest.raises(ExpressionError, match=r"1001 characters long; the limit is 1000") as info:
        parse(text + " ")
    assert info.value.position == MAX_LENGTH + 1


@pytest.mark.parametrize(("opening", "closing"), [("(", ")"), ("not ", ""), ("~", "")])
def test_depth_limit(opening: str, closing: str) -> None:
    parse(opening * MAX_DEPTH + "b" + closing * MAX_DEPTH)
    deep = opening * (MAX_DEPTH + 1) + "b" + closing * (MAX_DEPTH + 1)
    with pytest.raises(ExpressionError, match="nested more than 50 deep") as info:
        parse(deep)
    assert info.value.position == MAX_DEPTH * len(opening) + 1


def test_deepest_allowed_filter_evaluates() -> None:
    text = "(" * 25 + "not " * 25 + "b" + ")" * 25  # 25 parentheses + 25 not-s = MAX_DEPTH
    assert rows(text) == pandas_rows("~b")


def test_huge_nesting_is_an_expression_error_not_a_recursion_error() -> None:
    for text in ("(" * 10_000 + "b" + ")" * 10_000, "(" * 499 + "b" + ")" * 499):
        with pytest.raises(ExpressionError):
            parse(text)


# --- semantics ------------------------------------------------------------------------------------


def test_missing_values_follow_pandas() -> None:
    # f is missing on rows 11 and 14
    assert 11 not in rows("f > 0") and 11 not in rows("f <= 0") and 11 not in rows("f == 2")
    assert 11 in rows("f != 2") and 11 in rows("not f == 2") and 11 in rows("f not in [2]")
    assert rows("f is null") == [11, 14]
    assert rows("f is not null") == [10, 12, 13, 15, 16, 17]
    assert rows("s in ['a', null]") == [10, 12, 13]
    assert rows("s not in ['a', null]") == [11, 14, 15, 16, 17]
    assert rows("s < 'z'") == [10, 11, 13, 14, 15, 16, 17]  # the missing s is not < 'z'


def test_precedence_not_over_and_over_or_and_synonyms() -> None:
    assert parse("b or i == 1 and i == 2") == Or(
        (
            Column("b"),
            And((Compare(Column("i"), "==", Constant(1)), Compare(Column("i"), "==", Constant(2)))),
        )
    )
    assert parse("b | i == 1 & i == 2") == parse("b or i == 1 and i == 2")
    assert parse("not b and b") == And((Not(Column("b")), Column("b")))
    assert parse("~ i == 1") == Not(Compare(Column("i"), "==", Constant(1)))  # pandas: (~i) == 1
    assert parse("~b & b") == parse("not b and b")
    assert parse("not not b") == Not(Not(Column("b")))
    assert parse("a and (b and c)") == And((Column("a"), Column("b"), Column("c")))
    assert parse("(a or b) or c") == Or((Column("a"), Column("b"), Column("c")))
    assert parse("a and (b or c)") == And((Column("a"), Or((Column("b"), Column("c")))))


def test_constants_on_the_left_and_chains_become_column_op_constant() -> None:
    assert parse("3 > i") == Compare(Column("i"), "<", Constant(3))
    assert parse("1 < i <= 3") == And(
        (Compare(Column("i"), ">", Constant(1)), Compare(Column("i"), "<=", Constant(3)))
    )
    assert str(parse("1 < i <= 3")) == "i > 1 and i <= 3"


def test_constants() -> None:
    def constant(text: str) -> object:
        expr = parse(f"i == {text}")
        assert isinstance(expr, Compare)
        return expr.value.value

    assert constant("-12") == -12 and isinstance(constant("-12"), int)
    assert constant("1.5e-3") == 0.0015
    assert constant("-.5") == -0.5
    assert constant("2E+2") == 200.0 and isinstance(constant("2E+2"), float)
    assert constant("true") is True and constant("False") is False
    assert constant("'it\\'s'") == "it's"
    assert constant('"say \\"hi\\""') == 'say "hi"'
    assert constant("'back\\\\slash'") == "back\\slash"
    assert constant("'ü €'") == "ü €"
    assert parse("i is None") == IsNull(Column("i"))
    assert parse("i in [1, 'a', null, true]") == IsIn(
        Column("i"), (Constant(1), Constant("a"), Constant(None), Constant(True))
    )
    assert Constant(1) != Constant(True) and Constant(1) != Constant(1.0)


def test_column_names() -> None:
    expr = parse("a == 1 and (`odd name` in [1] or not b) and g.x is null and `and` == 2")
    assert expr.columns() == {"a", "odd name", "b", "g.x", "and"}
    assert str(parse("`and` == 2")) == "`and` == 2"
    assert str(parse("`x y` == 'q\"'")) == '`x y` == "q\\""'
    assert str(parse("`odd name` != 1")) == "`odd name` != 1"


def test_the_tree_is_immutable_and_hashable() -> None:
    expr = parse("i == 1 and s in ['a']")
    with pytest.raises(dataclasses.FrozenInstanceError):
        expr.operands = ()  # type: ignore[misc]
    assert len({expr, parse("i == 1 and s in ['a']"), parse("i == 2")}) == 2
    assert isinstance(expr, Expr)


def test_unknown_columns_are_named_with_the_available_ones() -> None:
    with pytest.raises(ExpressionError) as info:
        row_filter("i == 1 and nosuch == 2 or other", FRAME)
    message = str(info.value)
    assert "unknown columns 'nosuch', 'other'" in message
    assert "columns: i, f, s, b, relapse_followed, odd name, g.x" in message
    assert (info.value.position, info.value.token) == (12, "nosuch")


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("i == 'x'", "i"),
        ("i < 'x'", "i"),
        ("'x' > i", "i"),
        ("s == 1", "s"),
        ("s < 1.5", "s"),
        ("s == true", "s"),
        ("b == 'x'", "b"),
        ("s in ['a', 1]", "s"),
        ("i in ['a']", "i"),
        ("relapse_followed == '1'", "relapse_followed"),
    ],
)
def test_comparing_numbers_with_text_is_an_error_naming_the_column(text: str, column: str) -> None:
    with pytest.raises(
        ExpressionError, match=rf"column '{column}' holds (numbers|text|true/false)"
    ):
        row_filter(text, FRAME)


def test_a_bare_column_must_hold_true_false_values() -> None:
    with pytest.raises(ExpressionError, match=r"column 'i' holds numbers, not true/false.*i == 1"):
        row_filter("i", FRAME)
    with pytest.raises(ExpressionError, match="the constant 1 is not a condition"):
        parse("b and 1")


def test_other_dtypes() -> None:
    table = pd.DataFrame(
        {
            "obj": pd.Series(["x", None, "y", "x"], dtype=object),
            "nullable": pd.array([1, None, 3, 4], dtype="Int64"),
            "flag": pd.array([True, None, False, True], dtype="boolean"),
            "cat": pd.Categorical(["lo", "hi", None, "lo"]),
            "catnum": pd.Categorical([1, 2, None, 2]),
            "when": pd.to_datetime(["2024-01-01", "2024-02-01", None, "2024-03-01"]),
            "mixed": pd.Series([1, "a", None, 2.5], dtype=object),
            "empty": pd.Series([None] * 4, dtype=object),
            "complex": [1j, 2j, 3j, 4j],
        }
    )
    assert rows("obj == 'x'", table) == [0, 3]
    assert rows("obj != 'x'", table) == [1, 2]
    assert rows("obj < 'y'", table) == [0, 3]
    assert rows("nullable >= 3", table) == [2, 3]
    assert rows("nullable is null", table) == [1]
    assert rows("flag", table) == [0, 3]
    assert rows("not flag", table) == [1, 2]
    assert rows("flag == false", table) == [2]
    assert rows("cat == 'lo'", table) == [0, 3]
    assert rows("cat in ['hi', null]", table) == [1, 2]
    assert rows("catnum > 1", table) == [1, 3]
    assert rows("when < '2024-01-15'", table) == [0]
    assert rows("when >= '2024-02-01'", table) == [1, 3]
    assert rows("mixed == 'a' or mixed == 1", table) == [0, 1]
    assert rows("empty == 1 or empty < 'a'", table) == []
    assert rows("empty != 1", table) == [0, 1, 2, 3]
    with pytest.raises(ExpressionError, match="is not a date"):
        row_filter("when < 'today'", table)
    with pytest.raises(ExpressionError, match="column 'when' holds dates"):
        row_filter("when < 5", table)
    with pytest.raises(ExpressionError, match="mixed types; only ==, != and in"):
        row_filter("mixed < 2", table)
    with pytest.raises(ExpressionError, match="column 'complex' holds values of an unsupported"):
        row_filter("complex == 1", table)


def test_index_is_kept_and_duplicate_labels_work() -> None:
    table = pd.DataFrame({"x": [1, 2, 3]}, index=["a", "a", "b"])
    mask = evaluate(parse("x >= 2"), table)
    assert list(mask) == [False, True, True] and mask.index.equals(table.index)
    assert list(row_filter("x >= 2", table)["x"]) == [2, 3]


def test_empty_frame_and_duplicate_column_names() -> None:
    empty = FRAME.iloc[:0]
    assert row_filter("i == 1 and s in ['a'] or b", empty).empty
    doubled = pd.DataFrame([[1, 2]], columns=["x", "x"])
    with pytest.raises(ExpressionError, match="appears more than once"):
        row_filter("x == 1", doubled)


def test_row_filter_returns_whole_rows() -> None:
    out = row_filter("s == 'a' and i > 1", FRAME)
    assert list(out.columns) == list(FRAME.columns)
    assert out.equals(FRAME.loc[[13]])


def test_evaluate_needs_a_parsed_expression() -> None:
    with pytest.raises(TypeError, match="parsed Expr"):
        evaluate("i == 1", FRAME)  # type: ignore[arg-type]
