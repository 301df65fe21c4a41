// `pgwarden upgrade --major --to N --bin-dir NEW [--check]`: the check (the primary's agent gathers the facts with
// POST /bin_dir/major_check, core/major-upgrade-check.ts judges, a table is printed; nothing changes), then, without
// --check, the in-place upgrade itself: core/major-upgrade.ts's steps applied through the members' REST APIs
// (major-upgrade-run.ts), with the record in the DCS.
import { majorCheckVerdict, renderCheckTable, type MajorCheckFacts, type ReplicaBinDirAnswer } from '../../core/major-upgrade-check.js';
import type { BinDirReport } from '../../core/minor-upgrade.js';
import type { ClusterView } from '../../core/types.js';
import { describeError, isPgwardenError, PgwardenError } from '../../util/errors.js';
import type { RestClient } from '../../util/rest-client.js';
import { callApi } from '../api-client.js';

export interface MajorCheckContext {
  readonly scope: string;
  readonly rest: RestClient;
  readonly out: (text: string) => void;
  readonly reload: () => Promise<ClusterView>;
}

export interface MajorCheckCommandOptions {
  readonly binDir: string | undefined;
  readonly to: string | undefined;
  readonly allowSameMajor: boolean;
  readonly isCheck: boolean;
}

/** initdb, pg_upgrade --check (which starts the scratch server) and a schema restore: minutes with many objects. */
const CHECK_TIMEOUT_MS = 600_000;

function usage(message: string, flag: string, hint: string, value?: string): PgwardenError {
  return new PgwardenError('PGW_CLI_USAGE', message, {
    context: { command: ['pgwarden', 'upgrade'], flag, ...(value !== undefined ? { value } : {}), hint },
  });
}

/** --to and --bin-dir, checked. */
export function majorTarget(options: MajorCheckCommandOptions): { readonly to: number; readonly binDir: string } {
  const to = Number(options.to);
  if (options.to === undefined || !Number.isInteger(to) || to < 10)
    throw usage(
      `upgrade --major needs --to <major>, e.g. --to 16, got ${JSON.stringify(options.to ?? null)}`,
      '--to',
      'e.g. --to 17',
      options.to,
    );
  if (options.binDir === undefined || !options.binDir.startsWith('/'))
    throw usage(
      `upgrade --major needs --bin-dir <absolute directory of the new major's binaries on the primary's host>, got ${JSON.stringify(options.binDir ?? null)}`,
      '--bin-dir',
      'e.g. --bin-dir /usr/lib/postgresql/17/bin',
      options.binDir,
    );
  return { to, binDir: options.binDir.length > 1 ? options.binDir.replace(/\/+$/, '') : options.binDir };
}

/** The check alone: prints the table, throws PGW_UPGRADE_REFUSED when it refuses. */
export async function majorCheckCommand(options: MajorCheckCommandOptions, context: MajorCheckContext): Promise<void> {
  const { to, binDir } = majorTarget(options);
  const view = await context.reload();
  const leader = view.members.find((member) => member.name === view.leader?.name);
  if (leader === undefined)
    throw new PgwardenError('PGW_UPGRADE_REFUSED', `cluster ${context.scope} has no leader: the check runs on the primary's host`, {
      context: {
        command: ['pgwarden', 'upgrade'],
        scope: context.scope,
        hint: 'wait for a leader (pgwarden list), then run the check again',
      },
    });
  context.out(
    `${new Date().toISOString()} checking an upgrade to PostgreSQL ${to} from ${binDir} on ${leader.name} (the primary); the running cluster is not changed`,
  );
  const startedMs = performance.now();
  const reply = await callApi(leader, 'POST', '/bin_dir/major_check', { bin_dir: binDir }, context.rest, CHECK_TIMEOUT_MS);
  if (reply.status !== 200)
    throw new PgwardenError(
      'PGW_UPGRADE_FAILED',
      `${leader.name} could not run the major upgrade check: ${reply.status} ${reply.text.trim()}`,
      {
        context: {
          command: ['pgwarden', 'upgrade'],
          member: leader.name,
          hint: `look at ${leader.name}'s agent log; the check changed nothing`,
        },
      },
    );
  const facts = JSON.parse(reply.text) as MajorCheckFacts;
  // Replicas are rebuilt from and run NEW after the upgrade: each says what NEW is on its own host.
  const replicas = new Map<string, ReplicaBinDirAnswer>();
  await Promise.all(
    view.members
      .filter((member) => member.name !== leader.name)
      .map(async (member) => {
        try {
          const answer = await callApi(member, 'POST', '/bin_dir/check', { bin_dir: binDir }, context.rest, 20_000);
          replicas.set(
            member.name,
            answer.status === 200 ? (JSON.parse(answer.text) as BinDirReport) : { error: `${answer.status} ${answer.text.trim()}` },
          );
        } catch (error) {
          if (isPgwardenError(error, 'PGW_API_AUTH')) throw error;
          replicas.set(member.name, { error: describeError(error) });
        }
      }),
  );
  const verdict = majorCheckVerdict(facts, { to, allowSameMajor: options.allowSameMajor, replicas });
  context.out(renderCheckTable(verdict.rows));
  const seconds = ((performance.now() - startedMs) / 1000).toFixed(1);
  if (!verdict.isOk)
    throw new PgwardenError('PGW_UPGRADE_REFUSED', `the major upgrade check refused: ${verdict.refusals.join('; ')}`, {
      context: {
        command: ['pgwarden', 'upgrade'],
        scope: context.scope,
        member: leader.name,
        problems: verdict.refusals,
        hint: 'nothing was changed: fix what the table names and run the check again',
      },
    });
  context.out(
    `${new Date().toISOString()} check passed in ${seconds} s: ${leader.name} can be upgraded to PostgreSQL ${to} with pg_upgrade --link`,
  );
}
