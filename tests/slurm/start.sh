#!/usr/bin/env bash
# A one-node Slurm cluster on this host, for tests/test_slurm.py (and for trying profiles/slurm by hand).
#
#   bash tests/slurm/start.sh     install (Debian: slurmctld slurmd slurm-client munge) when missing, start munged,
#                                 slurmctld and slurmd, wait until the node is idle; safe to run again
#   bash tests/slurm/stop.sh      ends the daemons this script started (by their pid files)
#
# "Configless" Slurm: slurmctld reads $DUALGEN_SLURM_DIR/slurm.conf, slurmd fetches it from slurmctld and links
# its copy at /run/slurm/conf/slurm.conf, where sbatch, squeue, sinfo and srun look when SLURM_CONF is unset and
# /etc/slurm/slurm.conf does not exist. (SLURM_CONF alone is not enough: the plugin's job step drops every SLURM_*
# variable before it calls srun inside the job.) Nothing is written under /etc except the munge key.
# No accounting (no slurmdbd): use the squeue status check (profiles/slurm sets it). MinJobAge=3600 keeps finished
# jobs visible to squeue for 5 minutes. Everything lives under $DUALGEN_SLURM_DIR (default /tmp/dualgen-slurm).
# Needs root (package installation, daemons as root). Exits non-zero with one "start.sh: cannot ..." line on stderr
# when Slurm cannot be installed or started.
set -uo pipefail
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:${PATH:-}"

ROOT=${DUALGEN_SLURM_DIR:-/tmp/dualgen-slurm}
CONF=$ROOT/slurm.conf
STARTED=$ROOT/started   # "munged <pid file>" when this script started munged; read by stop.sh
WAIT_SECONDS=${DUALGEN_SLURM_WAIT:-90}
HOST=$(hostname -s)
PARTITION=test

