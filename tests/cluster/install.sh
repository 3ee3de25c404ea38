#!/usr/bin/env bash
# Install what the SLURM test needs (run as root, as CI and the test machines do):
# Debian's slurmctld, slurmd, slurm-client and munge (not started: policy-rc.d or no systemd),
# and the Snakemake SLURM executor plugins at pinned versions into $PLUGINS_DIR (default
# .venv/cluster-plugins), which the test puts on PYTHONPATH. Not into the venv itself: Snakemake
# imports every installed executor plugin at start-up, and this one imports pandas, which would
# add about a second to every local run. Their other dependencies are pinned in
# requirements.lock, hence --no-deps.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${VENV:-.venv}
PLUGINS_DIR=${PLUGINS_DIR:-$VENV/cluster-plugins}
PLUGINS=(snakemake-executor-plugin-slurm==2.8.0 snakemake-executor-plugin-slurm-jobstep==0.6.1)

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
  || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi

if ! PYTHONPATH=$PLUGINS_DIR "$VENV/bin/python" -c \
  "import snakemake_executor_plugin_slurm, snakemake_executor_plugin_slurm_jobstep" 2>/dev/null; then
  "$VENV/bin/uv" pip install --quiet --python "$VENV/bin/python" --no-deps \
    --target "$PLUGINS_DIR" "${PLUGINS[@]}"
fi
echo "install.sh: slurmd $(dpkg-query -W -f='${Version}' slurmd), plugins in $PLUGINS_DIR"
