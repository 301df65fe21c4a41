#!/usr/bin/env bash
# The local cluster (3 etcd members + agents with PostgreSQL 15 + a proxy, on 127.0.0.1).
# Usage: cluster.sh [start|stop|status|kill <member>|restart <member>] [--background] [--wipe] [--dir DIR] [--port-base N]
# With no subcommand (or options only) it starts; any other first word must be a subcommand (a typo is an error).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/ensure-deps.sh
if [ $# -eq 0 ] || [[ "$1" == -* && "$1" != "-h" && "$1" != "--help" ]]; then set -- start "$@"; fi
exec node --enable-source-maps dist/src/bin/pgwarden.js local "$@"
