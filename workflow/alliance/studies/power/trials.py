"""One power-study replicate (simulate -> clean -> score -> fit the tested models) and a shard.

Why these choices:
- Common random numbers: replicate r uses the simulator seed derive_seed(seed, "power:r") in
  every cell, so differences between cells are not blurred by independent noise (smoother
  curves); a shard's rows never depend on how replicates are split (`shard_replicates`).
- Arm sets: the simulator always randomises to its four arms and deals patients to therapists
  by type (CBT, IPT, pharmacotherapy for both pill arms). A cell with fewer arms simulates a
  trial scaled up by the kept share of therapists and patients, then removes the other arms'
  patients, so the kept trial has about the cell's therapists and patients per therapist.
- Missing ratings: whole alliance ratings (every patient and therapist item of a session) are
  blanked at random with the cell's rate, from a stream of its own (derive_seed(seed,
  "power-missing:r")), after the simulation and before cleaning.
- The clean -> score path is the recovery study's (`recovery.prepare_trial`), the fits are the
  pipeline's `fit_model`.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from alliance.engine.bootstrap import derive_seed, shard_replicates
from alliance.errors import ConfigError, InputError
from alliance.models.base import ModelResult
from alliance.models.run import fit_model
from alliance.simulate.params import ARMS, WAI_P, WAI_T
from alliance.simulate.trial import SimulatedTrial, simulate_trial
from alliance.studies.power.calibrate import cell_params
from alliance.studies.power.study import cells
from alliance.studies.recovery import Pipeline, estimand_checks, pipeline, prepare_trial

ROW_COLUMNS = [
    "cell", "replicate", "seed", "position", "model", "term", "truth", "status", "reason",
    "converged", "singular", "estimate", "std_error", "statistic", "p_value", "ci_low",
    "ci_high", "n_patients", "n_therapists", "dropout_share",
]  # fmt: skip
# Share of the simulator's therapists seeing each arm (alliance.simulate.design.trial_design):
# a quarter CBT, a quarter IPT, half pharmacotherapists seeing both pill arms.
THERAPIST_SHARE = {"CBT": 0.25, "IPT": 0.25, "pills": 0.5}
PILL_ARMS = ("IMI-CM", "PLA-CM")


def power_pipeline(study: Mapping[str, Any]) -> Pipeline:
    """The recovery study's `Pipeline` for the power study's config and extra models; every
    tested model must be one of its specs."""
    pipe = pipeline(
        {"pipeline_config": study["pipeline_config"], "models": study["models"],
         "extra_checks": []}
    )  # fmt: skip
    missing = sorted({t["model"] for t in study["tests"]} - set(pipe.specs))
    if missing:
        raise ConfigError(
            f"config key power.tests: model(s) {missing} are neither specs of "
            f"{study['pipeline_config']} nor listed under power.models; known: {sorted(pipe.specs)}"
        )
    return pipe


def replicate_seed(seed: int, replicate: int) -> int:
    """Simulator seed of replicate r, the same in every cell (common random numbers)."""
    return derive_seed(seed, f"power:{int(replicate)}")


def simulated_size(cell: Mapping[str, Any]) -> tuple[int, int]:
    """(patients, therapists) to simulate so that the cell's arms keep its design."""
    arms = cell["arms"].split("+")
    t_share = sum(THERAPIST_SHARE[a] for a in ("CBT", "IPT") if a in arms)
    t_share += THERAPIST_SHARE["pills"] if set(PILL_ARMS) & set(arms) else 0.0
    p_share = len(arms) / len(ARMS)
    therapists = max(4, round(cell["therapists"] / t_share))
    patients = round(cell["therapists"] * cell["patients_per_therapist"] / p_share)
    return max(patients, therapists), therapists


def keep_arms(trial: SimulatedTrial, arms: list[str]) -> SimulatedTrial:
    """The trial without the patients (and sessions) of arms not in `arms`; screen fails stay."""
    if set(arms) == set(ARMS):
        return trial
    pats = trial.patients
    keep = pats["arm"].isna() | pats["arm"].isin(arms)
    kept = pats[keep].reset_index(drop=True)
    subjects = set(kept["subject"])
    sessions = trial.sessions[trial.sessions["subject"].isin(subjects)]
    out = dataclasses.replace(trial, patients=kept, sessions=sessions.reset_index(drop=True))
    missed = getattr(trial, "missed", None)  # missed-slot rows, when the simulator writes them
    if isinstance(missed, pd.DataFrame) and "subject" in missed:
        kept_missed = missed[missed["subject"].isin(subjects)].reset_index(drop=True)
        out = dataclasses.replace(out, missed=kept_missed)
    return out


def blank_ratings(trial: SimulatedTrial, rate: float, seed: int) -> SimulatedTrial:
    """Every alliance item of a random `rate` share of attended sessions set missing."""
    if rate <= 0:
        return trial
    rng = np.random.default_rng(seed)
    sessions = trial.sessions.copy()
    gone = rng.random(len(sessions)) < rate
    for col in (*WAI_P, *WAI_T):
        sessions.loc[gone, col] = pd.NA
    return dataclasses.replace(trial, sessions=sessions)


def simulate_cell(
    cell: Mapping[str, Any], params: Mapping[str, Any], study: Mapping[str, Any], replicate: int
) -> SimulatedTrial:
    """The cell's trial of replicate `replicate`: simulated, arms kept, ratings blanked."""
    patients, therapists = simulated_size(cell)
    trial = simulate_trial(
        n_patients=patients,
        n_therapists=therapists,
        n_sessions=int(cell["sessions"]),
        seed=replicate_seed(study["seed"], replicate),
        **params,
    )
    trial = keep_arms(trial, cell["arms"].split("+"))
    missing_seed = derive_seed(study["seed"], f"power-missing:{int(replicate)}")
    return blank_ratings(trial, float(cell["missing_rating_rate"]), missing_seed)


