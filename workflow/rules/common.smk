# Shared helpers: config validation at start, input functions, wildcard constraints.
from pathlib import Path

from alliance.config import load_config, validate_config
from alliance.models.spec import load_specs
from alliance.settings import Settings

# An explicit --configfile replaces the demo config wholesale (no silent merge with demo values).
config.update(validate_config(config) if config else load_config("config/config.yaml"))
# Typed, frozen sections. Each rule passes its stage's view as a JSON param (SETTINGS.clean()
# .to_json(), ...): the script rebuilds the view from it, and an edit to a section the stage
# reads changes the param, so Snakemake reruns exactly the jobs that read it.
SETTINGS = Settings.from_config(config)

MODEL_IDS = [spec.id for spec in load_specs(SETTINGS.models)]

RESULTS = "results"
# One pinned environment for every rule (same pins as requirements.lock); used with --sdm conda.
ENV = "../../environment.yml"
LOGS = "logs"


def data_inputs(wildcards):
    """The raw export files named in config, so edits to them trigger a rerun."""
    files = {"sessions": config["data"]["sessions"]}
    if config["data"]["patients"]:
        files["patients"] = config["data"]["patients"]
    return files


def instrument_files(wildcards):
    """Instrument YAMLs in use (changing a scoring key reruns the affected stages)."""
    folder = Path(config["alliance"]["instruments_dir"])
    names = [r["instrument"] for r in config["alliance"]["raters"].values() if r]
    if config["symptoms"]["instrument"]:
        names.append(config["symptoms"]["instrument"])
    return sorted(str(folder / f"{name}.yaml") for name in set(names))


def stage_outputs():
    """Every output of the analysis stages (provenance runs after them)."""
    return [
        *rules.clean.output,
        *rules.score.output,
        *rules.alliance_icc.output,
        *rules.model_summary.output,
    ]


wildcard_constraints:
    model="|".join(MODEL_IDS) or "no-models",


def bootstrap_outputs():
    """ci.csv of every model listed in bootstrap.models (none by default)."""
    return expand(f"{RESULTS}/bootstrap/{{model}}/ci.csv", model=BOOTSTRAP.models)


def sensitivity_outputs():
    """The sensitivity grid, when models are listed for it (none by default)."""
    return [f"{RESULTS}/sensitivity/grid.csv"] if SETTINGS.sensitivity.models else []


def all_outputs():
    """Every final output of the pipeline (the default target)."""
    return [
        *stage_outputs(),
        *rules.tables.output,
        *rules.figures.output,
        *rules.overview.output,
        *rules.provenance.output,
        *bootstrap_outputs(),
        *sensitivity_outputs(),
    ]
