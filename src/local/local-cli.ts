// The `pgwarden local` command line: strict parsing (an unknown subcommand, flag or extra argument is an error with a
// suggestion, never a `start` that wipes data), wired to handlers so the parsing is testable without processes.
import type { Command } from 'commander';
import { PgwardenError } from '../util/errors.js';

export interface LocalStartArguments {
  readonly dir: string;
  readonly isBackground: boolean;
  readonly isWipe: boolean;
  readonly nodes: number;
  readonly ttl: number;
  readonly loopWait: number;
  readonly retryTimeout: number;
  readonly proxyDataPath: 'userspace' | 'kernel';
  readonly portBase: number | undefined;
  /** No etcd TLS or authentication and no REST API credentials: for debugging on a host of one's own. */
  readonly isInsecure: boolean;
  /** Backups on: every node's backup: section points at a pgBackRest repository in the cluster directory. */
  readonly isBackup: boolean;
}

export interface LocalHandlers {
  start(options: LocalStartArguments): Promise<void>;
  stop(dir: string): Promise<void>;
  status(dir: string): Promise<void>;
  kill(dir: string, member: string): Promise<void>;
  restart(dir: string, member: string): Promise<void>;
}

export const LOCAL_SUBCOMMANDS = ['start', 'stop', 'status', 'kill', 'restart'] as const;

/** Edits (insert, delete, substitute, swap two neighbours) from a to b: optimal string alignment distance. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_row, i) =>
    Array.from({ length: b.length + 1 }, (_column, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The candidates a mistyped word most likely meant: those it starts or is started by, and those within two edits,
 * closest first (`stat` -> start, status: both are listed rather than a guess).
 */
export function suggest(word: string, candidates: readonly string[]): string[] {
  const bare = word.replace(/^-+/, '');
  return candidates
    .map((candidate) => {
      const plain = candidate.replace(/^-+/, '');
      const distance = editDistance(bare, plain);
      const isPrefix = bare.length >= 2 && (plain.startsWith(bare) || bare.startsWith(plain));
      return { candidate, distance, isNear: distance <= Math.max(1, Math.min(2, Math.floor(plain.length / 3))) || isPrefix };
    })
    .filter((entry) => entry.isNear)
    .sort((a, b) => a.distance - b.distance)
    .map((entry) => entry.candidate);
}

const didYouMean = (options: readonly string[]): string =>
  options.length === 0 ? '' : `; did you mean ${options.map((option) => `'${option}'`).join(' or ')}?`;

function usageError(
  message: string,
  context: { readonly command: readonly string[]; readonly hint: string; readonly [key: string]: unknown },
): PgwardenError {
  return new PgwardenError('PGW_CLI_USAGE', message, { context });
}

/** Flags the subcommand knows, for suggestions. */
const flagsOf = (command: Command): string[] => command.options.map((option) => option.long ?? option.short ?? '').filter(Boolean);

/**
 * Rejects what commander let through on purpose (unknown options and extra operands end up in `command.args`), so the
 * error is a PgwardenError with a suggestion rather than commander's generic message.
 */
function rejectLeftovers(command: Command, operands: readonly string[]): void {
  const name = command.name();
  const path = ['pgwarden', 'local', name];
  for (const token of command.args.slice(operands.length)) {
    if (token.startsWith('-')) {
      const flag = token.split('=')[0]!;
      throw usageError(`unknown option '${flag}' for 'local ${name}'${didYouMean(suggest(flag, flagsOf(command)))}`, {
        command: path,
        flag,
        hint: `pgwarden local ${name} --help lists its options: ${flagsOf(command).join(', ')}`,
      });
    }
    throw usageError(`unexpected argument '${token}' for 'local ${name}'`, {
      command: path,
      value: token,
      hint: `pgwarden local ${name} --help shows its usage`,
    });
  }
}

function integer(flag: string, value: string, minimum: number, maximum = Number.MAX_SAFE_INTEGER): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number < minimum || number > maximum)
    throw usageError(`${flag} expects an integer from ${minimum} to ${maximum}, got "${value}"`, {
      command: ['pgwarden', 'local'],
      flag,
      value,
      hint: `pass a whole number between ${minimum} and ${maximum} to ${flag}`,
    });
  return number;
}

function positive(flag: string, value: string): number {
  const number = Number(value);
  if (!(number > 0))
    throw usageError(`${flag} expects a positive number, got "${value}"`, {
      command: ['pgwarden', 'local'],
      flag,
      value,
      hint: `pass a number above 0 to ${flag}`,
    });
  return number;
}

