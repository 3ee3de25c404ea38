"""Load and validate the pipeline configuration against its JSON schema.

Defaults live in the schema only (one source of truth); a typo or a wrong value fails with the key
path and what is allowed.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import numbers
import os
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from alliance.errors import ConfigError

if TYPE_CHECKING:  # validation imports it; jobs that only read their settings do not
    import jsonschema

ROLE_KEYS_PATIENT = (
    "therapist",
    "site",
    "arm",
    "modality",
    "status",
    "dropout_session",
    "consent_date",
    "baseline_symptom",
    "relapse_time",
    "relapse_event",
    "agency",
    "prior_failed_trials",
    "staging_score",
    "episode_months",
)
ROLE_KEYS_SESSION = (
    *("session", "date", "week", "suicidality", "attendance", "missed_before"),
    *("doses_taken", "doses_prescribed", "adherence", "self_report_symptom"),
)
# A model id names its output folder: letters, digits, underscore, at most 64 characters. Checked
# with fullmatch: the schema's `pattern` uses `$`, which in Python also matches before a final
# newline, so "m1\n" would pass it.
MODEL_ID = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
CODINGS = ("arm", "modality", "status", "attendance")
# Keys holding paths. Written in a config file, a relative path is relative to the folder of that
# file; left out, `output` is `results` in the working directory (the project: where `make run`
# runs, Snakemake's --directory otherwise) and `alliance.instruments_dir` the instruments bundled
# with the pipeline, which its default value `config/instruments` names wherever it is written
# (starter configs written by `alliance init` spell it out). `load_config` resolves them
# (`resolve_paths`).
PATH_KEYS = (
    ("data", "sessions"),
    ("data", "patients"),
    ("alliance", "instruments_dir"),
    ("output",),
)
BUNDLED_INSTRUMENTS = Path(__file__).resolve().parents[2] / "config" / "instruments"
BUNDLED_NAME = "config/instruments"


# libyaml's safe loader where PyYAML was built with it: the same safe constructor, ~10x faster
_FAST_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def package_yaml(text: str) -> Any:
    """A YAML document shipped with the package (the schema, the default models), parsed.

    Read whenever the workflow is parsed: with libyaml's safe loader where PyYAML has it (the
    same safe constructor, so the same values, ~10x faster). Config and instrument files,
    which are not the package's own, go through `safe_yaml` instead.
    """
    loader = _FAST_SAFE_LOADER(text)  # as safe_yaml: an explicit safe loader, never yaml.load
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def load_schema() -> dict[str, Any]:
    """The config schema shipped inside the package (a fresh copy: callers may fill it)."""
    return copy.deepcopy(_schema())


@functools.cache
def _schema() -> dict[str, Any]:
    text = resources.files("alliance").joinpath("schemas/config.schema.yaml").read_text()
    return package_yaml(text)


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref:
        target = root
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return merged
    return schema


def fill_defaults(node: Any, schema: dict[str, Any], root: dict[str, Any]) -> Any:
    """Insert schema defaults for absent keys, recursing into objects (not into arrays)."""
    schema = _resolve(schema, root)
    if not isinstance(node, dict):
        return node
    for key, sub in schema.get("properties", {}).items():
        sub = _resolve(sub, root)
        if key not in node and "default" in sub:
            node[key] = copy.deepcopy(sub["default"])
        if key in node and isinstance(node[key], dict):
            fill_defaults(node[key], sub, root)
    return node


def format_schema_error(err: jsonschema.ValidationError) -> str:
    """One schema error as a message naming the key path and what is allowed."""
    path = ".".join(str(p) for p in err.absolute_path) or "<top level>"
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed)) if isinstance(err.instance, dict) else []
        keys = ", ".join(f"{path}.{k}" if path != "<top level>" else k for k in extra)
        if allowed:
            return f"config key {keys} is not allowed; allowed keys here: {', '.join(allowed)}"
        return f"config key {keys} is not allowed here"
    if err.validator == "enum":
        allowed = ", ".join(repr(v) for v in err.validator_value)
        return f"config key {path}: {err.instance!r} is not one of the allowed values: {allowed}"
    if err.validator == "type":
        return f"config key {path}: {err.instance!r} should be of type {err.validator_value}"
    return f"config key {path}: {err.message}"


def _iter_errors(config: dict[str, Any], schema: dict[str, Any]) -> Iterator[str]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    for err in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.path))):
        yield format_schema_error(err)


def _semantic_errors(config: dict[str, Any]) -> Iterator[str]:
    """Checks a JSON schema cannot express: required values, columns mapped twice, codes YAML
    misread, bounds the wrong way round, model ids (the schema's `$` passes a final newline)."""
    if not config["data"]["sessions"]:
        yield "config key data.sessions: required (path to the session-level or wide table)"
    cols = config["columns"]
    if not cols["patient"]:
        yield "config key columns.patient: required (the patient identifier column)"
    seen: dict[str, str] = {}
    roles = [(k, v) for k, v in cols.items() if isinstance(v, str) and v]
    roles += [(f"covariates[{i}]", v) for i, v in enumerate(cols["covariates"])]
    roles += [(f"personality.{k}", v) for k, v in cols["personality"].items()]
    sym = config["symptoms"]
    if sym["column"]:
        roles.append(("symptoms.column", sym["column"]))
    for role, source in roles:
        if source in seen:
            yield (
                f"config key columns.{role}: column '{source}' is already mapped to "
                f"columns.{seen[source]}; each source column can fill one role only"
            )
        else:
            seen[source] = role.removeprefix("symptoms.")
    if not sym["column"] and not sym["items"]:
        yield "config key symptoms: set symptoms.column (a total) or symptoms.items (an item regex)"
    for value in _walk_values(config):
        if isinstance(value, str) and value.strip().upper().startswith("TODO"):
            yield f"config still holds a TODO left by `alliance init`: {value!r}"
    yield from _code_errors(config["codings"])
    yield from _range_errors(config)
    yield from _measure_errors(config)
    yield from _model_id_errors(config["models"]["custom"])


def code_text(value: Any) -> str:
    """A categorical code (arm, modality, status) as the text it is compared as.

    Codes are compared as text, both in `codings` and in the data: 1, 1.0 and "1" are the code
    "1" (SPSS and Stata export numeric codes as floats; YAML reads `1:` as an integer).
    """
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    return str(value).strip()


def _code_errors(codings: dict[str, Any]) -> Iterator[str]:
    """Codes YAML did not read as the text the user wrote, and codes that collide as text."""
    for role in CODINGS:
        seen: dict[str, Any] = {}
        for code in codings[role]:
            if code is None or isinstance(code, bool):
                yield (
                    f"config key codings.{role}: the code {code!r} is what YAML makes of an "
                    "unquoted yes/no/true/false/on/off/null; quote the code as it appears in the "
                    "data (e.g. 'yes': ...)"
                )
                continue
            text = code_text(code)
            if text in seen:
                yield (
                    f"config key codings.{role}: codes {seen[text]!r} and {code!r} are the same "
                    f"code ('{text}'); codes are compared as text, list it once"
                )
            seen[text] = code


def _measure_errors(config: dict[str, Any]) -> Iterator[str]:
    """Treatment-resistance, attendance and self-report keys that cannot work together."""
    cols, tr, sr = config["columns"], config["treatment_resistance"], config["self_report"]
    if cols["staging_score"] and not (tr["staging_scale"] and tr["staging_range"]):
        yield (
            "config key treatment_resistance: columns.staging_score is mapped, so declare its "
            "staging_scale (thase_rush, msm, mgh_s, dm_trd or other) and staging_range [min, max]"
        )
    rng = tr["staging_range"]
    if rng and rng[0] >= rng[1]:
        yield f"config key treatment_resistance.staging_range: {rng[0]:g} is not below {rng[1]:g}"
    centre = tr["staging_centre"]
    if centre is not None and not (rng and rng[0] <= centre <= rng[1]):
        why = (
            f"is not within staging_range [{rng[0]:g}, {rng[1]:g}]"
            if rng
            else "needs a staging_range"
        )
        yield f"config key treatment_resistance.staging_centre: {centre:g} {why}"
    if sr["min"] >= sr["max"]:
        yield (
            f"config key self_report.min: {sr['min']:g} is not below self_report.max "
            f"({sr['max']:g})"
        )
    if cols["attendance"] and cols["missed_before"]:
        yield (
            "config key columns.missed_before: columns.attendance already gives the schedule; map "
            "one of the two forms of attendance"
        )
    if cols["attendance"] and not config["codings"]["attendance"]:
        yield (
            "config key codings.attendance: map each attendance code (attended, cancelled, no_show)"
        )
    if bool(cols["doses_taken"]) != bool(cols["doses_prescribed"]):
        yield "config key columns.doses_taken / doses_prescribed: map both counts, or neither"


def _range_errors(config: dict[str, Any]) -> Iterator[str]:
    """Lower and upper bounds given the wrong way round (or equal where a range is needed)."""
    sym = config["symptoms"]
    low, high = sym["min"], sym["max"]
    if low >= high:
        yield (
            f"config key symptoms.min: {low:g} is not below symptoms.max ({high:g}); the total "
            "score ranges from symptoms.min to symptoms.max"
        )
    cutoff = sym["remission_cutoff"]
    if cutoff is not None and low < high and not low <= cutoff <= high:
        yield (
            f"config key symptoms.remission_cutoff: {cutoff:g} is outside the score range "
            f"symptoms.min-symptoms.max ({low:g}-{high:g})"
        )
    threshold, top = sym["suicidality_threshold"], sym["suicidality_max"]
    if top <= 0:
        yield (
            f"config key symptoms.suicidality_max: {top:g} must be above 0 (the suicidality item "
            "ranges from 0 to symptoms.suicidality_max)"
        )
    elif not 0 < threshold <= top:
        yield (
            f"config key symptoms.suicidality_threshold: {threshold:g} must be above 0 and at "
            f"most symptoms.suicidality_max ({top:g}); otherwise ideation is never or always "
            "present"
        )
    windows = [("score.early_window", config["score"]["early_window"])]
    grid = config["sensitivity"]["grid"]["early_window"]
    windows += [(f"sensitivity.grid.early_window[{i}]", w) for i, w in enumerate(grid)]
    for key, (first, last) in windows:
        if first > last:
            yield (
                f"config key {key}: [{first}, {last}] starts after it ends; give "
                "[first session, last session] with first <= last"
            )
    benchmarks = [
        (i, bench)
        for i, spec in enumerate(config["models"]["custom"])
        if isinstance(bench := (spec.get("options") or {}).get("benchmark"), dict)
    ]
    if not benchmarks:
        return
    schema = load_schema()
    item = schema["properties"]["models"]["properties"]["custom"]["items"]["properties"]
    sub = item["options"]["properties"]["benchmark"]
    for i, bench in benchmarks:
        filled = fill_defaults(copy.deepcopy(bench), sub, schema)
        ci_low, ci_high = filled["ci_low"], filled["ci_high"]
        if ci_low > ci_high:
            yield (
                f"config key models.custom[{i}].options.benchmark: ci_low {ci_low:g} is above "
                f"ci_high {ci_high:g}"
            )


def _model_id_errors(custom: list[dict[str, Any]]) -> Iterator[str]:
    for i, spec in enumerate(custom):
        model_id = spec.get("id")
        if isinstance(model_id, str) and not MODEL_ID.fullmatch(model_id):
            yield (
                f"config key models.custom[{i}].id: {model_id!r} is not a model id: a letter, "
                "then letters, digits or underscores, at most 64 characters (no spaces or line "
                "breaks: the id names the output folder)"
            )


def _codes_as_text(config: dict[str, Any]) -> dict[str, Any]:
    """`codings` with every code as text (see `code_text`), in config order."""
    codings = config["codings"]
    for role in CODINGS:
        codings[role] = {code_text(code): value for code, value in codings[role].items()}
    if codings["arm_reference"] is not None:
        codings["arm_reference"] = code_text(codings["arm_reference"])
    return config


def _walk_values(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for v in node.values():
            yield from _walk_values(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk_values(v)
    else:
        yield node


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Return a defaults-filled copy of `config`, or raise ConfigError listing every problem."""
    schema = load_schema()
    filled = fill_defaults(copy.deepcopy(dict(config)), schema, schema)
    problems = list(_iter_errors(filled, schema))
    if not problems:
        problems = list(_semantic_errors(filled))
    if problems:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))
    return _codes_as_text(filled)


# Bounds on what a YAML file may ask of the reader (config and instrument files are small).
MAX_YAML_BYTES = 1_000_000
MAX_YAML_NODES = 200_000  # nodes after expanding aliases: an alias bomb stops here
# Snakemake's YAML templating (yte) evaluates these; the project never templates a config.
TEMPLATING_KEYS = frozenset({"__use_yte__", "__definitions__", "__variables__"})


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Nodes in the document once every alias is expanded (recursive aliases count as too many)."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = MAX_YAML_NODES + 1  # a node reached again while being sized is recursive
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    else:
        size = 1
    memo[key] = min(size, MAX_YAML_NODES + 1)
    return memo[key]


def _templating(node: Any, path: str = "") -> Iterator[str]:
    """Keys that would make a templating engine run code if anyone templated this file."""
    if isinstance(node, dict):
        for k, v in node.items():
            name = str(k)
            where = f"{path}.{name}" if path else name
            if name in TEMPLATING_KEYS or name.startswith("?"):
                yield where
            yield from _templating(v, where)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _templating(v, f"{path}[{i}]")


def safe_yaml(text: str, source: str, what: str = "config") -> Any:
    """Parse untrusted YAML: plain values only, bounded size, no templating; errors name `source`.

    PyYAML's safe loader already refuses Python tags; this also bounds the document and its
    alias expansion (an alias bomb would otherwise exhaust memory in validation) and refuses
    Snakemake templating markers, which must never reach a loader that evaluates them.
    """
    if len(text.encode("utf-8", "surrogatepass")) > MAX_YAML_BYTES:
        raise ConfigError(f"{source}: {what} is larger than {MAX_YAML_BYTES:,} bytes; refused")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None and _expanded_size(node, {}) > MAX_YAML_NODES:
            raise ConfigError(
                f"{source}: {what} expands to more than {MAX_YAML_NODES:,} values through YAML "
                "aliases (&anchor / *alias); refused"
            )
        data = loader.construct_document(node) if node is not None else None
    except yaml.constructor.ConstructorError as exc:
        tag = getattr(exc.problem_mark, "line", None)
        where = f" (line {tag + 1})" if tag is not None else ""
        raise ConfigError(
            f"{source}: {what} uses a YAML tag that is not allowed{where}: {exc.problem}; "
            "config files hold plain values only (no !!python or other tags)"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: cannot read {what}: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{source}: {what} is nested too deeply; refused") from None
    finally:
        loader.dispose()
    marks = list(_templating(data))
    if marks:
        raise ConfigError(
            f"{source}: {what} holds templating markers ({', '.join(marks[:5])}); this project "
            "never evaluates expressions in config files — remove them"
        )
    return data


def load_yaml_mapping(path: str | Path, what: str = "config") -> dict[str, Any]:
    """Read a YAML file that must hold a mapping, through `safe_yaml`; errors name the file."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            blob = handle.read(MAX_YAML_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc}") from exc
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: {what} is not UTF-8 text: {exc}") from None
    raw = safe_yaml(text, str(path), what) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: {what} must be a mapping of keys to values")
    return raw


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file, validate it and resolve its paths (`resolve_paths`)."""
    raw = load_yaml_mapping(path)
    try:
        return resolve_paths(validate_config(raw), raw, Path(path).parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def near(path: str | Path) -> str:
    """`path` relative to the working directory when it lies inside it, else absolute
    (lexically: `..` is folded, links are not followed)."""
    full = Path(os.path.abspath(path))
    try:
        return full.relative_to(os.path.abspath(os.getcwd())).as_posix() or "."
    except ValueError:
        return full.as_posix()


def _written(raw: Any, keys: tuple[str, ...]) -> bool:
    for key in keys:
        if not isinstance(raw, dict) or key not in raw:
            return False
        raw = raw[key]
    return True


def resolve_paths(config: dict[str, Any], raw: dict[str, Any], folder: Path) -> dict[str, Any]:
    """`config` with every path key (`PATH_KEYS`) anchored: a path written in the file (`raw`)
    at the file's `folder`, a default as described at `PATH_KEYS`. Each is then given relative
    to the working directory when inside it (the form rule params and messages show), else
    absolute. The results folder must lie inside the config file's folder or the working
    directory, and be a folder of its own (a config cannot point the pipeline's writes, or its
    removal of stale outputs, anywhere else)."""
    for keys in PATH_KEYS:
        *parents, last = keys
        node = config
        for part in parents:
            node = node[part]
        value = node.get(last)
        if not value:
            continue  # empty or null: the checks on required values report it
        bundled = keys == ("alliance", "instruments_dir") and BUNDLED_INSTRUMENTS.is_dir()
        if bundled and (not _written(raw, keys) or value == BUNDLED_NAME):
            node[last] = near(BUNDLED_INSTRUMENTS)
        elif _written(raw, keys):
            node[last] = near(folder / value)
        else:
            node[last] = near(value)
    _check_output(config["output"], folder)
    return config


def _check_output(output: str, folder: Path) -> None:
    full = Path(os.path.abspath(output))
    homes = {Path(os.path.abspath(folder)), Path(os.path.abspath(os.getcwd()))}
    if full in homes or not any(home in full.parents for home in homes):
        raise ConfigError(
            f"config key output: {output!r} must be a folder inside the config file's folder or "
            "inside the working directory (not that folder itself); relative paths written in "
            "the file are relative to its folder"
        )


def logs_folder(output: str) -> str:
    """Where the rules of a run writing to `output` log: `logs/` beside it, or
    `logs/<name>/` when the results folder is not called `results` (trials side by side keep
    their logs and job timings apart)."""
    out = Path(output)
    logs = out.parent / "logs"
    return (logs if out.name == "results" else logs / out.name).as_posix()


def config_hash(config: dict[str, Any]) -> str:
    """SHA-256 of the resolved config (canonical JSON), for provenance."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()
