#!/usr/bin/env bash
# The one test command: set-up, typecheck/build, lint, then every test tier (or only the tiers named: unit|sim|integration).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/ensure-deps.sh

shopt -s globstar nullglob

# Runs one tier's files: unit and simulator files four at a time; integration files start real etcd and PostgreSQL
# clusters, two at a time (PGWARDEN_INTEGRATION_CONCURRENCY): their clusters mostly wait on each other's processes, so
# two share a 2-core machine (measured on a quiet one: 1097 s against about 1500 s one at a time, no failure); three
# were too many there (the chaos file ran past its 10 minutes, a restart became a failover). A hung file fails after
# 10 minutes (the longest, chaos, takes about 7) instead of holding the run until CI's limit, and a file whose tests
# are done exits even if a handle is still open; its after hooks have stopped its processes.
run_tier() {
  local tier=$1 conc=4
  local files=(dist/test/"$tier"/**/*.test.js)
  if [ ${#files[@]} -eq 0 ]; then
    echo "no test files found for tier '$tier' (dist/test/$tier): refusing to report success" >&2
    return 1
  fi
  [ "$tier" = integration ] && conc=${PGWARDEN_INTEGRATION_CONCURRENCY:-2}
  echo "== $tier: ${#files[@]} files" >&2
  node --enable-source-maps --test --test-concurrency="$conc" --test-timeout=600000 --test-force-exit --test-reporter=spec "${files[@]}"
}

lint() {
  npx eslint src test bench
  npx prettier --check --log-level warn .
}

if [ $# -gt 0 ]; then
  lint
  for tier in "$@"; do run_tier "$tier"; done
  exit 0
fi

# Everything: the unit tier first (seconds, and it catches most mistakes), then the integration tier in the foreground
# while lint and the simulator (CPU only, no processes, no ports) run beside it at a low CPU priority (nice 10). Integration
# tests mostly wait on processes and leave a core idle; at nice 10 the background work takes that idle time and yields
# to the clusters whenever they need the CPU. Run one after the other this took about 5 minutes more.
run_tier unit
background_dir=$(mktemp -d)
background_pids=()
# Each background job leads its own process group, so an interrupted run stops it with everything it started.
stop_background() {
  for pid in "${background_pids[@]}"; do kill -- "-$pid" 2>/dev/null || true; done
  rm -rf "$background_dir"
}
trap stop_background EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
setsid nice -n 10 bash -c "set -euo pipefail; $(declare -f lint); lint" >"$background_dir/lint.log" 2>&1 &
background_pids+=($!)
setsid nice -n 10 bash -c "set -euo pipefail; shopt -s globstar nullglob; $(declare -f run_tier); run_tier sim" >"$background_dir/sim.log" 2>&1 &
background_pids+=($!)

integration_status=0
run_tier integration || integration_status=$?

background_status=0
for name in lint sim; do
  status=0
  wait "${background_pids[0]}" || status=$?
  background_pids=("${background_pids[@]:1}")
  echo "== $name (ran beside the integration tier)" >&2
  cat "$background_dir/$name.log"
  if [ "$status" -ne 0 ]; then
    echo "== $name failed (exit $status)" >&2
    background_status=$status
  fi
done
[ "$integration_status" -eq 0 ] || exit "$integration_status"
exit "$background_status"
