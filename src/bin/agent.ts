#!/usr/bin/env -S UV_THREADPOOL_SIZE=2 node --max-semi-space-size=1 --optimize-for-size --v8-pool-size=1
// Entry of one pgwarden agent. Run it as `dist/src/bin/agent.js <config>` (this shebang applies the process settings
// of src/util/agent-process.ts) or `node <those flags> dist/src/bin/agent.js <config>`; started without them the
// agent works the same and says in its log what it runs without. Modules load after the checks below.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { hasEnvironmentConfig } from '../config/environment-source.js';
import './pg-node-runtime.js';
import { describeError } from '../util/errors.js';

const configPath = process.argv[2] ?? process.env.PGWARDEN_CONFIG ?? process.env.PATRONI_CONFIG_FILE;
if (configPath === undefined && !hasEnvironmentConfig(process.env)) {
  const version = (
    JSON.parse(readFileSync(join(dirname(new URL(import.meta.url).pathname), '../../../package.json'), 'utf8')) as { version: string }
  ).version;
  process.stderr.write(
    `pgwarden agent ${version}\nusage: agent <config.yml>   (or set PGWARDEN_CONFIG, or configure it with PATRONI_CONFIGURATION or PATRONI_* variables)\n`,
  );
  process.exit(2);
}

const { runAgent } = await import('./agent-main.js');
runAgent(configPath).catch((error: unknown) => {
  process.stderr.write(`Error: ${describeError(error)}\n`);
  process.exit(1);
});
