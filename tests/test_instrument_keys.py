"""Scoring keys with a status: verified keys name their sources, unconfirmed ones are refused at
workflow start unless the config opts in (alliance.instruments.status, models.preflight)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from alliance.errors import ConfigError
from alliance.instruments.definition import INSTRUMENT_KEYS, load_instrument, parse_instrument
from alliance.instruments.status import configured_instruments, unverified_key_problems
from alliance.models.preflight import preflight
from alliance.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
INSTRUMENTS = ROOT / "config" / "instruments"
SHIPPED = sorted(p.stem for p in INSTRUMENTS.glob("*.yaml"))
ALLIANCE = ["wai", "wai_t", "wai_s", "wai_s_t", "wai_sr", "wai_sr_t", "wai_srt10", "haq2", "haq2_t",
            "calpas_p"]  # fmt: skip
VERIFIED = {"wai_sr", "hamd17", "phq9", "bdi2"}


def raw(name: str) -> dict:
    return yaml.safe_load((INSTRUMENTS / f"{name}.yaml").read_text(encoding="utf-8"))


def settings(trial_config: dict, **alliance: object) -> Settings:
    cfg = copy.deepcopy(trial_config)
    cfg["alliance"].update(alliance)
    return Settings.from_config(cfg)


# ------------------------------------------------------------------------------ shipped files
@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_key_states_its_status_and_sources(name):
    spec, inst = raw(name), load_instrument(name, INSTRUMENTS)
    assert spec["key_status"] in ("verified", "unverified") and isinstance(spec["sources"], list)
    assert (inst.key_status == "verified") == (name in VERIFIED)
    if inst.key_status == "verified":
        assert inst.sources and all(len(s) > 40 for s in inst.sources)
    else:  # the note says so, and the workflow refuses it (tests below)
        assert "UNVERIFIED" in inst.verified
    for word in ("UNVERIFIED", "PLACEHOLDER"):  # issue 14: no guess without the refusal
        assert word not in (INSTRUMENTS / f"{name}.yaml").read_text() or inst.unverified


@pytest.mark.parametrize("name", ALLIANCE)
def test_alliance_keys_partition_their_items_and_reverse_items_are_items(name):
    inst = load_instrument(name, INSTRUMENTS)
    members = sorted(i for m in inst.subscales.values() for i in m)
    # a subscale key partitions the items; an instrument without one is scored as a total only
    assert members == list(inst.items) or (not inst.subscales and inst.total), name
    assert len(set(inst.reverse)) == len(inst.reverse)
    assert set(inst.reverse) <= set(inst.items)
    assert inst.low < inst.high and inst.form in ("patient", "therapist", "observer")


def test_the_demo_patient_key_is_the_published_wai_sr_key():
    inst = load_instrument("wai_sr", INSTRUMENTS)
    assert dict(inst.subscales) == {"goal": (4, 6, 8, 11), "task": (1, 2, 10, 12),
                                    "bond": (3, 5, 7, 9)}  # fmt: skip
    assert (inst.n_items, inst.low, inst.high, inst.reverse) == (12, 1.0, 5.0, ())
    assert len(inst.sources) >= 2


def test_the_schema_keys_are_documented():
    doc = (ROOT / "docs" / "instruments.md").read_text(encoding="utf-8")
    for key in INSTRUMENT_KEYS:
        assert f"`{key}`" in doc, key
    assert "allow_unverified_keys" in doc


# ------------------------------------------------------------------------------ parsing
def spec(**over) -> dict:
    base = {"name": "x", "items": 4, "range": [1, 5], "subscales": {"a": [1, 2], "b": [3, 4]}}
    return base | over


def test_parse_defaults_to_unverified_and_checks_status_and_sources():
    assert parse_instrument(spec(), Path("x.yaml")).unverified
    ok = parse_instrument(spec(key_status="verified", sources=["my manual p. 3"]), Path("x.yaml"))
    assert not ok.unverified and ok.sources == ("my manual p. 3",)
    with pytest.raises(ConfigError, match="key 'key_status': 'checked' is not one of"):
        parse_instrument(spec(key_status="checked"), Path("x.yaml"))
    with pytest.raises(ConfigError, match="key 'sources': key_status: verified needs"):
        parse_instrument(spec(key_status="verified"), Path("x.yaml"))
    with pytest.raises(ConfigError, match="key 'sources': must be a list"):
        parse_instrument(spec(sources="a manual"), Path("x.yaml"))
    with pytest.raises(ConfigError, match="verified, but the `verified` note says PLACEHOLDER"):
        parse_instrument(
            spec(key_status="verified", sources=["m"], verified="PLACEHOLDER key"), Path("x.yaml")
        )


# ------------------------------------------------------------------------------ refusal
def test_the_demo_config_starts(trial_config):
    s = settings(trial_config)
    configured = [n for _, n in configured_instruments(s.alliance, s.symptoms)]
    assert configured == ["wai_sr", "wai_sr_t", "demo_observer"]
    assert unverified_key_problems(s.alliance, s.symptoms) == []


def test_an_unconfirmed_key_is_refused_with_how_to_supply_one(trial_config):
    s = settings(trial_config, allow_unverified_keys=[])
    (problem,) = unverified_key_problems(s.alliance, s.symptoms)
    assert problem.startswith(
        "config key alliance.raters.therapist.instrument: instrument 'wai_sr_t'"
    )
    for part in ("key_status: unverified", "copy that file into your alliance.instruments_dir",
                 "`key_status: verified`", "`sources:`", "allow_unverified_keys: [wai_sr_t]",
                 "docs/instruments.md", "The file's note: UNVERIFIED"):  # fmt: skip
        assert part in problem, part
    with pytest.raises(ConfigError, match=r"the run cannot start(.|\n)*instrument 'wai_sr_t'"):
        preflight(s, [])


def test_every_unconfirmed_alliance_key_is_refused(trial_config):
    for name in sorted(set(ALLIANCE) - VERIFIED):
        raters = {"patient": {"instrument": name, "items": r"^wai_p_(\d+)$"}, "therapist": None}
        s = settings(trial_config, raters=raters, allow_unverified_keys=[])
        (problem,) = unverified_key_problems(s.alliance, s.symptoms)
        assert f"instrument '{name}'" in problem and f"[{name}]" in problem


def test_the_opt_in_and_a_user_verified_copy_both_start(trial_config, tmp_path):
    s = settings(trial_config, allow_unverified_keys=["wai_sr_t", "calpas_p"])
    assert unverified_key_problems(s.alliance, s.symptoms) == []
    # the user's own key: a copy of the shipped file, checked against their manual
    for name in ("wai_sr", "wai_sr_t"):
        (tmp_path / f"{name}.yaml").write_text((INSTRUMENTS / f"{name}.yaml").read_text())
    own = raw("wai_sr_t") | {
        "key_status": "verified",
        "verified": "Checked against our manual.",
        "sources": ["Site SOP 12, WAI-SR therapist scoring sheet"],
    }
    (tmp_path / "wai_sr_t.yaml").write_text(yaml.safe_dump(own))
    s = settings(trial_config, instruments_dir=str(tmp_path), allow_unverified_keys=[])
    assert unverified_key_problems(s.alliance, s.symptoms) == []
    del own["key_status"]  # a user file without a status is unconfirmed
    (tmp_path / "wai_sr_t.yaml").write_text(yaml.safe_dump(own))
    assert len(unverified_key_problems(s.alliance, s.symptoms)) == 1


def test_a_missing_instrument_is_reported_at_start(trial_config):
    raters = {"observer": {"instrument": "vtas_r_sf", "items": r"^vtas_(\d+)$"}}
    s = settings(trial_config, raters=raters)
    (problem,) = unverified_key_problems(s.alliance, s.symptoms)
    assert "alliance.raters.observer.instrument" in problem and "'vtas_r_sf' not found" in problem


def test_the_symptom_key_counts_only_when_items_are_scored(trial_config):
    cfg = copy.deepcopy(trial_config)
    cfg["symptoms"] |= {"instrument": "calpas_p"}  # a total column: the key is not used
    s = Settings.from_config(cfg)
    assert ("symptoms.instrument", "calpas_p") not in configured_instruments(s.alliance, s.symptoms)
    cfg["symptoms"] |= {"column": None, "items": r"^hamd_(\d+)$"}
    s = Settings.from_config(cfg)
    assert ("symptoms.instrument", "calpas_p") in configured_instruments(s.alliance, s.symptoms)
    assert any(
        "instrument 'calpas_p'" in p for p in unverified_key_problems(s.alliance, s.symptoms)
    )


# ------------------------------------------------------------------------------ defined in config
def test_the_demo_observer_scale_in_the_config_is_the_simulators_key(trial_config):
    from alliance.simulate.observer import DEMO_OBSERVER_SCALE

    inst = settings(trial_config).alliance.instrument("demo_observer")
    spec = DEMO_OBSERVER_SCALE
    assert (inst.n_items, (inst.low, inst.high)) == (spec["items"], tuple(spec["range"]))
    assert inst.reverse == tuple(spec["reverse"]) and inst.subscales == spec["subscales"]
    assert (inst.scoring, inst.total, inst.form) == (spec["scoring"], spec["total"], "observer")
    assert not inst.unverified and inst.sources
    # honest about what it is: the demo's own scale, not a published observer instrument
    assert "not the VTAS" in inst.citation and "Demo" in inst.label


def test_an_instrument_defined_in_the_config_is_checked_like_a_file(trial_config, tmp_path):
    own = {"items": 4, "range": [0, 6], "subscales": {}, "reverse": [2], "form": "observer"}
    raters = {"observer": {"instrument": "coders", "items": r"^c_(\d+)$"}}
    s = settings(trial_config, instruments={"coders": own}, raters=raters)
    inst = s.alliance.instrument("coders")
    assert (inst.name, inst.n_items, inst.high, inst.reverse) == ("coders", 4, 6.0, (2,))
    # no key_status: unconfirmed, refused at start like a file's, naming the config key
    (problem,) = unverified_key_problems(s.alliance, s.symptoms)
    assert "alliance.raters.observer.instrument: instrument 'coders'" in problem
    assert "allow_unverified_keys: [coders]" in problem
    verified = own | {"key_status": "verified", "sources": ["our coding manual, p. 3"]}
    s = settings(trial_config, instruments={"coders": verified}, raters=raters)
    assert unverified_key_problems(s.alliance, s.symptoms) == []
    # a bad key is reported with where it was defined
    s = settings(trial_config, instruments={"coders": own | {"reverse": [9]}}, raters=raters)
    with pytest.raises(ConfigError, match=r"config alliance\.instruments\.coders: key 'reverse'"):
        s.alliance.instrument("coders")
    s = settings(trial_config, instruments={"coders": own | {"name": "other"}})
    with pytest.raises(ConfigError, match="'other' differs from the key 'coders'"):
        s.alliance.instrument("coders")


def test_a_config_instrument_may_not_shadow_a_file(trial_config):
    s = settings(trial_config, instruments={"wai_sr": {"items": 12, "range": [1, 5],
                                                       "subscales": {}}})  # fmt: skip
    with pytest.raises(ConfigError, match="'wai_sr' is also a file in"):
        s.alliance.instrument("wai_sr")
