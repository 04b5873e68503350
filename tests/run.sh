#!/usr/bin/env bash
# The full test suite, as root on a fresh Debian 12 machine: installs what the tests
# need, then format and lint checks, the static release build (static, stripped,
# <= 3 MiB), every cargo test, the package test, the end-to-end failover suite on the
# two-node lab, a short seeded chaos run and a short load test there, and the
# benchmark figures (reported, never asserted).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "tests/run.sh: run as root (the tests start mariadbd and use mount namespaces)" >&2
    exit 2
fi

# mariadb-server/-client: the servers the tests start and my_print_defaults for the
# golden files; keepalived, iproute2: lab and end-to-end tests; util-linux: unshare;
# file: the static-build check; lintian, man-db: the package test; hyperfine, time,
# python3: the benchmark; openssl: test certificates and RSA keys (TLS tests, lab --tcp).
packages=(mariadb-server mariadb-client keepalived iproute2 procps util-linux file
    lintian man-db hyperfine time python3 openssl nftables)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "tests/run.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Do not let the packages start the distribution's own services: the tests run their
    # own mariadbd and keepalived instances.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d.kmysql
    [ -e /usr/sbin/policy-rc.d ] || { cp /usr/sbin/policy-rc.d.kmysql /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; added_policy=1; }
    apt-get install -y -qq "${missing[@]}" >/dev/null
    [ -z "${added_policy:-}" ] || rm -f /usr/sbin/policy-rc.d
    rm -f /usr/sbin/policy-rc.d.kmysql
fi

echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
echo "== static release build"
packaging/build-static
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# The package test first: it checks that installing creates keepalived_script, and the
# cargo tests create that user themselves when it is missing.
echo "== package"
tests/package.sh 2>&1 | tee "$log"
echo "== tests"
cargo test --locked 2>&1 | tee -a "$log"
echo "== failover (two-node lab: real keepalived, MariaDB, VIP)"
tests/failover.sh 2>&1 | tee -a "$log"
echo "== chaos (a short seeded run: tests/chaos.sh --seed N --faults K replays any)"
tests/chaos.sh --seed 1 --faults 6 2>&1 | tee -a "$log"
echo "== load (short: a busy active node keeps the VIP; benches/load.sh for the figures)"
PROFILES=default DURATION=30 benches/load.sh --assert 2>&1 | tee -a "$log"
echo "== benchmark (figures only)"
benches/check-vs-ping.sh
# One closing line for the whole suite.
awk '/^test result:/ { p += $4; f += $6 } /^(package|failover|chaos|load): / { p += $2; f += $4 }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
