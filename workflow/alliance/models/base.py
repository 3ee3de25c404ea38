"""What every model kind takes and returns (the model stage's contract).

A kind is a function `fit(spec, frame, context) -> ModelResult` registered in KINDS by dotted path,
so a kind's heavy imports load only when a model of that kind runs. `context` (FitContext) holds
the few settings values a kind reads beyond its spec and frame.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from alliance.settings import ModelSettings

COEF_COLUMNS = [
    "model", "term", "estimate", "std_error", "statistic", "df", "p_value", "ci_low", "ci_high",
]  # fmt: skip

KINDS: dict[str, str] = {
    "lmm": "alliance.models.mixed:fit",
    "glmm": "alliance.models.mixed:fit",
    "hazard": "alliance.models.hazard:fit",
    "cox": "alliance.models.cox:fit",
    "gee": "alliance.models.gee:fit",
    "rsa": "alliance.models.rsa:fit",
    "mediation": "alliance.models.mediation:fit",
    "pool": "alliance.models.pool:fit",
    "riclpm": "alliance.models.riclpm:fit",
}


class Skipped(Exception):
    """A model cannot run on this dataset (missing measure, too few units); `reason` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class ModelSpec:
    """One model as declared in config (`models:`); see the schema for each field's meaning."""

    id: str
    kind: str
    outcome: str
    fixed: tuple[str, ...] = ()
    random: str | None = None
    data: str = "sessions"
    subset: str | None = None
    requires: tuple[str, ...] = ()
    key_terms: tuple[str, ...] = ()
    label: str = ""
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FitContext:
    """The settings values a kind's `fit` reads beyond its spec and frame.

    seed: config `seed` (a model's bootstrap stream derives from it and the model id);
    arms: `codings.arm`, arm -> class (simple slopes per arm class);
    higher_is_worse: `symptoms.higher_is_worse` (the sign of pooled symptom correlations).
    """

    seed: int
    arms: Mapping[str, str]
    higher_is_worse: bool

    @classmethod
    def from_settings(cls, settings: ModelSettings) -> FitContext:
        """The context of the model stage's view."""
        return cls(
            seed=settings.seed,
            arms=settings.codings.arm,
            higher_is_worse=settings.symptoms.higher_is_worse,
        )


@dataclass
class ModelResult:
    """A fitted model: coefficients (COEF_COLUMNS), fit facts (fit.json), the frame used, extras.

    `extras` are further tables written beside the model as `<name>.csv` (simple slopes, contrasts,
    Kaplan-Meier curves, bootstrap draws, per-site correlations ...).
    """

    coefficients: pd.DataFrame
    fit: dict[str, Any]
    frame: pd.DataFrame
    extras: dict[str, pd.DataFrame] = field(default_factory=dict)


def kind_function(kind: str) -> Callable[..., ModelResult]:
    """The fit function registered for `kind`."""
    if kind not in KINDS:
        raise KeyError(f"unknown model kind {kind!r}; known: {', '.join(sorted(KINDS))}")
    module, name = KINDS[kind].split(":")
    return getattr(importlib.import_module(module), name)
