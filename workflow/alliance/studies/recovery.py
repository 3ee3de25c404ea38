"""Parameter-recovery study: simulate trials with a known truth, run the pipeline, compare.

Why: a model stage that runs is not yet a model stage that is right. Each replicate r simulates a
trial (`alliance.simulate.trial`) from its own seed `derive_seed(study seed, "recovery:r")`, so its
result never depends on how replicates are split into shards; runs the clean stage, the score
stage's analysis tables and the checked models in memory; and keeps, per checked term, the
estimate, SE and 95 % CI. `summarise` reports bias, RMSE, SE calibration and CI coverage.

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

import copy
import dataclasses
import math
import tempfile
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pandas as pd
import yaml
from scipy import stats

from alliance.clean.stage import clean_trial
from alliance.config import fill_defaults, format_schema_error, load_config, load_yaml_mapping
from alliance.engine.bootstrap import derive_seed, shard_replicates
from alliance.errors import ConfigError, InputError
from alliance.models.base import ModelResult, ModelSpec
from alliance.models.run import fit_model
from alliance.models.spec import load_specs
from alliance.score.scales import load_raters, patient_alliance, score_alliance
from alliance.score.stage import build_analysis
from alliance.simulate.export import write_trial
from alliance.simulate.trial import ARMS, DEFAULT_PARAMS, simulate_trial

OUTCOME_MODELS = ("growth", "lagged")
# beta_P and beta_tP enter the simulator multiplied by beta_P_arm_multiplier[arm] *
# (1 - agency_moderation * agency); the models have neither interaction, so their population-average
# slope is the arm-share-weighted multiplier (agency has mean 0) times the parameter.
ARM_WEIGHTED = ("beta_P", "beta_tP")
# Options that only add extra tables (never change coefficients): dropped to save time.
EXTRAS_ONLY = ("predictions", "random_effects", "simple_slopes", "contrasts", "tertile_of")
REPLICATE_COLUMNS = [
    "kind", "replicate", "seed", "check", "model", "term", "outcome_model", "status", "reason",
    "converged", "singular", "n_obs", "estimate", "std_error", "ci_low", "ci_high", "scale",
    "generating",
]  # fmt: skip
TARGET_COLUMNS = [
    "check", "model", "term", "generating", "target", "target_se", "n_trials", "n_fitted",
    "reference", "true_value", "true_value_se",
]  # fmt: skip

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


# --------------------------------------------------------------------------------------- config
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


@dataclasses.dataclass
class Pipeline:
    """What every replicate reuses: the pipeline config, raters and the checked specs."""

    cfg: dict[str, Any]
    raters: dict[str, Any]
    specs: dict[str, ModelSpec]


def pipeline(study: Mapping[str, Any]) -> Pipeline:
    """Pipeline config with the study's extra specs; only the checked specs, without extras."""
    cfg = load_config(study["pipeline_config"])
    cfg["models"] = {**cfg["models"], "custom": [*cfg["models"]["custom"], *study["models"]]}
    by_id = {s.id: s for s in load_specs(cfg)}
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
        raters = load_raters(cfg)
    return Pipeline(cfg=cfg, raters=raters, specs=specs)


# ------------------------------------------------------------------------------------ one trial
def replicate_seed(seed: int, replicate: int) -> int:
    """Simulator seed of replicate r: depends on (study seed, r) only, never on the shards."""
    return derive_seed(seed, f"recovery:{int(replicate)}")


def target_seed(seed: int, k: int) -> int:
    """Simulator seed of target trial k (a stream no replicate uses)."""
    return derive_seed(seed, f"recovery-target:{int(k)}")


