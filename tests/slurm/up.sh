#!/usr/bin/env bash
# Start a throw-away single-node Slurm (Debian's packages, no systemd) for the Slurm tests:
# partitions `cpu` (default) and `gpu` (two fake GPUs), no accounting (jobs are polled with squeue).
# Usage (root): SLURM_ROOT=<empty state dir> bash tests/slurm/up.sh ; stop it with down.sh.
# Slurm reads /etc/slurm/*.conf (the executor plugin's inner srun drops SLURM_CONF), so this refuses
# to touch a machine whose slurm.conf it did not write.
set -euo pipefail
: "${SLURM_ROOT:?set SLURM_ROOT to a state folder}"
MARK="# written by intervene tests/slurm/up.sh"
if [ -e /etc/slurm/slurm.conf ] && ! grep -qF "$MARK" /etc/slurm/slurm.conf; then
  echo "up.sh: /etc/slurm/slurm.conf belongs to another Slurm; not touching it" >&2
  exit 3
fi
export DEBIAN_FRONTEND=noninteractive
need=""
for cmd in slurmctld slurmd sbatch munged; do command -v "$cmd" >/dev/null 2>&1 || need=1; done
if [ -n "$need" ]; then
  apt-get update -qq
  # no systemd here: the packages' services do not start on install; we start the daemons below
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi
mkdir -p "$SLURM_ROOT"/{state,spool,log,run,dev} /etc/slurm
touch "$SLURM_ROOT"/dev/gpu0 "$SLURM_ROOT"/dev/gpu1
# this machine's CPUs and memory, as slurmd sees them (the node must not claim more)
hw=$(slurmd -C | head -n1 | sed -E 's/^NodeName=[^ ]+ //; s/ UpTime=.*//')
cat > /etc/slurm/slurm.conf <<CONF
$MARK
ClusterName=intervene-ci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
MailProg=/bin/true
StateSaveLocation=$SLURM_ROOT/state
SlurmdSpoolDir=$SLURM_ROOT/spool
SlurmctldPidFile=$SLURM_ROOT/run/slurmctld.pid
SlurmdPidFile=$SLURM_ROOT/run/slurmd.pid
SlurmctldLogFile=$SLURM_ROOT/log/slurmctld.log
SlurmdLogFile=$SLURM_ROOT/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
ReturnToService=2
SlurmdTimeout=300
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 $hw Gres=gpu:2 State=UNKNOWN
PartitionName=cpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=localhost Default=NO MaxTime=INFINITE State=UP
CONF
# fake GPUs: a gres line without File= is dropped and the node drains
echo "NodeName=localhost Name=gpu File=$SLURM_ROOT/dev/gpu[0-1]" > /etc/slurm/gres.conf
install -d -o munge -g munge -m 0755 /run/munge
if ! munge -n >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged
  touch "$SLURM_ROOT/run/munged.ours"
fi
setsid nohup slurmctld -D -c >"$SLURM_ROOT/log/slurmctld.out" 2>&1 </dev/null &
for _ in $(seq 60); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.5; done
setsid nohup slurmd -D -N localhost >"$SLURM_ROOT/log/slurmd.out" 2>&1 </dev/null &
for _ in $(seq 120); do
  [ "$(sinfo -h -n localhost -o %T 2>/dev/null | head -n1)" = idle ] && break
  sleep 0.5
done
sinfo -o '%P %N %G %c %m %T'
[ "$(sinfo -h -n localhost -o %T | head -n1)" = idle ] || { echo "up.sh: node not idle" >&2; exit 1; }
