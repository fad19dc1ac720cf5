#!/usr/bin/env bash
# Stop what up.sh started (by pid file) and remove its configuration.
set -uo pipefail
: "${SLURM_ROOT:?set SLURM_ROOT to the state folder of up.sh}"
stop() {
  [ -s "$1" ] || return 0
  local pid
  pid=$(cat "$1")
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.25; done
  kill -9 "$pid" 2>/dev/null
}
stop "$SLURM_ROOT/run/slurmd.pid"
stop "$SLURM_ROOT/run/slurmctld.pid"
[ -e "$SLURM_ROOT/run/munged.ours" ] && stop /run/munge/munged.pid
if grep -qF "# written by intervene tests/slurm/up.sh" /etc/slurm/slurm.conf 2>/dev/null; then
  rm -f /etc/slurm/slurm.conf /etc/slurm/gres.conf
fi
