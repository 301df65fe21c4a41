#!/usr/bin/env bash
# Builds the optional native addon (native/linux) with the node-gyp that npm ships; run by npm (install
# script, `npm run build:native`), which passes its node-gyp path and nodedir. Without a compiler or Node's headers the
# agent works the same, with a larger resident set: a failed build is reported and does not fail the install.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
node_gyp="${npm_config_node_gyp:-$(dirname "$(command -v node)")/../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js}"
if [ ! -f "$node_gyp" ]; then
  echo "pgwarden: native addon not built: node-gyp not found at $node_gyp; agents run without trimming start-up pages" >&2
  exit 0
fi
if ! output=$(node "$node_gyp" rebuild --directory native/linux --loglevel=error 2>&1); then
  # The lines that say why (make's and the compiler's errors, node-gyp's own Error), not node-gyp's trailer.
  reason=$(printf '%s\n' "$output" | grep -E 'error:|\*\*\*|No such file|not found|^gyp ERR! stack Error: ' | head -n 3 | sed -E 's/^gyp ERR! stack //' | tr '\n' ' ')
  [ -n "$reason" ] || reason=$(printf '%s\n' "$output" | tail -n 3 | tr '\n' ' ')
  echo "pgwarden: native addon not built (${reason% }); agents run without trimming start-up pages (about 20 MB more RSS) and cannot drive a watchdog device" >&2
fi
exit 0
