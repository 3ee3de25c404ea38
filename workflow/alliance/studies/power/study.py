"""The power study's config (the `power` block of config/power.yaml): schema, grid cells.

Same conventions as the recovery study (`alliance.studies.recovery_study`): every key has a
description and a default, unknown keys are errors listed with their path. The design grid is
the product of the lists under `design` and `effects`; each product element is one cell.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from alliance.config import fill_defaults, load_yaml_mapping
from alliance.errors import ConfigError
from alliance.simulate.params import ARMS, DEFAULT_PARAMS
from alliance.studies.recovery_study import study_problems

_NUM_OR_NULL = "{type: array, minItems: 1, items: {type: [number, 'null']}"
POWER_SCHEMA: dict[str, Any] = yaml.safe_load(
    f"""
type: object
additionalProperties: false
properties:
  seed:
    type: integer
    default: 20261127
    description: "Study seed; replicate r uses derive_seed(seed, 'power:r') in every cell."
  replicates: {{type: integer, minimum: 2, default: 100, description: Simulated trials per cell.}}
  shards:
    type: integer
    minimum: 1
    default: 1
    description: Jobs each cell's replicates are split into; results do not depend on it.
  pipeline_config:
    type: string
    default: config/config.yaml
    description: Pipeline config (column mapping of the simulator's tables, model specs).
  calibrate_from:
    type: [string, 'null']
    default: null
    description: >
      Results folder of a finished analysis (e.g. results): variance components, ICCs, alliance
      reliability, dropout and response rates become simulator parameters; null: simulator
      defaults.
  alpha: {{type: number, exclusiveMinimum: 0, exclusiveMaximum: 0.5, default: 0.05,
           description: Significance level.}}
  sides:
    enum: [1, 2]
    default: 2
    description: Two-sided tests, or one-sided in the direction of `direction`.
  direction:
    enum: [truth, less, greater]
    default: truth
    description: One-sided tests only; truth = the sign of the term's true value.
  target_power:
    type: array
    default: [0.8, 0.9]
    items: {{type: number, exclusiveMinimum: 0, exclusiveMaximum: 1}}
    description: Power levels whose smallest design is reported.
  design:
    type: object
    default: {{}}
    additionalProperties: false
    description: The design grid; every key is a list, the grid is their product.
    properties:
      therapists: {{type: array, minItems: 1, default: [30], items: {{type: integer, minimum: 4}},
                   description: Therapists.}}
      patients_per_therapist:
        {{type: array, minItems: 1, default: [12], items: {{type: integer, minimum: 1}},
         description: Randomised patients per therapist.}}
      sessions: {{type: array, minItems: 1, default: [12],
                 items: {{type: integer, minimum: 4, maximum: 52}}, description: Planned sessions.}}
      arms:
        type: array
        minItems: 1
        default: [[CBT, IPT, IMI-CM, PLA-CM]]
        description: >
          Arm sets (subsets of the simulator's arms); patients of other arms are not simulated
          (the simulated trial is scaled up, then those arms are removed).
        items: {{type: array, minItems: 2, uniqueItems: true, items: {{enum: {list(ARMS)}}}}}
      dropout_rate:
        {_NUM_OR_NULL}, default: [null], description: "Share of starters not completing
         every session; null: calibrated (per-session hazard) or the simulator's."}}
      dropout_alliance:
        {_NUM_OR_NULL}, default: [null], description: "Dropout logit per latent alliance
         point (dropout_beta_alliance); null: calibrated or the simulator's."}}
      missing_rating_rate:
        {{type: array, minItems: 1, default: [0.0],
         items: {{type: number, minimum: 0, exclusiveMaximum: 1}},
         description: Share of attended sessions whose alliance ratings are missing.}}
  effects:
    type: object
    default: {{}}
    additionalProperties: false
    description: >
      Alliance effects on symptoms per level (lists: grid dimensions); null keeps the
      simulator's (or calibrated) value.
    properties:
      scale:
        enum: [raw, r]
        default: raw
        description: >
          raw: HAM-D points per alliance point; r: correlation of the level's latent alliance
          with a session's symptom score (alliance.studies.power.calibrate.raw_effect).
      therapist: {{{_NUM_OR_NULL[1:]}, default: [null], description: beta_T.}}
      patient: {{{_NUM_OR_NULL[1:]}, default: [null], description: beta_P.}}
      session: {{{_NUM_OR_NULL[1:]}, default: [null], description: beta_lag.}}
  tests:
    type: array
    minItems: 1
    default:
      - {{model: symptoms_growth, term: alliance_pat_prior}}
    description: Terms whose power is estimated.
    items:
      type: object
      additionalProperties: false
      required: [model, term]
      properties:
        model: {{type: string, description: Model id (a default, custom or study model).}}
        term: {{type: string, description: Coefficient as named in coefficients.csv.}}
        parameter:
          type: [string, 'null']
          default: null
          description: >
            Simulator parameter holding the true value when truth.json's estimands have no
            entry for this term.
  models:
    type: array
    default: []
    description: Extra model specs (the schema of the config's models.custom).
  simulator:
    type: object
    default: {{mc_therapists: 8}}
    description: >
      Overrides of alliance.simulate.DEFAULT_PARAMS (after calibration). The power trials have
      one dropout slope for every patient (dropout_beta_alliance_trd = 0) unless set here.
"""
)
DESIGN_KEYS = (
    "therapists", "patients_per_therapist", "sessions", "arms", "dropout_rate",
    "dropout_alliance", "missing_rating_rate",
)  # fmt: skip
EFFECT_KEYS = ("therapist", "patient", "session")


def validate_power(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults-filled copy of the `power` block, or ConfigError listing every problem."""
    study = fill_defaults(copy.deepcopy(dict(raw)), POWER_SCHEMA, POWER_SCHEMA)
    for test in study["tests"] if isinstance(study["tests"], list) else []:
        if isinstance(test, dict):  # fill_defaults stops at arrays
            test.setdefault("parameter", None)
    problems = study_problems(study, POWER_SCHEMA, "power.simulator")
    tests = [t for t in study["tests"] if isinstance(t, dict)] if not problems else []
    pairs = [(t.get("model"), t.get("term")) for t in tests]
    if len(set(pairs)) != len(pairs):
        problems.append("config key power.tests: a model:term pair is listed twice")
    for i, t in enumerate(tests):
        if t.get("parameter") is not None and t["parameter"] not in DEFAULT_PARAMS:
            problems.append(
                f"config key power.tests[{i}].parameter: {t['parameter']!r} is not a simulator "
                "parameter (a key of alliance.simulate.DEFAULT_PARAMS)"
            )
    if problems:
        raise ConfigError("invalid power study config:\n  - " + "\n  - ".join(problems))
    return study


def load_power(path: str | Path) -> dict[str, Any]:
    """Read config/power.yaml (its `power` block) and validate it."""
    raw = load_yaml_mapping(path, "power study config")
    if set(raw) != {"power"}:
        raise ConfigError(f"{path}: expected a single top-level key `power`, got {sorted(raw)}")
    try:
        return validate_power(raw["power"] or {})
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def cells(study: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The grid: one dict per design x effect combination, id `c01`, `c02`, ... in grid order.

    Effects are keyed `effect_<level>`; arms become a `+`-joined text (a table column).
    """
    d, e = study["design"], study["effects"]
    lists = [d[k] for k in DESIGN_KEYS] + [e[k] for k in EFFECT_KEYS]
    names = [*DESIGN_KEYS, *(f"effect_{k}" for k in EFFECT_KEYS)]
    out = []
    combos = list(itertools.product(*lists))
    width = max(2, len(str(len(combos))))
    for k, values in enumerate(combos, start=1):
        cell = dict(zip(names, values, strict=True))
        cell["arms"] = "+".join(cell["arms"])
        out.append({"cell": f"c{k:0{width}d}", **cell})
    return out


def cell_ids(study: Mapping[str, Any]) -> list[str]:
    """Cell ids in grid order (the Snakemake wildcard values)."""
    return [c["cell"] for c in cells(study)]


def cell_by_id(study: Mapping[str, Any], cell: str) -> dict[str, Any]:
    """One cell of the grid, or ConfigError naming the known ids."""
    for c in cells(study):
        if c["cell"] == cell:
            return c
    raise ConfigError(f"unknown power cell {cell!r}; known: {cell_ids(study)}")
