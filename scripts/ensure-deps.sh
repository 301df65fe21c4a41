#!/usr/bin/env bash
# Installs whatever the machine lacks (npm packages, etcd, PostgreSQL 15, Chromium); safe to run repeatedly.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

need_apt=()
command -v etcd >/dev/null 2>&1 || need_apt+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need_apt+=(etcd-client)
[ -x /usr/lib/postgresql/15/bin/postgres ] || need_apt+=(postgresql-15)
[ -x /usr/lib/postgresql/15/bin/pgbench ] || need_apt+=(postgresql-15)
# HAProxy is used by the interop test that routes with Patroni-style health checks.
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need_apt+=(haproxy)
# Debian's Patroni 3.0.2 provides patronictl for the interop test (pgwarden must look like Patroni to it).
command -v patronictl >/dev/null 2>&1 || need_apt+=(patroni)
# The backup: section (and `npm run cluster -- --backup`) configures pgBackRest; its test restores replicas with it.
command -v pgbackrest >/dev/null 2>&1 || need_apt+=(pgbackrest)
# npm run bench:proxy measures the split listener next to PgBouncer (Debian's 1.18; the package's service is not started
# without an init system, and the benchmark runs its own pgbouncer on a free port).
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || need_apt+=(pgbouncer)
# deploy/prometheus's alert rules are checked and unit-tested with promtool, and fired by a real Prometheus scraping a
# test cluster; Debian's prometheus package ships both binaries (no service runs without an init system).
{ command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; } || need_apt+=(prometheus)
# The dashboard's browser test drives Debian's Chromium with playwright-core (no browser download).
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need_apt+=(chromium)
# The proxy's kernel data path (proxy.data_path: kernel) programs nftables and clears conntrack flows.
if [ "$(id -u)" -eq 0 ]; then
  command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || need_apt+=(nftables)
  command -v conntrack >/dev/null 2>&1 || [ -x /usr/sbin/conntrack ] || need_apt+=(conntrack)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "pgwarden setup: installing ${need_apt[*]} with apt-get" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >/dev/null || echo "pgwarden setup: apt-get update failed, trying install anyway" >&2
  $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# The Debian package starts a system etcd on 2379 where an init system exists; pgwarden runs its own.

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "pgwarden setup: installing npm packages" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi
addon=native/linux/build/Release/pgwarden_linux.node
if [ ! -f "$addon" ] || [ native/linux/linux.cc -nt "$addon" ]; then
  npm run --silent build:native
fi
if [ ! -f dist/.built ] || [ -n "$(find src test bench tsconfig.json scripts/bundle-bins.mjs -newer dist/.built -print -quit 2>/dev/null)" ]; then
  # The whole build (tsc, then the bundled process entries, then dist/.built), not tsc alone: tsc would put the
  # unbundled entries back.
  npm run --silent build
fi
