#!/usr/bin/env bash
# Stop the daemons tests/slurm/start.sh started: exactly the PIDs it recorded, nothing by name.
set -uo pipefail
DIR=${SCALEDAG_SLURM_DIR:-/tmp/scaledag-slurm}
for name in slurmd slurmctld munge/munged; do
    pidfile=$DIR/$name.pid
    [[ -f $pidfile ]] || continue
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
    rm -f "$pidfile"
done
# The default-path link start.sh made, if it still points into this directory.
if [[ -L /etc/slurm/slurm.conf && $(readlink /etc/slurm/slurm.conf) == "$DIR"/* ]]; then
    rm -f /etc/slurm/slurm.conf
fi
