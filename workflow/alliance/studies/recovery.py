"""Parameter-recovery study: simulate trials with a known truth, run the pipeline, compare.

Why: a model stage that runs is not yet a model stage that answers the question it claims to.
Each replicate r simulates a trial (`alliance.simulate.trial`) from its own seed
`derive_seed(study seed, "recovery:r")`, so its result never depends on how replicates are split
into shards; runs the clean stage, the score stage's analysis tables and the checked models in
memory; and keeps, per checked term, the estimate, SE, 95 % CI and that replicate's TRUE value.

The truth comes from the simulator, not from the estimators: truth.json carries
`truth["estimands"]`, one entry per default model key term: {model, term, value (float or null),
identified, reason, parameter}. The value may differ between replicates (the Cox per-point truth
depends on the realised SD of mean alliance), so each replicate is scored against its own. Every
entry is checked (identified or not: both are reported, only identified ones are judged); an entry
without a value is listed but not fitted (nothing to compare with). The study's `extra_checks`
add terms of its own specs, each mapped to a simulator parameter.

The study's config is `alliance.studies.recovery_study`; gathering the shards, the summary and
the verdicts are `alliance.studies.recovery_results`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alliance.clean.stage import clean_trial
from alliance.config import load_config
from alliance.engine.bootstrap import derive_seed, shard_replicates
from alliance.errors import ConfigError, InputError
from alliance.instruments.definition import Instrument
from alliance.models.base import ModelResult, ModelSpec
from alliance.models.run import fit_model
from alliance.models.spec import load_specs
from alliance.score.scales import load_raters
from alliance.score.stage import analysis_tables
from alliance.settings import ModelsSettings, Settings
from alliance.simulate.export import write_trial
from alliance.simulate.trial import SimulatedTrial, simulate_trial
from alliance.studies.recovery_results import REPLICATE_COLUMNS, typed_rows
from alliance.studies.recovery_study import check_id

# Options that only add extra tables (never change coefficients): dropped to save time.
EXTRAS_ONLY = ("predictions", "random_effects", "simple_slopes", "contrasts", "tertile_of")
ESTIMAND_KEYS = ("model", "term", "value", "identified", "reason", "parameter")


@dataclasses.dataclass
class Pipeline:
    """What every replicate reuses: the pipeline settings, raters and every spec (no extras)."""

    settings: Settings
    raters: dict[str, Instrument]
    specs: dict[str, ModelSpec]


def pipeline(study: Mapping[str, Any]) -> Pipeline:
    """Pipeline settings with the study's extra specs; every spec, without extras-only options.

    The study's specs join `models.custom` after the config is validated: `load_specs` checks
    them, as it checks every spec.
    """
    settings = Settings.from_config(load_config(study["pipeline_config"]))
    models = settings.models.to_dict()
    models["custom"] += study["models"]
    settings = dataclasses.replace(settings, models=ModelsSettings.from_mapping(models))
    specs = {
        s.id: dataclasses.replace(
            s, options={k: v for k, v in s.options.items() if k not in EXTRAS_ONLY}
        )
        for s in load_specs(settings.models)
    }
    missing = sorted({c["model"] for c in study["extra_checks"]} - set(specs))
    if missing:
        raise ConfigError(
            f"config key extra_checks: model(s) {missing} are neither default specs nor listed "
            "under the study's models"
        )
    with warnings.catch_warnings():
        # the unverified-key warning of the therapist form is logged by the pipeline itself
        warnings.simplefilter("ignore", UserWarning)
        raters = load_raters(settings.alliance)
    return Pipeline(settings=settings, raters=raters, specs=specs)


# ------------------------------------------------------------------------------------ one trial
def replicate_seed(seed: int, replicate: int) -> int:
    """Simulator seed of replicate r: depends on (study seed, r) only, never on the shards."""
    return derive_seed(seed, f"recovery:{int(replicate)}")


# Pseudonym key of the simulated trials (no real people; the pipeline's demo key is refused on
# data other than the bundled demo): fixed, so every run gives the same pseudonyms and results.
SIMULATED_KEY = hashlib.sha256(b"alliance-outcomes recovery study: simulated trials").hexdigest()


def trial_settings(settings: Settings, folder: str | Path) -> Settings:
    """`settings` reading the simulated trial written to `folder` (long parquet tables)."""
    data = dataclasses.replace(
        settings.data,
        sessions=str(Path(folder) / "sessions.parquet"),
        patients=str(Path(folder) / "patients.parquet"),
        layout="long",
    )
    privacy = dataclasses.replace(settings.privacy, key=SIMULATED_KEY, key_env="")
    return dataclasses.replace(settings, data=data, privacy=privacy)


def simulate_and_prepare(study: Mapping[str, Any], pipe: Pipeline, seed: int) -> dict[str, Any]:
    """Simulate one trial with the study's design, then `prepare_trial` (clean and score)."""
    d = study["design"]
    trial = simulate_trial(
        n_patients=d["patients"],
        n_therapists=d["therapists"],
        n_sessions=d["sessions"],
        seed=seed,
        **study["simulator"],
    )
    return prepare_trial(trial, pipe)


