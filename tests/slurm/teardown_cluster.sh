#!/usr/bin/env bash
# Stop every daemon tests/slurm/setup_cluster.sh started (and only those), newest first:
# slurmd, slurmctld, slurmdbd, MariaDB, munged. Jobs still queued are cancelled first.
# Installed packages, configs and the accounting database stay (the next setup reuses them).
set -uo pipefail

STATE=${VITAFF_SLURM_STATE:-/tmp/vitaff-slurm}
say() { echo "teardown_cluster: $*" >&2; }

if [ ! -s "$STATE/pids" ]; then
    say "nothing recorded in $STATE/pids; nothing to stop"
    exit 0
fi

if grep -q '^slurmctld ' "$STATE/pids" && command -v scancel >/dev/null; then
    timeout 10 scancel --user=root >/dev/null 2>&1 || true
fi

tac "$STATE/pids" | while read -r name pidfile; do
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
        say "$name not running"
        continue
    fi
    kill -TERM "$pid"
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then
        say "$name ($pid) ignored SIGTERM for 30 s; SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    say "stopped $name ($pid)"
done
: > "$STATE/pids"
