#!/usr/bin/env bash
# Benchmarks print figures; they assert nothing. Usage: bench.sh <name> [args...]
# bench.sh failover [--runs N --blackhole-runs N --etcd-elections N ...] runs both timing profiles with those counts
# (PGW_BENCH_FULL=1 raises every default count: 50 etcd leader elections per profile); with --ttl, only that profile.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/ensure-deps.sh
name="$1"; shift
if [ "$name" = failover ] && [[ " $* " != *" --ttl "* ]]; then
  echo "== Patroni-equivalent profile (ttl=30, loop_wait=10, retry_timeout=10)"
  node --enable-source-maps dist/bench/failover.js --ttl 30 --loop-wait 10 --retry-timeout 10 "$@"
  echo
  echo "== fast profile (ttl=5, loop_wait=1, retry_timeout=2)"
  exec node --enable-source-maps dist/bench/failover.js --ttl 5 --loop-wait 1 --retry-timeout 2 "$@"
fi
exec node --enable-source-maps "dist/bench/$name.js" "$@"
