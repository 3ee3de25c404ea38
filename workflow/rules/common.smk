# Shared helpers: config validation at start, input functions, wildcard constraints.
import dataclasses
from pathlib import Path

from alliance.code_digest import script_digest
from alliance.config import load_config, logs_folder
from alliance.errors import ConfigError
from alliance.models.preflight import preflight
from alliance.models.spec import load_specs
from alliance.settings import Settings

# The project reads the config file itself (alliance.config: safe YAML, bounded, no templating,
# schema-checked) before anything runs: pass it as `--config configpath=my.yaml` (what
# `make run CONFIG=my.yaml` does). Snakemake's own --configfile would evaluate templating markers
# in the file before any check could see them, so it is refused.
if set(config) - {"configpath"}:
    raise ConfigError(
        "pass the config file as `--config configpath=FILE` (or `make run CONFIG=FILE`), not with "
        "--configfile or other --config values: the project reads and checks it itself"
    )
CONFIG_PATH = str(config.pop("configpath", "config/config.yaml"))
config.update(load_config(CONFIG_PATH))
# Typed, frozen sections. Each rule passes its stage's view as a JSON param (SETTINGS.clean()
# .to_json(), ...): the script rebuilds the view from it, and an edit to a section the stage
# reads changes the param, so Snakemake reruns exactly the jobs that read it.
SETTINGS = Settings.from_mapping(config)  # already validated by load_config

SPECS = {spec.id: spec for spec in load_specs(SETTINGS.models)}
MODEL_IDS = list(SPECS)
# Before any job runs (so nothing is written or removed): data files exist, every model names
# only columns the clean and score stages write for this config, bootstrap/sensitivity list
# fitted models, the pseudonym key passes the key policy. Jobs that Snakemake starts as processes
# of their own (cluster execution) parse this file again and skip it.
if workflow.is_main_process:
    preflight(SETTINGS, SPECS.values())

# The trial's results folder (config `output`, resolved by load_config) and its logs.
RESULTS = SETTINGS.output
LOGS = logs_folder(RESULTS)
# One pinned environment for every rule (same pins as requirements.lock); used with --sdm conda.
ENV = "../../environment.yml"


def code(script):
    """Digest of the package code `workflow/scripts/<script>.py` runs (alliance.code_digest): a
    rule passes it as a param, so an edit to that code reruns the rule's jobs."""
    return script_digest(
        Path(workflow.basedir) / "workflow" / "scripts" / f"{script}.py"
    )


def model_settings(wildcards):
    """The model stage's view narrowed to one model (its job reruns only when it changes)."""
    spec = dataclasses.asdict(SPECS[wildcards.model])
    return SETTINGS.model_stage().for_model(spec).to_json()


def data_inputs(wildcards):
    """The raw export files named in config, so edits to them trigger a rerun."""
    files = {"sessions": SETTINGS.data.sessions}
    if SETTINGS.data.patients:
        files["patients"] = SETTINGS.data.patients
    return files


def instrument_files(wildcards):
    """Instrument YAMLs in use: changing a scoring key reruns the affected stages (one defined
    in the config, alliance.instruments, does so through the settings params)."""
    folder = Path(SETTINGS.alliance.instruments_dir)
    names = [r["instrument"] for r in SETTINGS.alliance.rater_specs().values()]
    if SETTINGS.symptoms.instrument:
        names.append(SETTINGS.symptoms.instrument)
    names = set(names) - set(SETTINGS.alliance.instruments)
    return sorted(str(folder / f"{name}.yaml") for name in names)


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
        *rules.prune_models.output,
        *rules.prune_studies.output,
        *stage_outputs(),
        *rules.tables.output,
        *rules.figures.output,
        *rules.figures_resistance.output,
        *rules.overview.output,
        *rules.provenance.output,
        *bootstrap_outputs(),
        *sensitivity_outputs(),
    ]
