"""A spec's terms as variable tuples: what the frame builder drops, keeps and expands.

`spec_terms` parses outcome, fixed terms, random blocks and column-valued options once; the frame
builder (alliance.models.frames) then drops variables as it finds them unavailable, missing or
constant, and the coder (alliance.models.coding) expands what is left into frame columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from alliance.models.base import ModelSpec
from alliance.models.spec import parse_random

# Options whose value names a column (or a list of columns) the kind reads from the frame.
OPTION_COLUMNS = (
    "duration", "event", "cluster", "tertile_of", "mediator", "unit", "x", "y", "x_error",
    "x_by", "x_mod", "trials",
)  # fmt: skip
OPTION_COLUMN_LISTS = ("predictors",)


@dataclass
class Terms:
    """Working copy of a spec's terms as variable tuples, so variables can be dropped."""

    outcome: str
    fixed: list[tuple[str, ...]]
    random: list[tuple[list[tuple[str, ...]], str, tuple[str, ...]]]  # (lhs terms, bar, group)
    options: dict[str, Any]

    def variables(self) -> list[str]:
        out = [self.outcome]
        out += [v for t in self.fixed for v in t]
        for lhs, _, group in self.random:
            out += [v for t in lhs for v in t if v not in ("0", "1")]
            out += list(group)
        out += option_columns(self.options)
        return list(dict.fromkeys(out))

    def term_variables(self) -> list[str]:
        """Variables entering the design (fixed terms and random slopes), not groups/options."""
        out = [v for t in self.fixed for v in t]
        for lhs, _, _ in self.random:
            out += [v for t in lhs for v in t if v not in ("0", "1")]
        return list(dict.fromkeys(out))

    def groups(self) -> list[str]:
        return list(dict.fromkeys(":".join(g) for _, _, g in self.random))

    def drop_variable(self, var: str) -> list[str]:
        """Remove every term using `var`; returns the terms removed (as written)."""
        gone = [":".join(t) for t in self.fixed if var in t]
        self.fixed = [t for t in self.fixed if var not in t]
        kept = []
        for lhs, bar, group in self.random:
            if var in group:
                gone.append(_random_text(lhs, bar, group))
                continue
            new = [t for t in lhs if var not in t]
            gone += [":".join(t) + f" (random slope by {':'.join(group)})" for t in lhs if var in t]
            if [t for t in new if t != ("0",)]:
                kept.append((new, bar, group))
            else:
                gone.append(_random_text(lhs, bar, group))
        self.random = kept
        for key in OPTION_COLUMNS:
            if self.options.get(key) == var:
                self.options[key] = None
                gone.append(f"options.{key} = {var}")
        for key in OPTION_COLUMN_LISTS:
            if var in (self.options.get(key) or []):
                self.options[key] = [v for v in self.options[key] if v != var]
                gone.append(f"options.{key}: {var}")
        return gone

    def drop_group(self, group: str) -> list[str]:
        gone = [_random_text(*r) for r in self.random if ":".join(r[2]) == group]
        self.random = [r for r in self.random if ":".join(r[2]) != group]
        return gone


def _random_text(lhs: list[tuple[str, ...]], bar: str, group: tuple[str, ...]) -> str:
    return f"({' + '.join(':'.join(t) for t in lhs)} {bar} {':'.join(group)})"


def option_columns(options: Mapping[str, Any]) -> list[str]:
    """Columns named by column-valued options (cox duration/event/cluster, pool unit, ...)."""
    out = [options[k] for k in OPTION_COLUMNS if isinstance(options.get(k), str)]
    for key in OPTION_COLUMN_LISTS:
        out += [v for v in options.get(key) or [] if isinstance(v, str)]
    return out


def spec_terms(spec: ModelSpec) -> Terms:
    fixed = [tuple(t.replace(" ", "").split(":")) for t in spec.fixed]
    random = []
    if spec.random:
        for lhs, bar, group in parse_random(spec.random, spec.id):
            random.append(([tuple(t.split(":")) for t in lhs], bar, tuple(group.split(":"))))
    return Terms(spec.outcome, fixed, random, dict(spec.options))
