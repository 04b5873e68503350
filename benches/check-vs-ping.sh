#!/usr/bin/env bash
# Benchmark: a full keepalived-mysql-check on a healthy standby (replication running,
# heartbeat configured and fresh) against `mariadb-admin ping` on the same server, in
# the same run. Reports the median wall-time ratio (target <= 0.6) and the check's peak
# RSS (target <= 4 MiB). Figures only: nothing here passes or fails on a number.
# ROUNDS (default 5) rounds of RUNS (default 100) runs per command.
#
# Needs mariadb-server, mariadb-client, hyperfine and GNU time (installed by tests/run.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
check=${CHECK_BIN:-$root/target/x86_64-unknown-linux-gnu/release/keepalived-mysql-check}
[ -x "$check" ] || "$root/packaging/build-static" >/dev/null
runs=${RUNS:-100}

work=$(mktemp -d /tmp/kmysql-bench.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    umount "$work/rt" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

mariadb-install-db --no-defaults --datadir="$work/template" --user=root \
    --auth-root-authentication-method=normal --skip-test-db >/dev/null 2>&1

start() { # id port
    local id=$1 port=$2 d="$work/n$1"
    cp -a "$work/template" "$d"
    # Own tmpdir: a starting mariadbd deletes the #sql* files of its tmpdir.
    mkdir "$d.tmp"
    mariadbd --no-defaults --datadir="$d" --tmpdir="$d.tmp" --socket="$d/sock" --port="$port" \
        --bind-address=127.0.0.1 --user=root --server-id="$id" --gtid-domain-id="$id" \
        --log-bin="$d/binlog" --log-slave-updates --skip-name-resolve \
        --innodb-buffer-pool-size=32M --performance-schema=OFF --skip-slave-start \
        --log-error="$d/error.log" >/dev/null 2>&1 &
    pids+=($!)
    for _ in $(seq 300); do
        mariadb-admin --no-defaults -S "$d/sock" -uroot ping >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "bench: mariadbd $id did not start" >&2; cat "$d/error.log" >&2; exit 1
}
sql() { mariadb --no-defaults -S "$work/n$1/sock" -uroot -N -e "$2"; }

p1=$(free_port); p2=$(free_port)
start 1 "$p1"; start 2 "$p2"
for n in 1 2; do
    sql $n "SET sql_log_bin=0;
        CREATE USER monitor@localhost IDENTIFIED BY 'bench-pw';
        GRANT SLAVE MONITOR, PROCESS ON *.* TO monitor@localhost;
        GRANT SELECT, INSERT, UPDATE, CREATE ON keepalived_mysql.* TO monitor@localhost;
        CREATE USER repl@'127.0.0.1' IDENTIFIED BY 'repl-pw';
        GRANT REPLICATION SLAVE ON *.* TO repl@'127.0.0.1'; SET sql_log_bin=1;"
done
sql 1 "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=$p2, MASTER_USER='repl', MASTER_PASSWORD='repl-pw', MASTER_USE_GTID=slave_pos; START SLAVE"
sql 2 "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=$p1, MASTER_USER='repl', MASTER_PASSWORD='repl-pw', MASTER_USE_GTID=slave_pos; START SLAVE"

# The standby is read-only, as in production (a writable standby would have the check
# start a demotion every 10 s).
sql 2 "SET GLOBAL read_only = ON"

# runtime-dir on tmpfs, as /run is in production (on ext4 the state file's rename per
# run alone costs a third of a check). Without the right to mount: said, and measured
# on disk.
mkdir "$work/rt"
if mount -t tmpfs -o size=16m,mode=0755 tmpfs "$work/rt" 2>/dev/null; then
    rtnote="runtime-dir on tmpfs"
else
    rtnote="runtime-dir on $(findmnt -n -o FSTYPE -T "$work") (tmpfs could not be mounted)"
fi
cnf() { # node vip
    umask 077
    cat > "$work/n$1.cnf" <<CNF
[client]
user = monitor
password = bench-pw
socket = $work/n$1/sock
[keepalived-mysql]
vip = $2
runtime-dir = $work/rt/run$1
syslog-facility = none
maintenance-file = $work/maintenance$1
CNF
}
cnf 1 127.0.0.1      # holds the "VIP" (loopback is local): active, writes the heartbeat
cnf 2 192.0.2.100    # standby
"$check" --defaults-file="$work/n1.cnf" || { echo "bench: active check failed" >&2; exit 1; }
sleep 1
# Keep the heartbeat fresh during the run, as keepalived would on the active node.
( while sleep 1; do "$check" --defaults-file="$work/n1.cnf" || true; done ) &
pids+=($!)
# The same standby with a witness (a closed port on loopback: refused at once, as a
# LAN host answers within a fraction of a millisecond): what isolation detection costs.
{ cat "$work/n2.cnf"; printf '[keepalived-mysql-check]\nwitness = 127.0.0.1:9\n'; } > "$work/n2w.cnf"
# ...and with metrics-file, on disk as node_exporter's textfile directory usually is.
{ cat "$work/n2.cnf"; printf '[keepalived-mysql-check]\nmetrics-file = %s\n' "$work/k.prom"; } > "$work/n2m.cnf"
"$check" --defaults-file="$work/n2.cnf" --format text
"$check" --defaults-file="$work/n2w.cnf" --format text
[ "$("$check" --defaults-file="$work/n2.cnf" >/dev/null; echo $?)" = 0 ] || { echo "bench: standby not healthy" >&2; exit 1; }

# Rounds of alternating hyperfine blocks: drift on a busy 2-core machine then hits both
# commands alike, and the median of the per-round ratios is what we report.
rounds=${ROUNDS:-5}
for r in $(seq "$rounds"); do
    hyperfine -N --warmup 20 --runs "$runs" --export-json "$work/h$r.json" \
        -n check "$check --defaults-file=$work/n2.cnf" \
        -n ping "mariadb-admin --no-defaults -S $work/n2/sock -umonitor -pbench-pw ping" \
        -n witness "$check --defaults-file=$work/n2w.cnf" \
        -n metrics "$check --defaults-file=$work/n2m.cnf" >/dev/null
done

# Peak RSS from GNU time (a fork from Python would count the interpreter's pages).
peak=0
for _ in $(seq 50); do
    kb=$(/usr/bin/time -f %M "$check" --defaults-file="$work/n2.cnf" 2>&1 >/dev/null)
    [ "$kb" -gt "$peak" ] && peak=$kb
done

[ -s "$work/k.prom" ] || { echo "bench: the metrics file was not written" >&2; exit 1; }
python3 - "$work" "$rounds" "$check" "$peak" "$rtnote" <<'PY'
import json, os, statistics, sys
work, rounds, check, peak, rtnote = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
checks, pings, ratios, wratios, mratios = [], [], [], [], []
for r in range(1, rounds + 1):
    res = {x["command"]: x for x in json.load(open(f"{work}/h{r}.json"))["results"]}
    c, p = res["check"]["median"], res["ping"]["median"]
    checks.append(c); pings.append(p); ratios.append(c / p)
    wratios.append(res["witness"]["median"] / p)
    mratios.append(res["metrics"]["median"] / p)
size = os.path.getsize(check)
print("| measure | value | target |")
print("|---|---|---|")
print(f"| check median (healthy standby, heartbeat) | {statistics.median(checks)*1000:.2f} ms | |")
print(f"| mariadb-admin ping median | {statistics.median(pings)*1000:.2f} ms | |")
print(f"| ratio check / ping (median of {rounds} rounds, range {min(ratios):.2f}-{max(ratios):.2f}) | {statistics.median(ratios):.2f} | <= 0.6 |")
print(f"| ratio check with a witness / ping (range {min(wratios):.2f}-{max(wratios):.2f}) | {statistics.median(wratios):.2f} | <= 0.6 |")
print(f"| ratio check with metrics-file (on disk) / ping (range {min(mratios):.2f}-{max(mratios):.2f}) | {statistics.median(mratios):.2f} | <= 0.6 |")
print(f"| setting | {rtnote} | |")
print(f"| check peak RSS | {peak/1024:.1f} MiB | <= 4 MiB |")
print(f"| check binary (static, stripped) | {size/1048576:.2f} MiB | <= 3 MiB |")
PY
