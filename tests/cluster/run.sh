#!/usr/bin/env bash
# `make test-cluster`: install SLURM and the executor plugin, then run tests/cluster/ (the
# test starts and stops its own single-node cluster). Exit status is pytest's.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash tests/cluster/install.sh
ALLIANCE_CLUSTER_TEST=1 ALLIANCE_SLURM_PLUGINS=${PLUGINS_DIR:-.venv/cluster-plugins} \
  .venv/bin/python -m pytest -q -p no:cacheprovider tests/cluster "$@"
