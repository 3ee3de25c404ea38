"""Parameter-recovery study: simulate trials with a known truth, run the pipeline, compare.

Why: a model stage that runs is not yet a model stage that is right. Each replicate r simulates a
trial (`alliance.simulate.trial`) from its own seed `derive_seed(study seed, "recovery:r")`, so its
result never depends on how replicates are split into shards; runs the clean stage, the score
stage's analysis tables and the checked models in memory; and keeps, per checked term, the
estimate, SE and 95 % CI. The study's config is `alliance.studies.recovery_study`; gathering the
shards and the summary (bias, RMSE, SE calibration, CI coverage) are
`alliance.studies.recovery_results`.

Two reference values per term (the documentation in config/validate.yaml gives the reasoning):
- `generating`: the simulator's parameter in the model's parameterisation (truth.json);
- `target`: the value the estimator converges to under this data-generating process, i.e. the
  same model fitted to large simulated trials (`target.scale` x the replicate design, the same
  patients per therapist and sessions per patient, independent seeds). The models use observed
  item scores, not the simulator's latent alliance, so measurement error attenuates the
  session-level effects; the therapist mean of observed patient means carries part of the patient
  level; the lagged model has dynamic-panel (Nickell-type) bias. These are properties of the
  estimand, not of the code, and `gap = target - generating` shows them.
Bias, RMSE and coverage are judged against the true value (is the SE right, is the estimator
unbiased for what it estimates): the target, or the generating value where the model matches the
simulator exactly (`reference: generating`, the Cox check); coverage of the generating value is
reported beside it. Target trials are sharded like replicates.
"""

from __future__ import annotations

import dataclasses
import hashlib
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
from alliance.errors import ConfigError
from alliance.instruments.definition import Instrument
from alliance.models.base import ModelResult, ModelSpec
from alliance.models.run import fit_model
from alliance.models.spec import load_specs
from alliance.score.scales import load_raters
from alliance.score.stage import build_analysis, score_tables
from alliance.settings import ModelsSettings, ScoreOptions, Settings
from alliance.simulate.export import write_trial
from alliance.simulate.params import ARMS
from alliance.simulate.trial import simulate_trial
from alliance.studies.recovery_results import REPLICATE_COLUMNS, typed_rows
from alliance.studies.recovery_study import check_id

OUTCOME_MODELS = ("growth", "lagged")
# beta_P and beta_tP enter the simulator multiplied by beta_P_arm_multiplier[arm] *
# (1 - agency_moderation * agency); the models have neither interaction, so their population-average
# slope is the arm-share-weighted multiplier (agency has mean 0) times the parameter.
ARM_WEIGHTED = ("beta_P", "beta_tP")
# Options that only add extra tables (never change coefficients): dropped to save time.
EXTRAS_ONLY = ("predictions", "random_effects", "simple_slopes", "contrasts", "tertile_of")


@dataclasses.dataclass
class Pipeline:
    """What every replicate reuses: the pipeline settings, raters and the checked specs."""

    settings: Settings
    raters: dict[str, Instrument]
    specs: dict[str, ModelSpec]


def pipeline(study: Mapping[str, Any]) -> Pipeline:
    """Pipeline settings with the study's extra specs; only the checked specs, without extras.

    The study's specs join `models.custom` after the config is validated: `load_specs` checks
    them, as it checks every spec.
    """
    settings = Settings.from_config(load_config(study["pipeline_config"]))
    models = settings.models.to_dict()
    models["custom"] += study["models"]
    settings = dataclasses.replace(settings, models=ModelsSettings.from_mapping(models))
    by_id = {s.id: s for s in load_specs(settings.models)}
    wanted = sorted({c["model"] for c in study["checks"]})
    missing = [m for m in wanted if m not in by_id]
    if missing:
        raise ConfigError(
            f"config key checks: model(s) {missing} are neither default specs nor listed under "
            "the study's models"
        )
    specs = {
        m: dataclasses.replace(
            by_id[m], options={k: v for k, v in by_id[m].options.items() if k not in EXTRAS_ONLY}
        )
        for m in wanted
    }
    with warnings.catch_warnings():
        # the unverified-key warning of the therapist form is logged by the pipeline itself
        warnings.simplefilter("ignore", UserWarning)
        raters = load_raters(settings.alliance)
    return Pipeline(settings=settings, raters=raters, specs=specs)


# ------------------------------------------------------------------------------------ one trial
def replicate_seed(seed: int, replicate: int) -> int:
    """Simulator seed of replicate r: depends on (study seed, r) only, never on the shards."""
    return derive_seed(seed, f"recovery:{int(replicate)}")


def target_seed(seed: int, k: int) -> int:
    """Simulator seed of target trial k (a stream no replicate uses)."""
    return derive_seed(seed, f"recovery-target:{int(k)}")


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


