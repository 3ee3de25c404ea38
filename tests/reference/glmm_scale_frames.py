"""Regenerate the binomial GLMM frames of the bench's trials (issue #16): 10k, 120k, 600k rows.

Why: the lme4 reference for GLMMs at scale (glmm_scale_reference[_<trial>].csv, written by
make_glmm_scale_reference.R) is fitted on frames far too large to commit, so they are rebuilt
from the bench's fixed seed: `alliance.studies.bench.trials` TRIALS[trial] and SEED, simulated,
cleaned and scored in process (`alliance.studies.recovery.prepare_trial`) and framed by the
pipeline's own `fit_model`. The same code gives the same frames on every run.

    PYTHONPATH=workflow python tests/reference/glmm_scale_frames.py OUTDIR [--trial T] [MODEL ...]

(trial 120k unless given) writes OUTDIR/<model>_frame.csv (17 significant digits),
OUTDIR/<model>_formula_r.txt (the R call fit.json carries), OUTDIR/<model>_fit.json (the
pipeline's fit) and OUTDIR/<model>_start.csv (its estimates, as lme4 start values) for the given
models, by default those of MODELS.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from alliance.studies.bench.trials import REFERENCE_PROCESS

ROOT = Path(__file__).resolve().parents[2]
# The trial as it was when the lme4 reference was fitted (the bench simulates the same process)
FROZEN = REFERENCE_PROCESS
# one per binomial GLMM kind: the discrete-time hazard and the glmm
MODELS = ("dropout_hazard", "suicidality")
TRIAL = "120k"


@dataclasses.dataclass
class Prepared:
    """The cleaned and scored trial plus what fit_model needs."""

    tables: dict[str, Any]
    specs: dict[str, Any]
    settings: Any


def prepare(trial: str = TRIAL) -> Prepared:
    """Simulate the bench trial `trial` from its seed, then clean and score it in process."""
    from alliance.config import load_config
    from alliance.models.spec import load_specs
    from alliance.score.scales import load_raters
    from alliance.settings import Settings
    from alliance.simulate.trial import simulate_trial
    from alliance.studies.bench.trials import SEED, TRIALS
    from alliance.studies.recovery import Pipeline, prepare_trial

    patients, therapists = TRIALS[trial]
    settings = Settings.from_config(load_config(ROOT / "config" / "config.yaml"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        raters = load_raters(settings.alliance)
    specs = {s.id: s for s in load_specs(settings.models)}
    sim = simulate_trial(n_patients=patients, n_therapists=therapists, seed=SEED, **FROZEN)
    tables = prepare_trial(sim, Pipeline(settings=settings, raters=raters, specs=specs))
    return Prepared(tables=tables, specs=specs, settings=settings)


def model_frame(prep: Prepared, model: str) -> tuple[pd.DataFrame, Any]:
    """The exported frame of `model` and its spec (framed exactly as the pipeline frames it)."""
    from alliance.models.frames import model_frame as frame_of

    spec = prep.specs[model]
    codings = prep.settings.model_stage().codings
    frame, meta = frame_of(
        spec, prep.tables["sessions"], prep.tables["patients"], prep.tables["availability"],
        arms=codings.arm, arm_reference=codings.arm_reference,
    )  # fmt: skip
    return frame, meta


def fit(prep: Prepared, model: str) -> Any:
    """The pipeline's in-memory fit of `model` (alliance.models.run.fit_model)."""
    from alliance.models.run import fit_model

    return fit_model(
        prep.specs[model], prep.tables["sessions"], prep.tables["patients"],
        prep.tables["availability"], prep.settings.model_stage(),
    )  # fmt: skip


def write(outdir: Path, models: tuple[str, ...] = MODELS, trial: str = TRIAL) -> None:
    """OUTDIR/<model>_frame.csv and <model>_fit.json for each of `models` of `trial`."""
    outdir.mkdir(parents=True, exist_ok=True)
    prep = prepare(trial)
    for model in models:
        result, timing = fit(prep, model)
        result.frame.to_csv(outdir / f"{model}_frame.csv", index=False, float_format="%.17g")
        (outdir / f"{model}_formula_r.txt").write_text(str(result.fit["formula_r"]) + "\n")
        (outdir / f"{model}_fit.json").write_text(
            json.dumps({**result.fit, "timing": timing}, indent=1, default=str) + "\n"
        )
        write_start(
            outdir / f"{model}_start.csv", result.coefficients, result.fit["variance_components"]
        )


def write_start(path: Path, coefficients: pd.DataFrame, components: list[dict[str, Any]]) -> None:
    """Our estimates as lme4 start values (GLMM_SCALE_START=1 in the R script): fixef, and
    theta = the SD of each random intercept (the only random terms these models have)."""
    rows = [("theta", c["group"], c["sd"]) for c in components if not c.get("term2")]
    rows += [("fixef", t, e) for t, e in coefficients[["term", "estimate"]].itertuples(index=False)]
    table = pd.DataFrame(rows, columns=["section", "term", "value"])
    table.to_csv(path, index=False, float_format="%.17g")


def main(argv: list[str]) -> None:
    """OUTDIR [--trial T] [MODEL ...]."""
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--trial", default=TRIAL)
    ap.add_argument("models", nargs="*")
    args = ap.parse_intermixed_args(argv)
    write(args.outdir, tuple(args.models) or MODELS, args.trial)


if __name__ == "__main__":
    main(sys.argv[1:])
