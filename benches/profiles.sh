#!/usr/bin/env bash
# Benchmark: the two keepalived profiles on the lab, as medians of RUNS runs (default
# 5) of each scenario: mysqld killed (hold-vip off), mysqld frozen (SIGSTOP), planned
# switchover. Runs the failover suite's own scenarios (their assertions too) with
# LAB_PROFILE=default, then fast, and reports fault-to-first-write and write
# unavailability from its report. Figures only: the targets are printed beside them,
# nothing passes or fails on a number. Needs root; about a minute per scenario run.
# PROFILES="fast" measures one profile only (the other's columns then read "-").
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
out=target/profiles
mkdir -p "$out"
list=""
for s in crash_hold_off sigstop switchover; do
    for _ in $(seq "$runs"); do list="$list $s"; done
done
for p in ${PROFILES:-default fast}; do
    echo "# profile $p: $runs runs of crash_hold_off, sigstop, switchover"
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
def rows(profile):
    got = {}
    try:
        lines = open(f"{out}/{profile}.md").readlines()
    except OSError:
        return got
    for line in lines:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 5 or cells[0] not in names:
            continue
        num = lambda c: float(re.match(r"([0-9.]+)", c).group(1)) if re.match(r"[0-9.]+", c) else None
        got.setdefault(cells[0], []).append((num(cells[1]), num(cells[2]), int(cells[4] or 0)))
    return got
d, f = rows("default"), rows("fast")
print("| scenario | measure | default profile (median, range) | fast profile (median, range) | fast target | lost (default/fast) |")
print("|---|---|---|---|---|---|")
for key, (label, which, target) in names.items():
    def cell(rs):
        xs = [r[0] if which == "first" else r[1] for r in rs if (r[0] if which == "first" else r[1]) is not None]
        if not xs:
            return "-"
        return f"{statistics.median(xs):.2f} s ({min(xs):.2f}-{max(xs):.2f}, n={len(xs)})"
    measure = "fault to first write on the new node" if which == "first" else "write unavailability"
    lost = f"{sum(r[2] for r in d.get(key, []))}/{sum(r[2] for r in f.get(key, []))}"
    print(f"| {label} | {measure} | {cell(d.get(key, []))} | {cell(f.get(key, []))} | <= {target} s | {lost} |")
PY
