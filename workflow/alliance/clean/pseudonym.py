"""Keyed pseudonyms for patient and therapist identifiers, and the key policy.

HMAC-SHA256 with a secret key: stable across reruns with the same key, not reversible or linkable
without it. No table linking pseudonyms to raw IDs is ever written under results/.

Key policy (`resolve_key`, checked before any data is read):
- a key must hold at least `MIN_KEY_BYTES` (16 bytes = 128 bits) of key material. A key made only
  of hex digits (even length) counts two characters per byte (`secrets.token_hex(32)` -> 32
  bytes); any other key counts its UTF-8 bytes;
- the public demo key (`DEMO_KEY`, in config/config.yaml) is accepted only on the bundled demo
  data: every data file must have the SHA-256 of a committed demo file (`DEMO_SHA256`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import re
from pathlib import Path

import pandas as pd

from alliance.errors import ConfigError
from alliance.files import sha256
from alliance.settings import CleanSettings, DataSettings, PrivacySettings

PREFIX = {"patient": "P", "therapist": "T", "site": "S"}
DEMO_KEY = "demo-key-not-secret"
MIN_KEY_BYTES = 16
# SHA-256 of the bundled demo exports as committed (data/demo/*.csv, data/demo_wide/*.sav);
# tests/test_privacy_policy.py checks them against the files (update both after `make demo`).
DEMO_SHA256 = {
    "9e746226dfeb58385cc67bf5357ebb62285e55c4775ccdd0e6207e7dde6003de": "data/demo/patients.csv",
    "e3acd6e18ab6238f1bbccadf6280d7dcb5ff6f37c71cebf619eb9bd7e28014d3": "data/demo/sessions.csv",
    "014c7fffb7608f8649f71ff859925fa188beacfb99c53e65b6ec65f34d66e18c": (
        "data/demo_wide/trial_wide.sav"
    ),
}
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+")


def key_help(privacy: PrivacySettings) -> str:
    """How to set a fresh random key (the sentence every key error ends with)."""
    return (
        f"To use a random 32-byte key: export {privacy.key_env}="
        '$(python -c "import secrets; print(secrets.token_hex(32))") '
        "and keep it safe for reruns (the same key gives the same pseudonyms)"
    )


def key_strength(key: str) -> int:
    """Bytes of key material: half the length of an all-hex key, else its UTF-8 length."""
    return len(key) // 2 if _HEX.fullmatch(key) else len(key.encode())


def file_sha256(path: str | Path) -> str | None:
    """SHA-256 of a file's bytes, None when it cannot be read."""
    try:
        return sha256(path)
    except OSError:
        return None


def demo_mismatches(data: DataSettings) -> list[str]:
    """The data files that are not a bundled demo file (empty: the data are the demo)."""
    paths = [("data.sessions", data.sessions)]
    if data.patients:
        paths.append(("data.patients", data.patients))
    out = []
    for key, path in paths:
        digest = file_sha256(path)
        if digest not in DEMO_SHA256:
            why = "cannot be read" if digest is None else "differs from every bundled demo file"
            out.append(f"{key} ({path}) {why}")
    return out


def resolve_key(privacy: PrivacySettings, data: DataSettings) -> bytes:
    """The HMAC key from the environment variable named in config, else from config itself.

    Raises ConfigError when there is no key, when it is shorter than `MIN_KEY_BYTES`, or when
    it is the public demo key and `data` is not the bundled demo (see the module docstring).
    """
    from_env = os.environ.get(privacy.key_env)
    key = from_env or privacy.key
    source = f"environment variable {privacy.key_env}" if from_env else "config key privacy.key"
    if not key:
        raise ConfigError(
            f"no pseudonymisation key: set the environment variable {privacy.key_env} "
            f"or config key privacy.key. {key_help(privacy)}"
        )
    if key == DEMO_KEY:
        mismatches = demo_mismatches(data)
        if mismatches:
            raise ConfigError(
                f"{source} holds the public demo key {DEMO_KEY!r}, which anyone can use to "
                f"reverse the pseudonyms, and the data are not the bundled demo: "
                f"{'; '.join(mismatches)}. {key_help(privacy)}"
            )
        return key.encode()
    strength = key_strength(key)
    if strength < MIN_KEY_BYTES:
        raise ConfigError(
            f"the pseudonymisation key ({source}) is too short: {strength} bytes of key "
            f"material, at least {MIN_KEY_BYTES} (128 bits) needed, or the pseudonyms can be "
            f"reversed by trying keys. {key_help(privacy)}"
        )
    return key.encode()


def with_key(settings: CleanSettings, key: str | None) -> CleanSettings:
    """`settings` with `privacy.key` replaced.

    Rule params carry only a fingerprint of the key (they reach Snakemake's metadata and
    report.html), so the clean script puts the config's key back with this.
    """
    return dataclasses.replace(settings, privacy=dataclasses.replace(settings.privacy, key=key))


def pseudonym(raw: str, kind: str, key: bytes, length: int = 10) -> str:
    """One identifier's pseudonym, e.g. 'P-3f9a0c1b2d'."""
    digest = hmac.new(key, f"{kind}:{raw}".encode(), hashlib.sha256).hexdigest()
    return f"{PREFIX.get(kind, 'X')}-{digest[:length]}"


def pseudonymise(values: pd.Series, kind: str, key: bytes) -> pd.Series:
    """Pseudonymise a column; missing stays missing. Hashes each distinct value once."""
    present = values.dropna().astype(str)
    mapping = {raw: pseudonym(raw, kind, key) for raw in present.unique()}
    if len(set(mapping.values())) != len(mapping):
        raise ConfigError(f"pseudonym collision among {kind} IDs; raise the pseudonym length")
    out = values.astype("string").map(mapping)
    return out.astype("string")
