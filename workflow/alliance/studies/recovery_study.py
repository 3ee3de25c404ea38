"""The recovery study's own config (config/validate.yaml): schema, defaults, validation.

Same conventions as the pipeline's config schema: every key has a description and a default,
unknown keys are errors. `check_id` names a check (`model:term`) in every output table.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from alliance.config import fill_defaults, format_schema_error, load_yaml_mapping
from alliance.errors import ConfigError
from alliance.simulate.params import DEFAULT_PARAMS

# Schema of config/validate.yaml (same conventions as the pipeline's config schema: every key has
# a description and a default, unknown keys are errors).
STUDY_SCHEMA: dict[str, Any] = yaml.safe_load(
    """
type: object
additionalProperties: false
properties:
  seed:
    type: integer
    default: 20261127
    description: "Study seed; replicate r simulates with derive_seed(seed, 'recovery:r')."
  replicates: {type: integer, minimum: 1, default: 200, description: Simulated trials.}
  shards:
    type: integer
    minimum: 1
    default: 4
    description: Jobs the trials are split into; the gathered results do not depend on it.
  pipeline_config:
    type: string
    default: config/config.yaml
    description: >
      Pipeline config whose column mapping fits the simulator's tables (the demo config); its
      data paths are replaced by each simulated trial. Relative to the working directory.
  design:
    type: object
    default: {}
    additionalProperties: false
    description: Size of one replicate trial.
    properties:
      patients: {type: integer, minimum: 8, default: 240, description: Randomised patients.}
      therapists:
        type: integer
        minimum: 4
        default: 24
        description: Therapists (patients per therapist shape the therapist-level target).
      sessions:
        {type: integer, minimum: 4, maximum: 52, default: 12, description: Planned sessions.}
  simulator:
    type: object
    default: {mc_therapists: 8}
    description: >
      Overrides of alliance.simulate.DEFAULT_PARAMS for every trial. mc_therapists only sizes the
      Monte-Carlo variance shares written to truth.json (unused here): small saves time and
      changes no data.
  target:
    type: object
    default: {}
    additionalProperties: false
    description: Large trials whose mean estimate is the value each estimator targets.
    properties:
      scale:
        type: integer
        minimum: 1
        default: 20
        description: >
          Patients and therapists of a target trial = scale x design (same patients per
          therapist, same sessions).
      trials:
        type: integer
        minimum: 1
        default: 8
        description: "Target trials averaged (seeds derive_seed(seed, 'recovery-target:k'))."
  models:
    type: array
    default: []
    description: >
      Extra model specs (the schema of the config's models.custom) for checks no default spec
      targets.
  checks:
    type: array
    minItems: 1
    default:
      - {model: symptoms_growth, term: alliance_ther, generating: beta_T}
      - {model: symptoms_growth, term: alliance_pat, generating: beta_P}
      - {model: symptoms_growth, term: alliance_within, generating: beta_S}
      - {model: symptoms_growth, term: "weeks:alliance_pat", generating: beta_tP}
      - {model: symptoms_lagged, term: alliance_within_lag1, generating: beta_lag,
         outcome_model: lagged}
    description: Terms whose recovery is checked.
    items:
      type: object
      additionalProperties: false
      required: [model, term, generating]
      properties:
        model: {type: string, description: Model spec id (a default or one under models).}
        term: {type: string, description: Coefficient as named in coefficients.csv.}
        generating:
          enum: [beta_T, beta_P, beta_S, beta_tP, beta_lag, lag_phi, relapse_beta,
                 dropout_beta_alliance]
          description: Simulator parameter the term estimates (ARM_WEIGHTED ones are rescaled).
        outcome_model:
          enum: [growth, lagged]
          default: growth
          description: Simulator outcome model of the trial the model is fitted to.
        per_sd:
          type: boolean
          default: false
          description: >
            Rescale estimate, SE and CI to per SD (sample, ddof 1) of the term's column in the
            fitted frame, as the simulator's Cox covariate is defined.
        reference:
          enum: [target, generating]
          default: target
          description: >
            True value for bias and coverage: the large-trial target, or the generating value
            when the model matches the simulator exactly.
"""
)
CHECK_DEFAULTS = {"outcome_model": "growth", "per_sd": False, "reference": "target"}
# Simulator parameters a check can be compared with.
GENERATING = tuple(
    STUDY_SCHEMA["properties"]["checks"]["items"]["properties"]["generating"]["enum"]
)


def validate_study(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults-filled copy of a study config, or ConfigError listing every problem."""
    study = fill_defaults(copy.deepcopy(dict(raw)), STUDY_SCHEMA, STUDY_SCHEMA)
    for check in study["checks"] if isinstance(study["checks"], list) else []:
        if isinstance(check, dict):  # defaults of array items (fill_defaults stops at arrays)
            for key, value in CHECK_DEFAULTS.items():
                check.setdefault(key, value)
    validator = jsonschema.Draft202012Validator(STUDY_SCHEMA)
    errors = sorted(validator.iter_errors(study), key=lambda e: list(map(str, e.path)))
    problems = [format_schema_error(e) for e in errors]
    unknown = sorted(set(study["simulator"]) - set(DEFAULT_PARAMS))
    if unknown:
        problems.append(f"config key simulator: unknown simulator parameter(s) {unknown}")
    ids = [check_id(c) for c in study["checks"] if isinstance(c, dict) and "term" in c]
    if len(set(ids)) != len(ids):
        problems.append("config key checks: a model:term pair is listed twice")
    if problems:
        raise ConfigError("invalid validation study config:\n  - " + "\n  - ".join(problems))
    return study


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
