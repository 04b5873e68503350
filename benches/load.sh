#!/usr/bin/env bash
# Load test: a fast failover tool must never fail over a healthy but busy server. For
# DURATION seconds per profile (default 180), the active node of the lab runs heavy
# load made here while keepalived runs the check as the sample config says:
#   - WRITERS concurrent clients (default 16) committing small inserts back to back;
#   - large transactions (50,000 rows inserted and deleted, one transaction each);
#   - a table rebuild in a loop (ALTER TABLE ... FORCE on 200,000 rows: I/O);
#   - CPU hogs beside mysqld, one per core.
# Reported per profile: VRRP transitions of the loaded active node (the bar: 0: a busy
# master keeps the VIP), the standby's (a standby that really lags, with unapplied
# events past max-lag, is rightly not eligible: reported with its verdicts), and the
# latency of keepalived's own check runs on both nodes (p50, p99, max, read from
# check.json after each run) against the check's deadline, with the margin left.
#
#   benches/load.sh                      both profiles, 180 s each (figures)
#   PROFILES=default DURATION=20 benches/load.sh --assert
#                                        the suite's short version: exits 1 if the
#                                        loaded active node moves
set -uo pipefail
cd "$(dirname "$0")/.."
assert=""
[ "${1:-}" = --assert ] && assert=1
duration=${DURATION:-180}
writers=${WRITERS:-16}
# shellcheck source=../lab/lab
source lab/lab
# shellcheck source=../tests/lib.sh
source tests/lib.sh
set +e
trap 'stop_load; [ -n "${KEEP_LAB:-}" ] || down >/dev/null 2>&1' EXIT
deps
export LAB_SKIP_DEPS=1

LOADPIDS=()
stop_load() {
    touch "$LAB/load.stop" 2>/dev/null
    local p
    for p in "${LOADPIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${LOADPIDS[@]}"; do wait "$p" 2>/dev/null; done
    LOADPIDS=()
    rm -f "$LAB/load.stop"
}

start_load() { # node
    local n=$1 s
    s=$(sock "$n")
    local q="mariadb --no-defaults -S $s -uroot -N -B -D app"
    $q -e "CREATE TABLE IF NOT EXISTS app.load (id BIGINT AUTO_INCREMENT PRIMARY KEY,
              v VARCHAR(200) NOT NULL, n INT NOT NULL);
           CREATE TABLE IF NOT EXISTS app.big (id INT PRIMARY KEY, v VARCHAR(200) NOT NULL);
           INSERT IGNORE INTO app.big SELECT seq, REPEAT('x', 150) FROM seq_1_to_200000"
    rm -f "$LAB/load.stop"
    local i
    for i in $(seq "$writers"); do
        ( while [ ! -e "$LAB/load.stop" ]; do
              $q -e "INSERT INTO app.load (v, n) VALUES (REPEAT('w', 100), $i)" >/dev/null 2>&1 || sleep 0.1
          done ) &
        LOADPIDS+=($!)
    done
    ( while [ ! -e "$LAB/load.stop" ]; do
          $q -e "BEGIN; INSERT INTO app.load (v, n) SELECT REPEAT('t', 150), seq FROM seq_1_to_50000;
                 DELETE FROM app.load WHERE n > 1000; COMMIT" >/dev/null 2>&1 || sleep 0.5
      done ) &
    LOADPIDS+=($!)
    ( while [ ! -e "$LAB/load.stop" ]; do
          $q -e "ALTER TABLE app.big FORCE" >/dev/null 2>&1 || sleep 0.5
      done ) &
    LOADPIDS+=($!)
    for i in $(seq "$(nproc)"); do
        ( while [ ! -e "$LAB/load.stop" ]; do :; done ) &
        LOADPIDS+=($!)
    done
}

