#!/usr/bin/env bash
# Install PostgreSQL and MariaDB server binaries, and the Galera provider with rsync
# (its state transfer) for the clustered-ledger tier, and RabbitMQ (the real transport of
# the notification tests, tests/support/rabbitmq.py), and Debian's chromium with its
# chromedriver (the dashboard's real-browser tier, tests/support/horizon.py: selenium
# drives them, nothing is downloaded at test time), and Prometheus with promtool (the
# collector's real server for the cloudkitty-processor daemon's walk,
# tests/support/prometheus.py), and Debian's Apache httpd with its mod_wsgi (the panel
# as operators deploy Horizon, tests/support/apache.py), for the test suite (Debian 12,
# run as root).
#
# The tests start their own throwaway servers on loopback (see tests/support/dbservers.py);
# this script only makes the binaries available. It is idempotent: when the
# binaries are already present it does nothing (no apt-get update either), and it
# makes sure the distro's own services are not left running.
set -euo pipefail

have_pg() {
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null \
        && compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

have_mariadb() {
    { command -v mariadbd >/dev/null 2>&1 || command -v mysqld >/dev/null 2>&1 \
        || [ -x /usr/sbin/mariadbd ] || [ -x /usr/sbin/mysqld ]; } \
        && { command -v mariadb-install-db >/dev/null 2>&1 \
        || command -v mysql_install_db >/dev/null 2>&1; }
}

# The wsrep provider library (tests/support/galera.py looks in the same places).
have_galera() {
    compgen -G '/usr/lib/galera/libgalera_smm.so' >/dev/null \
        || compgen -G '/usr/lib/*/galera/libgalera_smm.so' >/dev/null \
        || compgen -G '/usr/lib/libgalera_smm.so' >/dev/null
}

have_rabbitmq() {
    [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || command -v rabbitmq-server >/dev/null 2>&1
}

pkgs=()
have_pg || pkgs+=(postgresql)
have_mariadb || pkgs+=(mariadb-server)
have_galera || pkgs+=(galera-4)
have_rabbitmq || pkgs+=(rabbitmq-server)
# Galera's state snapshot transfer (a node rejoining too far behind) uses rsync.
command -v rsync >/dev/null 2>&1 || pkgs+=(rsync)
# The browser tier: chromium, chromium-driver, and a font with Arial's metrics for
# Horizon's pages and their screenshots.
command -v chromium >/dev/null 2>&1 || pkgs+=(chromium)
command -v chromedriver >/dev/null 2>&1 || pkgs+=(chromium-driver)
[ -d /usr/share/fonts/truetype/liberation ] || pkgs+=(fonts-liberation)
# The cloudkitty-processor daemon's walk: a real Prometheus serving backfilled metrics.
{ command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; } \
    || pkgs+=(prometheus)
# The panel under Apache + mod_wsgi (daemon mode, offline-compressed static files):
# Debian's apache2 and libapache2-mod-wsgi-py3, run with the tests' own configuration.
[ -x /usr/sbin/apache2 ] || pkgs+=(apache2)
[ -e /usr/lib/apache2/modules/mod_wsgi.so ] || pkgs+=(libapache2-mod-wsgi-py3)
# ... and one of ss/lsof to see its rsync daemon listen (wsrep_sst_common).
{ command -v ss >/dev/null 2>&1 || command -v lsof >/dev/null 2>&1; } || pkgs+=(iproute2)

if [ "${#pkgs[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-db-servers: need root to install: ${pkgs[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    log=$(mktemp)
    trap 'rm -f "$log"' EXIT
    # Keep the packages' postinst from starting the system services
    # (policy-rc.d exit 101 = "action forbidden"); restore afterwards.
    policy=/usr/sbin/policy-rc.d
    policy_backup=""
    if [ -e "$policy" ]; then
        policy_backup=$(mktemp)
        cp -p "$policy" "$policy_backup"
    fi
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    restore_policy() {
        if [ -n "$policy_backup" ]; then
            mv -f "$policy_backup" "$policy"
        else
            rm -f "$policy"
        fi
    }
    if ! { apt-get update -qq >"$log" 2>&1 \
        && apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >>"$log" 2>&1; }; then
        restore_policy
        echo "install-db-servers: apt-get failed installing ${pkgs[*]}:" >&2
        tail -n 40 "$log" >&2
        exit 1
    fi
    restore_policy
fi

# Whatever the postinst did (or an earlier run left behind), do not leave the
# distro's services running: they would hold ports 5432/3306/5672 and waste memory.
if command -v service >/dev/null 2>&1; then
    service postgresql stop >/dev/null 2>&1 || true
    service mariadb stop >/dev/null 2>&1 || true
    service rabbitmq-server stop >/dev/null 2>&1 || true
    service prometheus stop >/dev/null 2>&1 || true
    service apache2 stop >/dev/null 2>&1 || true
fi
# rabbitmq-server's postinst leaves Erlang's port mapper running (port 4369); the tests
# start one of their own. It only stops when no node uses it.
if command -v epmd >/dev/null 2>&1; then
    epmd -kill >/dev/null 2>&1 || true
fi
