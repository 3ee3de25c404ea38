r"""Row filters from configuration (a model's `subset`), parsed and evaluated without running code.

Config files are untrusted input, and pandas `DataFrame.query` evaluates Python, so a filter string
could run any command. This module accepts only the small grammar below: a hand-written tokenizer
and recursive-descent parser build an immutable tree, and the evaluator turns that tree into plain
pandas comparisons. Nothing is ever passed to eval, exec, compile or query.

    expr       = and_expr , { ( "or" | "|" ) , and_expr } ;
    and_expr   = not_expr , { ( "and" | "&" ) , not_expr } ;
    not_expr   = ( "not" | "~" ) , not_expr | test ;
    test       = operand , compare_op , operand , { compare_op , operand }  (* 1 < a <= 3 *)
               | operand , [ "not" ] , "in" , "[" , [ constant , { "," , constant } ] , "]"
               | operand , "is" , [ "not" ] , "null"
               | operand ;                     (* a true/false column, or true / false *)
    operand    = column | constant | "(" , expr , ")" ;
    compare_op = "==" | "!=" | "<" | "<=" | ">" | ">=" ;
    column     = identifier | "`" , { any character but "`" and control characters } , "`" ;
    identifier = ( letter | "_" ) , { letter | digit | "_" | "." } ;      (* ASCII letters *)
    constant   = number | string | "true" | "false" | "null" ;    (* or True, False, None *)
    number     = [ "-" ] , ( digits , [ "." , [ digits ] ] | "." , digits ) ,
                 [ ( "e" | "E" ) , [ "+" | "-" ] , digits ] ;
    string     = "'" , { character | escape } , "'" | '"' , { character | escape } , '"' ;
    escape     = "\\" , ( "\\" | "'" | '"' ) ;         (* no line breaks inside strings *)

Precedence: comparisons > not > and > or; `&`, `|`, `~` are exact synonyms of and, or, not (so
`~a == 1` is `not (a == 1)`). A comparison is between a column and a constant; `in` and `is` need a
column on their left; a name part starting `__` is refused. Missing values follow pandas: `==`, `<`,
`<=`, `>`, `>=`, `in` are False on a missing value, `!=` and `not in` are True (so `not (a == 1)`
equals `a != 1`); `is null` tests for missing.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from alliance.errors import ConfigError

MAX_LENGTH = 1000  # characters
MAX_DEPTH = 50  # nested parentheses and not-s


class ExpressionError(ConfigError):
    """A row filter outside the grammar or not fitting the table; `position` is 1-based, `token`
    the text there ("" at the end); both are None when the problem has no single place."""

    def __init__(self, message: str, *, position: int | None = None, token: str | None = None):
        self.message, self.position, self.token = message, position, token
        super().__init__(self.__str__())

    def __str__(self) -> str:
        if self.position is None or self.token is None:
            return self.message
        token = self.token if len(self.token) <= 40 else self.token[:37] + "..."
        shown = repr(token) if token else "end of text"
        return f"at position {self.position}, {shown}: {self.message}"


# --- the tree -----------------------------------------------------------------------------------

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_KEYWORDS = {word: word for word in ("and", "or", "not", "in", "is", "true", "false", "null")}
_KEYWORDS |= {"True": "true", "False": "false", "None": "null"}


def _reserved(name: str) -> bool:
    return name in _KEYWORDS or any(part.startswith("__") for part in name.split("."))


class Expr:
    """A parsed row filter (an immutable tree); `str()` gives it back in canonical form."""

    def walk(self) -> Iterator[Expr]:
        """This node and every node below it, left to right."""
        yield self
        for item in (getattr(self, f.name) for f in fields(self)):  # type: ignore[arg-type]
            for child in item if isinstance(item, tuple) else (item,):
                if isinstance(child, Expr):
                    yield from child.walk()

    def columns(self) -> set[str]:
        """Names of the columns the filter reads."""
        return {node.name for node in self.walk() if isinstance(node, Column)}


@dataclass(frozen=True)
class Column(Expr):
    name: str
    position: int = field(default=0, compare=False, repr=False)

    def __str__(self) -> str:
        plain = _IDENTIFIER.fullmatch(self.name) and not _reserved(self.name)
        return self.name if plain else f"`{self.name}`"


@dataclass(frozen=True, eq=False)
class Constant(Expr):
    value: bool | int | float | str | None
    position: int = field(default=0, repr=False)

    def __eq__(self, other: object) -> bool:  # 1 == True in Python, but not here
        if not isinstance(other, Constant):
            return NotImplemented
        return type(self.value) is type(other.value) and self.value == other.value

    def __hash__(self) -> int:
        return hash((type(self.value), self.value))

    def __str__(self) -> str:
        if isinstance(self.value, str):
            return '"' + self.value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if self.value is None or isinstance(self.value, bool):
            return {None: "null", True: "true", False: "false"}[self.value]
        return repr(self.value)


@dataclass(frozen=True)
class Compare(Expr):
    column: Column
    op: str
    value: Constant

    def __str__(self) -> str:
        return f"{self.column} {self.op} {self.value}"


@dataclass(frozen=True)
class IsIn(Expr):
    column: Column
    values: tuple[Constant, ...]
    negate: bool = False

    def __str__(self) -> str:
        word = "not in" if self.negate else "in"
        return f"{self.column} {word} [{', '.join(map(str, self.values))}]"


@dataclass(frozen=True)
class IsNull(Expr):
    column: Column
    negate: bool = False

    def __str__(self) -> str:
        return f"{self.column} is {'not ' if self.negate else ''}null"


@dataclass(frozen=True)
class Not(Expr):
    operand: Expr

    def __str__(self) -> str:
        grouped = isinstance(self.operand, And | Or)
        return f"not ({self.operand})" if grouped else f"not {self.operand}"


@dataclass(frozen=True)
class And(Expr):
    operands: tuple[Expr, ...]

    def __str__(self) -> str:
        return " and ".join(f"({o})" if isinstance(o, Or) else str(o) for o in self.operands)


@dataclass(frozen=True)
class Or(Expr):
    operands: tuple[Expr, ...]

    def __str__(self) -> str:
        return " or ".join(map(str, self.operands))


# --- tokens -------------------------------------------------------------------------------------


class _Token(NamedTuple):
    kind: str  # "name", "number", "string", "op", "kw" or "end"
    text: str  # as written
    value: Any  # column name, number, string, operator or canonical keyword
    position: int  # 1-based


_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_OPERATORS = ("==", "!=", "<=", ">=", "<", ">", "(", ")", "[", "]", ",", "&", "|", "~")
_HINTS = {
    **dict.fromkeys("+-*/%^", "arithmetic is not supported"), "=": "use '==' to compare",
    "!": "use '!=' or 'not'", "@": "local variables (@name) are not supported",
    ".": "attribute access is not supported", ";": "a row filter is a single condition",
    ":": "no lambda, slices or dictionaries", "\\": "backslashes belong inside quoted strings",
}  # fmt: skip


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        char, start = text[i], i
        if char in " \t\r\n":
            i += 1
            continue
        number, name = _NUMBER.match(text, i), _IDENTIFIER.match(text, i)
        after_value = bool(tokens) and (tokens[-1].kind in ("name", "number", "string", ")"))
        if number and not (char == "-" and after_value):  # a-1 is arithmetic, a == -1 is not
            i = number.end()
            if i < len(text) and (text[i].isalnum() or text[i] in "_."):
                raise _error("malformed number", start, text[start : i + 1])
            value = _number(number.group(), start)
            tokens.append(_Token("number", number.group(), value, start + 1))
        elif name:
            word, i = name.group(), name.end()
            if _reserved(word) and word not in _KEYWORDS:  # __class__, __import__ ...
                raise _error("a name part starting '__' is not a column; backquote it", start, word)
            kind = "kw" if word in _KEYWORDS else "name"
            tokens.append(_Token(kind, word, _KEYWORDS.get(word, word), start + 1))
        elif char in "'\"`":
            value, i = _quoted(text, start)
            kind = "name" if char == "`" else "string"
            tokens.append(_Token(kind, text[start:i], value, start + 1))
        else:
            op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
            if op is None:
                hint = _HINTS.get(char, "not part of a row filter")
                raise _error(f"unexpected character: {hint}", start, char)
            tokens.append(_Token(")" if op == ")" else "op", op, op, start + 1))
            i += len(op)
    tokens.append(_Token("end", "", None, len(text) + 1))
    return tokens


def _error(message: str, index: int, token: str) -> ExpressionError:
    return ExpressionError(message, position=index + 1, token=token)


def _number(text: str, index: int) -> int | float:
    if not any(c in text for c in ".eE"):
        return int(text)
    value = float(text)
    if not np.isfinite(value):
        raise _error("number out of range", index, text)
    return value


def _quoted(text: str, start: int) -> tuple[str, int]:
    """The content of the string or backquoted name opening at `start`, and the index after it."""
    quote, out, i = text[start], [], start + 1
    what = "backquoted name" if quote == "`" else "string"
    while i < len(text):
        char = text[i]
        if char == quote:
            return "".join(out), i + 1
        if char == "\\" and quote != "`":
            if text[i + 1 : i + 2] not in ("\\", "'", '"'):
                raise _error("unknown escape; allowed: \\\\ \\' \\\"", i, text[i : i + 2])
            out.append(text[i + 1])
            i += 2
            continue
        if ord(char) < 32 or ord(char) == 127:
            raise _error(f"line break or control character inside a {what}", i, char)
        out.append(char)
        i += 1
    raise _error(f"unterminated {what}", start, text[start:])


# --- parser -------------------------------------------------------------------------------------

_COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")
_CONSTANTS = {"true": True, "false": False, "null": None}
_MIRROR = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def parse(text: str) -> Expr:
    """The tree of a row filter; ExpressionError, with position and token, if not in the grammar."""
    if not isinstance(text, str):
        raise ExpressionError(f"a row filter must be text, not {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        message = f"row filter is {len(text)} characters long; the limit is {MAX_LENGTH}"
        raise _error(message, MAX_LENGTH, text[MAX_LENGTH:])
    tokens = _tokenize(text)
    if tokens[0].kind == "end":
        raise ExpressionError("empty row filter")
    return _Parser(tokens).filter()


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens, self.i, self.depth = tokens, 0, 0

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def at(self, *words: str, ahead: int = 0) -> bool:
        token = self.peek(ahead)
        return token.kind in ("op", "kw", ")") and token.value in words

    def accept(self, *words: str) -> bool:
        found = self.at(*words)
        self.i += found
        return found

    def fail(self, message: str, where: _Token | Column | Constant) -> ExpressionError:
        text = where.text if isinstance(where, _Token) else str(where)
        return ExpressionError(message, position=where.position, token=text)

    def unexpected(self, expected: str) -> ExpressionError:
        token, before = self.peek(), self.tokens[max(self.i - 1, 0)]
        hints = {"(": ": function calls are not supported", "[": ": indexing is not supported"}
        after_value = self.i > 0 and before.kind in ("name", "string", "number", ")")
        hint = hints.get(token.text, "") if after_value and token.kind == "op" else ""
        return self.fail(f"expected {expected}{hint}", token)

    def nested(self, parse: Callable[[], Expr]) -> Expr:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"nested more than {MAX_DEPTH} deep", self.tokens[self.i - 1])
        expr = parse()
        self.depth -= 1
        return expr

    def filter(self) -> Expr:
        expr = self.boolean(Or)
        if self.peek().kind != "end":
            raise self.unexpected("'and', 'or' or the end")
        return self.condition(expr)

    def condition(self, expr: Expr) -> Expr:
        """`expr` if it can stand as a condition (bare columns are checked against the table)."""
        if isinstance(expr, Constant) and not isinstance(expr.value, bool):
            raise self.fail(f"the constant {expr} is not a condition", expr)
        return expr

    def boolean(self, kind: type[Or] | type[And]) -> Expr:
        """or-s of and-expressions, or and-s of not-expressions; nested ones are flattened."""
        words = ("or", "|") if kind is Or else ("and", "&")
        items = [self.boolean(And) if kind is Or else self.not_expr()]
        while self.accept(*words):
            items.append(self.boolean(And) if kind is Or else self.not_expr())
        if len(items) == 1:
            return items[0]
        groups = [e.operands if isinstance(e, kind) else (self.condition(e),) for e in items]
        return kind(tuple(e for group in groups for e in group))

    def not_expr(self) -> Expr:
        if self.accept("not", "~"):
            return Not(self.condition(self.nested(self.not_expr)))
        return self.test()

    def test(self) -> Expr:
        start = self.peek()
        left = self.primary()
        if self.at(*_COMPARISONS):
            operands, ops = [(left, start)], []
            while self.at(*_COMPARISONS):
                ops.append(self.peek().value)
                start, self.i = self.peek(1), self.i + 1
                operands.append((self.primary(), start))
            pairs = [self.compare(*trio) for trio in zip(operands, ops, operands[1:], strict=False)]
            return pairs[0] if len(pairs) == 1 else And(tuple(pairs))
        if self.at("in") or (self.at("not") and self.at("in", ahead=1)):
            negate = self.accept("not")
            self.accept("in")
            return IsIn(self.column(left, start, "in"), self.constants(), negate)
        if self.accept("is"):
            negate = self.accept("not")
            if not self.accept("null"):
                raise self.unexpected("'null'")
            return IsNull(self.column(left, start, "is null"), negate)
        return left

    def compare(self, left: tuple[Expr, _Token], op: str, right: tuple[Expr, _Token]) -> Compare:
        """`left op right` as column-op-constant (`1 < a` becomes `a > 1`)."""
        if isinstance(left[0], Constant) and isinstance(right[0], Column):
            left, op, right = right, _MIRROR[op], left
        for (node, start), wanted in ((left, Column), (right, Constant)):
            if isinstance(node, Constant) and node.value is None:
                raise self.fail("compare with null using 'is null' or 'is not null'", start)
            if not isinstance(node, wanted):
                raise self.fail(f"'{op}' compares a column with a constant", start)
        return Compare(left[0], op, right[0])

    def column(self, expr: Expr, start: _Token, what: str) -> Column:
        if not isinstance(expr, Column):
            raise self.fail(f"'{what}' needs a column on its left", start)
        return expr

    def primary(self) -> Expr:
        token = self.peek()
        if self.accept("("):
            expr = self.nested(lambda: self.boolean(Or))
            if not self.accept(")"):
                raise self.unexpected("')'")
            return expr
        if token.kind == "name":
            self.i += 1
            return Column(token.value, token.position)
        return self.constant("a column, a constant or '('")

    def constant(self, expected: str) -> Constant:
        token = self.peek()
        if token.kind not in ("number", "string") and not self.at("true", "false", "null"):
            raise self.unexpected(expected)
        self.i += 1
        value = _CONSTANTS[token.value] if token.kind == "kw" else token.value
        return Constant(value, token.position)

    def constants(self) -> tuple[Constant, ...]:
        if not self.accept("["):
            raise self.unexpected("'[' opening the list after 'in'")
        items: list[Constant] = []
        while not (self.at("]") and not items):
            items.append(self.constant("a constant in the list"))
            if not self.accept(","):
                break
        if not self.accept("]"):
            raise self.unexpected("',' or ']'")
        return tuple(items)


# --- evaluation ---------------------------------------------------------------------------------

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt,
    "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}  # fmt: skip
_CONSTANT_KIND = {bool: "bool", int: "number", float: "number", str: "string"}
_FAMILY = {"number": "number", "bool": "number", "string": "text", "datetime": "date"}
_DESCRIBE = {
    "number": "numbers", "bool": "true/false values", "string": "text", "datetime": "dates",
    "mixed": "values of mixed types", "empty": "only missing values",
    "other": "values of an unsupported type",
}  # fmt: skip
_INFERRED = {
    "string": "string", "empty": "empty", "boolean": "bool", "integer": "number",
    "floating": "number", "mixed-integer-float": "number", "decimal": "number",
}  # fmt: skip


def evaluate(expr: Expr, frame: pd.DataFrame) -> pd.Series:
    """Boolean mask of the rows of `frame` that satisfy `expr` (same index as `frame`)."""
    if not isinstance(expr, Expr):
        raise TypeError(f"evaluate needs a parsed Expr, not {type(expr).__name__}")
    unknown = [node for node in expr.walk() if isinstance(node, Column) and node.name not in frame]
    if unknown:
        names = list(dict.fromkeys(repr(node.name) for node in unknown))
        message = f"unknown column{'s' if len(names) > 1 else ''} {', '.join(names)}"
        raise _at(unknown[0], f"{message}; columns: {', '.join(map(str, frame.columns))}")
    return pd.Series(_Table(frame).mask(expr), index=frame.index, dtype=bool)


def row_filter(text: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of `frame` that satisfy the row filter `text`."""
    return frame.loc[evaluate(parse(text), frame).to_numpy()]


