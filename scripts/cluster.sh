#!/usr/bin/env bash
# Starts the local cluster (3 etcd members + 3 agents with PostgreSQL 15 on 127.0.0.1). Usage: cluster.sh [start|stop|status] [--background] [--dir DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/ensure-deps.sh
exec node --enable-source-maps dist/src/bin/pgwarden.js local "${@:-start}"
