#!/bin/sh
# Regenerates the golden outputs from MariaDB's own my_print_defaults (mariadb-client).
# Run after adding a case; commit the .cnf and the .out together.
set -eu
cd "$(dirname "$0")/cases"
chmod 0600 *.cnf inc.d/*
for f in *.cnf; do
    case "$f" in include_child.cnf) continue ;; esac
    my_print_defaults --defaults-file="$f" client keepalived-mysql keepalived-mysql-check \
        > "${f%.cnf}.out"
done
