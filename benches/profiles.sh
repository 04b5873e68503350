#!/usr/bin/env bash
# Benchmark: the two keepalived profiles on the lab, as medians of RUNS runs (default
# 5) of each scenario: mysqld killed (hold-vip off), mysqld frozen (SIGSTOP), planned
# switchover. Runs the failover suite's own scenarios (their assertions too) with
# LAB_PROFILE=default, then fast, and reports from its report: fault to the first
# acknowledged write on the new node and write unavailability (the client's view), and
# fault to writes opened there (the server's view, from the notify log). Figures only:
# the targets are printed beside them, nothing passes or fails on a number. Needs root;
# about 20 s per scenario run. PROFILES="fast" measures one profile only (the other's
# columns then read "-").
#
# The clients, each attempt bounded by LAB_CLIENT_TIMEOUT seconds (0.5 here; the
# suite's 2 otherwise), one after the other (CLIENTS="new pooled"):
#   new     the suite's writer: a new connection per autocommit insert through the VIP
#   pooled  one connection kept open, a new one only after an error (lab/pooled-writer,
#           python3-pymysql, installed here if missing)
# A statement in flight when mysqld freezes waits out that bound whatever the failover
# does, so the frozen figures are only as short as the client lets them be: an
# application that wants a 2 s failover needs a statement timeout well below 2 s.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
export LAB_CLIENT_TIMEOUT=${LAB_CLIENT_TIMEOUT:-0.5}
# Faults at a random point of the check interval (the suite's fixed point is one phase).
export FAULT_PHASE=random
out=target/profiles
mkdir -p "$out"
# Only this run's reports: a profile or client not measured now reads "-".
rm -f "$out"/*.md
list=""
for s in crash_hold_off sigstop switchover; do
    for _ in $(seq "$runs"); do list="$list $s"; done
done
clients=${CLIENTS:-new pooled}
failed=""
case " $clients " in
    *" pooled "*)
        /usr/bin/python3 -c 'import pymysql' 2>/dev/null || \
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pymysql > /dev/null ;;
esac
for c in $clients; do
    for p in ${PROFILES:-default fast}; do
        echo "# profile $p, client $c: $runs runs of crash_hold_off, sigstop, switchover; client bound ${LAB_CLIENT_TIMEOUT} s"
        rm -f target/failover-report.md
        LAB_CLIENT=$c LAB_PROFILE=$p SCENARIOS="$list" tests/failover.sh > "$out/$p-$c.log" 2>&1 || {
            grep -E '^FAIL' "$out/$p-$c.log" || true
            echo "profiles: the suite failed under profile $p, client $c (see $out/$p-$c.log)" >&2
            failed="$failed $p/$c"
        }
        [ ! -e target/failover-report.md ] || cp target/failover-report.md "$out/$p-$c.md"
    done
done

python3 - "$out" "$clients" <<'PY'
import re, statistics, sys
out = sys.argv[1]
names = {
    "crash, restart, hold-vip off": ("mysqld killed (SIGKILL)", "first", 1.0),
    "mysqld frozen (SIGSTOP)": ("mysqld frozen (SIGSTOP)", "first", 2.0),
    "planned switchover (keepalived-mysql switchover)": ("planned switchover", "gap", 0.5),
}
num = lambda c: float(re.match(r"([0-9.]+)", c).group(1)) if re.match(r"[0-9.]+", c) else None
def rows(profile):
    got = {}
    try:
        lines = open(f"{out}/{profile}.md").readlines()
    except OSError:
        return got
    for line in lines:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 6 or cells[0] not in names:
            continue
        got.setdefault(cells[0], []).append(
            {"first": num(cells[1]), "gap": num(cells[2]), "lost": int(cells[4] or 0), "opened": num(cells[5])})
    return got
def cell(rs, which):
    xs = [r[which] for r in rs if r[which] is not None]
    if not xs:
        return "-"
    return f"{statistics.median(xs):.2f} s ({min(xs):.2f}-{max(xs):.2f}, n={len(xs)})"
print("| client | scenario | measure | default profile (median, range) | fast profile (median, range) | fast target | lost (default/fast) |")
print("|---|---|---|---|---|---|---|")
for client in sys.argv[2].split():
    d, f = rows(f"default-{client}"), rows(f"fast-{client}")
    for key, (label, which, target) in names.items():
        measure = "fault to first write on the new node" if which == "first" else "write unavailability"
        lost = f"{sum(r['lost'] for r in d.get(key, []))}/{sum(r['lost'] for r in f.get(key, []))}"
        print(f"| {client} | {label} | {measure} | {cell(d.get(key, []), which)} | {cell(f.get(key, []), which)} | <= {target} s | {lost} |")
        print(f"| {client} | {label} | fault to writes opened (notify log) | {cell(d.get(key, []), 'opened')} | {cell(f.get(key, []), 'opened')} | | |")
PY
# Figures from a suite that failed an assertion are still printed above: said here.
[ -z "$failed" ] || echo "profiles: assertions failed in:$failed (their runs are in the figures)"
