"""Model specs: the shipped defaults, merging with config (replace / disable / add), errors."""

from __future__ import annotations

import copy

import pytest
from conftest import demo_config

from alliance.config import validate_config
from alliance.errors import ConfigError
from alliance.models.base import KINDS, ModelSpec
from alliance.models.spec import (
    default_spec_dicts,
    load_specs,
    parse_random,
    spec_from_dict,
    validate_specs,
)
from alliance.settings import ModelsSettings

DEFAULT_IDS = [
    "symptoms_growth", "symptoms_lagged", "symptoms_lagged_detrended", "symptoms_riclpm",
    "symptoms_by_arm", "symptoms_by_modality", "symptoms_by_agency", "dropout_early_alliance",
    "dropout_gee", "dropout_hazard", "relapse_cox", "suicidality", "suicidality_any",
    "suicidality_active", "agreement_rsa", "mediation_personality", "symptoms_observer_early",
    "pooled_sites",
    # treatment resistance (issue #14)
    "symptoms_by_trd", "dropout_hazard_by_trd", "symptoms_by_stage", "dropout_hazard_by_stage",
    "missed_sessions", "adherence_alliance", "adherence_alliance_share", "reporting_alliance",
    "symptoms_after_ruptures", "missed_after_ruptures", "dropout_after_ruptures",
]  # fmt: skip


def models(**block) -> ModelsSettings:
    """The config's `models` section: schema defaults, then `block`."""
    return ModelsSettings.from_mapping({"use_defaults": True, "disable": [], "custom": [], **block})


def custom(**kw) -> dict:
    base = {"id": "my_model", "kind": "lmm", "outcome": "symptom", "fixed": ["weeks"],
            "random": "(1 | patient)"}  # fmt: skip
    return {**base, **kw}


def test_default_set_is_the_issue_list_and_every_default_is_valid():
    specs = load_specs(models())
    assert [s.id for s in specs] == DEFAULT_IDS
    assert {s.kind for s in specs} == set(KINDS)  # every kind has a default model
    assert all(s.label for s in specs)
    growth = specs[0]
    assert growth.fixed == (
        "weeks", "alliance_ther_prior", "alliance_pat_prior", "alliance_within_prior",
        "weeks:alliance_pat_prior", "arm", "weeks:arm", "baseline_symptom",
    )  # fmt: skip
    assert growth.random == "(1 + weeks | patient) + (1 | therapist)"


def test_lagged_defaults_carry_the_dynamic_panel_bias_note():
    specs = {s.id: s for s in load_specs(models())}
    for model_id in ("symptoms_lagged", "symptoms_lagged_detrended"):
        note = specs[model_id].options["note"]
        assert "Nickell" in note and "symptoms_riclpm" in note


def test_defaults_validate_through_the_config_schema():
    cfg = demo_config()
    cfg["models"] = {"custom": copy.deepcopy(default_spec_dicts())}
    filled = validate_config(cfg)
    assert len(filled["models"]["custom"]) == len(DEFAULT_IDS)


def test_config_without_models_block_gets_schema_defaults():
    filled = validate_config(demo_config())
    assert filled["models"] == {"use_defaults": True, "disable": [], "custom": []}


def test_disable_drops_a_default():
    specs = load_specs(models(disable=["dropout_gee", "pooled_sites"]))
    ids = [s.id for s in specs]
    assert "dropout_gee" not in ids and "pooled_sites" not in ids
    assert len(ids) == len(DEFAULT_IDS) - 2


def test_disable_of_unknown_id_names_it():
    with pytest.raises(ConfigError, match=r"models.disable: 'symptom_growth' is not a default"):
        load_specs(models(disable=["symptom_growth"]))


def test_custom_with_default_id_replaces_it_in_place_and_new_ones_are_appended():
    mine = custom(id="suicidality", kind="glmm", outcome="ideation", label="mine")
    extra = custom(id="extra_model")
    specs = load_specs(models(custom=[extra, mine]))
    ids = [s.id for s in specs]
    assert ids == [*DEFAULT_IDS, "extra_model"]
    replaced = specs[ids.index("suicidality")]
    assert replaced.label == "mine" and replaced.fixed == ("weeks",)


def test_use_defaults_false_keeps_only_custom():
    specs = load_specs(models(use_defaults=False, custom=[custom()]))
    assert [s.id for s in specs] == ["my_model"]


def test_duplicate_custom_ids_name_the_model_and_key():
    with pytest.raises(ConfigError, match=r"model 'my_model', key id: .*more than one"):
        load_specs(models(custom=[custom(), custom()]))


def test_unknown_kind_names_model_and_key():
    with pytest.raises(ConfigError, match=r"model 'my_model' .*key kind: 'lm' is not one of"):
        load_specs(models(custom=[custom(kind="lm")]))
    spec = ModelSpec(id="x", kind="anova", outcome="y")
    with pytest.raises(ConfigError, match=r"model 'x', key kind: unknown kind 'anova'"):
        validate_specs([spec])


def test_unknown_spec_and_option_keys_are_rejected_with_allowed_keys():
    with pytest.raises(ConfigError, match=r"model 'my_model'.*unknown key\(s\) fixd"):
        spec_from_dict(custom(fixd=["weeks"]))
    with pytest.raises(ConfigError, match=r"key options: unknown key\(s\) remll; allowed: .*reml"):
        spec_from_dict(custom(options={"remll": False}))


def test_missing_required_field():
    raw = custom()
    del raw["outcome"]
    with pytest.raises(ConfigError, match=r"model 'my_model'.*'outcome' is a required property"):
        spec_from_dict(raw)


@pytest.mark.parametrize(
    ("fixed", "message"),
    [
        (["alliance*arm"], r"list each term separately"),
        (["log(x)"], r"not a term in lme4 syntax"),
    ],
)
def test_bad_fixed_term_syntax(fixed, message):
    with pytest.raises(ConfigError, match=rf"model 'my_model', key fixed: .*{message}"):
        spec_from_dict(custom(fixed=fixed))


def test_random_parsing_and_errors():
    assert parse_random("(1 + weeks | patient) + (1 | therapist)") == [
        (["1", "weeks"], "|", "patient"),
        (["1"], "|", "therapist"),
    ]
    assert parse_random("(0 + x || site:therapist)") == [(["0", "x"], "||", "site:therapist")]
    with pytest.raises(ConfigError, match=r"key random: .*not a sum of lme4 terms"):
        spec_from_dict(custom(random="1 | patient"))
    with pytest.raises(ConfigError, match=r"key random: group .*nested a/b"):
        spec_from_dict(custom(random="(1 | therapist/patient)"))


def test_requires_must_be_availability_keys():
    with pytest.raises(ConfigError, match=r"key requires.0: 'arms' is not one of"):
        spec_from_dict(custom(requires=["arms"]))
    assert spec_from_dict(custom(requires=["raters.therapist"])).requires == ("raters.therapist",)


def test_config_level_typo_in_a_custom_spec_fails_validation():
    cfg = demo_config()
    cfg["models"] = {"custom": [custom(outcom="symptom")]}
    with pytest.raises(ConfigError, match=r"models.custom.0"):
        validate_config(cfg)
