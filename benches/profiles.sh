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
# The client: one sequential writer through the VIP, each attempt bounded by
# LAB_CLIENT_TIMEOUT seconds (here 0.5 by default; the suite's 2 otherwise). A statement
# in flight when mysqld freezes waits out that bound whatever the failover does, so
# the frozen figures are only as short as the client lets them be: an application
# that wants a 2 s failover needs a statement timeout well below 2 s.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
export LAB_CLIENT_TIMEOUT=${LAB_CLIENT_TIMEOUT:-0.5}
# Faults at a random point of the check interval (the suite's fixed point is one phase).
export FAULT_PHASE=random
out=target/profiles
mkdir -p "$out"
list=""
for s in crash_hold_off sigstop switchover; do
    for _ in $(seq "$runs"); do list="$list $s"; done
done
for p in ${PROFILES:-default fast}; do
    echo "# profile $p: $runs runs of crash_hold_off, sigstop, switchover; client bound ${LAB_CLIENT_TIMEOUT} s"
    LAB_PROFILE=$p SCENARIOS="$list" tests/failover.sh > "$out/$p.log" 2>&1 || {
        grep -E '^FAIL' "$out/$p.log" || true
        echo "profiles: the suite failed under profile $p (see $out/$p.log)" >&2
    }
    cp target/failover-report.md "$out/$p.md"
done

python3 - "$out" <<'PY'
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
d, f = rows("default"), rows("fast")
print("| scenario | measure | default profile (median, range) | fast profile (median, range) | fast target | lost (default/fast) |")
print("|---|---|---|---|---|---|")
for key, (label, which, target) in names.items():
    measure = "fault to first write on the new node" if which == "first" else "write unavailability"
    lost = f"{sum(r['lost'] for r in d.get(key, []))}/{sum(r['lost'] for r in f.get(key, []))}"
    print(f"| {label} | {measure} | {cell(d.get(key, []), which)} | {cell(f.get(key, []), which)} | <= {target} s | {lost} |")
    print(f"| {label} | fault to writes opened (notify log) | {cell(d.get(key, []), 'opened')} | {cell(f.get(key, []), 'opened')} | | |")
PY
