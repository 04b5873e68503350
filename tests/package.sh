#!/usr/bin/env bash
# Package test, as root on a Debian 12 machine (run by tests/run.sh): builds the .deb,
# lints it, installs it, checks what it installed, reinstalls over an edited conffile,
# removes and purges it. Leaves the package purged.
set -euo pipefail
cd "$(dirname "$0")/.."

pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
bad() { fail=$((fail + 1)); echo "FAIL - $1"; }
check() { local name=$1; shift; if "$@" >/dev/null 2>&1; then ok "$name"; else bad "$name"; fi; }
is() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: got '$2', want '$3'"; fi; }

apt_() { DEBIAN_FRONTEND=noninteractive apt-get "$@" -y -qq -o Dpkg::Options::=--force-confold >/dev/null 2>&1; }

deb=$(packaging/build-deb 2>/dev/null | tail -n 1)
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
is "deb file name" "$(basename "$deb")" "keepalived-mysql_${version}_amd64.deb"

lint=$(lintian --pedantic --fail-on error,warning "$deb" 2>&1 | grep -v '^running with root' || true)
if lintian --pedantic --fail-on error,warning "$deb" >/dev/null 2>&1; then ok "lintian: no errors or warnings"
else bad "lintian: $lint"; fi

# The server may be MySQL in a container publishing 3306: apt installs Recommends by
# default, so a database server may at most be suggested, never depended on or
# recommended.
rels=$(dpkg-deb -f "$deb" Depends Pre-Depends Recommends)
if echo "$rels" | grep -Eqi 'mysql|mariadb'; then bad "no database server pulled in: $rels"
else ok "no database server pulled in by Depends/Recommends"; fi

dpkg -s keepalived-mysql >/dev/null 2>&1 && apt_ purge keepalived-mysql
user_before=no
getent passwd keepalived_script >/dev/null && user_before=yes

check "install with apt" apt_ install "./$deb"
check "keepalived_script user" getent passwd keepalived_script
is "user's primary group" "$(id -gn keepalived_script)" keepalived_script
conf=/etc/keepalived-mysql/keepalived-mysql.cnf
is "config owner and mode" "$(stat -c '%U:%G %a' "$conf")" "root:keepalived_script 640"
check "config is a conffile" sh -c "dpkg-query -W -f='\${Conffiles}' keepalived-mysql | grep -q '$conf'"
for b in check restart notify; do
    is "binary $b owner and mode" "$(stat -c '%U:%G %a' /usr/sbin/keepalived-mysql-$b)" "root:root 755"
    is "binary $b --version" "$(/usr/sbin/keepalived-mysql-$b --version)" "keepalived-mysql-$b $version"
    check "man page $b" man -w keepalived-mysql-$b
done
check "man page cnf(5)" man -w 5 keepalived-mysql.cnf
is "runtime dir" "$(stat -c '%U:%G %a' /run/keepalived-mysql)" "keepalived_script:keepalived_script 755"
is "log dir" "$(stat -c '%U:%G %a' /var/log/keepalived-mysql)" "keepalived_script:adm 2750"
check "tmpfiles.d entry" grep -q '^d /run/keepalived-mysql' /usr/lib/tmpfiles.d/keepalived-mysql.conf
# keepalived drops supplementary groups: the script user must read the config through
# its primary group alone.
check "script user reads the config" \
    setpriv --reuid keepalived_script --regid keepalived_script --clear-groups \
    /usr/sbin/keepalived-mysql-check --print-defaults

# enable_script_security. keepalived 2.2.7's -t exits 143 whenever a script's user is
# not keepalived's (fixed in 2.2.8), so test under the strictest rules instead:
# script_user root, where every path component must be root-owned and not writable.
ex=/usr/share/doc/keepalived-mysql/examples/keepalived.conf
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed 's/script_user keepalived_script/script_user root/' "$ex" > "$tmp/strict.conf"
keepalived -t -f "$tmp/strict.conf" -i node1 > "$tmp/out" 2>&1 && rc=0 || rc=$?
is "keepalived -t on the sample config (no security violation)" "$rc" 0
check "no 'insecure' in keepalived -t output" sh -c "! grep -qi insecure '$tmp/out'"
# Control: the same test does catch an unsafe script.
printf '#!/bin/sh\nexit 0\n' > "$tmp/unsafe.sh"
chmod 0777 "$tmp/unsafe.sh"
sed "s|/usr/sbin/keepalived-mysql-check|$tmp/unsafe.sh|" "$tmp/strict.conf" > "$tmp/unsafe.conf"
keepalived -t -f "$tmp/unsafe.conf" -i node1 > "$tmp/out" 2>&1 && rc=0 || rc=$?
check "control: keepalived -t flags a writable script" sh -c "[ $rc -ne 0 ] && grep -qi insecure '$tmp/out'"