say() { echo "start.sh: $*"; }
fail() {
    echo "start.sh: cannot start Slurm: $*" >&2
    exit 1
}
alive() { # alive <pid file> <process name>: the pid in the file runs and is that program
    local pid
    [ -s "$1" ] || return 1
    pid=$(tr -dc 0-9 <"$1")
    [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$2" ]
}

# ---- 1. packages --------------------------------------------------------------------------------------------------
missing=()
for pair in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client squeue:slurm-client munged:munge; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
    [ "$(id -u)" = 0 ] || fail "missing ${pkgs}and not root (install them, or run as root)"
    command -v apt-get >/dev/null 2>&1 || fail "missing ${pkgs}and no apt-get here (install Slurm + munge by hand)"
    say "installing ${pkgs}(apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    # no init system here: keep the packages' maintainer scripts from starting daemons; this script starts them
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [ ! -e $policy ]; then
        printf '#!/bin/sh\nexit 101\n' >$policy && chmod 755 $policy && own_policy=1
    fi
    apt_install() { apt-get install -y -q --no-install-recommends "${missing[@]}" >"$ROOT.apt.log" 2>&1; }
    mkdir -p "$(dirname "$ROOT")"
    ok=0
    if apt-cache show slurmctld slurmd slurm-client munge >/dev/null 2>&1 && apt_install; then
        ok=1
    else
        say "package lists missing or stale: apt-get update"
        if apt-get update -q >"$ROOT.apt.log" 2>&1 && apt_install; then ok=1; fi
    fi
    [ $own_policy = 1 ] && rm -f $policy
    [ $ok = 1 ] || fail "apt-get could not install ${pkgs}(no package registry reachable?); see $ROOT.apt.log"
    for cmd in slurmctld slurmd sbatch squeue munged; do
        command -v $cmd >/dev/null 2>&1 || fail "$cmd still missing after installing ${pkgs}"
    done
else
    say "packages present: $(slurmctld -V 2>/dev/null || echo slurm), munge"
fi
[ "$(id -u)" = 0 ] || fail "the test cluster runs its daemons as root; run this script as root"
if [ -e /etc/slurm/slurm.conf ] || [ -e /etc/slurm-llnl/slurm.conf ]; then
    fail "this host has its own /etc/slurm/slurm.conf (part of a real cluster?): the test cluster would clash with it"
fi
unset SLURM_CONF

# ---- 2. munge -----------------------------------------------------------------------------------------------------
mkdir -p "$ROOT"/{state,spool,log}
: >>"$STARTED"
key=/etc/munge/munge.key
if [ ! -s $key ]; then
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile=$key --force >/dev/null 2>&1 || dd if=/dev/urandom of=$key bs=1024 count=1 status=none
    else
        dd if=/dev/urandom of=$key bs=1024 count=1 status=none
    fi
    say "created munge key $key"
fi
chown munge:munge /etc/munge $key && chmod 700 /etc/munge && chmod 400 $key || fail "cannot set owner munge on $key"
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown munge:munge /run/munge /var/lib/munge /var/log/munge && chmod 755 /run/munge
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "munged already running"
else
    rm -f /run/munge/munged.pid
    runuser -u munge -- munged --force >"$ROOT/log/munged.start" 2>&1 || fail "munged did not start: $(tail -n 1 "$ROOT/log/munged.start")"
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.2; done
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 || fail "munged started but munge/unmunge fails (see /var/log/munge/munged.log)"
    grep -q '^munged ' "$STARTED" || echo "munged /run/munge/munged.pid" >>"$STARTED"
    say "started munged (pid $(cat /run/munge/munged.pid 2>/dev/null), user munge, /run/munge)"
fi

# ---- 3. slurm.conf ------------------------------------------------------------------------------------------------

cpus=$(nproc --all)  # --all: OMP_NUM_THREADS in the environment must not shrink the node
mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
def_mem=$(( mem_mb / cpus < 1024 ? mem_mb / cpus : 1024 ))
new_conf=$(cat <<EOF
# Written by tests/slurm/start.sh: a one-node test cluster on $HOST, no accounting.
ClusterName=dualgen
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
SlurmctldParameters=enable_configless
# squeue shows a finished job for MinJobAge seconds; the Snakemake plugin's squeue status check needs it to be
# at least 3 x slurm-init-seconds-before-status-checks
MinJobAge=3600
DefMemPerCPU=$def_mem
StateSaveLocation=$ROOT/state
SlurmdSpoolDir=$ROOT/spool
SlurmctldPidFile=$ROOT/slurmctld.pid
SlurmdPidFile=$ROOT/slurmd.pid
SlurmctldLogFile=$ROOT/log/slurmctld.log
SlurmdLogFile=$ROOT/log/slurmd.log
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
)
ctld_up=0; d_up=0
alive "$ROOT/slurmctld.pid" slurmctld && ctld_up=1
alive "$ROOT/slurmd.pid" slurmd && d_up=1
if [ -f "$CONF" ] && [ "$(cat "$CONF")" = "$new_conf" ]; then
    say "config unchanged: $CONF"
else
    if [ $ctld_up = 1 ] || [ $d_up = 1 ]; then
        say "config changed while the daemons run: restarting them"
        bash "$(dirname "$0")/stop.sh" --slurm-only
        ctld_up=0; d_up=0
    fi
    printf '%s\n' "$new_conf" >"$CONF"
    say "wrote $CONF (node $HOST: CPUs=$cpus RealMemory=$mem_mb, DefMemPerCPU=$def_mem, partition $PARTITION)"
fi

# ---- 4. daemons ---------------------------------------------------------------------------------------------------
if [ $ctld_up = 1 ]; then
    say "slurmctld already running (pid $(cat "$ROOT/slurmctld.pid"))"
else
    slurmctld -f "$CONF" >"$ROOT/log/slurmctld.start" 2>&1 || fail "slurmctld did not start: $(tail -n 1 "$ROOT/log/slurmctld.start") (log: $ROOT/log/slurmctld.log)"
    for _ in $(seq 50); do alive "$ROOT/slurmctld.pid" slurmctld && break; sleep 0.2; done
    alive "$ROOT/slurmctld.pid" slurmctld || fail "slurmctld exited: $(tail -n 1 "$ROOT/log/slurmctld.log" 2>/dev/null)"
    say "started slurmctld (pid $(cat "$ROOT/slurmctld.pid"))"
fi
if [ $d_up = 1 ]; then
    say "slurmd already running (pid $(cat "$ROOT/slurmd.pid"))"
else
    slurmd --conf-server 127.0.0.1 -N "$HOST" >"$ROOT/log/slurmd.start" 2>&1 || fail "slurmd did not start: $(tail -n 1 "$ROOT/log/slurmd.start") (log: $ROOT/log/slurmd.log)"
    for _ in $(seq 50); do alive "$ROOT/slurmd.pid" slurmd && break; sleep 0.2; done
    alive "$ROOT/slurmd.pid" slurmd || fail "slurmd exited: $(tail -n 1 "$ROOT/log/slurmd.log" 2>/dev/null)"
    say "started slurmd (pid $(cat "$ROOT/slurmd.pid"))"
fi

# ---- 5. wait for the node -----------------------------------------------------------------------------------------
deadline=$(( $(date +%s) + WAIT_SECONDS ))
resumed=0
while :; do
    state=$(sinfo -h -N -n "$HOST" -o '%T' 2>/dev/null | head -n 1)
    case "$state" in
        idle | mixed | allocated | completing) break ;;
        down* | drain* | fail*)
            if [ $resumed = 0 ]; then
                scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true
                resumed=1
            fi ;;
    esac
    if [ "$(date +%s)" -ge $deadline ]; then
        reason=$(sinfo -h -N -n "$HOST" -o '%E' 2>/dev/null | head -n 1)
        fail "node $HOST not idle after ${WAIT_SECONDS}s (state '${state:-no answer from slurmctld}'${reason:+, reason: $reason}); logs: $ROOT/log/"
    fi
    sleep 1
done
say "node $HOST is $state in partition $PARTITION ($(sinfo -h -o '%C' | awk -F/ '{print $4}') CPUs)"
say "ready: sbatch/squeue/sinfo use /run/slurm/conf/slurm.conf (a copy of $CONF); logs in $ROOT/log/"
