# Helpers shared by the lab's suites (tests/failover.sh, tests/chaos.sh,
# benches/load.sh), sourced after lab/lab: results, waits, the read_only sampler, and
# the network faults.

pass=0 fail=0

ok() { pass=$((pass + 1)); echo "ok - $1"; }
bad() { fail=$((fail + 1)); echo "FAIL - $1"; }
expect() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }

wait_for() { # seconds command...
    local limit=$1; shift
    local end=$((SECONDS + limit))
    while [ $SECONDS -lt $end ]; do "$@" && return 0; sleep 0.2; done
    return 1
}

fault_now() { echo "$EPOCHREALTIME" > "$LAB/fault.t"; }
holder_is() { [ "$(holder || true)" = "$1" ]; }
writable() { [ "$(ro "$1")" = OFF ]; }
read_only_standby() { [ "$(ro "$1")" = ON ]; }
writes_via() { # node: the last acknowledged write went through it
    [ "$(awk '$3 == "ok" {s = $5} END {print s}' "$LAB/writes.log")" = "${ID[$1]}" ]
}
written_after_via() { # time node: a write started after time was acknowledged through node
    awk -v f="$1" -v id="${ID[$2]}" '$3 == "ok" && $1 > f && $5 == id {found = 1}
        END {exit !found}' "$LAB/writes.log"
}
down_now() { [ "$(ro "$1")" = down ]; }
set_restart() { # node command: change the node's restart-command
    sed -i "s|^restart-command .*|restart-command         = $2|" "/etc/netns/$1/keepalived-mysql/keepalived-mysql.cnf"
}

# Safety over the whole scenario, not only at its end: both nodes' read_only, sampled
# every 100 ms in the background ("time node1 node2", each ON, OFF or down).
sampler_start() {
    : > "$LAB/ro.samples"
    (
        local r1 r2 r1b
        while [ ! -e "$LAB/sampler.stop" ]; do
            # Stamped when the reads are done: a read blocked on a frozen server
            # reports what it saw after the server resumed. node1 is read before and
            # after node2: a node1 that changed meanwhile is "moving", never counted
            # as writable beside node2 (the reads are some 10 ms apart, a fence and a
            # promotion about 20 ms: read once, a clean handover could look like an
            # overlap).
            local t0=${EPOCHREALTIME/./} left
            r1=$(ro node1); r2=$(ro node2); r1b=$(ro node1)
            [ "$r1" = "$r1b" ] || r1=moving
            echo "$EPOCHREALTIME $r1 $r2" >> "$LAB/ro.samples"
            # Every 100 ms from start to start: the three reads take 50-60 ms.
            left=$((100000 - (${EPOCHREALTIME/./} - t0)))
            [ "$left" -gt 0 ] && sleep "$(printf '0.%06d' "$left")"
        done
    ) &
    SAMPLER=$!
}
sampler_stop() {
    [ -n "${SAMPLER:-}" ] || return 0
    touch "$LAB/sampler.stop" 2>/dev/null || kill "$SAMPLER" 2>/dev/null
    wait "$SAMPLER" 2>/dev/null || true
    SAMPLER=""
    rm -f "$LAB/sampler.stop"
}
sample_every() { # the sampler's real interval
    awk 'NR > 1 {t += $1 - p; n++} {p = $1} END {if (n) printf "%.0f ms", t / n * 1000}' "$LAB/ro.samples"
}
never_two_writers() { # no sample saw both nodes writable
    [ -s "$LAB/ro.samples" ] && ! awk '$2 == "OFF" && $3 == "OFF" {found = 1} END {exit !found}' "$LAB/ro.samples"
}
# A frozen server cannot be made read-only: resumed (SIGCONT at $LAB/cont.t), it is
# writable until its pending demotion lands. Two writers are allowed only in that
# window (from the resume to the first sample of the node read-only again), whose
# length is reported; anywhere else, never.
two_writers_only_on_resume() { # node
    local col=$(( ${ID[$1]} + 1 ))
    [ -s "$LAB/ro.samples" ] && awk -v c="$(cat "$LAB/cont.t")" -v col="$col" '
        $1 >= c && !back && $col == "ON" { back = $1 }
        $2 == "OFF" && $3 == "OFF" && ($1 < c || back) { bad = 1 }
        $2 == "OFF" && $3 == "OFF" { last = $1 }
        END {
            if (last) printf "   two writable nodes from the resume until %.0f ms after it\n", (last - c) * 1000
            exit bad || !back
        }' "$LAB/ro.samples"
}