def prepare_trial(trial: SimulatedTrial, pipe: Pipeline) -> dict[str, Any]:
    """Clean a simulated trial (through temporary files: clean reads files) and score it; also
    used by the power study (`alliance.studies.power.trials`) on trials it altered."""
    with tempfile.TemporaryDirectory(prefix="alliance-recovery-") as tmp:
        write_trial(trial, tmp, fmt="parquet")
        cleaned = clean_trial(trial_settings(pipe.settings, tmp).clean())
    tables = analysis_tables(cleaned.sessions, cleaned.patients, pipe.raters, pipe.settings.score)
    return {
        "truth": trial.truth,
        "sessions": tables.analysis,
        "patients": tables.patient_analysis,
        "availability": cleaned.availability,
    }


# --------------------------------------------------------------------------------- the checks
def _float_or_nan(value: Any) -> float:
    if value is None:
        return math.nan
    out = float(value)
    return out if math.isfinite(out) else math.nan


def estimand_checks(truth: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One check per entry of `truth["estimands"]` (none when truth.json has no such key)."""
    out = []
    for i, entry in enumerate(truth.get("estimands") or []):
        missing = [k for k in ESTIMAND_KEYS if k not in entry]
        if missing:
            raise InputError(
                "truth.json estimands entry lacks key(s)",
                value=f"entry {i}: missing {missing}",
                check="recovery.estimands",
            )
        out.append(
            {
                "model": str(entry["model"]),
                "term": str(entry["term"]),
                "source": "estimand",
                "parameter": str(entry["parameter"] or ""),
                "identified": bool(entry["identified"]),
                "truth_reason": str(entry["reason"] or ""),
                "truth": _float_or_nan(entry["value"]),
            }
        )
    return out


def study_checks(study: Mapping[str, Any], truth: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The study's extra checks, each valued by its simulator parameter in truth.json."""
    params = truth["params"]
    return [
        {
            "model": c["model"],
            "term": c["term"],
            "source": "study",
            "parameter": c["parameter"],
            "identified": bool(c["identified"]),
            "truth_reason": c["reason"],
            "truth": _float_or_nan(params[c["parameter"]]),
        }
        for c in study["extra_checks"]
    ]


def checks_for(study: Mapping[str, Any], truth: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every check of one replicate, in order (`position`): estimands, then the study's own."""
    checks = estimand_checks(truth) + study_checks(study, truth)
    if not checks:
        raise InputError(
            "nothing to check: the simulated truth.json has no 'estimands' and the study has "
            "no extra_checks",
            check="recovery.checks",
        )
    ids = [check_id(c) for c in checks]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise InputError("a model:term is checked twice", value=str(dup), check="recovery.checks")
    return [{"position": k, "check": check_id(c), **c} for k, c in enumerate(checks)]


def _fit(pipe: Pipeline, model: str, trial: Mapping[str, Any]) -> ModelResult | tuple[str, str]:
    """The model's fit on the trial, or (status, reason) when it could not run at all."""
    if model not in pipe.specs:
        return "skipped", f"model {model!r} is not among the pipeline config's specs"
    try:
        with warnings.catch_warnings():
            # fit warnings are kept in fit["warnings"]; repeating them per replicate is noise
            warnings.simplefilter("ignore")
            result, _ = fit_model(
                pipe.specs[model],
                trial["sessions"],
                trial["patients"],
                trial["availability"],
                pipe.settings.model_stage(),
            )
    except ConfigError as exc:  # e.g. a column the study's tables lack: recorded, not fatal
        return "failed", f"ConfigError: {exc}"
    return result


def fit_checks(
    checks: list[dict[str, Any]],
    pipe: Pipeline,
    trial: Mapping[str, Any],
    fit_unidentified: bool = True,
) -> list[dict[str, Any]]:
    """Fit each needed model once and return one row per check (NaN estimate when not fitted).

    A check without a true value is not fitted (nothing to compare with), nor an unidentified
    one when `fit_unidentified` is false.
    """
    fits: dict[str, ModelResult | tuple[str, str]] = {}
    rows = []
    for check in checks:
        row: dict[str, Any] = {
            **check,
            "status": "not fitted",
            "reason": "no true value: " + (check["truth_reason"] or "not identified"),
            "converged": None,
            "singular": None,
            "n_obs": None,
            "estimate": np.nan,
            "std_error": np.nan,
            "ci_low": np.nan,
            "ci_high": np.nan,
        }
        if not (check["identified"] or fit_unidentified):
            row["reason"] = "not identified, not fitted (fit_unidentified: false)"
        elif math.isfinite(check["truth"]):
            if check["model"] not in fits:
                fits[check["model"]] = _fit(pipe, check["model"], trial)
            _extract(row, fits[check["model"]])
        rows.append(row)
    return rows


def _extract(row: dict[str, Any], result: ModelResult | tuple[str, str]) -> None:
    """Fill status, estimate, SE and CI of `row` from the model's result."""
    if isinstance(result, tuple):
        row.update(status=result[0], reason=result[1])
        return
    fit = result.fit
    row.update(
        status=fit.get("status", "failed"),
        reason=fit.get("reason", "") or "",
        converged=fit.get("converged"),
        singular=fit.get("singular"),
        n_obs=fit.get("n_obs"),
    )
    if row["status"] != "fitted":
        return
    coefs = result.coefficients.set_index("term")
    if row["term"] not in coefs.index:
        row.update(status="failed", reason=f"term {row['term']!r} not among the coefficients")
        return
    c = coefs.loc[row["term"]]
    row.update({k: float(c[k]) for k in ("estimate", "std_error", "ci_low", "ci_high")})


def run_replicate(study: Mapping[str, Any], pipe: Pipeline, replicate: int) -> list[dict]:
    """All checks on replicate `replicate`: one row per check."""
    seed = replicate_seed(study["seed"], replicate)
    trial = simulate_and_prepare(study, pipe, seed)
    checks = checks_for(study, trial["truth"])
    rows = fit_checks(checks, pipe, trial, study["fit_unidentified"])
    return [{"replicate": replicate, "seed": seed, **row} for row in rows]


def run_shard(
    study: Mapping[str, Any], shard: int, n_shards: int, pipe: Pipeline | None = None
) -> pd.DataFrame:
    """Shard i of n: its contiguous block of replicates (`bootstrap.shard_replicates`), one row
    per replicate x check."""
    pipe = pipe or pipeline(study)
    rows: list[dict] = []
    for r in shard_replicates(study["replicates"], (shard, n_shards)):
        rows += run_replicate(study, pipe, r)
    return typed_rows(pd.DataFrame(rows, columns=REPLICATE_COLUMNS))
