"""YAML text for data values: one-line scalars that read back exactly, and comment-safe text.

The starter config is written line by line so that it can carry `# guessed` comments. Every value
that comes from an export (codes, labels, column names, regexes, file paths) goes through `scalar`
or `key`, and every comment through `visible`, so that no value can add a line, a key, a tag, an
anchor or a comment to the document (issue #12: config and data never execute code).
"""

from __future__ import annotations

import unicodedata
from typing import Any

import yaml

from alliance.config import TEMPLATING_KEYS

SHOWN = 80  # characters of one data value quoted in a comment
COMMENT_MAX = 300  # characters of a whole comment (its data values are capped at SHOWN already)
SIMPLE_KEY_MAX = 1000  # PyYAML finds an implicit key's `:` only within 1024 characters
ELLIPSIS = "…"
_WIDE = 10**9  # no line folding: every scalar stays on its line
# Unicode categories written as escapes: controls, format characters (BOM, bidi overrides, zero
# widths), surrogates, private use, unassigned, and the line and paragraph separators.
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_NAMED = {"\0": "\\0", "\a": "\\a", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v",
          "\f": "\\f", "\r": "\\r", "\x1b": "\\e"}  # fmt: skip


def _hidden(ch: str) -> bool:
    return unicodedata.category(ch) in _HIDDEN


def _escape(ch: str) -> str:
    """One character as an escape both YAML double quotes and a reader understand."""
    if ch in _NAMED:
        return _NAMED[ch]
    n = ord(ch)
    if n <= 0xFF:
        return f"\\x{n:02x}"
    return f"\\u{n:04x}" if n <= 0xFFFF else f"\\U{n:08x}"


def visible(text: Any, limit: int = SHOWN) -> str:
    """`text` fit for a comment or a terminal line: hidden characters (line breaks, tabs, NUL,
    U+2028/2029, BOM...) written as escapes, at most `limit` characters (then an ellipsis)."""
    out: list[str] = []
    size = 0
    for ch in str(text):
        piece = _escape(ch) if _hidden(ch) else ch
        if size + len(piece) > limit - 1:
            out.append(ELLIPSIS)
            break
        out.append(piece)
        size += len(piece)
    return "".join(out)


def quoted(text: str) -> str:
    """`text` as a one-line YAML double-quoted scalar; every hidden character escaped."""
    body = "".join(
        "\\\\" if ch == "\\" else '\\"' if ch == '"' else _escape(ch) if _hidden(ch) else ch
        for ch in text
    )
    return f'"{body}"'


def is_templating_key(text: str) -> bool:
    """A key the project's YAML reader refuses (Snakemake/yte templating): such a code cannot be
    a config key, whatever its quoting."""
    return text in TEMPLATING_KEYS or text.startswith("?")


def _dumped(text: str, where: str) -> str | None:
    """PyYAML's own one-line rendering of `text` (plain where plain is safe), or None."""
    if any(_hidden(ch) for ch in text):
        return None
    if where == "item":
        out = yaml.safe_dump([text], default_flow_style=True, width=_WIDE, allow_unicode=True)
        out = out.removesuffix("\n")
        if not (out.startswith("[") and out.endswith("]")):
            return None
        out = out[1:-1]
    else:
        out = yaml.safe_dump(text, width=_WIDE, allow_unicode=True)
        out = out.removesuffix("\n...\n").removesuffix("\n")
    return None if "\n" in out or "\r" in out else out


def _reads_back(candidate: str, text: str, where: str) -> bool:
    """Whether `candidate`, in the place it will be written, loads back as exactly `text`."""
    if where == "key":
        doc = f"? {candidate}\n: v" if len(candidate) > SIMPLE_KEY_MAX else f"{candidate}: v  # c"
        want: Any = {text: "v"}
    elif where == "item":
        doc, want = f"k: [{candidate}, {candidate}]  # c", {"k": [text, text]}
    else:
        doc, want = f"k: {candidate}  # c", {"k": text}
    try:
        got = yaml.safe_load(doc)
    except yaml.YAMLError:
        return False
    return got == want  # a str equals only a str: `yes`, `1.0` or `null` read back otherwise


def _string(text: str, where: str) -> str:
    candidate = _dumped(text, where)
    if candidate is not None and _reads_back(candidate, text, where):
        return candidate
    return quoted(text)


def _plain_value(value: Any) -> str:
    out = yaml.safe_dump(value, default_flow_style=True, width=_WIDE)
    return out.removesuffix("\n...\n").removesuffix("\n")


def scalar(value: Any, where: str = "value") -> str:
    """One-line YAML for a config value: None, bool, number, string, empty mapping, or a list of
    those. Strings keep PyYAML's plain or quoted form where that is one line and reads back as
    the same string; otherwise they are double-quoted with escapes."""
    if isinstance(value, str):
        return _string(value, where)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(scalar(v, "item") for v in value) + "]"
    if isinstance(value, dict) and not value:
        return "{}"
    if value is None or isinstance(value, bool | int | float):
        return _plain_value(value)
    raise TypeError(f"no YAML scalar for a {type(value).__name__}")


def key(text: str) -> str:
    """One-line YAML for a mapping key (a code from the data, say) that reads back as `text`.
    Longer than `SIMPLE_KEY_MAX`, the caller writes it as an explicit `? key` entry."""
    return _string(str(text), "key")