def analysis_tables(
    sessions: pd.DataFrame, patients: pd.DataFrame, cfg: Mapping[str, Any], raters: dict
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The score stage's analysis tables, built by the functions `run_score` composes.

    Reliability, agreement and ruptures are skipped: no checked model reads them and reliability
    alone takes longer than the rest of the score stage.
    """
    sc = cfg["score"]
    scores = score_alliance(sessions, raters)
    patient_scores = patient_alliance(
        scores, sessions, early_window=tuple(sc["early_window"]), early_session=sc["early_session"]
    )
    return build_analysis(sessions, patients, scores, patient_scores, None, dict(cfg))


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
    cfg = copy.deepcopy(pipe.cfg)
    with tempfile.TemporaryDirectory(prefix="alliance-recovery-") as tmp:
        write_trial(trial, tmp, fmt="parquet")
        cfg["data"].update(
            sessions=str(Path(tmp) / "sessions.parquet"),
            patients=str(Path(tmp) / "patients.parquet"),
            layout="long",
        )
        cleaned = clean_trial(cfg)
    analysis, patient_analysis = analysis_tables(
        cleaned.sessions, cleaned.patients, cfg, pipe.raters
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
                    pipe.cfg,
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


def typed_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Stable dtypes, so a shard with no failure and one with failures concatenate alike."""
    out = frame.copy()
    for col in ("replicate", "seed"):
        out[col] = out[col].astype("int64")
    for col in ("converged", "singular"):
        out[col] = out[col].astype("boolean")
    out["n_obs"] = pd.to_numeric(out["n_obs"]).astype("Int64")
    for col in ("estimate", "std_error", "ci_low", "ci_high", "scale", "generating"):
        out[col] = out[col].astype("float64")
    for col in ("kind", "check", "model", "term", "outcome_model", "status", "reason"):
        out[col] = out[col].astype("str")
    return out


# ------------------------------------------------------------------------------------- gathering
def gather(
    shards: Iterable[pd.DataFrame], n_replicates: int, n_targets: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(replicate rows, target-trial rows), each sorted by (replicate, check), every trial once."""
    parts = [typed_rows(s) for s in shards]
    if not parts:
        raise InputError("no recovery shards to gather", check="recovery.gather")
    rows = pd.concat(parts, ignore_index=True)
    out = []
    for kind, n in (("replicate", n_replicates), ("target", n_targets)):
        part = rows[rows["kind"] == kind].sort_values(["replicate", "check"], kind="stable")
        seen = np.unique(part["replicate"].to_numpy())
        if not np.array_equal(seen, np.arange(n)) or part.duplicated(["replicate", "check"]).any():
            raise InputError(
                f"recovery shards overlap or leave gaps ({kind} trials)",
                value=f"{len(seen)} distinct {kind} trials, expected {n}",
                check="recovery.gather",
            )
        out.append(part.reset_index(drop=True))
    return out[0], out[1]


def usable(rows: pd.DataFrame) -> pd.Series:
    """Fitted rows with a finite estimate, SE and CI (non-converged fits stay in, counted)."""
    finite = np.isfinite(rows[["estimate", "std_error", "ci_low", "ci_high"]].to_numpy()).all(1)
    return (rows["status"] == "fitted") & finite


def target_table(target_rows: pd.DataFrame, study: Mapping[str, Any]) -> pd.DataFrame:
    """Per check: target (mean over target trials), its MC SE, and the true value used.

    The MC SE is the SD across target trials / sqrt(trials) (model SE with one trial), so it
    does not lean on the SEs under test. `true_value` is the target, or the generating value for
    checks whose mapping is exact (`reference: generating`).
    """
    out = []
    for check in study["checks"]:
        part = target_rows[target_rows["check"] == check_id(check)]
        ok = part[usable(part)]
        k = len(ok)
        est = ok["estimate"].to_numpy()
        if k >= 2:
            se = float(est.std(ddof=1) / math.sqrt(k))
        else:
            se = float(ok["std_error"].iloc[0]) if k else np.nan
        target = float(est.mean()) if k else np.nan
        generating = float(part["generating"].mean()) if len(part) else np.nan
        exact = check["reference"] == "generating"
        out.append(
            {
                "check": check_id(check),
                "model": check["model"],
                "term": check["term"],
                "generating": generating,
                "target": target,
                "target_se": se,
                "n_trials": len(part),
                "n_fitted": k,
                "reference": check["reference"],
                "true_value": generating if exact else target,
                "true_value_se": 0.0 if exact else se,
            }
        )
    return pd.DataFrame(out, columns=TARGET_COLUMNS)


def summarise(replicates: pd.DataFrame, target: pd.DataFrame) -> pd.DataFrame:
    """One row per check: bias, RMSE, SE calibration and coverage of the true value."""
    tgt = target.set_index("check")
    rows = []
    for check in tgt.index:
        part = replicates[replicates["check"] == check]
        ok = part[usable(part)]
        est, se = ok["estimate"].to_numpy(), ok["std_error"].to_numpy()
        lo, hi = ok["ci_low"].to_numpy(), ok["ci_high"].to_numpy()
        n = len(ok)
        t = tgt.loc[check]
        true, true_se, g = float(t["true_value"]), float(t["true_value_se"]), float(t["generating"])
        mean = float(est.mean()) if n else np.nan
        sd = float(est.std(ddof=1)) if n > 1 else np.nan
        cover = float(np.mean((lo <= true) & (true <= hi))) if n else np.nan
        rows.append(
            {
                "check": check,
                "model": t["model"],
                "term": t["term"],
                "outcome_model": part["outcome_model"].iloc[0] if len(part) else "",
                "reference": t["reference"],
                "true_value": true,
                "generating": g,
                "target": float(t["target"]),
                "target_se": float(t["target_se"]),
                "gap": float(t["target"]) - g,
                "relative_gap": (float(t["target"]) - g) / abs(g) if g else np.nan,
                "n_replicates": len(part),
                "n_used": n,
                "n_failed": int(len(part) - n),
                "n_not_converged": int((ok["converged"] == False).sum()),  # noqa: E712 (NA-safe)
                "n_singular": int((ok["singular"] == True).sum()),  # noqa: E712
                "mean_estimate": mean,
                "bias": mean - true,
                "bias_mcse": math.sqrt(sd**2 / n + true_se**2) if n > 1 else np.nan,
                "relative_bias": (mean - true) / abs(true) if true else np.nan,
                "rmse": float(np.sqrt(np.mean((est - true) ** 2))) if n else np.nan,
                "mean_se": float(se.mean()) if n else np.nan,
                "sd_estimate": sd,
                "se_ratio": float(se.mean()) / sd if n > 1 and sd > 0 else np.nan,
                "coverage": cover,
                "coverage_mcse": math.sqrt(cover * (1 - cover) / n) if n else np.nan,
                "bias_vs_generating": mean - g,
                "coverage_generating": float(np.mean((lo <= g) & (g <= hi))) if n else np.nan,
            }
        )
    return pd.DataFrame(rows)


def to_markdown(summary: pd.DataFrame, study: Mapping[str, Any]) -> str:
    """A Markdown table of the summary, for the README and the closing note."""
    d, tg = study["design"], study["target"]
    lines = [
        f"Parameter recovery: {study['replicates']} simulated trials of {d['patients']} "
        f"patients, {d['therapists']} therapists, {d['sessions']} sessions (seed "
        f"{study['seed']}). Target = the same model on {tg['trials']} trial(s) {tg['scale']} "
        "times larger; bias, RMSE and coverage are against the true value (the target, or the "
        "generating value where the mapping is exact).",
        "",
        "| model | term | generating | target (MC SE) | true value | mean est. | bias (MCSE) "
        "| RMSE | mean SE / SD | coverage (MCSE) | coverage of generating | failed |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in summary.itertuples():
        lines.append(
            f"| {r.model} | `{r.term}` | {r.generating:.3f} | {r.target:.3f} ({r.target_se:.3f})"
            f" | {r.true_value:.3f} ({r.reference}) | {r.mean_estimate:.3f} | {r.bias:+.3f} "
            f"({r.bias_mcse:.3f}) | {r.rmse:.3f} | {r.mean_se:.3f} / {r.sd_estimate:.3f} | "
            f"{r.coverage:.3f} ({r.coverage_mcse:.3f}) | {r.coverage_generating:.3f} | "
            f"{r.n_failed} of {r.n_replicates} |"
        )
    lines += [
        "",
        "gap = target - generating is a property of the estimand, not of the code: observed "
        "item scores carry measurement error (session level attenuated), the therapist mean "
        "carries part of the patient level, and a lagged outcome with person-mean-centred "
        "predictors has dynamic-panel (Nickell-type) bias. See config/validate.yaml.",
        "",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------- CI assertions
def coverage_floor(n: int, nominal: float = 0.95, alpha: float = 1e-3) -> int:
    """Smallest covered count k with P(X < k) <= alpha for X ~ Binomial(n, nominal)."""
    k = int(stats.binom.ppf(alpha, n, nominal))
    while stats.binom.cdf(k - 1, n, nominal) > alpha:
        k -= 1
    while k + 1 <= n and stats.binom.cdf(k, n, nominal) <= alpha:
        k += 1
    return k


def calibration_problems(
    replicates: pd.DataFrame, target: pd.DataFrame, alpha: float = 1e-3, max_failed: float = 0.1
) -> list[str]:
    """Checks whose CIs or SEs are miscalibrated beyond chance; empty when all is well.

    Per check (alpha split over the checks, so the family flakes with probability <= alpha
    when every SE is right): the number of CIs covering the true value must reach
    `coverage_floor`, and mean z^2 = mean(((estimate - true) / SE)^2), distributed about as
    chi^2_n / n for right SEs, must lie in its central 1 - alpha/checks range. z^2 catches an
    SE off by a factor of 2 that 20 coverage indicators alone could miss. More than
    `max_failed` (a share) failed or CI-less fits is a problem too; fewer are design facts (a
    small trial with too few relapses for a Cox model), reported by `summarise`.
    """
    tgt = target.set_index("check")["true_value"]
    a = alpha / max(len(tgt), 1)
    problems = []
    for check, true in tgt.items():
        part = replicates[replicates["check"] == check]
        ok = part[usable(part)]
        n = len(ok)
        if len(part) - n > max_failed * len(part):
            problems.append(f"{check}: {len(part) - n} of {len(part)} replicates failed")
        if n == 0:
            continue
        covered = int(((ok["ci_low"] <= true) & (true <= ok["ci_high"])).sum())
        floor = coverage_floor(n, 0.95, a)
        if covered < floor:
            problems.append(f"{check}: {covered}/{n} CIs cover the true value (floor {floor})")
        z2 = float((((ok["estimate"] - true) / ok["std_error"]) ** 2).mean())
        lo, hi = stats.chi2.ppf([a / 2, 1 - a / 2], n) / n
        if not lo <= z2 <= hi:
            problems.append(f"{check}: mean z^2 = {z2:.2f} outside [{lo:.2f}, {hi:.2f}]")
    return problems


def read_shards(paths: Sequence[str | Path]) -> list[pd.DataFrame]:
    """Shard files read back."""
    return [pd.read_parquet(p) for p in paths]
