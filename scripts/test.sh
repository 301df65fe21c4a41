#!/usr/bin/env bash
# The one test command: set-up, typecheck/build, lint, then every test tier (or one: unit|sim|integration).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/ensure-deps.sh
npx eslint src test bench
npx prettier --check --log-level warn .

tiers=("$@")
[ ${#tiers[@]} -gt 0 ] || tiers=(unit sim integration)
shopt -s globstar nullglob
for tier in "${tiers[@]}"; do
  files=(dist/test/"$tier"/**/*.test.js)
  if [ ${#files[@]} -eq 0 ]; then
    echo "no test files found for tier '$tier' (dist/test/$tier): refusing to report success" >&2
    exit 1
  fi
  echo "== $tier: ${#files[@]} files" >&2
  conc=4
  # Integration tests start real etcd and PostgreSQL clusters: one at a time on a 2-core machine.
  [ "$tier" = integration ] && conc=1
  # A hung test fails after 10 minutes (the longest takes under 2) instead of holding the run until CI's limit, and a
  # file whose tests are done exits even if a handle is still open; its after hooks have stopped its processes.
  node --enable-source-maps --test --test-concurrency="$conc" --test-timeout=600000 --test-force-exit --test-reporter=spec "${files[@]}"
done
