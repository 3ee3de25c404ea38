"""Model specifications: the shipped default set merged with the config's `models:` block.

The default set lives in `defaults.yaml` beside this module (package data). Every spec, default or
custom, is checked against the same JSON schema (`models.custom.items` of the config schema), so a
default can never hold a key a user could not write, and a typo fails with the model id and key.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any

import jsonschema

from alliance.config import MODEL_ID, load_schema, package_yaml
from alliance.errors import ConfigError
from alliance.expressions import ExpressionError, parse
from alliance.models.base import KINDS, ModelSpec
from alliance.settings import ModelsSettings

# R-valid variable names (what a fixed term may join with ':').
NAME = r"[A-Za-z.][A-Za-z0-9._]*"
_TERM = re.compile(rf"^{NAME}(?::{NAME})*$")
_RANDOM = re.compile(r"\(\s*(?P<lhs>[^|()]+?)\s*(?P<bar>\|\|?)\s*(?P<group>[^|()]+?)\s*\)")
LIST_FIELDS = ("fixed", "requires", "key_terms")


def spec_schema() -> dict[str, Any]:
    """JSON schema of one model spec (the config schema's `models.custom.items`)."""
    return copy.deepcopy(_spec_schema())


@functools.cache
def _spec_schema() -> dict[str, Any]:
    return load_schema()["properties"]["models"]["properties"]["custom"]["items"]


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    # package data does not change while the process runs: parse the schema once
    return jsonschema.Draft202012Validator(_spec_schema())


def default_spec_dicts() -> list[dict[str, Any]]:
    """The shipped default specs as plain dicts, in file order."""
    return copy.deepcopy(_default_spec_dicts())


@functools.cache
def _default_spec_dicts() -> list[dict[str, Any]]:
    text = resources.files("alliance.models").joinpath("defaults.yaml").read_text()
    data = package_yaml(text) or {}
    return list(data.get("models", []))


def spec_from_dict(raw: Mapping[str, Any], where: str = "models.custom") -> ModelSpec:
    """One validated ModelSpec from a mapping; ConfigError names the model id and the bad key."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"config key {where}: each model must be a mapping, got {raw!r}")
    model_id = str(raw.get("id", "?"))
    errors = sorted(_validator().iter_errors(dict(raw)), key=lambda e: list(map(str, e.path)))
    if errors:
        lines = [_schema_message(model_id, where, e) for e in errors]
        raise ConfigError("invalid model specification:\n  - " + "\n  - ".join(lines))
    spec = ModelSpec(
        id=raw["id"],
        kind=raw["kind"],
        outcome=raw["outcome"],
        fixed=tuple(raw.get("fixed", ())),
        random=raw.get("random") or None,
        data=raw.get("data", "sessions"),
        subset=raw.get("subset") or None,
        requires=tuple(raw.get("requires", ())),
        key_terms=tuple(raw.get("key_terms", ())),
        label=raw.get("label", "") or "",
        options=dict(raw.get("options", {}) or {}),
    )
    _check_syntax(spec)
    return spec


def _schema_message(model_id: str, where: str, err: jsonschema.ValidationError) -> str:
    key = ".".join(str(p) for p in err.absolute_path)
    place = f"model '{model_id}' ({where})" + (f", key {key}" if key else "")
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed)) if isinstance(err.instance, dict) else []
        return f"{place}: unknown key(s) {', '.join(extra)}; allowed: {', '.join(allowed)}"
    if err.validator == "enum":
        allowed = ", ".join(repr(v) for v in err.validator_value)
        return f"{place}: {err.instance!r} is not one of {allowed}"
    return f"{place}: {err.message}"


def _check_syntax(spec: ModelSpec) -> None:
    """Term, random-part and subset syntax, so a malformed formula fails at config time.

    Every piece that reaches a formula or a filter must match its small grammar in full (a
    whitelist: R names joined by ':'; lme4 random blocks; the row-filter grammar).
    """
    if not MODEL_ID.fullmatch(spec.id):  # the schema's `$` lets "m1\n" through
        raise ConfigError(
            f"model {spec.id!r}, key id: not a model id (a letter, then letters, digits or "
            "underscores, at most 64 characters: it names the output folder)"
        )
    if not re.fullmatch(NAME, spec.outcome):
        raise ConfigError(f"model '{spec.id}', key outcome: {spec.outcome!r} is not a column name")
    for term in spec.fixed:
        if not _TERM.fullmatch(term.replace(" ", "")):
            hint = " (list each term separately: a, b, a:b)" if "*" in term else ""
            raise ConfigError(
                f"model '{spec.id}', key fixed: {term!r} is not a term in lme4 syntax "
                f"(a column or columns joined by ':'){hint}"
            )
    if spec.random is not None:
        parse_random(spec.random, spec.id)
    if spec.subset is not None:
        try:
            parse(spec.subset)
        except ExpressionError as exc:
            raise ConfigError(f"model '{spec.id}', key subset: {spec.subset!r}: {exc}") from None


def parse_random(random: str, model_id: str = "?") -> list[tuple[list[str], str, str]]:
    """`(1 + weeks | patient) + (1 | therapist)` -> [(['1', 'weeks'], '|', 'patient'), ...].

    The left side keeps '1' / '0' as written; the group is a column or columns joined by ':'.
    """
    blocks = list(_RANDOM.finditer(random))
    leftover = _RANDOM.sub("", random).replace("+", "").strip()
    if not blocks or leftover:
        raise ConfigError(
            f"model '{model_id}', key random: {random!r} is not a sum of lme4 terms "
            "like (1 + weeks | patient)"
        )
    out = []
    for m in blocks:
        lhs = [t.strip() for t in m["lhs"].split("+")]
        group = m["group"].replace(" ", "")
        bad = [t for t in lhs if t not in ("0", "1") and not _TERM.fullmatch(t.replace(" ", ""))]
        if bad or not _TERM.fullmatch(group):
            what = f"term {bad[0]!r}" if bad else f"group {m['group']!r}"
            raise ConfigError(
                f"model '{model_id}', key random: {what} in {m.group(0)!r} is not valid "
                "(nested a/b groups: write (1 | a) + (1 | a:b))"
            )
        out.append(([t.replace(" ", "") for t in lhs], m["bar"], group))
    return out


def validate_specs(specs: Iterable[ModelSpec]) -> list[ModelSpec]:
    """Unknown kinds and duplicate ids are ConfigErrors naming the model id and key."""
    specs = list(specs)
    seen: set[str] = set()
    for spec in specs:
        if spec.kind not in KINDS:
            raise ConfigError(
                f"model '{spec.id}', key kind: unknown kind {spec.kind!r}; "
                f"known: {', '.join(sorted(KINDS))}"
            )
        if spec.id in seen:
            raise ConfigError(f"model '{spec.id}', key id: the id is used by more than one model")
        seen.add(spec.id)
        for key in LIST_FIELDS:
            value = getattr(spec, key)
            if isinstance(value, str):
                raise ConfigError(f"model '{spec.id}', key {key}: must be a list, got {value!r}")
    return specs


def load_specs(models: ModelsSettings) -> list[ModelSpec]:
    """Specs to fit: defaults (minus `disable`, each replaced by a custom spec of its id) + custom.

    Order: defaults in file order, then new custom models in config order.
    """
    block = models.to_dict()  # plain lists and dicts: what the spec schema validates
    use_defaults = block["use_defaults"]
    disable = block["disable"]
    custom_raw = block["custom"]
    defaults = [spec_from_dict(d, "alliance/models/defaults.yaml") for d in default_spec_dicts()]
    default_ids = [s.id for s in defaults]
    unknown = [i for i in disable if i not in default_ids]
    if unknown:
        raise ConfigError(
            f"config key models.disable: {', '.join(map(repr, unknown))} is not a default model; "
            f"defaults: {', '.join(default_ids)}"
        )
    custom = [spec_from_dict(c, f"models.custom[{i}]") for i, c in enumerate(custom_raw)]
    validate_specs(custom)  # duplicate ids among custom specs are an error, not a silent override
    by_id = {s.id: s for s in custom}
    out: list[ModelSpec] = []
    if use_defaults:
        for spec in defaults:
            if spec.id not in disable:
                out.append(by_id.pop(spec.id, spec))
    out += [s for s in custom if s.id in by_id]
    return validate_specs(out)
