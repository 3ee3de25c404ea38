"""Keyed pseudonyms for patient and therapist identifiers.

HMAC-SHA256 with a secret key: stable across reruns with the same key, not reversible or linkable
without it. No table linking pseudonyms to raw IDs is ever written under results/.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os

import pandas as pd

from alliance.errors import ConfigError
from alliance.settings import CleanSettings, PrivacySettings

PREFIX = {"patient": "P", "therapist": "T", "site": "S"}


def resolve_key(privacy: PrivacySettings) -> bytes:
    """The HMAC key from the environment variable named in config, else from config itself."""
    key = os.environ.get(privacy.key_env) or privacy.key
    if not key:
        raise ConfigError(
            f"no pseudonymisation key: set the environment variable {privacy.key_env} "
            "or config key privacy.key"
        )
    return key.encode()


def with_key(settings: CleanSettings, key: str | None) -> CleanSettings:
    """`settings` with `privacy.key` replaced.

    Rule params are shown in report.html, so the clean rule passes its settings with the key
    removed (`with_key(view, None)`) and the script puts the config's key back.
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
