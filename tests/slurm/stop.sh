#!/usr/bin/env bash
# Ends exactly the daemons tests/slurm/start.sh started (listed in $DUALGEN_SLURM_DIR/started, by pid file).
# A daemon that was already running before start.sh (e.g. a system munged) is left alone.
#   bash tests/slurm/stop.sh               slurmd, slurmctld, munged (those start.sh started)
#   bash tests/slurm/stop.sh --slurm-only  slurmd and slurmctld only (start.sh uses it to restart on a new config)
set -uo pipefail
ROOT=${DUALGEN_SLURM_DIR:-/tmp/dualgen-slurm}
STARTED=$ROOT/started
ONLY_SLURM=0
[ "${1:-}" = "--slurm-only" ] && ONLY_SLURM=1

say() { echo "stop.sh: $*"; }
if [ ! -s "$STARTED" ]; then
    say "nothing to stop (no $STARTED)"
    exit 0
fi

stop_one() { # stop_one <name> <pid file>
    local name=$1 pidfile=$2 pid
    pid=$(tr -dc 0-9 <"$pidfile" 2>/dev/null)
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

keep=()
# slurmd first, then slurmctld, then munged (what they authenticate with)
for name in slurmd slurmctld munged; do
    line=$(grep "^$name " "$STARTED" | tail -n 1)
    [ -n "$line" ] || continue
    if [ $ONLY_SLURM = 1 ] && [ "$name" = munged ]; then
        keep+=("$line")
        continue
    fi
    stop_one "$name" "${line#* }"
done
if [ ${#keep[@]} -gt 0 ]; then printf '%s\n' "${keep[@]}" >"$STARTED"; else rm -f "$STARTED"; fi
