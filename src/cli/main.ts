// The `pgwarden` command line: global options and the verbs, with one-line errors and non-zero exits.
import { Command, CommanderError, Option } from 'commander';
import type { ClusterView } from '../core/types.js';
import { describeError } from '../util/errors.js';
import { listCommand } from './commands/list.js';

export interface CliDeps {
  /** Reads the cluster of the config file given with -c (straight from the DCS). */
  readonly loadCluster: (configPath: string, signal: AbortSignal) => Promise<{ readonly scope: string; readonly view: ClusterView }>;
  readonly version: string;
  readonly out: (text: string) => void;
  /** Lets the composition root add verbs (agent, local) that need adapters the CLI must not import. */
  readonly register?: (program: Command) => void;
}

export function configPathFrom(program: Command): string {
  const options = program.opts<{ config?: string }>();
  const path = options.config ?? process.env.PGWARDEN_CONFIG ?? process.env.PATRONICTL_CONFIG_FILE;
  if (path === undefined) throw new Error('no config file: pass -c <pgwarden.yml> (or set PGWARDEN_CONFIG)');
  return path;
}

export function buildProgram(deps: CliDeps): Command {
  const program = new Command('pgwarden')
    .description('PostgreSQL high availability on etcd, Patroni-compatible')
    .option('-c, --config <file>', 'agent/patroni YAML config file (or $PGWARDEN_CONFIG)')
    .showHelpAfterError('(run pgwarden --help for usage)')
    .exitOverride();
  program
    .command('list')
    .description('show the members of the cluster (like patronictl list)')
    .option('-e, --extended', 'show pending restart, scheduled restart and tags columns')
    .addOption(new Option('-f, --format <format>', 'output format').choices(['pretty', 'tsv', 'json', 'yaml']).default('pretty'))
    .option('-W', 'refresh every 2 seconds')
    .option('-w, --watch <seconds>', 'refresh every N seconds')
    .action(async (options: { extended?: boolean; format: 'pretty' | 'tsv' | 'json' | 'yaml'; W?: boolean; watch?: string }) => {
      const configPath = configPathFrom(program);
      await listCommand({ ...options, configPath, loadCluster: deps.loadCluster, out: deps.out });
    });
  program
    .command('version')
    .description('print the pgwarden version')
    .action(() => deps.out(`pgwarden ${deps.version}`));
  deps.register?.(program);
  return program;
}

/** Runs the CLI: every failure becomes `Error: <message>` on stderr and exit code 1 (usage errors: 2). */
export async function runCli(argv: readonly string[], deps: CliDeps): Promise<number> {
  const program = buildProgram(deps);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.exitCode === 0) return 0;
      return 2;
    }
    process.stderr.write(`Error: ${describeError(error)}\n`);
    return 1;
  }
}
