// A reloaded local config (SIGHUP, POST /reload) against the one the agent started with: the keys it reads at start
// only. Patroni re-reads them; pgwarden refuses a reload that changes one, saying a restart is needed, rather than
// keep the old value silently. create_replica_methods and its postgresql.<method> sections are re-read (agent-main).
import { isDeepStrictEqual } from 'node:util';
import { PgwardenError } from '../util/errors.js';
import type { PgwardenConfig } from './load.js';

/**
 * Why each key is start-only. name and scope: they are the member's identity in the DCS. backup: it renders
 * pgBackRest's config file and the archive_command/restore_command, starts the backup runner and the schedule.
 * bootstrap.method: a custom bootstrap is chosen when the agent starts, before it races to bootstrap.
 */
const START_ONLY: readonly { readonly path: string; readonly value: (config: PgwardenConfig) => unknown }[] = [
  { path: 'name', value: (config) => config.name },
  { path: 'scope', value: (config) => config.scope },
  { path: 'backup', value: (config) => config.backup },
  { path: 'bootstrap.method', value: (config) => config.customBootstrap?.name ?? 'initdb' },
  // The section of the same method (its command, recovery_conf...): the argv is built from it.
  { path: 'bootstrap.<method>', value: (config) => config.customBootstrap },
];

/** The start-only keys whose value differs, e.g. ['backup']; `bootstrap.<method>` only when the method stayed. */
export function startOnlyChanges(started: PgwardenConfig, reloaded: PgwardenConfig): string[] {
  const changed = START_ONLY.filter((key) => !isDeepStrictEqual(key.value(started), key.value(reloaded))).map((key) => key.path);
  if (changed.includes('bootstrap.method')) return changed.filter((path) => path !== 'bootstrap.<method>');
  return changed.map((path) => (path === 'bootstrap.<method>' ? `bootstrap.${started.customBootstrap?.name ?? 'initdb'}` : path));
}

/** Throws PGW_CONFIG_INVALID naming the changed start-only keys; nothing of the reload is applied then. */
export function assertReloadable(started: PgwardenConfig, reloaded: PgwardenConfig, source: string): void {
  const changed = startOnlyChanges(started, reloaded);
  if (changed.length === 0) return;
  throw new PgwardenError(
    'PGW_CONFIG_INVALID',
    `${changed.join(', ')} changed in ${source}: read when the agent starts, not on reload; nothing of this reload was applied: restart the agent to apply it`,
    {
      context: {
        path: source,
        member: started.name,
        scope: started.scope,
        keys: changed,
        hint: 'restart the agent (systemctl restart, or pgwarden local restart) to take the new values, or put the old values back and reload again',
      },
    },
  );
}
