#!/usr/bin/env node
// The fence process of one member: `fence.js <member> <data dir>`, started (detached) by its agent.
import { rmSync, writeFileSync } from 'node:fs';
import { fencePidPathOf, fenceSocketPathOf } from '../fence/fence-paths.js';
import { startFenceServer } from '../fence/fence-server.js';
import { freezePrimaryPostgres, killFrozenPostgres, stopPrimaryPostgres, thawPostgres } from '../fence/stop-primary.js';
import { isAlive } from '../util/process-alive.js';
import { scheduleWorkingSetTrims } from '../util/working-set.js';

const IDLE_EXIT_MS = 60_000;

const [member, dataDir] = process.argv.slice(2);
if (member === undefined || dataDir === undefined) {
  process.stderr.write('usage: fence.js <member> <data dir> (started by the pgwarden agent)\n');
  process.exit(2);
}
const socketPath = fenceSocketPathOf(dataDir);
const pidPath = fencePidPathOf(dataDir);

const log = (event: string, fields: Readonly<Record<string, unknown>> = {}): void => {
  process.stdout.write(
    `${JSON.stringify({ time: new Date().toISOString(), level: 'warn', member, component: 'fence', ...fields, msg: event })}\n`,
  );
};

// The fence shares the agent's stdout: if whatever reads it goes away (a pipe to a pager, tee), a write error must not
// take the fence down with it.
process.stdout.on('error', () => undefined);
// The agent's signals are not the fence's: a Ctrl-C or SIGTERM meant for the agent must not take the fence with it.
process.on('SIGINT', () => undefined);
process.on('SIGHUP', () => undefined);

const server = await startFenceServer({
  socketPath,
  dataDir,
  nowNs: () => process.hrtime.bigint(),
  stopPrimary: stopPrimaryPostgres,
  freezePrimary: freezePrimaryPostgres,
  thaw: thawPostgres,
  killFrozen: killFrozenPostgres,
  isAlive,
  log,
  idleExitMs: IDLE_EXIT_MS,
  onExit: () => {
    rmSync(pidPath, { force: true });
    process.exit(0);
  },
}).catch((error: unknown) => {
  log('could not listen on the fence socket', { socket: socketPath, error: String(error) });
  process.exit(1);
});
if (server === undefined) {
  // Another fence already serves this data dir (two agents raced to start one): it is the one.
  process.exit(0);
}
writeFileSync(pidPath, `${process.pid}\n`, { mode: 0o600 });
log('fence listening', { socket: socketPath, data_dir: dataDir });
// Its resident set is what stays of start-up: nothing to report either way.
scheduleWorkingSetTrims(() => undefined);
