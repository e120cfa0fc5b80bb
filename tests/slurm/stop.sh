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
