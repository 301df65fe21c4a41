// Read-only verbs straight from the DCS: show-config, history, dsn.
import { stringify } from 'yaml';
import type { ClusterView } from '../../core/types.js';
import { PgwardenError } from '../../util/errors.js';
import { redactSecrets } from '../../util/redact.js';
import { borderedTable } from '../render.js';
import { pickMember } from './query.js';

export function showConfig(view: ClusterView, format: 'yaml' | 'json' = 'yaml'): string {
  if (view.config === undefined)
    throw new PgwardenError('PGW_CLI_CLUSTER_STATE', 'the cluster has no configuration in the DCS (not initialized yet?)', {
      context: {
        command: ['pgwarden', 'show-config'],
        key: '<namespace>/<scope>/config',
        hint: 'start an agent to bootstrap the cluster; it writes the config key',
      },
    });
  // Shown, never edited back: a password in the config (a conninfo in a parameter) is masked.
  const config = redactSecrets(view.config);
  if (format === 'json') return JSON.stringify(config, null, 2);
  return stringify(config, { sortMapEntries: true }).trimEnd();
}

export function historyTable(view: ClusterView, format: 'pretty' | 'json' | 'yaml' | 'tsv' = 'pretty'): string {
  const header = ['TL', 'LSN', 'Reason', 'Timestamp', 'New Leader'];
  const rows = view.history.map((entry) => [String(entry[0]), String(entry[1]), entry[2], entry[3] ?? '', entry[4] ?? '']);
  if (format === 'tsv') return [header, ...rows].map((row) => row.join('\t')).join('\n');
  if (format === 'json' || format === 'yaml') {
    const objects = view.history.map((entry) => ({
      TL: entry[0],
      LSN: entry[1],
      Reason: entry[2],
      ...(entry[3] !== undefined ? { Timestamp: entry[3] } : {}),
      ...(entry[4] !== undefined ? { 'New Leader': entry[4] } : {}),
    }));
    return format === 'json' ? JSON.stringify(objects) : stringify(objects).trimEnd();
  }
  // As patronictl: the numeric TL and LSN columns (header included) are right-aligned.
  return borderedTable(header, rows, new Set([0, 1]));
}

/** Same member choice as `query`: the leader by default, a running replica with `-r replica`, or a name. */
export function dsn(view: ClusterView, options: { role?: string; member?: string }): string {
  const { host, port } = pickMember(view, options);
  return `host=${host} port=${port}`;
}
