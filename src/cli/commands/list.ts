// `pgwarden list` and `topology`: the member table straight from the DCS, once or every N seconds.
import { renderBackupFooter, type BackupVisibility } from '../../core/backup-visibility.js';
import { summarizeCluster } from '../../core/cluster-summary.js';
import type { ClusterView } from '../../core/types.js';
import { PgwardenError } from '../../util/errors.js';
import type { RestClient } from '../../util/rest-client.js';
import { callApi } from '../api-client.js';
import { renderMemberTable, renderTopology, type OutputFormat } from '../render.js';

export interface ListOptions {
  readonly configPath: string;
  readonly extended?: boolean;
  /** `topology`: the pretty table as a tree (leader first, replicas under it). */
  readonly isTopology?: boolean;
  readonly format: OutputFormat;
  readonly W?: boolean;
  readonly watch?: string;
  readonly loadCluster: (
    configPath: string,
    signal: AbortSignal,
  ) => Promise<{ readonly scope: string; readonly view: ClusterView; readonly rest?: RestClient | undefined }>;
  readonly out: (text: string) => void;
}

export async function listCommand(options: ListOptions): Promise<void> {
  const intervalS = options.watch !== undefined ? Number(options.watch) : options.W === true ? 2 : undefined;
  if (intervalS !== undefined && !(intervalS > 0))
    throw new PgwardenError('PGW_CLI_USAGE', `--watch expects a positive number of seconds, got "${options.watch ?? ''}"`, {
      context: {
        command: ['pgwarden', options.isTopology === true ? 'topology' : 'list'],
        flag: '--watch',
        value: options.watch ?? '',
        path: options.configPath,
        hint: 'e.g. --watch 5 (or -W for every 2 seconds)',
      },
    });
  for (;;) {
    const { scope, view, rest } = await options.loadCluster(options.configPath, AbortSignal.timeout(5000));
    const summary = summarizeCluster(view);
    const footer = options.format === 'pretty' && rest !== undefined ? await backupFooter(view, rest) : [];
    options.out(
      [
        options.isTopology === true && options.format === 'pretty'
          ? renderTopology(scope, summary)
          : renderMemberTable(scope, summary, options.format, options.extended === true),
        ...footer,
      ].join('\n'),
    );
    if (intervalS === undefined) return;
    await new Promise((resolve) => setTimeout(resolve, intervalS * 1000));
  }
}

/** A leader that says nothing within this long costs `list` no more than that (the table comes from etcd anyway). */
const BACKUP_STATUS_TIMEOUT_MS = 2000;

/**
 * The leader's backup and WAL archive lines (its GET /backup); none when it has no backup: section (501), does not
 * answer, or there is no leader: the table must not depend on the REST API.
 */
async function backupFooter(view: ClusterView, rest: RestClient): Promise<string[]> {
  const leader = view.members.find((member) => member.name === view.leader?.name);
  if (leader === undefined) return [];
  try {
    const reply = await callApi(leader, 'GET', '/backup', undefined, rest, BACKUP_STATUS_TIMEOUT_MS);
    if (reply.status !== 200) return [];
    const parsed = JSON.parse(reply.text) as Partial<BackupVisibility>;
    return renderBackupFooter({ repository: parsed.repository ?? null, archive: parsed.archive ?? null });
  } catch {
    return [];
  }
}