def truths(study: Mapping[str, Any], truth: Mapping[str, Any]) -> list[float]:
    """True value of each tested term: truth.json's estimand, else its `parameter`, else NaN."""
    known = {(c["model"], c["term"]): c["truth"] for c in estimand_checks(truth)}
    out = []
    for t in study["tests"]:
        value = known.get((t["model"], t["term"]), math.nan)
        if t["parameter"] is not None:
            value = float(truth["params"][t["parameter"]])
        out.append(float(value))
    return out


def _fit(pipe: Pipeline, model: str, trial: Mapping[str, Any]) -> ModelResult | str:
    """The model's fit (specs without extras-only options: `recovery.pipeline`), or the reason
    it could not run."""
    spec = pipe.specs[model]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # kept in fit["warnings"]; per replicate: noise
            result, _ = fit_model(
                spec, trial["sessions"], trial["patients"], trial["availability"],
                pipe.settings.model_stage(),
            )  # fmt: skip
    except (ConfigError, InputError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return result


def _term_row(result: ModelResult | str, term: str) -> dict[str, Any]:
    if isinstance(result, str):
        return {"status": "failed", "reason": result}
    fit = result.fit
    row: dict[str, Any] = {
        "status": fit.get("status", "failed"),
        "reason": fit.get("reason", "") or "",
        "converged": fit.get("converged"),
        "singular": fit.get("singular"),
    }
    if row["status"] != "fitted":
        return row
    coefs = result.coefficients.set_index("term")
    if term not in coefs.index:
        return {**row, "status": "failed", "reason": f"term {term!r} not among the coefficients"}
    c = coefs.loc[term]
    keys = ("estimate", "std_error", "statistic", "p_value", "ci_low", "ci_high")
    return {**row, **{k: float(c[k]) for k in keys}}


def _realised(trial: SimulatedTrial) -> dict[str, Any]:
    pats = trial.patients[trial.patients["arm"].notna()]
    started = pats[pats["status"] != "not_started"]
    return {
        "n_patients": len(started),
        "n_therapists": started["therapist"].nunique(),
        "dropout_share": (
            float((started["status"] == "dropout").mean()) if len(started) else math.nan
        ),
    }


def run_replicate(
    study: Mapping[str, Any],
    pipe: Pipeline,
    cell: Mapping[str, Any],
    params: Mapping[str, Any],
    replicate: int,
    timings: dict[str, list[float]] | None = None,
) -> list[dict[str, Any]]:
    """One row per tested term of one replicate of one cell; `timings` (optional) collects
    [count, wall s, CPU s] per step (trial preparation, each model kind), kept out of the rows so
    they stay deterministic."""
    clock = _clock()
    trial = simulate_cell(cell, params, study, replicate)
    realised = _realised(trial)
    prepared = prepare_trial(trial, pipe)
    _tick(timings, "simulate, clean and score", clock)
    fits: dict[str, ModelResult | str] = {}
    rows = []
    for k, (test, truth) in enumerate(zip(study["tests"], truths(study, trial.truth), strict=True)):
        if test["model"] not in fits:
            clock = _clock()
            fits[test["model"]] = _fit(pipe, test["model"], prepared)
            _tick(timings, pipe.specs[test["model"]].kind, clock)
        rows.append(
            {
                "cell": cell["cell"], "replicate": replicate, "position": k,
                "seed": replicate_seed(study["seed"], replicate), "model": test["model"],
                "term": test["term"], "truth": truth, **realised,
                **_term_row(fits[test["model"]], test["term"]),
            }
        )  # fmt: skip
    return rows


def _tick(timings: dict[str, list[float]] | None, step: str, start: tuple[float, float]) -> None:
    """Add one step's wall and CPU seconds since `start` (`_clock()`) to `timings`."""
    if timings is not None:
        entry = timings.setdefault(step, [0, 0.0, 0.0])
        entry[0] += 1
        entry[1] += time.perf_counter() - start[0]
        entry[2] += time.process_time() - start[1]


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def typed_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Stable dtypes, so shards with and without failures concatenate alike."""
    out = frame.reindex(columns=ROW_COLUMNS).copy()
    for col in ("replicate", "seed", "position", "n_patients", "n_therapists"):
        out[col] = out[col].astype("int64")
    for col in ("converged", "singular"):
        out[col] = out[col].astype("boolean")
    for col in ("truth", "estimate", "std_error", "statistic", "p_value", "ci_low", "ci_high",
                "dropout_share"):  # fmt: skip
        out[col] = out[col].astype("float64")
    for col in ("cell", "model", "term", "status", "reason"):
        out[col] = out[col].fillna("").astype("str")
    return out


def run_shard(
    study: Mapping[str, Any],
    cell: Mapping[str, Any],
    params: Mapping[str, Any],
    shard: int,
    n_shards: int,
    pipe: Pipeline | None = None,
    timings: dict[str, list[float]] | None = None,
) -> pd.DataFrame:
    """Shard i of n of one cell: its contiguous block of replicates, one row per term."""
    pipe = pipe or power_pipeline(study)
    rows: list[dict[str, Any]] = []
    for r in shard_replicates(study["replicates"], (shard, n_shards)):
        rows += run_replicate(study, pipe, cell, params, r, timings)
    return typed_rows(pd.DataFrame(rows))


def cell_parameters(
    study: Mapping[str, Any], calibration: tuple[dict, dict] | None
) -> dict[str, dict[str, Any]]:
    """Simulator overrides of every cell, by cell id (what parameters.json records)."""
    return {c["cell"]: cell_params(c, study, calibration) for c in cells(study)}
