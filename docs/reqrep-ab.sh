#!/bin/sh
# Interleaved request/reply runs, for comparing settings or builds on a noisy machine: each round runs every variant
# once (`sluice-bench peers --only reqrep --runs 1`), until SECONDS have passed, and prints one line per run with the
# machine's steal time during it (1/100 s ticks from /proc/stat; runs with high steal say little). Summarize with
#   python3 docs/reqrep-summary.py OUTPUT [MAX_STEAL]
#
# usage: sh docs/reqrep-ab.sh SECONDS VARIANT...
#   VARIANT = NAME:PEER[:ENV=VALUE[,ENV=VALUE...]][:CHECKOUT]
#   e.g. sh docs/reqrep-ab.sh 600 spin:sluice nospin:sluice:SLUICE_SPIN=0 mosquitto:mosquitto
# PEER is sluice, nats, redis or mosquitto; CHECKOUT (default .) must hold a release build.
set -eu
[ $# -ge 2 ] || { sed -n '2,11p' "$0"; exit 2; }
end=$(( $(date +%s) + $1 )); shift
steal() { awk '/^cpu /{print $9}' /proc/stat; }
while [ "$(date +%s)" -lt "$end" ]; do
  for spec in "$@"; do
    name=$(echo "$spec" | cut -d: -f1); peer=$(echo "$spec" | cut -d: -f2)
    envs=$(echo "$spec" | cut -s -d: -f3 | tr ',' ' '); dir=$(echo "$spec" | cut -s -d: -f4); dir=${dir:-.}
    s0=$(steal)
    out=$(cd "$dir" && env $envs .build/release/sluice-bench peers --only reqrep --peers "$peer" --runs 1 \
      --svg /tmp/reqrep-ab.svg 2>&1 | grep "^run 1 reqrep" || true)
    s1=$(steal)
    echo "$name steal=$((s1 - s0)) $(echo "$out" | sed -E 's/.*p50 ([0-9.]+) µs, p99 ([0-9.]+) µs, p99.9 ([0-9.]+) µs, CPU ([0-9.]+) s.*/p50 \1 p99 \2 p999 \3 cpu \4/')"
  done
done
