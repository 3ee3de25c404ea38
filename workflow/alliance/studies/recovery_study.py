"""The recovery study's own config (config/validate.yaml): schema, defaults, validation.

Same conventions as the pipeline's config schema: every key has a description and a default,
unknown keys are errors. `check_id` names a check (`model:term`) in every output table.

What is checked is not listed here: it is every default model's key term that the simulated
trial's truth.json has an entry for (`truth["estimands"]`), plus `extra_checks` on the study's
own `models` (each mapped to a simulator parameter, e.g. a deliberately misaligned model).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from numbers import Real
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from alliance.config import fill_defaults, format_schema_error, load_yaml_mapping
from alliance.errors import ConfigError
from alliance.simulate.params import DEFAULT_PARAMS

STUDY_SCHEMA: dict[str, Any] = yaml.safe_load(
    """
type: object
additionalProperties: false
properties:
  seed:
    type: integer
    default: 20261127
    description: "Study seed; replicate r simulates with derive_seed(seed, 'recovery:r')."
  replicates: {type: integer, minimum: 1, default: 500, description: Simulated trials.}
  shards:
    type: integer
    minimum: 1
    default: 10
    description: Jobs the replicates are split into; the gathered results do not depend on it.
  pipeline_config:
    type: string
    default: config/config.yaml
    description: >
      Pipeline config whose column mapping fits the simulator's tables (the demo config); its
      data paths are replaced by each simulated trial and its model specs (the defaults) are
      the ones checked. Relative to the working directory.
  design:
    type: object
    default: {}
    additionalProperties: false
    description: Size of one replicate trial.
    properties:
      patients: {type: integer, minimum: 8, default: 240, description: Randomised patients.}
      therapists: {type: integer, minimum: 4, default: 24, description: Therapists.}
      sessions:
        {type: integer, minimum: 4, maximum: 52, default: 12, description: Planned sessions.}
  simulator:
    type: object
    default: {mc_therapists: 8}
    description: >
      Overrides of alliance.simulate.DEFAULT_PARAMS for every trial. mc_therapists only sizes the
      Monte-Carlo variance shares written to truth.json (unused here): small saves time and
      changes no data.
  fit_unidentified:
    type: boolean
    default: true
    description: >
      Fit the terms truth.json marks not identified (when it gives a value) and report their
      bias and coverage unjudged; false saves most of the run time (they are then listed only).
  models:
    type: array
    default: []
    description: >
      Extra model specs (the schema of the config's models.custom) for extra_checks, e.g. a
      deliberately misaligned model that the study must fail.
  extra_checks:
    type: array
    default: []
    description: >
      Terms of the extra models, each compared with a simulator parameter (truth.json params);
      reported and judged beside the default models' estimands.
    items:
      type: object
      additionalProperties: false
      required: [model, term, parameter]
      properties:
        model: {type: string, description: Model spec id (one under models, or a default).}
        term: {type: string, description: Coefficient as named in coefficients.csv.}
        parameter:
          type: string
          description: Key of truth.json params (DEFAULT_PARAMS) holding the true value.
        identified:
          type: boolean
          default: true
          description: Judge the term (pass / fail); false only reports it.
        reason:
          type: string
          default: ""
          description: What the check shows (e.g. why it is expected to fail).
"""
)
CHECK_DEFAULTS: dict[str, Any] = {"identified": True, "reason": ""}


def study_problems(study: Mapping[str, Any], schema: Mapping[str, Any], where: str) -> list[str]:
    """Schema errors of a defaults-filled study block, plus simulator overrides the simulator
    does not know (`where`: the config key of the block's `simulator` mapping, for messages).
    Shared by the recovery and power studies."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(study), key=lambda e: list(map(str, e.path)))
    problems = [format_schema_error(e) for e in errors]
    simulator = study.get("simulator") if isinstance(study.get("simulator"), dict) else {}
    unknown = sorted(set(simulator) - set(DEFAULT_PARAMS))
    if unknown:
        problems.append(f"config key {where}: unknown simulator parameter(s) {unknown}")
    return problems


def validate_study(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults-filled copy of a study config, or ConfigError listing every problem."""
    study = fill_defaults(copy.deepcopy(dict(raw)), STUDY_SCHEMA, STUDY_SCHEMA)
    extra = study["extra_checks"] if isinstance(study["extra_checks"], list) else []
    for check in extra:
        if isinstance(check, dict):  # defaults of array items (fill_defaults stops at arrays)
            for key, value in CHECK_DEFAULTS.items():
                check.setdefault(key, value)
    problems = study_problems(study, STUDY_SCHEMA, "simulator")
    for i, check in enumerate(c for c in extra if isinstance(c, dict)):
        name = check.get("parameter")
        if isinstance(name, str) and not _numeric_param(name):
            problems.append(
                f"config key extra_checks[{i}].parameter: {name!r} is not a numeric simulator "
                "parameter (a key of alliance.simulate.DEFAULT_PARAMS)"
            )
    ids = [check_id(c) for c in extra if isinstance(c, dict) and {"model", "term"} <= set(c)]
    if len(set(ids)) != len(ids):
        problems.append("config key extra_checks: a model:term pair is listed twice")
    if problems:
        raise ConfigError("invalid validation study config:\n  - " + "\n  - ".join(problems))
    return study


def _numeric_param(name: str) -> bool:
    value = DEFAULT_PARAMS.get(name)
    return isinstance(value, Real) and not isinstance(value, bool)


def load_study(path: str | Path) -> dict[str, Any]:
    """Read and validate config/validate.yaml."""
    raw = load_yaml_mapping(path, "study config")
    try:
        return validate_study(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def check_id(check: Mapping[str, Any]) -> str:
    """`model:term`, the key of one check in every output table."""
    return f"{check['model']}:{check['term']}"
