#!/usr/bin/env bash
# A one-node Slurm on this machine, for the tests of `elrt batch --executor slurm` and for trying the
# cluster route without a cluster (book page "On a cluster").
#
#   scripts/slurm-local.sh start [--no-install]   install slurm-wlm and munge if missing (Debian, as root),
#                                                 write the configuration, start munged, slurmctld, slurmd;
#                                                 prints the line to paste: export SLURM_CONF=...
#   scripts/slurm-local.sh stop                   stop the daemons this script started (by their pid files)
#   scripts/slurm-local.sh status                 exit 0 when they run and the node answers
#   scripts/slurm-local.sh env                    print the export line only
#
# Everything lives in $ELRT_SLURM_DIR (default /tmp/elrt-slurm): slurm.conf, state, logs and pid files;
# nothing under /etc is written, so a real Slurm configuration of this machine is never touched. The
# node is this machine (all its cores and memory, one partition `local`); jobs may be requeued, and a
# requeued job waits AuthInfo cred_expire seconds before it starts again (Slurm's default is 120; 10 here).
# Exit status: 0 when Slurm answers, 3 when it cannot be installed or started here (the reason on stderr).
set -euo pipefail

DIR="${ELRT_SLURM_DIR:-/tmp/elrt-slurm}"
CONF="$DIR/slurm.conf"
HOST="$(hostname -s)"
CRED_EXPIRE=10

die() { echo "slurm-local: $*" >&2; exit 3; }

install_packages() {
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null && return 0
    [ "${1:-}" = "--no-install" ] && die "slurm-wlm and munge are not installed (run: sudo $0 start)"
    [ "$(id -u)" = 0 ] || die "slurm-wlm and munge are not installed, and installing them needs root"
    command -v apt-get >/dev/null || die "slurm-wlm and munge are not installed, and this is not a Debian-like system"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null \
        || die "apt-get install slurm-wlm munge failed"
}

write_conf() {
    mkdir -p "$DIR/ctld" "$DIR/d" "$DIR/log"
    local cpus mem
    cpus="$(nproc)"
    mem="$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)"
    cat >"$CONF" <<EOF
# written by scripts/slurm-local.sh: a one-node Slurm for tests and trials
ClusterName=elrt-local
SlurmctldHost=$HOST(127.0.0.1)
AuthType=auth/munge
AuthInfo=cred_expire=$CRED_EXPIRE
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/d
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
JobRequeue=1
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
SchedulerParameters=sched_interval=2
MessageTimeout=20
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
    mkdir -p /run/munge && chown munge:munge /run/munge 2>/dev/null || true
    if [ "$(id -u)" = 0 ] && id munge >/dev/null 2>&1; then
        runuser -u munge -- munged || die "munged did not start"
    else
        munged || die "munged did not start"
    fi
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0; sleep 0.1; done
    die "munged started but does not answer"
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

answers() {
    alive "$DIR/slurmctld.pid" && alive "$DIR/slurmd.pid" \
        && SLURM_CONF="$CONF" sinfo -h -N -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'
}

start() {
    if answers; then echo "export SLURM_CONF=$CONF"; return 0; fi
    install_packages "${1:-}"
    write_conf
    export SLURM_CONF="$CONF"
    start_munge
    alive "$DIR/slurmctld.pid" || slurmctld -f "$CONF" || die "slurmctld did not start: see $DIR/log/slurmctld.log"
    alive "$DIR/slurmd.pid" || slurmd -f "$CONF" || die "slurmd did not start: see $DIR/log/slurmd.log"
    for _ in $(seq 60); do
        if answers; then echo "export SLURM_CONF=$CONF"; return 0; fi
        scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
        sleep 0.5
    done
    stop
    die "the daemons did not come up within 30 s (another Slurm on ports 6817/6818?): see $DIR/log/"
}

stop() {
    for daemon in slurmd slurmctld; do
        if alive "$DIR/$daemon.pid"; then kill "$(cat "$DIR/$daemon.pid")"; fi
    done
}

case "${1:-}" in
    start) start "${2:-}" ;;
    stop) stop ;;
    status) answers ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *) echo "usage: $0 start [--no-install] | stop | status | env" >&2; exit 2 ;;
esac