# The operator's command, for the script user's group too.
is "operator command owner and mode" "$(stat -c '%U:%G %a' /usr/bin/keepalived-mysql)" "root:root 755"
is "operator command --version" "$(/usr/bin/keepalived-mysql --version)" "keepalived-mysql $version"
check "man page keepalived-mysql(1)" man -w 1 keepalived-mysql
# lint passes the installed sample with the installed option file, and catches a trap.
check "lint: the sample config is clean" /usr/bin/keepalived-mysql lint "$ex" --config-id node1
fx=/usr/share/doc/keepalived-mysql/examples/keepalived-fifo.conf
check "lint: the FIFO sample config is clean" /usr/bin/keepalived-mysql lint "$fx" --config-id node1
sed 's/script_user keepalived_script/script_user root/' "$fx" > "$tmp/strict-fifo.conf"
keepalived -t -f "$tmp/strict-fifo.conf" -i node1 > "$tmp/out" 2>&1 && rc=0 || rc=$?
is "keepalived -t on the FIFO sample config" "$rc" 0
fa=/usr/share/doc/keepalived-mysql/examples/keepalived-fast.conf
check "lint: the fast-profile sample config is clean" /usr/bin/keepalived-mysql lint "$fa" --config-id node1
sed 's/script_user keepalived_script/script_user root/' "$fa" > "$tmp/strict-fast.conf"
keepalived -t -f "$tmp/strict-fast.conf" -i node1 > "$tmp/out" 2>&1 && rc=0 || rc=$?
is "keepalived -t on the fast-profile sample config" "$rc" 0
sed '/enable_script_security/d' "$ex" > "$tmp/nosec.conf"
/usr/bin/keepalived-mysql lint "$tmp/nosec.conf" --config-id node1 > "$tmp/out" 2>&1 && rc=0 || rc=$?
check "lint: a config without script security is an error (exit 45)" \
    sh -c "[ $rc = 45 ] && grep -q 'enable_script_security is not set' '$tmp/out'"
# postinst runs lint as a warning only: a trap in keepalived.conf is reported, and the
# upgrade still succeeds.
ka=/etc/keepalived/keepalived.conf
ka_saved=""
[ -e "$ka" ] && { ka_saved=$tmp/keepalived.conf.saved; cp -p "$ka" "$ka_saved"; }
install -d /etc/keepalived
cp "$tmp/nosec.conf" "$ka"
out=$(DEBIAN_FRONTEND=noninteractive apt-get install --reinstall -y -o Dpkg::Options::=--force-confold "./$deb" 2>&1) && rc=0 || rc=$?
is "postinst lint: the upgrade succeeds despite a trap" "$rc" 0
check "postinst lint: the trap is reported" sh -c "echo \"\$1\" | grep -q 'enable_script_security is not set'" _ "$out"
if [ -n "$ka_saved" ]; then cp -p "$ka_saved" "$ka"; else rm -f "$ka"; fi

# An administrator's edit survives a reinstall (conffile), and so do owner and mode.
echo "# local edit $$" >> "$conf"
check "reinstall over an edited conffile" apt_ install --reinstall "./$deb"
check "edit kept" grep -q "# local edit $$" "$conf"
is "mode kept" "$(stat -c '%U:%G %a' "$conf")" "root:keepalived_script 640"

check "remove" apt_ remove keepalived-mysql
check "binaries gone after remove" sh -c '! [ -e /usr/sbin/keepalived-mysql-check ] && ! [ -e /usr/bin/keepalived-mysql ]'
check "conffile kept after remove" test -e "$conf"
check "purge" apt_ purge keepalived-mysql
check "config dir gone after purge" sh -c '! [ -e /etc/keepalived-mysql ]'
check "log dir gone after purge" sh -c '! [ -e /var/log/keepalived-mysql ]'
check "statoverride gone after purge" sh -c "! dpkg-statoverride --list '$conf'"
if [ "$user_before" = yes ]; then
    check "pre-existing script user kept" getent passwd keepalived_script
else
    check "script user created by the package removed" sh -c '! getent passwd keepalived_script'
fi

echo "package: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
