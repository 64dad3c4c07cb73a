#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, for the tests and for trying the chain on a
# laptop: slurmctld + slurmd + munge from Debian's packages, no systemd, no cgroups.
#
#   slurm/local-cluster.sh start    install (first time), configure and start; idempotent
#   slurm/local-cluster.sh stop     stop the daemons by the pids in their pid files
#   slurm/local-cluster.sh status   each daemon's pid, and sinfo
#
# Run as root (it installs packages and writes /etc/slurm/slurm.conf). Jobs run on this node
# with all its CPUs and memory; there is no GPU (a job asking for --gres=gpu stays pending).
set -euo pipefail

CONF=/etc/slurm/slurm.conf
LOGS=/var/log/slurm
MUNGE_PID=/run/munge/munged.pid
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
MARK="# written by slurm/local-cluster.sh"

die() { echo "local-cluster: $*" >&2; exit 1; }
running() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

install() {
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
        && command -v munged >/dev/null && return
    command -v apt-get >/dev/null || die "slurmctld/slurmd/munge are missing and there is no apt-get to install them"
    echo "local-cluster: installing slurmctld slurmd slurm-client munge (Debian packages)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || die "apt-get update failed"
    # "policy-rc.d denied execution of start" is expected: nothing starts by itself here.
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null 2>&1 \
        || die "apt-get install slurmctld slurmd slurm-client munge failed"
}

configure() {
    local host node
    host=$(hostname -s)
    # SlurmctldHost must resolve.
    getent hosts "$host" >/dev/null || echo "127.0.0.1 $host" >> /etc/hosts
    # slurmd -C prints this node's line (CPUs, sockets, cores, RealMemory) for slurm.conf.
    node=$(slurmd -C | head -n1)
    [[ $node == NodeName=* ]] || die "slurmd -C printed no node line: $node"
    mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd "$LOGS"
    if [[ -f $CONF ]] && ! grep -qF "$MARK" "$CONF"; then
        die "$CONF exists and was not written by this script; refusing to overwrite it"
    fi
    cat > "$CONF.new" <<EOF
$MARK
ClusterName=local
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
# A requeued job may start again once its old credential expires (default 120 s).
AuthInfo=cred_expire=10
# No cgroups, accounting or MPI plugins on this kind of machine.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MailProg=/bin/true
# Start array tasks at once (the default starts them in 3-second waves); look for startable
# jobs (a requeued one whose hold ended) every 5 s, not 30.
SchedulerParameters=batch_sched_delay=0,bf_interval=5
# A job whose afterok dependency failed is cancelled instead of pending forever.
DependencyParameters=kill_invalid_depend
ReturnToService=2
# Keep finished jobs visible to scontrol for an hour (there is no sacct here).
MinJobAge=3600
KillWait=5
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
${node% UpTime=*} State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    if [[ -f $CONF ]] && cmp -s "$CONF" "$CONF.new"; then
        rm "$CONF.new"
    else
        mv "$CONF.new" "$CONF"
        # Daemons running with an older configuration restart with this one.
        if running "$CTLD_PID" || running "$SLURMD_PID"; then
            echo "local-cluster: $CONF changed; restarting slurmctld and slurmd"
            stop_one slurmd "$SLURMD_PID"
            stop_one slurmctld "$CTLD_PID"
        fi
    fi
}

start() {
    [[ $(id -u) == 0 ]] || die "run as root (it installs packages and starts daemons)"
    install
    configure
    if ! running "$MUNGE_PID"; then
        mkdir -p /run/munge && chown munge:munge /run/munge
        [[ -f /etc/munge/munge.key ]] || die "/etc/munge/munge.key is missing (reinstall munge)"
        runuser -u munge -- /usr/sbin/munged || die "munged did not start"
    fi
    running "$CTLD_PID" || slurmctld || die "slurmctld did not start; see $LOGS/slurmctld.log"
    running "$SLURMD_PID" || slurmd || die "slurmd did not start; see $LOGS/slurmd.log"
    local state
    for _ in $(seq 100); do
        state=$(sinfo -h -o %T 2>/dev/null | head -n1 || true)
        if [[ $state == idle* || $state == mixed* || $state == allocated* ]]; then
            echo "local-cluster: up (node $(hostname -s): $state)"
            return
        fi
        if [[ $state == down* || $state == drain* ]]; then
            scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true
        fi
        sleep 0.2
    done
    die "the node did not become idle within 20 s (state: ${state:-none}); see $LOGS/slurmctld.log and $LOGS/slurmd.log"
}

stop_one() {
    local name=$1 pidfile=$2 pid
    running "$pidfile" || return 0
    pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || { echo "local-cluster: stopped $name ($pid)"; return; }; sleep 0.1; done
    die "$name ($pid) did not stop within 10 s"
}

stop() {
    stop_one slurmd "$SLURMD_PID"
    stop_one slurmctld "$CTLD_PID"
    stop_one munged "$MUNGE_PID"
}

status() {
    local name pidfile rc=0
    for name in munged slurmctld slurmd; do
        case $name in munged) pidfile=$MUNGE_PID ;; slurmctld) pidfile=$CTLD_PID ;; slurmd) pidfile=$SLURMD_PID ;; esac
        if running "$pidfile"; then echo "$name: running ($(cat "$pidfile"))"; else echo "$name: stopped"; rc=3; fi
    done
    [[ $rc == 0 ]] && sinfo
    return $rc
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
