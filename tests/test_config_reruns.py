"""Config is an input: after a finished demo run, an edit to one config section makes Snakemake
rerun exactly the jobs whose stage reads that section (each rule passes its settings view as a
param), and nothing when the config is unchanged. A changed model, bootstrap or sensitivity list
also reruns `prune_models` or `prune_studies`, which remove what the new config no longer
produces."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from pipeline_runs import command, environment, reference_run

pytestmark = pytest.mark.slow

CLEAN_DOWN = {"clean", "score", "alliance_icc", "model", "model_summary"}
RENDER = {"tables", "figures", "figures_resistance", "overview"}
# section edited -> jobs that must rerun (provenance describes the whole config: always).
CASES = {
    "symptoms__remission_cutoff": (8, CLEAN_DOWN | RENDER),
    "dropout__min_sessions": (10, CLEAN_DOWN | RENDER),
    # a scoring key defined in the config (the demo's observer scale), not in a YAML file
    "alliance__instruments__demo_observer__reverse": ([], CLEAN_DOWN | RENDER),
    "privacy__key": ("another-demo-key-0123456789abcdef", CLEAN_DOWN | RENDER),
    "score__early_window": ([1, 4], {"score", "alliance_icc", "model", "model_summary"} | RENDER),
    "trial_name": ("Renamed trial", RENDER),
    # the model set decides the outputs: prune_models reruns (and removes the disabled model's
    # folder) before the render jobs read the folder
    "models__disable": (["suicidality"], {"prune_models", "model_summary"} | RENDER),
    "bootstrap__n_boot": (50, set()),
    "bootstrap__models": (
        ["symptoms_growth"],
        {"prune_studies", "bootstrap_shard", "bootstrap_gather"},
    ),
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    return reference_run(tmp_path_factory)


def _copy(run, tmp_path: Path) -> Path:
    work = tmp_path / "run"
    shutil.copytree(run.workdir, work, symlinks=True)  # keeps mtimes and .snakemake metadata
    return work


def _edit(config: Path, dotted: str, value: object) -> None:
    cfg = yaml.safe_load(config.read_text())
    node = cfg
    *parents, last = dotted.split("__")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))


def _planned(work: Path) -> set[str]:
    """Rules of the jobs a dry run would run."""
    proc = subprocess.run(
        command(work, work / "config.yaml", "-n"),
        capture_output=True,
        text=True,
        env=environment(),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return set()
    stats = text.split("Job stats:", 1)[1]
    rules = set(re.findall(r"^(\w+)\s+\d+\s*$", stats, flags=re.M))
    return rules - {"all", "total"}


def test_an_unchanged_config_reruns_nothing(finished, tmp_path: Path) -> None:
    assert _planned(_copy(finished, tmp_path)) == set()


@pytest.mark.parametrize("dotted", sorted(CASES))
def test_an_edit_reruns_exactly_the_jobs_that_read_it(finished, tmp_path: Path, dotted: str):
    work = _copy(finished, tmp_path)
    value, expected = CASES[dotted]
    _edit(work / "config.yaml", dotted, value)
    planned = _planned(work)
    assert planned == expected | {"provenance"}, f"{dotted}: {sorted(planned)}"