def _kind(series: pd.Series) -> str:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
        return "number"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
        return _INFERRED.get(pd.api.types.infer_dtype(series, skipna=True), "mixed")
    return "other"


class _Table:
    """The columns of one frame, each read once, with its kind (number, bool, string ...)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame, self.n, self.cache = frame, len(frame), {}

    def get(self, column: Column) -> tuple[pd.Series, str]:
        if column.name not in self.cache:
            data = self.frame[column.name]
            if isinstance(data, pd.DataFrame):
                raise _at(column, f"column {column.name!r} appears more than once in the table")
            if isinstance(data.dtype, pd.CategoricalDtype):
                data = pd.Series(np.asarray(data), name=data.name)
            data = data.reset_index(drop=True)
            self.cache[column.name] = (data, _kind(data))
        return self.cache[column.name]

    def mask(self, expr: Expr) -> np.ndarray:
        match expr:
            case Or(operands):
                return np.logical_or.reduce([self.mask(o) for o in operands])
            case And(operands):
                return np.logical_and.reduce([self.mask(o) for o in operands])
            case Not(operand):
                return ~self.mask(operand)
            case Compare():
                return self.compare(expr)
            case IsIn():
                return self.isin(expr)
            case IsNull(column, negate):
                missing = self.get(column)[0].isna().to_numpy(dtype=bool)
                return ~missing if negate else missing
            case Constant(value) if isinstance(value, bool):
                return np.full(self.n, value)
            case Column():
                kind = self.get(expr)[1]
                if kind not in ("bool", "empty"):
                    message = f"column {expr.name!r} holds {_DESCRIBE[kind]}, not true/false"
                    raise _at(expr, f"{message}; compare it, e.g. {expr} == 1")
                return self.apply(expr, lambda v: v.astype(bool), False)
        raise ExpressionError(f"not a row filter: {expr!r}")

    def compare(self, expr: Compare) -> np.ndarray:
        value = _check(expr.column, self.get(expr.column)[1], expr.value, expr.op)
        return self.apply(expr.column, lambda v: _OPS[expr.op](v, value), expr.op == "!=")

    def isin(self, expr: IsIn) -> np.ndarray:
        column, kind = expr.column, self.get(expr.column)[1]
        values = [_check(column, kind, c, "==") for c in expr.values if c.value is not None]
        found = self.apply(column, lambda v: v.isin(values), False)
        if any(c.value is None for c in expr.values):
            found |= self.get(column)[0].isna().to_numpy(dtype=bool)
        return ~found if expr.negate else found

    def apply(self, column: Column, test: Callable, default: bool) -> np.ndarray:
        """`test` on the rows where the column is not missing, `default` on the others."""
        series = self.get(column)[0]
        valid = series.notna().to_numpy(dtype=bool)
        out = np.full(self.n, default)
        try:
            out[valid] = np.asarray(test(series[valid]), dtype=bool)
        except (TypeError, ValueError) as exc:
            raise _at(column, f"cannot evaluate on column {column.name!r}: {exc}") from None
        return out


def _check(column: Column, kind: str, constant: Constant, op: str) -> Any:
    """The value to compare `column` with (a Timestamp for dates); error if the types clash."""
    value, other = constant.value, _CONSTANT_KIND[type(constant.value)]
    if kind == "empty" or (kind == "mixed" and op in ("==", "!=")):
        return value
    if kind in ("other", "mixed"):
        hint = "; only ==, != and in work on it" if kind == "mixed" else ""
        raise _at(column, f"column {column.name!r} holds {_DESCRIBE[kind]}{hint}")
    if kind == "datetime" and other == "string":
        try:  # a date, not "now" or "today": results must not depend on the day they are run
            return pd.Timestamp(value if value[:1].isdigit() else "not a date")
        except (TypeError, ValueError):
            raise _at(constant, f"{constant} is not a date (column {column.name!r})") from None
    if _FAMILY[kind] != _FAMILY[other]:
        message = f"column {column.name!r} holds {_DESCRIBE[kind]}; it cannot be compared"
        raise _at(constant, f"{message} with {constant}")
    return value


def _at(node: Column | Constant, message: str) -> ExpressionError:
    return ExpressionError(message, position=node.position or None, token=str(node))
