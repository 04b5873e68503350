#!/usr/bin/env bash
# Seeded chaos on the two-node lab: a random sequence of faults, reproducible from the
# seed, with a client writing through the VIP and both nodes' read_only sampled every
# 100 ms all along. As root.
#
#   tests/chaos.sh [--seed N] [--faults K] [--async]
#
# Faults, each on a node drawn at random (the VIP holder more often), held for 2-5 s
# and undone: mysqld killed (the restart hook brings it back), mysqld frozen and
# thawed, the drain file put and removed, keepalived stopped and started again, the
# node isolated and healed, VRRP adverts dropped between the nodes and restored. Not
# drawn: the full split between the nodes (two writers there are what no tool can
# avoid without a third vote; the failover suite measures it) and a whole node's hard
# crash (its recovery is a re-clone).
#
# Invariants, over the whole run:
# - never two writable nodes, except from a frozen server's thaw until its pending
#   demotion lands (a frozen server cannot be made read-only; the window is reported);
# - with semi-sync (the default here; --async to run without), every acknowledged
#   write is on the final VIP holder;
# - after the last fault is undone (and a killed mysqld is back), the pair converges
#   within 10 s to exactly one writable VIP holder and one eligible standby (or one
#   the holder named diverged: a frozen master's unacknowledged commit, kept off);
# - no hook process left running (the rejoin watcher, which waits for a peer, aside);
# - no log file over its rotation size (64 KiB here, so that it rotates).
# A failure prints the seed: `tests/chaos.sh --seed N --faults K` replays it.
set -uo pipefail
cd "$(dirname "$0")/.."
seed=$(( $(date +%s) % 100000 )) faults=6 semi=--semi-sync
while [ $# -gt 0 ]; do
    case $1 in
        --seed) seed=$2; shift 2 ;;
        --faults) faults=$2; shift 2 ;;
        --async) semi=""; shift ;;
        *) echo "usage: tests/chaos.sh [--seed N] [--faults K] [--async]" >&2; exit 2 ;;
    esac
done
# shellcheck source=../lab/lab
source lab/lab
# shellcheck source=lib.sh
source tests/lib.sh
set +e

# A flapping node is what the promotion brake stops, and a crash loop what the restart
# budget stops (it then withdraws the node for good): chaos does both on purpose, and
# tests the rest. The suite tests the brake and the budget.
export LAB_MAX_PROMOTIONS=0 LAB_MAX_RESTARTS=1000
# Small, so that the run rotates the log and the size bound is tested.
export LAB_LOG_MAX_SIZE=64K
RANDOM=$seed
# Draws in this shell, never in a $(...) subshell (which would reseed RANDOM), and a
# node by name, not by role (who holds the VIP depends on timing): the whole plan
# follows from the seed alone, and is printed before it runs.
pick() { R=$((RANDOM % $1)); }
FAULTS=(crash freeze drain keepalived isolate vrrp)
PLAN=()
for i in $(seq "$faults"); do
    pick ${#FAULTS[@]}; f=${FAULTS[$R]}
    pick 2; n=node$((R + 1))
    pick 4; hold=$((2 + R))
    pick 5; settle=$((3 + R))
    PLAN+=("$f $n $hold $settle")
done
printf '   plan (fault node hold settle): %s\n' "$(IFS=';'; echo "${PLAN[*]}")"
echo "# chaos: seed $seed, $faults faults${semi:+, semi-sync}"
trap '[ -n "${KEEP_LAB:-}" ] || down >/dev/null 2>&1' EXIT
deps
export LAB_SKIP_DEPS=1
if ! (set -e; up --hold-vip off $semi) > /tmp/kmlab-chaos-up.log 2>&1; then
    tail -n 20 /tmp/kmlab-chaos-up.log
    echo "chaos: the lab did not start (seed $seed)"
    exit 1
fi
writer_start
sampler_start
: > "$LAB/chaos.events"
sleep 2

log_event() { echo "$EPOCHREALTIME $*" >> "$LAB/chaos.events"; echo "   $(date +%T) $*"; }

for i in $(seq "$faults"); do
    read -r f n hold settle <<< "${PLAN[$((i - 1))]}"
    log_event "fault $i/$faults: $f on $n for ${hold}s"
    case $f in
        crash)
            kill_mysqld "$n"
            sleep "$hold" ;;
        freeze)
            p=$(cat "$(pidfile "$n")" 2>/dev/null)
            if [ -n "$p" ] && kill -STOP "$p" 2>/dev/null; then
                sleep "$hold"
                log_event "thaw $n"
                kill -CONT "$p"
            else
                sleep "$hold"
            fi ;;
        drain)
            touch "$LAB/$n/maintenance"
            sleep "$hold"
            rm -f "$LAB/$n/maintenance" ;;
        keepalived)
            kill -TERM "$(cat "$RUN/$n/keepalived.pid" 2>/dev/null)" 2>/dev/null
            sleep "$hold"
            start_keepalived "$n" ;;
        isolate)
            isolate "$n"
            sleep "$hold"
            heal ;;
        vrrp)
            cut_vrrp node1 node2
            sleep "$hold"
            heal ;;
    esac
    log_event "undone: $f on $n; settling ${settle}s"
    sleep "$settle"
done

# After the last fault: a killed mysqld is brought back by the restart hook first.
server_up() { mariadb-admin --no-defaults -S "$(sock "$1")" -uroot ping >/dev/null 2>&1; }
for n in "${NODES[@]}"; do
    wait_for 60 server_up "$n" || echo "   $n's mysqld did not come back"
