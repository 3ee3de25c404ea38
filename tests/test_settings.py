"""The typed settings mirror the JSON schema key for key; stage views round-trip through JSON."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest

from alliance.config import load_config, load_schema, validate_config
from alliance.settings import (
    CleanSettings,
    ModelSettings,
    RenderSettings,
    ScoreSettings,
    Section,
    Settings,
)

ROOT = Path(__file__).resolve().parents[1]


def _resolve(node: dict, schema: dict) -> dict:
    ref = node.get("$ref")
    if not ref:
        return node
    target = schema
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def _pairs(cls: type, node: dict, schema: dict, path: str):
    """(path, dataclass, schema object) for every nested section."""
    yield path, cls, node
    hints = typing.get_type_hints(cls)
    for name, sub in node.get("properties", {}).items():
        hint = hints.get(name)
        if isinstance(hint, type) and issubclass(hint, Section):
            yield from _pairs(hint, _resolve(sub, schema), schema, f"{path}.{name}")


def test_every_section_has_exactly_the_schema_keys() -> None:
    schema = load_schema()
    checked = 0
    for path, cls, node in _pairs(Settings, schema, schema, "<top>"):
        fields = [f.name for f in dataclasses.fields(cls)]
        keys = list(node["properties"])
        assert sorted(fields) == sorted(keys), f"{path}: {cls.__name__} fields differ from schema"
        checked += 1
    assert checked >= 14


def test_defaults_come_from_the_schema() -> None:
    # An empty-but-valid config parses, and each value equals the schema default.
    raw = {"data": {"sessions": "x.csv"}, "columns": {"patient": "id"}, "symptoms": {"column": "s"}}
    settings = Settings.from_config(raw)
    schema = load_schema()
    for name in ("layout", "session_token", "encoding", "delimiter"):
        assert (
            getattr(settings.data, name)
            == schema["properties"]["data"]["properties"][name]["default"]
        )
    ruptures = schema["properties"]["score"]["properties"]["ruptures"]["properties"]
    assert settings.score.ruptures.m == ruptures["m"]["default"]
    assert settings.score.ruptures.ks == tuple(ruptures["ks"]["default"])
    assert settings.checks.after_dropout == "drop_row"


def test_sections_are_frozen() -> None:
    settings = Settings.from_config(load_config(ROOT / "config" / "config.yaml"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.symptoms.remission_cutoff = 8  # type: ignore[misc]
    with pytest.raises(TypeError):
        settings.codings.arm["CBT"] = "drug"  # type: ignore[index]
    assert isinstance(settings.data.missing_codes, tuple)


@pytest.mark.parametrize(
    ("view", "cls"),
    [
        ("clean", CleanSettings),
        ("score_stage", ScoreSettings),
        ("model_stage", ModelSettings),
        ("render", RenderSettings),
    ],
)
def test_stage_views_round_trip_through_json(view: str, cls: type) -> None:
    settings = Settings.from_config(load_config(ROOT / "config" / "config.yaml"))
    part = getattr(settings, view)()
    assert isinstance(part, cls)
    back = cls.from_json(part.to_json())
    if hasattr(part, "privacy"):
        # the key never leaves as text: its fingerprint stands in (params reach report.html)
        assert settings.privacy.key not in part.to_json()
        assert back.privacy.key.startswith("fingerprint:")
        back = dataclasses.replace(back, privacy=part.privacy)
    assert back == part


def test_a_key_edit_changes_the_fingerprint_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALLIANCE_PSEUDONYM_KEY", raising=False)
    cfg = load_config(ROOT / "config" / "config.yaml")
    one = Settings.from_config(cfg).clean().to_json()
    cfg["privacy"]["key"] = "another-key-of-enough-length-here"
    two = Settings.from_config(cfg).clean().to_json()
    assert one != two and "another-key" not in two
    monkeypatch.setenv("ALLIANCE_PSEUDONYM_KEY", "from-the-environment-0123456789")
    three = Settings.from_config(cfg).clean().to_json()
    assert three not in (one, two) and "from-the-environment" not in three


def test_the_whole_config_round_trips() -> None:
    filled = load_config(ROOT / "config" / "config.yaml")
    settings = Settings.from_config(filled)
    assert validate_config(settings.to_dict()) == filled


def _edit(cfg: dict, dotted: str, value: object) -> dict:
    node = cfg
    *head, last = dotted.split(".")
    for key in head:
        node = node[key]
    node[last] = value
    return cfg


# Which stage views each section reaches: the rules pass these views as params, so this table is
# what "an edit reruns exactly the jobs that read it" means.
READERS = {
    "trial_name": {"render"},
    "seed": {"model_stage", "render"},
    "data.missing_codes": {"clean"},
    "columns.agency": {"clean", "render"},  # render: Table 1 lists covariates and traits
    "codings.arm_reference": {"clean", "model_stage", "render"},
    "symptoms.remission_cutoff": {"clean", "model_stage", "render"},
    "alliance.instruments_dir": {"clean", "score_stage", "render"},
    # a scoring key defined in the config (the demo's observer scale) reruns what a file's does
    "alliance.instruments.demo_observer.reverse": {"clean", "score_stage", "render"},
    "score.early_window": {"score_stage", "render"},
    "dropout.min_sessions": {"clean"},
    "checks.future_date": {"clean"},
    "models.disable": {"model_stage"},
    "privacy.min_cell": {"clean", "render"},
    "bootstrap.n_boot": set(),
    "sensitivity.shards": set(),
}
VALUES = {
    "trial_name": "Another trial",
    "seed": 7,
    "data.missing_codes": [-99],
    "columns.agency": None,
    "codings.arm_reference": "CBT",
    "symptoms.remission_cutoff": 8,
    "alliance.instruments_dir": "elsewhere",
    "alliance.instruments.demo_observer.reverse": [],
    "score.early_window": [1, 4],
    "dropout.min_sessions": 10,
    "checks.future_date": "warn",
    "models.disable": ["suicidality"],
    "privacy.min_cell": 10,
    "bootstrap.n_boot": 50,
    "sensitivity.shards": 3,
}


@pytest.mark.parametrize("dotted", sorted(READERS))
def test_an_edit_changes_exactly_the_views_that_read_it(dotted: str) -> None:
    base = load_config(ROOT / "config" / "config.yaml")
    before = Settings.from_config(base)
    after = Settings.from_config(_edit(load_config(ROOT / "config" / "config.yaml"), dotted,
                                       VALUES[dotted]))  # fmt: skip
    changed = {
        view
        for view in ("clean", "score_stage", "model_stage", "render")
        if getattr(before, view)().to_json() != getattr(after, view)().to_json()
    }
    assert changed == READERS[dotted]
