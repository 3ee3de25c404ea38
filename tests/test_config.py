"""The config schema: defaults, rejection of typos and wrong values, demo config validity."""

from __future__ import annotations

import pytest
import yaml
from conftest import ROOT, demo_config

from alliance.config import load_config, load_schema, validate_config
from alliance.errors import ConfigError


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
