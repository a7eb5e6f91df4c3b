#!/usr/bin/env bash
# Ends exactly the daemons of the test cluster, by pid file: slurmd and slurmctld (their pid files are under
# $DUALGEN_SLURM_DIR, so they run the test cluster's config), and munged only when tests/slurm/start.sh started it
# (listed in $DUALGEN_SLURM_DIR/started). A munged that ran before start.sh (e.g. the system's) is left alone.
#   bash tests/slurm/stop.sh               slurmd, slurmctld, munged (those start.sh started)
#   bash tests/slurm/stop.sh --slurm-only  slurmd and slurmctld only (start.sh uses it to restart on a new config)
set -uo pipefail
ROOT=${DUALGEN_SLURM_DIR:-/tmp/dualgen-slurm}
STARTED=$ROOT/started
ONLY_SLURM=0
[ "${1:-}" = "--slurm-only" ] && ONLY_SLURM=1

say() { echo "stop.sh: $*"; }
if [ ! -d "$ROOT" ]; then
    say "nothing to stop (no $ROOT)"
    exit 0
fi

stop_one() { # stop_one <name> <pid file>
    local name=$1 pidfile=$2 pid
    pid=
    [ -s "$pidfile" ] && pid=$(tr -dc 0-9 <"$pidfile")
    if [ -z "$pid" ] || [ ! -r "/proc/$pid/comm" ] || [ "$(cat "/proc/$pid/comm")" != "$name" ]; then
        say "$name not running (pid file $pidfile)"
        return 0
    fi
    kill -TERM "$pid"
    for _ in $(seq 100); do
        [ -r "/proc/$pid/comm" ] || break
        sleep 0.1
    done
    if [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$name" ]; then
        kill -KILL "$pid" 2>/dev/null
        say "stopped $name (pid $pid, KILL after 10 s)"
    else
        say "stopped $name (pid $pid)"
    fi
}

# slurmd first, then slurmctld, then munged (what they authenticate with)
stop_one slurmd "$ROOT/slurmd.pid"
stop_one slurmctld "$ROOT/slurmctld.pid"
line=$(grep "^munged " "$STARTED" 2>/dev/null | tail -n 1)
if [ -n "$line" ] && [ $ONLY_SLURM = 0 ]; then
    stop_one munged "${line#* }"
    rm -f "$STARTED"
elif [ -z "$line" ] && [ $ONLY_SLURM = 0 ]; then
    say "munged: not started by start.sh, left alone"
fi
