#!/usr/bin/env bash
# A throw-away one-node SLURM cluster on this machine, for tests/test_slurm.py (make test-slurm).
# Debian 12 (SLURM 22.05), run as root on a disposable test machine; no systemd needed.
#
#   munged (as the munge user) -> MariaDB -> slurmdbd (accounting) -> slurmctld -> slurmd
#
# Accounting through slurmdbd is required: snakemake-executor-plugin-slurm asks sacct for the job
# states, and without an accounting store those queries never report a finished job, so the run
# hangs after its first submission.
#
# The node advertises VITAFF_SLURM_CPUS CPUs and VITAFF_SLURM_MEM_MB MB (default: at least 16 and
# 128000, with SlurmdParameters=config_overrides so that slurmd does not drain a smaller machine):
# profiles/slurm asks for the real run's resources and is tested unchanged. Nothing is enforced
# (no cgroups), jobs just share the machine.
#
# Everything this script starts is listed in $STATE/pids; tests/slurm/teardown_cluster.sh stops
# exactly those. Re-running it while the cluster is up is harmless (it stops its old daemons first).
set -euo pipefail

STATE=${VITAFF_SLURM_STATE:-/tmp/vitaff-slurm}
CLUSTER=vitaff
ACCOUNT=vitaff
DB=slurm_acct_db
DB_USER=slurm
DB_PASS=vitaff-test-only
HOST=$(hostname -s)
MARK="# written by vitaff tests/slurm/setup_cluster.sh"

say() { echo "setup_cluster: $*" >&2; }
die() { say "error: $*"; exit 1; }
wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local limit=$1 what=$2; shift 2
    for _ in $(seq "$((limit * 2))"); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    die "$what not ready after ${limit}s (logs in $STATE)"
}

[ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts daemons)"
[ -e /etc/debian_version ] || die "Debian/Ubuntu only (apt-get)"

if [ -s "$STATE/pids" ]; then
    say "cluster from an earlier setup still recorded; tearing it down first"
    "$(dirname "$0")/teardown_cluster.sh"
fi

# --- packages --------------------------------------------------------------------------------
PKGS="slurm-wlm slurm-client munge slurmdbd mariadb-server"
missing=$(for p in $PKGS; do dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"; done)
if [ -n "$missing" ]; then
    say "installing $missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

for f in /etc/slurm/slurm.conf /etc/slurm/slurmdbd.conf; do
    if [ -e "$f" ] && ! grep -qF "$MARK" "$f"; then
        die "$f exists and was not written by this script; not overwriting a real cluster's config"
    fi
done

mkdir -p "$STATE"
: > "$STATE/pids"
record() { echo "$1 $2" >> "$STATE/pids"; }  # record NAME PIDFILE

# --- munge -----------------------------------------------------------------------------------
[ -s /etc/munge/munge.key ] || runuser -u munge -- mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null \
    || runuser -u munge -- /usr/sbin/create-munge-key -f
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown munge:munge /run/munge /var/lib/munge /var/log/munge /etc/munge/munge.key
chmod 0755 /run/munge
chmod 0400 /etc/munge/munge.key
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "munged already running (not started here, not stopped by teardown)"
else
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/vitaff-munged.pid
    record munged /run/munge/vitaff-munged.pid
    wait_for 20 munged sh -c 'munge -n | unmunge'
fi

# --- MariaDB ---------------------------------------------------------------------------------
mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
if [ ! -d /var/lib/mysql/mysql ]; then
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql >"$STATE/mariadb-install.log" 2>&1
fi
if mariadb-admin ping >/dev/null 2>&1; then
    say "MariaDB already running (not started here, not stopped by teardown)"
else
    /usr/sbin/mariadbd --user=mysql --datadir=/var/lib/mysql --socket=/run/mysqld/mysqld.sock \
        --pid-file=/run/mysqld/vitaff-mariadb.pid --bind-address=127.0.0.1 \
        --log-error="$STATE/mariadb.log" >/dev/null 2>&1 &
    record mariadb /run/mysqld/vitaff-mariadb.pid
    wait_for 60 MariaDB mariadb-admin ping
fi
mariadb <<SQL
CREATE DATABASE IF NOT EXISTS $DB;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON $DB.* TO '$DB_USER'@'localhost';
FLUSH PRIVILEGES;
SQL

# --- SLURM configuration ---------------------------------------------------------------------
REAL_CPUS=$(nproc)
REAL_MEM=$(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo)
CPUS=${VITAFF_SLURM_CPUS:-$(( REAL_CPUS > 16 ? REAL_CPUS : 16 ))}
MEM=${VITAFF_SLURM_MEM_MB:-$(( REAL_MEM > 128000 ? REAL_MEM : 128000 ))}
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm

cat > /etc/slurm/slurmdbd.conf <<EOF
$MARK
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
LogFile=$STATE/slurmdbd.log
PidFile=/run/slurm/vitaff-slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=$DB_USER
StoragePass=$DB_PASS
StorageLoc=$DB
EOF
chmod 600 /etc/slurm/slurmdbd.conf

cat > /etc/slurm/slurm.conf <<EOF
$MARK
ClusterName=$CLUSTER
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=/run/slurm/vitaff-slurmctld.pid
SlurmdPidFile=/run/slurm/vitaff-slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MinJobAge=300
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
AccountingStorageEnforce=associations
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF

# --- daemons ---------------------------------------------------------------------------------
/usr/sbin/slurmdbd
record slurmdbd /run/slurm/vitaff-slurmdbd.pid
wait_for 60 slurmdbd sacctmgr -n list cluster

sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || true
sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" Description="vitaff tests" Organization=vitaff >/dev/null 2>&1 || true
sacctmgr -i add user root Account="$ACCOUNT" DefaultAccount="$ACCOUNT" >/dev/null 2>&1 || true
sacctmgr -n list association cluster="$CLUSTER" user=root format=account | grep -q "$ACCOUNT" \
    || die "root has no association with account $ACCOUNT (see $STATE/slurmdbd.log)"

/usr/sbin/slurmctld
record slurmctld /run/slurm/vitaff-slurmctld.pid
wait_for 60 slurmctld scontrol ping
/usr/sbin/slurmd
record slurmd /run/slurm/vitaff-slurmd.pid
wait_for 60 "node $HOST" sh -c "sinfo -h -n $HOST -o %T | grep -qx idle"

# smoke test: a job runs and sacct (what the Snakemake plugin polls) knows it finished
jobid=$(sbatch --parsable --wrap true --output=/dev/null --time=1 --mem=10)
wait_for 60 "job $jobid in sacct" sh -c "sacct -X -n -P -j $jobid -o State | grep -qx COMPLETED"
say "one-node cluster '$CLUSTER' up on $HOST ($CPUS CPUs, $MEM MB advertised); daemons in $STATE/pids"