def analysis_tables(
    sessions: pd.DataFrame,
    patients: pd.DataFrame,
    options: ScoreOptions,
    raters: dict[str, Instrument],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The score stage's analysis tables, built by the functions `run_score` composes.

    Reliability, agreement and ruptures are skipped: no checked model reads them and reliability
    alone takes longer than the rest of the score stage.
    """
    scores, patient_scores = score_tables(sessions, raters, options)
    return build_analysis(
        sessions, patients, scores, patient_scores, None,
        rater=options.rater, scale=options.scale, detrend=options.detrend,
    )  # fmt: skip


def simulate_and_prepare(
    study: Mapping[str, Any], pipe: Pipeline, seed: int, outcome_model: str, scale: int = 1
) -> dict[str, Any]:
    """Simulate one trial, clean it (through temporary files: clean reads files) and score it."""
    d = study["design"]
    trial = simulate_trial(
        n_patients=d["patients"] * scale,
        n_therapists=d["therapists"] * scale,
        n_sessions=d["sessions"],
        seed=seed,
        outcome_model=outcome_model,
        **study["simulator"],
    )
    with tempfile.TemporaryDirectory(prefix="alliance-recovery-") as tmp:
        write_trial(trial, tmp, fmt="parquet")
        cleaned = clean_trial(trial_settings(pipe.settings, tmp).clean())
    analysis, patient_analysis = analysis_tables(
        cleaned.sessions, cleaned.patients, pipe.settings.score, pipe.raters
    )
    return {
        "truth": trial.truth,
        "arms": trial.patients["arm"].dropna().value_counts().to_dict(),
        "sessions": analysis,
        "patients": patient_analysis,
        "availability": cleaned.availability,
    }


def generating_value(name: str, truth: Mapping[str, Any], arm_counts: Mapping[str, int]) -> float:
    """The simulator's parameter `name` in the models' parameterisation (see ARM_WEIGHTED)."""
    params = truth["params"]
    value = float(params[name])
    if name in ARM_WEIGHTED:
        mult = params["beta_P_arm_multiplier"]
        total = sum(arm_counts.get(a, 0) for a in ARMS)
        value *= sum(mult[a] * arm_counts.get(a, 0) for a in ARMS) / total
    return value


def fit_checks(
    study: Mapping[str, Any], pipe: Pipeline, trials: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Fit each checked model once per trial and return one record per check."""
    fits: dict[str, Any] = {}
    model_view = pipe.settings.model_stage()
    rows = []
    for check in study["checks"]:
        model, om = check["model"], check["outcome_model"]
        trial = trials[om]
        key = f"{om}/{model}"
        if key not in fits:
            with warnings.catch_warnings():
                # fit warnings are kept in fit["warnings"]; repeating them per replicate is noise
                warnings.simplefilter("ignore")
                fits[key], _ = fit_model(
                    pipe.specs[model],
                    trial["sessions"],
                    trial["patients"],
                    trial["availability"],
                    model_view,
                )
        rows.append(_extract(check, fits[key], trial))
    return rows


def _extract(
    check: Mapping[str, Any], result: ModelResult, trial: Mapping[str, Any]
) -> dict[str, Any]:
    """One check's row: status, estimate, SE, CI (rescaled per SD when asked), generating value."""
    fit = result.fit
    row: dict[str, Any] = {
        "check": check_id(check),
        "model": check["model"],
        "term": check["term"],
        "outcome_model": check["outcome_model"],
        "status": fit.get("status", "failed"),
        "reason": fit.get("reason", "") or "",
        "converged": fit.get("converged"),
        "singular": fit.get("singular"),
        "n_obs": fit.get("n_obs"),
        "estimate": np.nan,
        "std_error": np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "scale": 1.0,
        "generating": generating_value(check["generating"], trial["truth"], trial["arms"]),
    }
    if row["status"] != "fitted":
        return row
    coefs = result.coefficients.set_index("term")
    if check["term"] not in coefs.index:
        row.update(status="failed", reason=f"term {check['term']!r} not among the coefficients")
        return row
    c = coefs.loc[check["term"]]
    scale = 1.0
    if check["per_sd"]:
        scale = float(pd.to_numeric(result.frame[check["term"]]).std(ddof=1))
    row.update(
        scale=scale,
        estimate=float(c["estimate"]) * scale,
        std_error=float(c["std_error"]) * scale,
        ci_low=float(c["ci_low"]) * scale,
        ci_high=float(c["ci_high"]) * scale,
    )
    return row


def _needed(study: Mapping[str, Any]) -> list[str]:
    return [m for m in OUTCOME_MODELS if any(c["outcome_model"] == m for c in study["checks"])]


def run_trial(study: Mapping[str, Any], pipe: Pipeline, kind: str, index: int) -> list[dict]:
    """All checks on replicate `index` (kind "replicate") or target trial `index` ("target").

    The growth and lagged trials of one replicate share the seed (and so the alliance, dropout
    and design) but not the outcomes.
    """
    if kind == "replicate":
        seed, scale = replicate_seed(study["seed"], index), 1
    elif kind == "target":
        seed, scale = target_seed(study["seed"], index), study["target"]["scale"]
    else:
        raise ValueError(f"kind must be 'replicate' or 'target', got {kind!r}")
    trials = {m: simulate_and_prepare(study, pipe, seed, m, scale) for m in _needed(study)}
    rows = fit_checks(study, pipe, trials)
    return [{"kind": kind, "replicate": index, "seed": seed, **row} for row in rows]


def run_shard(
    study: Mapping[str, Any], shard: int, n_shards: int, pipe: Pipeline | None = None
) -> pd.DataFrame:
    """Shard i of n: its block of replicates and its block of target trials (contiguous blocks,
    `bootstrap.shard_replicates`), one row per trial x check."""
    pipe = pipe or pipeline(study)
    rows: list[dict] = []
    for kind, n in (("replicate", study["replicates"]), ("target", study["target"]["trials"])):
        for r in shard_replicates(n, (shard, n_shards)):
            rows += run_trial(study, pipe, kind, r)
    return typed_rows(pd.DataFrame(rows, columns=REPLICATE_COLUMNS))
