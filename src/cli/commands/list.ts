// `pgwarden list` and `topology`: the member table straight from the DCS, once or every N seconds.
import { summarizeCluster } from '../../core/cluster-summary.js';
import type { ClusterView } from '../../core/types.js';
import { PgwardenError } from '../../util/errors.js';
import { renderMemberTable, renderTopology, type OutputFormat } from '../render.js';

export interface ListOptions {
  readonly configPath: string;
  readonly extended?: boolean;
  /** `topology`: the pretty table as a tree (leader first, replicas under it). */
  readonly isTopology?: boolean;
  readonly format: OutputFormat;
  readonly W?: boolean;
  readonly watch?: string;
  readonly loadCluster: (configPath: string, signal: AbortSignal) => Promise<{ readonly scope: string; readonly view: ClusterView }>;
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
    const { scope, view } = await options.loadCluster(options.configPath, AbortSignal.timeout(5000));
    const summary = summarizeCluster(view);
    options.out(
      options.isTopology === true && options.format === 'pretty'
        ? renderTopology(scope, summary)
        : renderMemberTable(scope, summary, options.format, options.extended === true),
    );
    if (intervalS === undefined) return;
    await new Promise((resolve) => setTimeout(resolve, intervalS * 1000));
  }
}
