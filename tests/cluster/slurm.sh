#!/usr/bin/env bash
# A single-node SLURM cluster for tests, started as plain daemons (no systemd).
#
#   tests/cluster/slurm.sh start   # munged, slurmctld, slurmd; waits until the node is idle
#   tests/cluster/slurm.sh env     # prints `export SLURM_CONF=...` for the shell
#   tests/cluster/slurm.sh stop    # stops the three daemons by their PID files
#
# Everything lives in $ALLIANCE_SLURM_DIR (default /tmp/alliance-slurm): config, munge key and
# socket, spool, logs and PID files, so a system SLURM or munge on the machine is left alone.
# One exception: /etc/slurm/slurm.conf becomes a symlink to our config while the cluster runs
# (refused if a real config is there), because the executor's job step removes SLURM_CONF from
# the environment of the srun it starts inside each job, so srun reads the default path.
# Ports 16817/16818 instead of the defaults for the same reason. Accounting is off
# (accounting_storage/none): sacct then cannot report jobs, so the test passes
# --slurm-status-command squeue, and MinJobAge stays well above 3 x the plugin's
# --slurm-init-seconds-before-status-checks (otherwise the plugin switches back to sacct).
set -euo pipefail

STATE=${ALLIANCE_SLURM_DIR:-/tmp/alliance-slurm}
CONF=$STATE/etc/slurm.conf
NODE=alliance-node
MUNGE_SOCKET=$STATE/munge/munge.socket
SYSTEM_CONF=/etc/slurm/slurm.conf

die() { echo "slurm.sh: $*" >&2; exit 1; }

need() {
  for tool in munged slurmctld slurmd sinfo sbatch squeue scontrol; do
    command -v "$tool" >/dev/null || die "$tool not found: run tests/cluster/install.sh first"
  done
}

write_config() {
  local cpus mem host
  cpus=$(nproc)
  # leave 10 % of memory to the OS; slurmd refuses a node that claims more than it has
  mem=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
  host=$(hostname -s)
  mkdir -p "$STATE"/{etc,log,run,spool/ctld,spool/d,munge}
  cat >"$CONF" <<EOF
ClusterName=alliancetest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
ReturnToService=2
MinJobAge=300
InactiveLimit=0
KillWait=5
SlurmdTimeout=60
NodeName=$NODE NodeHostname=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=test Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
  local key=$STATE/munge/munge.key
  if [[ ! -s $key ]]; then
    umask 077
    dd if=/dev/urandom of="$key" bs=1024 count=1 status=none
  fi
  chmod 0400 "$key"
  chmod 0700 "$STATE/munge"
  # --force: runs as root and accepts a key outside /etc/munge (test machine only)
  munged --force --key-file="$key" --socket="$MUNGE_SOCKET" \
    --pid-file="$STATE/run/munged.pid" --log-file="$STATE/log/munged.log" \
    --seed-file="$STATE/munge/munged.seed"
}

wait_idle() {
  local state=""
  for _ in $(seq 1 60); do
    state=$(sinfo -h -n "$NODE" -o %T 2>/dev/null || true)
    case $state in
      idle*) return 0 ;;
      down* | drain* | unknown*) scontrol update nodename="$NODE" state=resume 2>/dev/null || true ;;
    esac
    sleep 0.5
  done
  die "node $NODE not idle after 30 s (state '$state'); see $STATE/log/"
}

start() {
  need
  stop_quiet
  write_config
  if [[ -e $SYSTEM_CONF && ! -L $SYSTEM_CONF ]]; then
    die "$SYSTEM_CONF exists and is not ours: this test needs a machine without a SLURM config"
  fi
  mkdir -p "$(dirname "$SYSTEM_CONF")"
  ln -sfn "$CONF" "$SYSTEM_CONF"
  export SLURM_CONF=$CONF
  start_munge
  slurmctld -f "$CONF"
  slurmd -f "$CONF" -N "$NODE"
  wait_idle
  echo "slurm.sh: single-node SLURM up (SLURM_CONF=$CONF)"
}

stop_pid() {
  local file=$1 pid
  [[ -f $file ]] || return 0
  pid=$(cat "$file")
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$file"
}

stop_quiet() {
  # slurmd before slurmctld before munged: each needs the next to shut down cleanly
  for daemon in slurmd slurmctld munged; do
    stop_pid "$STATE/run/$daemon.pid"
  done
  if [[ -L $SYSTEM_CONF && $(readlink "$SYSTEM_CONF") == "$CONF" ]]; then
    rm -f "$SYSTEM_CONF"
  fi
}

case ${1:-} in
  start) start ;;
  stop) stop_quiet && echo "slurm.sh: stopped" ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) die "usage: $0 start|stop|env" ;;
esac