# ---- network partitions (nftables rules inside the nodes' namespaces)
# Every packet of NODE on eth0 dropped, both ways (loopback and the socket still work):
# the node is up, its link is up, and it reaches nothing.
isolate() { # node
    ip netns exec "$1" nft -f - <<EOF
table inet kmcut {
    chain i { type filter hook input priority 0; iifname "eth0" drop; }
    chain o { type filter hook output priority 0; oifname "eth0" drop; }
}
EOF
}
# Only VRRP adverts dropped, on both nodes: MySQL (replication, the hooks) still flows.
cut_vrrp() { # node...
    local n
    for n in "$@"; do
        ip netns exec "$n" nft -f - <<EOF
table inet kmcut {
    chain i { type filter hook input priority 0; ip protocol vrrp drop; }
    chain o { type filter hook output priority 0; ip protocol vrrp drop; }
}
EOF
    done
}
# VRRP adverts lost one way: NODE hears nothing, its peer still hears NODE.
deaf_to_vrrp() { # node
    ip netns exec "$1" nft -f - <<EOF
table inet kmcut {
    chain i { type filter hook input priority 0; ip protocol vrrp drop; }
}
EOF
}
# Everything between the two nodes dropped; both still reach the client (the witness).
split() {
    local n p
    for n in node1 node2; do
        p=${IP[$(other "$n")]}
        ip netns exec "$n" nft -f - <<EOF
table inet kmcut {
    chain i { type filter hook input priority 0; ip saddr $p drop; ip protocol vrrp drop; }
    chain o { type filter hook output priority 0; ip daddr $p drop; ip protocol vrrp drop; }
}
EOF
    done
}
# A client on the node itself (the application user, no privilege past read_only, over
# the socket: a cut network does not stop it), trying a write every 50 ms: "<time> ok"
# when the server accepted it, "refused" for read_only (error 1290), "error" else. Each is rolled back, so the probe leaves no transaction
# the peer lacks (a committed one would rightly make the node diverged at the heal).
local_writer_start() { # node
    : > "$LAB/local-writes.log"
    (
        while [ ! -e "$LAB/local-writer.stop" ]; do
            if timeout 2 mariadb --no-defaults -S "$(sock "$1")" -u app -p"$APP_PASS" -N -B \
                -e "BEGIN; INSERT INTO app.writes (id, node) VALUES (0, @@server_id); ROLLBACK" \
                > "$LAB/local-writer.out" 2>&1; then
                echo "$EPOCHREALTIME ok" >> "$LAB/local-writes.log"
            elif grep -q "ERROR 1290" "$LAB/local-writer.out"; then
                echo "$EPOCHREALTIME refused" >> "$LAB/local-writes.log"
            elif grep -q "ERROR 1927\|ERROR 2013" "$LAB/local-writer.out"; then
                # Its session killed by the node's own demotion: the server's doing.
                echo "$EPOCHREALTIME killed" >> "$LAB/local-writes.log"
            else
                echo "$EPOCHREALTIME error $(head -c 160 "$LAB/local-writer.out" | tr '\n' ' ')" >> "$LAB/local-writes.log"
            fi
            sleep 0.05
        done
    ) &
    LOCAL_WRITER=$!
}
local_writer_stop() {
    [ -n "${LOCAL_WRITER:-}" ] || return 0
    touch "$LAB/local-writer.stop"
    wait "$LOCAL_WRITER" 2>/dev/null || true
    rm -f "$LAB/local-writer.stop"
    LOCAL_WRITER=""
}

heal() { local n; for n in node1 node2; do ip netns exec "$n" nft delete table inet kmcut 2>/dev/null; done; true; }

# Seconds from the fault until NODE's read_only was first seen ON, from the sampler.
ro_after_fault() { # node
    local col=$(( ${ID[$1]} + 1 ))
    awk -v f="$(cat "$LAB/fault.t")" -v col="$col" '$1 > f && $col == "ON" {printf "%.2f", $1 - f; exit}' "$LAB/ro.samples"
}
sampled_read_only() { [ -n "$(ro_after_fault "$1")" ]; }
# Total time both nodes were writable, in seconds, from the sampler (sum of the gaps
# between consecutive samples that both saw OFF/OFF).
both_writable_s() {
    awk '{ if (prev_both) t += $1 - prev; prev = $1; prev_both = ($2 == "OFF" && $3 == "OFF") }
         END {printf "%.2f", t}' "$LAB/ro.samples"
}
vip_count() { local c=0 n; for n in node1 node2; do ip -n "$n" -br addr show dev eth0 | grep -q "$VIP/" && c=$((c + 1)); done; echo "$c"; }
one_vip() { [ "$(vip_count)" = 1 ]; }

# Seconds from the fault to the first promotion after it that opened writes on node
# (the final VIP holder; its notify log line, stamped in milliseconds): the server's
# side of a failover, which the client's figures add their own timeouts to. Where the
# VIP stayed, that is the holder's own promotion again (after its restart, or a
# fence-back). "-" when none opened after the fault.
opened_after_fault() { # node
    local f t
    [ -n "$1" ] && [ -e "$LAB/fault.t" ] || { echo -; return; }
    f=$(cat "$LAB/fault.t")
    for t in $(grep -h -E "MASTER: (caught up in .* read_only=OFF|.*writes opened anyway)" "$LAB/$1/keepalived-mysql.log" 2>/dev/null | cut -d' ' -f1); do
        t=$(date -d "$t" +%s.%N) || continue
        awk -v t="$t" -v f="$f" 'BEGIN {exit !(t > f)}' || continue
        awk -v t="$t" -v f="$f" 'BEGIN {printf "%.2f s\n", t - f}'
        return
    done
    echo -
}
