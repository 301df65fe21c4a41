#!/usr/bin/env node
// Composition root of one pgwarden agent: config -> etcd DCS, PostgreSQL controller, REST API, HA loop.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { runAgent } from './agent-main.js';

const configPath = process.argv[2] ?? process.env.PGWARDEN_CONFIG ?? process.env.PATRONI_CONFIG_FILE;
if (configPath === undefined) {
  const version = (
    JSON.parse(readFileSync(join(dirname(new URL(import.meta.url).pathname), '../../../package.json'), 'utf8')) as { version: string }
  ).version;
  process.stderr.write(`pgwarden agent ${version}\nusage: agent <config.yml>   (or set PGWARDEN_CONFIG)\n`);
  process.exit(2);
}

runAgent(configPath).catch((error: unknown) => {
  process.stderr.write(`Error: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