done
log_event "last fault undone and both servers up: convergence starts"
# The standby is eligible, or diverged: a frozen master's commit that no client saw
# acknowledged (semi-sync's ghost) is on it alone. That is no fault of the run: the
# holder's record names it now, the standby's own check says so (exit 21) and a
# re-clone repairs it.
DIVERGED_END=""
converged() {
    local h s rc
    h=$(holder || true)
    [ -n "$h" ] || return 1
    s=$(other "$h")
    [ "$(vip_count)" = 1 ] && writable "$h" && read_only_standby "$s" &&
        ip netns exec "$h" /usr/sbin/keepalived-mysql-check --format text >/dev/null || return 1
    ip netns exec "$s" /usr/sbin/keepalived-mysql-check --format text >/dev/null
    rc=$?
    [ "$rc" = 0 ] && return 0
    # ("diverged" is a state only the record's peer_channel takes.)
    [ "$rc" = 21 ] && grep -q '"state": *"diverged"' "$RUN/$h/km/notify.json" &&
        DIVERGED_END="$s diverged (exit 21), named by $h: $(grep -o 'DIVERGED: peer [^;]*' "$LAB/$h/keepalived-mysql.log" | tail -n 1)"
}
t0=$SECONDS
expect "chaos: converged within 10 s to one writable VIP holder and one eligible standby" wait_for 10 converged
echo "   converged after $((SECONDS - t0)) s (holder $(holder || echo none))"
[ -z "$DIVERGED_END" ] || echo "   standby not eligible until repaired: $DIVERGED_END"
sleep 1
writer_stop
sampler_stop

# Two writers only inside a thaw window: from a "thaw NODE" to the first sample of
# NODE read-only again.
# The window closes at the thawed node's first sample read-only again, and at the
# latest 3 s after the thaw (its demotion is queued on the server: it lands at once).
allowed=$(awk '$2 == "thaw" {print $1, $3}' "$LAB/chaos.events")
expect "chaos: never two writable nodes outside a frozen server's thaw window (at most 3 s)" awk -v allowed="$allowed" '
    BEGIN { n = split(allowed, a, " "); for (i = 1; i <= n; i += 2) { t[++k] = a[i]; who[k] = a[i + 1] } }
    {
        for (j = 1; j <= k; j++) {
            col = (who[j] == "node1") ? 2 : 3
            if ($1 >= t[j] && !done[j] && ($col == "ON" || $1 > t[j] + 3)) done[j] = $1
        }
        if ($2 == "OFF" && $3 == "OFF") {
            ok = 0
            for (j = 1; j <= k; j++) if ($1 >= t[j] && !done[j]) { ok = 1; last[j] = $1 }
            if (!ok) { bad = 1; print "   two writers at " $1 }
        }
    }
    END {
        for (j = 1; j <= k; j++) if (last[j]) printf "   thaw of %s: two writable nodes for %.0f ms\n", who[j], (last[j] - t[j]) * 1000
        exit bad
    }' "$LAB/ro.samples"
echo "   $(wc -l < "$LAB/ro.samples") samples of both nodes, $(sample_every) apart"

h=$(holder || true)
line=$(report "${h:-node1}")
echo "   $line"
lost=$(echo "$line" | sed -n 's/.*lost=\([0-9]*\).*/\1/p')
if [ -n "$semi" ]; then
    expect "chaos: every acknowledged write is on the final VIP holder (semi-sync)" [ "${lost:-x}" = 0 ]
else
    echo "   lost acknowledged writes (asynchronous replication, reported): $lost"
fi
# Where the longest gap without an acknowledged write was, to read against the plan.
read -r gap gap_from < <(awk '$3 == "ok" { if (p != "" && $2 - p > g) { g = $2 - p; from = p } p = $2 }
    END { printf "%.2f %d\n", g, from }' "$LAB/writes.log")
[ "${gap_from:-0}" -gt 0 ] && echo "   longest write gap: $gap s from $(date -d "@$gap_from" +%T)"
# Hooks come and go (the restart hook runs every 2 s): one left running is one seen in
# two looks 3 s apart, the rejoin watcher included (converged, it has nothing to wait
# for), except the holder's watcher of a peer it named diverged: it waits for the repair.
# Only the lab's own (in its namespaces): not, say, a test's copy beside it.
hooks() {
    pgrep -f 'keepalived-mysql-(notify|restart)' | while read -r p; do
        ns=$(ip netns identify "$p" 2>/dev/null)
        case $ns in node1|node2) ;; *) continue ;; esac
        [ -n "$DIVERGED_END" ] && [ "$ns" = "$h" ] &&
            grep -q -- '--watch-peer' "/proc/$p/cmdline" 2>/dev/null && continue
        echo "$p"
    done | sort
}
first=$(hooks); sleep 3
left=$(comm -12 <(echo "$first") <(hooks) | grep . | xargs -r ps -o args= -p || true)
expect "chaos: no hook process left running${left:+: $left}" [ -z "$left" ]
# The lab's log-max-size is 64 KiB (LAB_LOG_MAX_SIZE): rotation happens in a run.
max=$((64 << 10))
big=$(find "$LAB" -name 'keepalived-mysql.log*' -size +"$((max + 4096))"c 2>/dev/null)
expect "chaos: no log file over its rotation size${big:+: $big}" [ -z "$big" ]
rotated=$(find "$LAB" -name 'keepalived-mysql.log.1' | wc -l)
echo "   rotated log files: $rotated"

echo "chaos: $pass passed, $fail failed (seed $seed, $faults faults)"
[ "$fail" -eq 0 ] || echo "replay: tests/chaos.sh --seed $seed --faults $faults$([ -n "$semi" ] || echo " --async")"
[ "$fail" -eq 0 ]
