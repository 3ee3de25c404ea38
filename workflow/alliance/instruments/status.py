"""Refuse, at workflow start, every configured instrument whose scoring key is not confirmed.

An instrument YAML says `key_status: verified` only when its item count, range, subscale key and
reverse items were checked against the published sources it lists in `sources`. Every other key
(`key_status: unverified`, or no key_status at all) is refused before any job runs, unless the
config lists the instrument under `alliance.allow_unverified_keys` (an explicit, logged opt-in).
`alliance.models.preflight` and `alliance validate` report these problems with the others.
"""

from __future__ import annotations

from pathlib import Path

from alliance.errors import ConfigError
from alliance.instruments.definition import Instrument
from alliance.settings import AllianceSettings, SymptomSettings

DOC = "docs/instruments.md"


def configured_instruments(
    alliance: AllianceSettings, symptoms: SymptomSettings | None = None
) -> list[tuple[str, str]]:
    """(config key, instrument name) of every instrument whose key scores items in this config.

    The symptom instrument counts only when `symptoms.items` are scored with it (a symptom total
    column uses `symptoms.min/max`, not the instrument's key).
    """
    out = [
        (f"alliance.raters.{rater}.instrument", str(spec["instrument"]))
        for rater, spec in alliance.rater_specs().items()
        if spec.get("instrument")
    ]
    if symptoms is not None and symptoms.items and symptoms.instrument:
        out.append(("symptoms.instrument", symptoms.instrument))
    return out


def refusal_message(key: str, inst: Instrument, folder: str) -> str:
    """Why `inst` is refused and the two ways to proceed (own verified key, or the opt-in)."""
    path = Path(folder) / f"{inst.name}.yaml"
    note = " ".join(inst.verified.split())
    return (
        f"config key {key}: instrument '{inst.name}' ({inst.label}) has key_status: "
        f"{inst.key_status} in {path}: its item key could not be confirmed against a published "
        "source, so it is not scored. To use it, either (1) copy that file into your "
        f"alliance.instruments_dir ({folder}), correct items/range/subscales/reverse from the "
        "scoring manual of the form you administered, and set `key_status: verified` with a "
        "`sources:` list naming that manual or paper; or (2) score it as it stands by listing it "
        f"under alliance.allow_unverified_keys: [{inst.name}] (the run log then says so). "
        f"See {DOC}." + (f" The file's note: {note}" if note else "")
    )


def unverified_key_problems(
    alliance: AllianceSettings, symptoms: SymptomSettings | None = None
) -> list[str]:
    """One message per configured instrument refused for an unconfirmed key (or not loadable)."""
    allowed = set(alliance.allow_unverified_keys)
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    for key, name in configured_instruments(alliance, symptoms):
        try:
            inst = alliance.instrument(name)
        except ConfigError as exc:
            if (name, str(exc)) not in seen:
                problems.append(f"config key {key}: {exc}")
                seen.add((name, str(exc)))
            continue
        if inst.unverified and inst.name not in allowed:
            problems.append(refusal_message(key, inst, alliance.instruments_dir))
    return problems
