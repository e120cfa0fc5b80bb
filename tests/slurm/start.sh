#!/usr/bin/env bash
# Start a one-node Slurm cluster on this host for the HPC tests (no systemd, no slurmdbd).
# Installs Debian's slurmctld/slurmd/slurm-client/munge when missing (needs root), writes a
# slurm.conf for this host under $SCALEDAG_SLURM_DIR, starts munged, slurmctld and slurmd, records
# their PIDs in that directory (tests/slurm/stop.sh ends exactly those) and waits until the node
# is idle. Prints `export SLURM_CONF=...` for clients on its last line.
set -euo pipefail

DIR=${SCALEDAG_SLURM_DIR:-/tmp/scaledag-slurm}
if [[ $(id -u) -ne 0 ]]; then
    echo "tests/slurm/start.sh: must run as root (installs packages, starts munged/slurmd)" >&2
    exit 2
fi
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
        || ! command -v munged >/dev/null; then
    echo "installing slurmctld slurmd slurm-client munge" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >&2
fi

mkdir -p "$DIR"/{ctld,spool,log}
CONF=$DIR/slurm.conf
export SLURM_CONF=$CONF

# Inside a job, Snakemake's jobstep plugin wraps each single-task job in `srun` with every SLURM_*
# variable removed, SLURM_CONF included, so that srun finds the cluster only at the compiled-in
# default path, as on a real cluster. Link ours there; a site's own file (not a link) is left alone.
link_conf() {
    if [[ -L /etc/slurm/slurm.conf || ! -e /etc/slurm/slurm.conf ]]; then
        mkdir -p /etc/slurm && ln -sfn "$CONF" /etc/slurm/slurm.conf
    else
        echo "tests/slurm/start.sh: /etc/slurm/slurm.conf is a site file; srun inside jobs will use it, not $CONF" >&2
    fi
}

# Already running (same directory) and answering: nothing to do (its node may be busy).
if [[ -f $DIR/slurmctld.pid ]] && kill -0 "$(cat "$DIR/slurmctld.pid")" 2>/dev/null \
        && [[ -f $DIR/slurmd.pid ]] && kill -0 "$(cat "$DIR/slurmd.pid")" 2>/dev/null \
        && sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mix|mixed|alloc|allocated|completing)$'; then
    link_conf
    echo "export SLURM_CONF=$CONF"
    exit 0
fi

# Daemons of an earlier start that do not answer: end them (by their recorded PIDs) first.
SCALEDAG_SLURM_DIR=$DIR bash "$(dirname "$0")/stop.sh"

HOST=$(hostname -s)
# slurmd -C describes this machine (CPUs, sockets, memory); keep a little memory for the OS.
NODE=$(slurmd -C | head -n1)
MEM=$(sed -nE 's/.*RealMemory=([0-9]+).*/\1/p' <<<"$NODE")
NODE=$(sed -E "s/RealMemory=[0-9]+/RealMemory=$((MEM * 9 / 10))/" <<<"$NODE")

cat >"$CONF" <<CONF
# One-node test cluster written by tests/slurm/start.sh (no cgroups, no accounting daemon).
ClusterName=scaledag
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=${SCALEDAG_SLURMCTLD_PORT:-6817}
SlurmdPort=${SCALEDAG_SLURMD_PORT:-6818}
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
# Finished jobs stay visible to squeue (and scontrol) for 10 minutes: the squeue status command needs it.
MinJobAge=600
DefMemPerCPU=500
KillWait=10
SlurmdTimeout=60
InactiveLimit=0
$NODE State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

link_conf

# munged: Debian's package ships a key; make one if it is missing.
if [[ ! -s /etc/munge/munge.key ]]; then
    mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
    chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
fi
mkdir -p /run/munge /var/log/munge /var/lib/munge "$DIR/munge"
chown munge:munge /run/munge /var/log/munge /var/lib/munge "$DIR/munge"
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    su -s /bin/sh munge -c "/usr/sbin/munged --pid-file=$DIR/munge/munged.pid" 2>>"$DIR/log/munged.err"
    for _ in $(seq 50); do munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
fi

slurmctld -f "$CONF" -i >>"$DIR/log/slurmctld.out" 2>&1
slurmd -f "$CONF" -b >>"$DIR/log/slurmd.out" 2>&1

for _ in $(seq 120); do
    state=$(sinfo -h -n "$HOST" -o %T 2>/dev/null || true)
    if [[ $state == idle ]]; then
        echo "export SLURM_CONF=$CONF"
        exit 0
    fi
    if [[ $state == down* || $state == drain* ]]; then
        scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true
    fi
    sleep 0.5
done
echo "tests/slurm/start.sh: node $HOST did not become idle in 60 s (state: ${state:-none}); see $DIR/log" >&2
tail -n 20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
exit 1