# keepalived's own runs: check.json is rewritten after each, with its duration.
sample_checks() { # seconds -> "node elapsed_ms class" per distinct run
    local end=$((SECONDS + $1)) n
    declare -A last=()
    while [ $SECONDS -lt $end ]; do
        for n in "${NODES[@]}"; do
            local line
            # One awk per read: sampling must not load the two cores itself.
            line=$(awk -F': *' '
                /^  "checked_at"/ {a = $2} /^  "elapsed_ms"/ {e = $2} /^  "class"/ {c = $2}
                END {gsub(/[",]/, "", a); gsub(/[",]/, "", e); gsub(/[",]/, "", c); if (a != "") print a, e, c}' \
                "$RUN/$n/km/check.json" 2>/dev/null)
            [ -n "$line" ] || continue
            local at=${line%% *}
            [ "${last[$n]:-}" = "$at" ] && continue
            last[$n]=$at
            echo "$n ${line#* }"
        done
        sleep 0.1
    done
}

transitions() { grep -c 'Entering .* STATE' "$LAB/$1/keepalived.log" 2>/dev/null || true; }

out=target/load
mkdir -p "$out"
rc=0
echo "| profile | node | runs, not ok (class) | p50 | p99 | max | deadline: p99's share |"
echo "|---|---|---|---|---|---|---|"
for p in ${PROFILES:-default fast}; do
    echo "# load: profile $p, ${duration}s, $writers writers, large transactions, a table rebuild, $(nproc) CPU hogs"
    if ! (set -e; LAB_PROFILE=$p up --hold-vip off) > "$out/up-$p.log" 2>&1; then
        tail -n 5 "$out/up-$p.log"; rc=1; continue
    fi
    a=$(holder)
    deadline=1000
    [ "$p" = fast ] && deadline=500
    sleep 3
    b=$(other "$a")
    before=$(transitions "$a") before_b=$(transitions "$b")
    start_load "$a"
    sample_checks "$duration" > "$out/checks-$p.txt"
    # The load was real: rows from the writers, the large transactions and rebuilds ran.
    local_rows=$(sql "$a" "SELECT COUNT(*) FROM app.load")
    rebuilds=$(sql "$a" "SHOW GLOBAL STATUS LIKE 'Com_alter_table'" | awk '{print $2}')
    stop_load
    echo "   load on $a: $local_rows rows in app.load at the end, $rebuilds table rebuilds"
    if [ "${rebuilds:-0}" -lt 1 ] || [ "${local_rows:-0}" -lt 1 ]; then
        echo "load: the load did not run as designed (profile $p)"; rc=1
    fi
    moved=$(( $(transitions "$a") - before ))
    standby_moved=$(( $(transitions "$b") - before_b ))
    still=$(holder)
    python3 - "$out/checks-$p.txt" "$p" "$deadline" "$moved" "$a" "$standby_moved" <<'PY'
import collections, statistics, sys
path, profile, deadline, moved, active, standby_moved = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
rows = [l.split() for l in open(path) if l.strip()]
for node in ("node1", "node2"):
    xs = sorted(float(r[1]) for r in rows if r[0] == node)
    classes = collections.Counter(r[2] for r in rows if r[0] == node and r[2] != "ok")
    bad = ", ".join(f"{n} {c}" for c, n in classes.items()) or "0"
    if not xs:
        print(f"| {profile} | {node} | no runs seen | | | | |")
        continue
    p99 = xs[min(len(xs) - 1, int(round(0.99 * (len(xs) - 1))))]
    role = "active (loaded)" if node == active else "standby"
    print(f"| {profile} | {node}, {role} | {len(xs)} runs, {bad} not ok | {statistics.median(xs):.1f} ms | {p99:.1f} ms | {xs[-1]:.1f} ms | {deadline:.0f} ms: p99 at {100 * p99 / deadline:.0f}% |")
print(f"| {profile} | VRRP transitions of the loaded active node | {moved} | | | | bar: 0 |")
print(f"| {profile} | VRRP transitions of the standby | {standby_moved} | | | | its own verdicts (above) |")
PY
    if [ "$moved" -ne 0 ] || [ "$still" != "$a" ]; then
        echo "load: the loaded active node $a moved ($moved VRRP transition(s), VIP on ${still:-nobody}) with profile $p"
        grep -h 'Entering' "$LAB"/node*/keepalived.log | tail -n 5
        grep -h 'FAIL' "$LAB"/node*/keepalived-mysql.log | tail -n 5 | cut -c1-300
        rc=1
    fi
    down >/dev/null 2>&1
done
if [ -n "$assert" ]; then
    echo "load: $((rc == 0 ? 1 : 0)) passed, $((rc == 0 ? 0 : 1)) failed"
else
    rc=0
fi
exit $rc