/** Registers `local` and its subcommands on the program. */
export function registerLocalCommand(program: Command, handlers: LocalHandlers, defaultDir: string): void {
  const local = program
    .command('local')
    .description('a local cluster on 127.0.0.1: 3 etcd members, agents with PostgreSQL 15, a proxy (start, stop, status, kill, restart)')
    .argument('[subcommand]', LOCAL_SUBCOMMANDS.join(', '))
    .allowUnknownOption()
    .allowExcessArguments()
    // Reached only when the first word is no subcommand: a typo must not become a `start` (which used to wipe data).
    .action((word: string | undefined) => {
      const given = word ?? local.args[0];
      throw usageError(
        given === undefined
          ? `local needs a subcommand: ${LOCAL_SUBCOMMANDS.join(', ')}`
          : `unknown local subcommand '${given}'${didYouMean(suggest(given, LOCAL_SUBCOMMANDS))} (subcommands: ${LOCAL_SUBCOMMANDS.join(', ')}); nothing was started or deleted`,
        {
          command: ['pgwarden', 'local', ...(given === undefined ? [] : [given])],
          ...(given === undefined ? {} : { value: given }),
          hint: `choose one of ${LOCAL_SUBCOMMANDS.join(', ')} (npm run cluster -- start)`,
        },
      );
    });
  const dirOption = (command: Command): Command => command.option('--dir <dir>', 'the cluster directory', defaultDir);
  const strict = (command: Command): Command => dirOption(command).allowUnknownOption().allowExcessArguments();

  strict(local.command('start'))
    .description('start it, wait until healthy, print the member table; Ctrl-C (or SIGTERM) stops it')
    .option('--background', 'leave it running and return')
    .option('--wipe', 'delete the data of a previous cluster in --dir first (refused otherwise)')
    .option('--nodes <n>', 'number of PostgreSQL nodes (1-10)', '3')
    .option('--ttl <s>', 'leader lease TTL (seconds)', '30')
    .option('--loop-wait <s>', 'HA loop period (seconds)', '10')
    .option('--retry-timeout <s>', 'DCS retry budget (seconds)', '10')
    .option('--port-base <port>', 'fixed ports: etcd from here, nodes (REST, PostgreSQL) from +10, the proxy from +30')
    .option('--proxy-data-path <path>', 'data path of the local proxy: userspace, or kernel (nftables DNAT; root)', 'userspace')
    .option('--insecure', 'etcd without TLS or authentication and REST API without credentials (debugging only)')
    .option('--backup', 'backups with pgBackRest: a repository in the cluster directory, WAL archiving on, replicas restored from it')
    .action(async (options: Record<string, string | boolean | undefined>, command: Command) => {
      rejectLeftovers(command, []);
      const proxyDataPath = String(options.proxyDataPath);
      if (proxyDataPath !== 'userspace' && proxyDataPath !== 'kernel')
        throw usageError(`--proxy-data-path must be userspace or kernel, got "${proxyDataPath}"`, {
          command: ['pgwarden', 'local', 'start'],
          flag: '--proxy-data-path',
          value: proxyDataPath,
          hint: 'choose userspace, or kernel (nftables, needs root)',
        });
      await handlers.start({
        dir: String(options.dir),
        isBackground: options.background === true,
        isWipe: options.wipe === true,
        nodes: integer('--nodes', String(options.nodes), 1, 10),
        ttl: positive('--ttl', String(options.ttl)),
        loopWait: positive('--loop-wait', String(options.loopWait)),
        retryTimeout: positive('--retry-timeout', String(options.retryTimeout)),
        proxyDataPath,
        portBase: options.portBase === undefined ? undefined : integer('--port-base', String(options.portBase), 1024, 65_000),
        isInsecure: options.insecure === true,
        isBackup: options.backup === true,
      });
    });
  strict(local.command('stop'))
    .description('stop every process of the cluster: found by pid files and command lines under --dir (hand-restarted ones too)')
    .action(async (options: { dir: string }, command: Command) => {
      rejectLeftovers(command, []);
      await handlers.stop(options.dir);
    });
  strict(local.command('status'))
    .description("each member's processes (agent, postmaster, fence) and what its REST API says; exit 1 if any is down")
    .action(async (options: { dir: string }, command: Command) => {
      rejectLeftovers(command, []);
      await handlers.status(options.dir);
    });
  strict(local.command('kill'))
    .description("SIGKILL a member's agent and postmaster (to try a failover)")
    .argument('<member>', 'node1, node2...')
    .action(async (member: string, options: { dir: string }, command: Command) => {
      rejectLeftovers(command, [member]);
      await handlers.kill(options.dir, member);
    });
  strict(local.command('restart'))
    .description("start a stopped (or killed) member's agent again; it starts PostgreSQL and rejoins")
    .argument('<member>', 'node1, node2...')
    .action(async (member: string, options: { dir: string }, command: Command) => {
      rejectLeftovers(command, [member]);
      await handlers.restart(options.dir, member);
    });
}
