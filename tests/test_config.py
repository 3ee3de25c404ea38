"""The config schema: defaults, rejection of typos and wrong values, demo config validity."""

from __future__ import annotations

import re

import pytest
import yaml
from conftest import ROOT, demo_config

from alliance.config import code_text, config_hash, load_config, load_schema, validate_config
from alliance.errors import ConfigError
from alliance.models.spec import spec_from_dict


def test_demo_config_is_valid():
    cfg = load_config(ROOT / "config" / "config.yaml")
    assert cfg["columns"]["patient"] == "subject"
    assert cfg["checks"]["after_dropout"] == "drop_row"  # default filled from the schema


def _walk(schema, path=""):
    root = schema
    stack = [(schema, path)]
    while stack:
        node, here = stack.pop()
        for key, sub in node.get("properties", {}).items():
            if "$ref" in sub:
                sub = {**root["$defs"][sub["$ref"].split("/")[-1]], **sub}
            yield f"{here}.{key}".lstrip("."), sub
            if sub.get("type") == "object" or "properties" in sub:
                stack.append((sub, f"{here}.{key}"))


def test_every_schema_key_has_description_and_default():
    schema = load_schema()
    for path, sub in _walk(schema):
        assert sub.get("description"), f"{path} has no description"
        if path.startswith("alliance.raters.") and path.count(".") == 2:
            continue  # a rater block defaults to null (not configured)
        assert "default" in sub, f"{path} has no default"


def test_objects_reject_unknown_keys():
    schema = load_schema()
    for path, sub in _walk(schema):
        if "properties" in sub:
            assert sub.get("additionalProperties") is False, f"{path} accepts unknown keys"


def test_unknown_key_names_path_and_allowed_keys():
    cfg = demo_config()
    cfg["data"]["sesions"] = cfg["data"].pop("sessions")
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    text = str(err.value)
    assert "data.sesions" in text and "sessions" in text.split("allowed keys here:")[1]


def test_wrong_enum_value_lists_allowed_values():
    cfg = demo_config()
    cfg["checks"] = {"duplicate_session": "ignore"}
    with pytest.raises(ConfigError, match=r"checks.duplicate_session: 'ignore'.*'drop_row'"):
        validate_config(cfg)


def test_wrong_type_names_key():
    cfg = demo_config()
    cfg["seed"] = "abc"
    with pytest.raises(ConfigError, match="config key seed"):
        validate_config(cfg)


def test_column_mapped_twice_is_rejected():
    cfg = demo_config()
    cfg["columns"]["therapist"] = "site"
    with pytest.raises(ConfigError, match="column 'site' is already mapped"):
        validate_config(cfg)


def test_todo_left_by_init_is_rejected():
    cfg = demo_config()
    cfg["codings"]["arm"]["CBT"] = "psychotherapy"
    cfg["columns"]["week"] = "TODO: which column holds the week?"
    with pytest.raises(ConfigError, match="TODO"):
        validate_config(cfg)


def test_config_file_error_names_file(tmp_path):
    bad = tmp_path / "my.yaml"
    bad.write_text(yaml.safe_dump({"data": {"sessions": "x.csv"}, "colums": {}}))
    with pytest.raises(ConfigError, match=r"(?s)my.yaml.*colums"):
        load_config(bad)


# ------------------------------------------------------------- issue #12: refused at config time
@pytest.mark.parametrize("seed", [0, 2**32 - 1])
def test_seed_in_numpy_range_is_accepted(seed):
    cfg = demo_config()
    cfg["seed"] = seed
    assert validate_config(cfg)["seed"] == seed


@pytest.mark.parametrize(
    ("seed", "said"),
    [
        (-1, "-1 is less than the minimum of 0"),
        (2**32, "4294967296 is greater than the maximum of 4294967295"),
    ],
)
def test_seed_outside_numpy_range_is_refused(seed, said):
    cfg = demo_config()
    cfg["seed"] = seed
    with pytest.raises(ConfigError, match=f"config key seed: {re.escape(said)}"):
        validate_config(cfg)


def _custom(model_id):
    return [{"id": model_id, "kind": "lmm", "outcome": "symptom", "fixed": ["weeks"]}]


@pytest.mark.parametrize("model_id", ["m1\n", "m1\r\n", "m 1", "m" * 65, "1m"])
def test_bad_model_id_is_refused(model_id):
    cfg = demo_config()
    cfg["models"] = {"custom": _custom(model_id)}
    with pytest.raises(ConfigError, match=r"models\.custom(\[0\]|\.0)\.id"):
        validate_config(cfg)


def test_model_id_of_64_characters_is_accepted():
    cfg = demo_config()
    cfg["models"] = {"custom": _custom("m" * 64)}
    assert validate_config(cfg)["models"]["custom"][0]["id"] == "m" * 64


def test_model_spec_refuses_a_trailing_newline_in_its_id():
    """Specs built outside config validation (defaults, bootstrap refits) check the id too."""
    with pytest.raises(ConfigError, match="key id: not a model id"):
        spec_from_dict(_custom("m1\n")[0])


