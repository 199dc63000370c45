#!/bin/sh
# Installs the brokers `sluice-bench peers` compares Sluice with (issue 6), from Debian 12's own packages:
#   nats-server 2.9 (/usr/sbin/nats-server), redis-server 7.0 (/usr/bin/redis-server), mosquitto 2.0 (/usr/sbin/mosquitto).
# The benchmark starts and stops each one itself on a free loopback port, so the services the packages enable are
# stopped and disabled here: nothing keeps listening on 6379 or 1883 behind the benchmark's back.
# Usage: sudo sh docs/install-peers.sh        (does nothing when all three are present)
set -eu

missing=""
[ -x /usr/sbin/nats-server ] || missing="$missing nats-server"
[ -x /usr/bin/redis-server ] || missing="$missing redis-server"
[ -x /usr/sbin/mosquitto ] || missing="$missing mosquitto"

if [ -z "$missing" ]; then
    echo "install-peers: nats-server, redis-server and mosquitto are already installed"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-peers: missing:$missing; run as root: sudo sh $0" >&2
    exit 1
fi

echo "install-peers: installing$missing"
apt-get update
# shellcheck disable=SC2086  # word splitting of the package list is intended
DEBIAN_FRONTEND=noninteractive apt-get install -y $missing

if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    for service in redis-server mosquitto nats-server; do
        systemctl disable --now "$service" >/dev/null 2>&1 || true
    done
fi
echo "install-peers: done"
