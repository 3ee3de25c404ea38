"""The demo pipeline on a real single-node SLURM cluster gives the same results as a local run.

Runs only with ALLIANCE_CLUSTER_TEST=1 (`make test-cluster`, which installs SLURM and the executor
plugin first): the cluster is started from Debian's packages inside this machine by
tests/cluster/slurm.sh and stopped again whatever happens. A small DAG (clean -> score -> two
models and the alliance ICC, three dependency waves) keeps it to a couple of minutes: each SLURM
job costs ~5 s of overhead and each wave 10-15 s of status polling.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from workflow_helpers import ROOT, SNAKEMAKE, absolute_config  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("ALLIANCE_CLUSTER_TEST") != "1",
        reason="needs a SLURM cluster: run `make test-cluster`",
    ),
]
SLURM_SH = Path(__file__).with_name("slurm.sh")
STATE = Path(os.environ.get("ALLIANCE_SLURM_DIR", "/tmp/alliance-slurm"))
# The executor plugins live outside the venv (see install.sh); SLURM jobs inherit PYTHONPATH.
PLUGINS = Path(os.environ.get("ALLIANCE_SLURM_PLUGINS", ROOT / ".venv" / "cluster-plugins"))
MODELS = ("symptoms_growth", "dropout_gee")
TARGETS = [
    "results/clean/sessions.parquet",
    "results/clean/patients.parquet",
    "results/clean/flow.csv",
    "results/clean/validation.csv",
    "results/scores/analysis.parquet",
    "results/scores/patient_analysis.parquet",
    "results/scores/reliability.csv",
    "results/scores/alliance_icc.csv",
    *(f"results/models/{m}/{f}" for m in MODELS for f in ("coefficients.csv", "fit.json")),
]
# The plugin's first status check comes this many seconds after a submission, and again after
# each finished job; MinJobAge (300 s in slurm.sh) must stay above 3 x this for squeue to work.
INIT_SECONDS = 5


@pytest.fixture(scope="module")
def cluster():
    """A running single-node SLURM; the environment that reaches it. Stopped afterwards."""
    proc = subprocess.run(["bash", str(SLURM_SH), "start"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    path = os.pathsep.join(p for p in (str(PLUGINS.resolve()), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "SLURM_CONF": str(STATE / "etc" / "slurm.conf"), "PYTHONPATH": path}
    try:
        yield env
    finally:
        subprocess.run(["bash", str(SLURM_SH), "stop"], capture_output=True, text=True)


def _snakemake(workdir: Path, config: Path, profile: str, env: dict, *extra: str):
    cmd = [
        str(SNAKEMAKE), "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
        "--config", f"configpath={config}",
        "--workflow-profile", str(ROOT / "workflow" / "profiles" / profile),
        *extra, *TARGETS,
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1500)


def test_slurm_run_equals_local_run(cluster, tmp_path):
    local, remote = tmp_path / "local", tmp_path / "slurm"
    cfg_local = absolute_config(ROOT / "config" / "config.yaml", local.mkdir() or local)
    cfg_remote = absolute_config(ROOT / "config" / "config.yaml", remote.mkdir() or remote)

    proc = _snakemake(local, cfg_local, "default", cluster, "--cores", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = _snakemake(
        remote, cfg_remote, "slurm", cluster,
        "--slurm-status-command", "squeue",
        "--slurm-init-seconds-before-status-checks", str(INIT_SECONDS),
        "--slurm-no-account", "--slurm-keep-successful-logs",
    )  # fmt: skip
    job_logs = sorted(remote.glob(".snakemake/slurm_logs/**/*.log"))
    tails = "\n".join(f"== {p}\n{p.read_text()[-1500:]}" for p in job_logs)
    assert proc.returncode == 0, proc.stderr[-4000:] + tails

    # every job ran as a SLURM job (its sbatch log exists), none locally
    ran = {p.relative_to(remote / ".snakemake" / "slurm_logs").parts[0] for p in job_logs}
    assert ran == {"rule_clean", "rule_score", "rule_alliance_icc", "rule_model"}, ran
    assert len([p for p in job_logs if "rule_model" in p.parts]) == len(MODELS)
    for target in TARGETS:
        a, b = (local / target).read_bytes(), (remote / target).read_bytes()
        assert a == b, f"{target} differs between the local and the SLURM run"