def _patterns(node, path=""):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                yield path
            else:
                yield from _patterns(value, f"{path}.{key}".lstrip("."))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _patterns(value, f"{path}[{i}]")


def test_every_schema_pattern_is_also_checked_in_full():
    """jsonschema applies `pattern` with re.search, where `$` also matches before a final
    newline: every pattern needs a fullmatch check in `_semantic_errors` (listed here)."""
    checked = {"properties.models.properties.custom.items.properties.id"}
    assert set(_patterns(load_schema())) == checked


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        ({"symptoms": {"min": 52, "max": 0}}, "symptoms.min: 52 is not below symptoms.max (0)"),
        ({"symptoms": {"min": 10, "max": 10}}, "symptoms.min: 10 is not below symptoms.max (10)"),
        ({"symptoms": {"remission_cutoff": 60}}, "symptoms.remission_cutoff: 60 is outside"),
        ({"symptoms": {"suicidality_threshold": 5}}, "symptoms.suicidality_threshold: 5 must be"),
        ({"symptoms": {"suicidality_threshold": 0}}, "symptoms.suicidality_threshold: 0 must be"),
        ({"symptoms": {"suicidality_max": 0}}, "symptoms.suicidality_max: 0 must be above 0"),
        ({"score": {"early_window": [4, 1]}}, "score.early_window: [4, 1] starts after it ends"),
        (
            {"sensitivity": {"grid": {"early_window": [[1, 3], [5, 2]]}}},
            "sensitivity.grid.early_window[1]: [5, 2] starts after it ends",
        ),
    ],
)
def test_bounds_the_wrong_way_round_are_refused(edit, said):
    cfg = demo_config()
    for section, values in edit.items():
        cfg.setdefault(section, {}).update(values)
    with pytest.raises(ConfigError, match=re.escape(f"config key {said}")):
        validate_config(cfg)


def test_benchmark_interval_the_wrong_way_round_is_refused():
    cfg = demo_config()
    spec = {"id": "pooled", "kind": "pool", "outcome": "symptom_change"}
    cfg["models"] = {"custom": [spec | {"options": {"benchmark": {"ci_low": 0.4}}}]}
    with pytest.raises(ConfigError, match=r"models.custom\[0\].options.benchmark: ci_low 0.4"):
        validate_config(cfg)


def test_single_session_early_window_is_accepted():
    cfg = demo_config()
    cfg.setdefault("score", {})["early_window"] = [2, 2]
    assert validate_config(cfg)["score"]["early_window"] == [2, 2]


def test_numeric_codes_are_compared_as_text(tmp_path):
    """Arms coded 1/2 (SPSS): unquoted YAML keys are integers; they become the codes '1', '2'."""
    cfg = demo_config()
    cfg["codings"]["arm"] = {1: "drug", 2.0: "placebo", 2.5: "other"}
    cfg["codings"]["arm_reference"] = 2
    cfg["codings"]["status"] = {0: "completed", 1: "dropout"}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = load_config(path)
    assert out["codings"]["arm"] == {"1": "drug", "2": "placebo", "2.5": "other"}
    assert out["codings"]["arm_reference"] == "2"
    assert out["codings"]["status"] == {"0": "completed", "1": "dropout"}
    assert config_hash(out)  # sorting the keys of a mixed int/str mapping used to raise
    assert [code_text(v) for v in (1, 1.0, "1", " 1 ", 2.5, True)] == [
        "1", "1", "1", "1", "2.5", "True"
    ]  # fmt: skip


def test_boolean_and_duplicate_code_keys_are_refused():
    cfg = demo_config()
    cfg["codings"]["status"] = {True: "completed", False: "dropout"}  # unquoted yes / no
    cfg["codings"]["arm"] = {1: "drug", "1": "placebo"}
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    text = str(err.value)
    assert "codings.status: the code True is what YAML makes of an unquoted yes/no" in text
    assert "codings.arm: codes 1 and '1' are the same code ('1')" in text


@pytest.mark.parametrize(("value", "said"), [("", "config key output"), (3, "config key output")])
def test_the_results_folder_must_be_a_path(value, said):
    cfg = demo_config()
    cfg["output"] = value
    with pytest.raises(ConfigError, match=said):
        validate_config(cfg)


def test_paths_in_a_config_file_are_resolved_against_its_folder(tmp_path, monkeypatch):
    """The shipped config names its data `../data/...` (relative to config/): from any working
    directory they are the repository's files; `output` left out is results/ where one runs."""
    monkeypatch.chdir(tmp_path)
    cfg = load_config(ROOT / "config" / "config.yaml")
    assert cfg["data"]["sessions"] == str(ROOT / "data" / "demo" / "sessions.csv")
    assert cfg["output"] == "results"
    monkeypatch.chdir(ROOT)
    assert load_config("config/config.yaml")["data"]["patients"] == "data/demo/patients.csv"
