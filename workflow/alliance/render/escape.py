"""One escaper per output format, for every config- or data-derived string the render stage
writes (trial name, labels, arm/site codes, model labels, terms, notes, warnings, reasons).

Each turns arbitrary text into inert text of its format: it shows as typed and never becomes
markup, a link, a command or a formula. Figures have theirs in `alliance.render.figures.common`
(`mathtext_escape`), CSV cells in `alliance.files` (`neutralise_cell`); the report's RST
description escapes the trial name in `workflow/report/workflow.rst` itself (Snakemake renders
it), and the captions template no free text at all.
"""

from __future__ import annotations

import html
import re
from typing import Any

_LINE_BREAK = re.compile(r"\r\n|[\r\n\u2028\u2029]")


def html_escape(text: Any) -> str:
    """Text for HTML element content or a quoted attribute: `& < > " '` as entities."""
    return html.escape(str(text), quote=True)


# ------------------------------------------------------------------------------------- Markdown
# Always backslash-escaped: emphasis, code, table pipes, TeX math (`$`, rendered by GitHub and
# pandoc) and the backslash itself (pandoc passes `\\command` on to LaTeX). The rest only where it
# would start markup, so "[0.25, 0.41]", "p < .001" and "y ~ x" stay readable: `~` touching text
# (strikethrough, subscript); `]` before `(`, `[`, `{` or `:` (links, images, spans, definitions);
# `<` before and `>` after anything but a space (raw HTML, comments, autolinks); `&` where it
# would start an entity ("&lt;" typed stays "&lt;").
_MD_ALWAYS = re.compile(r"([\\`*_|$])")
_MD_TILDE = re.compile(r"~(?=\S)|(?<=\S)~")
_MD_LINK_END = re.compile(r"\](?=\s*[(\[{:])")
_MD_TAG_OPEN = re.compile(r"<(?!\s|$)")
_MD_TAG_CLOSE = re.compile(r"(?<=\S)>")
_MD_ENTITY = re.compile(r"&(?=#[0-9]+;|#[xX][0-9A-Fa-f]+;|[A-Za-z][A-Za-z0-9]*;)")
# Block markers that count only at the start of a line: heading, quote, list item, setext
# underline, link definition or task box; an ordered-list number ("1." / "1)").
_MD_LINE_START = re.compile(r"^(\s*)(?:([#>+\-=\[])|\d+(?=[.)]))")


def markdown_escape(text: Any, *, line_start: bool = False) -> str:
    """Text for a Markdown paragraph or table cell (GitHub, CommonMark, pandoc): shown as typed,
    never markup, a link, raw HTML or raw LaTeX.

    Line breaks become spaces (a table row or paragraph stays one line). `line_start`: the text
    opens a line, so a leading block marker (`#`, `>`, `-`, `+`, `=`, `[`, `1.`) is escaped too.
    """
    out = _LINE_BREAK.sub(" ", str(text))
    out = _MD_TILDE.sub(r"\\~", _MD_ALWAYS.sub(r"\\\1", out))
    out = _MD_LINK_END.sub(r"\\]", out)
    out = _MD_ENTITY.sub("&amp;", out)
    out = _MD_TAG_CLOSE.sub("&gt;", _MD_TAG_OPEN.sub("&lt;", out))
    if line_start and (match := _MD_LINE_START.match(out)):
        if match.group(2) == ">":
            out = out[: match.start(2)] + "&gt;" + out[match.end(2) :]
        elif match.group(2):
            out = out[: match.start(2)] + "\\" + out[match.start(2) :]
        else:  # "1." -> "1\." (the number stays)
            out = out[: match.end()] + "\\" + out[match.end() :]
    return out


# ---------------------------------------------------------------------------------------- LaTeX
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
    # control characters (line breaks, tab, NUL, ...) end a paragraph or stop pdflatex: a space
    **{chr(c): " " for c in [*range(0x20), 0x7F, 0x2028, 0x2029]},
    **{k: f"$\\{v}$" for k, v in _GREEK.items()},
}  # fmt: skip


def tex_escape(text: Any) -> str:
    """Text for LaTeX (text mode, pdflatex): the ten specials escaped, control characters and
    line breaks as spaces, symbols (−, ≥, χ², Greek) mapped to commands pdflatex knows.

    Other non-ASCII characters pass through: Latin-1 letters work with pdflatex's UTF-8 input,
    anything else (e.g. CJK arm names) needs xelatex/lualatex.
    """
    return "".join(_TEX.get(ch, ch) for ch in str(text))
