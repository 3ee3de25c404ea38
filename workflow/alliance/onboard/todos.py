"""The TODOs `alliance init` leaves, found in a config by key path, and stand-ins for them.

`todo_entries` is what `alliance init` counts and what `alliance validate` lists first: every key
or string value starting with `TODO`. `stand_in` gives a copy of the config where each TODO is
set aside (a placeholder class for a code, a removed entry elsewhere) so that the data can be read
and checked before the person has answered them; it says what it set aside and whether the clean
checks can run on the result.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

RATERS = ("patient", "therapist", "observer")
# Placeholder class of an unanswered code: valid for the schema, never a guess shown to anyone.
PLACEHOLDER = {"arm": "other", "status": "other", "modality": "in_person"}
# Keys without which the clean stage cannot read the data as meant.
REQUIRED = ("columns.patient", "columns.session", "data.sessions", "symptoms.column",
            "symptoms.items", "symptoms.instrument", "symptoms.min", "symptoms.max")  # fmt: skip


def is_todo(value: Any) -> bool:
    """A key or value left for the person: a string starting with TODO (any case)."""
    return isinstance(value, str) and value.strip().upper().startswith("TODO")


def todo_entries(node: Any, path: str = "") -> list[tuple[str, str]]:
    """(key path, text) of every TODO key and TODO value, in document order."""
    out: list[tuple[str, str]] = []
    if isinstance(node, dict):
        for k, v in node.items():
            where = f"{path}.{k}" if path else str(k)
            if is_todo(k):
                out.append((where, "rename this key (patient, therapist or observer)"
                            if path == "alliance.raters" else "rename this key"))  # fmt: skip
            out += todo_entries(v, where)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += todo_entries(v, f"{path}[{i}]")
    elif is_todo(node):
        out.append((path, str(node)))
    return out


@dataclass
class StandIn:
    """A config with its TODOs set aside, and what that took."""

    config: dict[str, Any]
    set_aside: list[str] = field(default_factory=list)  # what each TODO became
    blocking: list[str] = field(default_factory=list)  # TODOs the clean checks cannot do without
    renamed: dict[str, str] = field(default_factory=dict)  # TODO rater key -> stand-in rater


def _drop_todos(node: Any) -> Any:
    """The node without TODO list items and TODO-valued keys (schema defaults take over)."""
    if isinstance(node, dict):
        return {k: _drop_todos(v) for k, v in node.items() if not (is_todo(v) or is_todo(k))}
    if isinstance(node, list):
        return [_drop_todos(v) for v in node if not is_todo(v)]
    return node


def stand_in(raw: dict[str, Any]) -> StandIn:
    """The config with every TODO set aside; `blocking` names the TODOs without which the
    clean stage cannot run meaningfully (IDs, sessions, symptoms, every rater)."""
    cfg = copy.deepcopy(raw)
    out = StandIn(cfg)
    codings = cfg.get("codings") if isinstance(cfg.get("codings"), dict) else {}
    for role, placeholder in PLACEHOLDER.items():
        block = codings.get(role)
        for code, cls in block.items() if isinstance(block, dict) else []:
            if is_todo(cls):
                block[code] = placeholder
                out.set_aside.append(f"codings.{role}.{code} read as {placeholder}")
    if is_todo(codings.get("arm_reference")):
        codings["arm_reference"] = None
        out.set_aside.append("codings.arm_reference read as null (the first placebo arm)")
    data, columns = cfg.get("data"), cfg.get("columns")
    if isinstance(data, dict) and is_todo(data.get("date_format")) and isinstance(columns, dict):
        dated = [r for r in ("date", "consent_date") if columns.get(r)]
        for role in dated:
            columns[role] = None
        out.set_aside.append(f"data.date_format left out, so {' and '.join(dated) or 'no date'} "
                             "read as null")  # fmt: skip
        data["date_format"] = None
    alliance = cfg.get("alliance") if isinstance(cfg.get("alliance"), dict) else {}
    raters = alliance.get("raters") if isinstance(alliance.get("raters"), dict) else {}
    if raters:
        free = [r for r in RATERS if r not in raters]
        kept: dict[str, Any] = {}
        for name, spec in raters.items():
            if not isinstance(spec, dict) or not any(is_todo(v) for v in spec.values()):
                if is_todo(name) and free:
                    out.renamed[name] = free.pop(0)
                    out.set_aside.append(f"alliance.raters.{name} checked as {out.renamed[name]}")
                    kept[out.renamed[name]] = spec
                elif not is_todo(name):
                    kept[name] = spec
                continue
            out.set_aside.append(f"alliance.raters.{name} left out (its instrument or items "
                                 "are a TODO)")  # fmt: skip
        alliance["raters"] = kept
        if not any(kept.values()):
            out.blocking.append("alliance.raters")
    for path in REQUIRED:
        section, key = path.split(".")
        node = cfg.get(section)
        if isinstance(node, dict) and is_todo(node.get(key)):
            out.blocking.append(path)
    remaining = [p for p, _ in todo_entries(cfg) if p not in out.blocking]
    out.set_aside += [f"{p} left out" for p in remaining]
    out.config = _drop_todos(cfg)
    return out
