// How a new replica's data dir is made (postgresql.create_replica_methods, Patroni's semantics), as pure data: the
// ordered methods to try and each one's command line. The PgController runs them and says how each went.

/** One entry of create_replica_methods with its `postgresql.<method>` settings, as the config gives them. */
export interface ReplicaMethodSpec {
  readonly name: string;
  /** The command line (split as a shell would, no shell run); absent for the built-in basebackup and pgbackrest. */
  readonly command?: string | undefined;
  /** The data dir is not emptied before the method runs (a pgBackRest `--delta` restore reuses what is there). */
  readonly keepData: boolean;
  /** Nothing but `options` is appended to the command. */
  readonly noParams: boolean;
  /** The method may run when there is no leader to connect to (it restores from a backup). */
  readonly noLeader: boolean;
  /** Every other key of `postgresql.<method>`, appended as `--key=value`. */
  readonly options: Readonly<Record<string, string | number | boolean>>;
}

/** A method as the PgController runs it. */
export type ReplicaMethod =
  | { readonly kind: 'basebackup'; readonly name: 'basebackup' }
  /** A user command: exit code 0 means the data dir holds a copy the member can start from. */
  | { readonly kind: 'command'; readonly name: string; readonly argv: readonly string[]; readonly keepData: boolean }
  /** pgwarden's own pgBackRest restore (the `backup:` section): skipped when the repository holds no backup yet. */
  | { readonly kind: 'pgbackrest'; readonly name: string; readonly keepData: boolean };

/** How one method went; the first `ok` ends the list. */
export interface ReplicaMethodResult {
  readonly method: string;
  readonly outcome: 'ok' | 'failed' | 'skipped';
  /** One sentence: what was done, or why it failed or was skipped. */
  readonly detail: string;
  /** The PgwardenError code of a failure. */
  readonly code?: string | undefined;
}

export interface ReplicaPlanContext {
  readonly scope: string;
  readonly dataDir: string;
  /** postgres://user@host:port/postgres of the member to copy from; undefined without a leader to copy from. */
  readonly connstring: string | undefined;
  /** The `backup:` section is configured: `pgbackrest` without a command is pgwarden's own restore. */
  readonly hasBackupSection: boolean;
}

/** The source of a clone without a leader: no member to connect to, so only no_leader methods are planned. */
export const NO_LEADER_SOURCE = { name: '(no leader)', connUrl: '' } as const;

/** Patroni keys of `postgresql.<method>` that steer pgwarden and are never passed to the command. */
export const REPLICA_METHOD_FLAGS = ['command', 'keep_data', 'no_params', 'no_leader', 'no_master'] as const;

/**
 * The methods to try, in order: create_replica_methods as given (Patroni's default is basebackup alone; with a
 * `backup:` section and no list, pgBackRest first and basebackup as the fallback). Without a leader to copy from only
 * methods marked no_leader can work. A method without a command runs its name as the command, as in Patroni, except
 * `pgbackrest` with a `backup:` section: pgwarden's own restore.
 */
export function planReplicaMethods(specs: readonly ReplicaMethodSpec[] | undefined, context: ReplicaPlanContext): ReplicaMethod[] {
  const given =
    specs !== undefined && specs.length > 0
      ? specs
      : context.hasBackupSection
        ? [builtinSpec('pgbackrest'), builtinSpec('basebackup')]
        : [builtinSpec('basebackup')];
  const plan: ReplicaMethod[] = [];
  for (const spec of given) {
    if (context.connstring === undefined && (spec.name === 'basebackup' || !spec.noLeader)) continue;
    if (spec.name === 'basebackup') plan.push({ kind: 'basebackup', name: 'basebackup' });
    else if (spec.command === undefined && spec.name === 'pgbackrest' && context.hasBackupSection)
      plan.push({ kind: 'pgbackrest', name: spec.name, keepData: spec.keepData });
    else plan.push({ kind: 'command', name: spec.name, argv: replicaCommandArgv(spec, context), keepData: spec.keepData });
  }
  return plan;
}

function builtinSpec(name: string): ReplicaMethodSpec {
  return { name, keepData: false, noParams: false, noLeader: false, options: {} };
}

/**
 * The command line of a user method: the command split as a shell would, then `--scope --datadir --role=replica
 * --connstring` unless no_params, then `--key=value` for every other key of the method's section.
 */
export function replicaCommandArgv(spec: ReplicaMethodSpec, context: ReplicaPlanContext): string[] {
  const argv = splitCommandLine(spec.command ?? spec.name);
  if (!spec.noParams) {
    argv.push(`--scope=${context.scope}`, `--datadir=${context.dataDir}`, '--role=replica');
    if (context.connstring !== undefined) argv.push(`--connstring=${context.connstring}`);
  }
  for (const [key, value] of Object.entries(spec.options)) argv.push(`--${key}=${String(value)}`);
  return argv;
}

/** A command line split into words as POSIX sh does (quotes and backslashes; no expansion). Throws on an open quote. */
export function splitCommandLine(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let isInWord = false;
  for (let index = 0; index < line.length; index += 1) {
    const char = line[index]!;
    if (char === "'") {
      const end = line.indexOf("'", index + 1);
      if (end < 0) throw new Error(`unterminated ' in command: ${line}`);
      word += line.slice(index + 1, end);
      index = end;
      isInWord = true;
    } else if (char === '"') {
      index += 1;
      for (; index < line.length && line[index] !== '"'; index += 1) {
        if (line[index] === '\\' && index + 1 < line.length && '"\\$`'.includes(line[index + 1]!)) index += 1;
        word += line[index]!;
      }
      if (index >= line.length) throw new Error(`unterminated " in command: ${line}`);
      isInWord = true;
    } else if (char === '\\' && index + 1 < line.length) {
      index += 1;
      word += line[index]!;
      isInWord = true;
    } else if (/\s/.test(char)) {
      if (isInWord) words.push(word);
      word = '';
      isInWord = false;
    } else {
      word += char;
      isInWord = true;
    }
  }
  if (isInWord) words.push(word);
  return words;
}

/** Reads create_replica_methods and the `postgresql.<method>` sections of a patroni.yml `postgresql` mapping. */
export function replicaMethodSpecsOf(
  methods: readonly string[] | undefined,
  section: Readonly<Record<string, unknown>>,
): ReplicaMethodSpec[] | undefined {
  if (methods === undefined) return undefined;
  return methods.map((name) => {
    const raw = section[name];
    const settings = raw !== null && typeof raw === 'object' && !Array.isArray(raw) ? (raw as Record<string, unknown>) : {};
    const options: Record<string, string | number | boolean> = {};
    for (const [key, value] of Object.entries(settings))
      if (!(REPLICA_METHOD_FLAGS as readonly string[]).includes(key) && ['string', 'number', 'boolean'].includes(typeof value))
        options[key] = value as string | number | boolean;
    return {
      name,
      command: typeof settings.command === 'string' && settings.command.trim() !== '' ? settings.command : undefined,
      keepData: settings.keep_data === true,
      noParams: settings.no_params === true,
      noLeader: settings.no_leader === true || settings.no_master === true,
      options: name === 'basebackup' ? {} : options,
    };
  });
}

/** bootstrap.method other than initdb (Patroni's custom bootstrap): a command that makes the data dir, e.g. a restore. */
export interface CustomBootstrap {
  readonly name: string;
  /** The command line, with `--scope --datadir` unless no_params and `--key=value` for the section's other keys. */
  readonly argv: readonly string[];
  /** Recovery settings to start the copy with (recovery.signal): it recovers to its target and is promoted. */
  readonly recoveryConf: Readonly<Record<string, string | number | boolean>> | undefined;
  /** Keep the recovery.signal/standby.signal and settings the command left (e.g. pgBackRest's restore_command). */
  readonly keepExistingRecoveryConf: boolean;
  /**
   * Once promoted, remove restore_command and the recovery targets the command wrote into postgresql.auto.conf (the
   * built-in pgbackrest method: they name the stanza restored from, and would override this cluster's own).
   */
  readonly isRecoverySettingsRemoved?: boolean | undefined;
}

const BOOTSTRAP_FLAGS = ['command', 'no_params', 'keep_existing_recovery_conf', 'recovery_conf'];

/**
 * bootstrap.<method> as Patroni reads it; undefined for initdb (or no method). Throws (a config problem) when the
 * section has no command or a command that cannot be split.
 */
export function customBootstrapOf(
  method: string | undefined,
  bootstrap: Readonly<Record<string, unknown>>,
  context: { readonly scope: string; readonly dataDir: string },
): CustomBootstrap | undefined {
  if (method === undefined || method === 'initdb') return undefined;
  const raw = bootstrap[method];
  const section = raw !== null && typeof raw === 'object' && !Array.isArray(raw) ? (raw as Record<string, unknown>) : undefined;
  if (section === undefined || typeof section.command !== 'string' || section.command.trim() === '')
    throw new Error(`bootstrap.${method}.command is required: the command that makes the data dir (bootstrap.method: ${method})`);
  const argv = splitCommandLine(section.command);
  if (section.no_params !== true) argv.push(`--scope=${context.scope}`, `--datadir=${context.dataDir}`);
  for (const [key, value] of Object.entries(section))
    if (!BOOTSTRAP_FLAGS.includes(key) && ['string', 'number', 'boolean'].includes(typeof value)) argv.push(`--${key}=${String(value)}`);
  const recovery = section.recovery_conf;
  const recoveryConf =
    recovery !== null && typeof recovery === 'object' && !Array.isArray(recovery)
      ? Object.fromEntries(
          Object.entries(recovery as Record<string, unknown>).filter(([, value]) => ['string', 'number', 'boolean'].includes(typeof value)),
        )
      : undefined;
  return {
    name: method,
    argv,
    recoveryConf: recoveryConf as Readonly<Record<string, string | number | boolean>> | undefined,
    keepExistingRecoveryConf: section.keep_existing_recovery_conf === true,
  };
}

/**
 * standby_cluster.create_replica_methods: the standby leader is cloned from the remote primary with pg_basebackup only
 * (a restore of the other cluster's backup is not wired there yet). Refused otherwise (core/standby-cluster.ts,
 * config/patroni-keys.ts).
 */
export const STANDBY_REPLICA_METHODS: readonly string[] = ['basebackup'];

/** The methods of a standby_cluster.create_replica_methods value that pgwarden cannot run (a non-list is itself unsupported). */
export function unsupportedStandbyMethods(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) return [JSON.stringify(value)];
  return value.filter((method) => !STANDBY_REPLICA_METHODS.includes(method as string)).map(String);
}

/** "standby_cluster.create_replica_methods lists pgbackrest: ..." or undefined. */
export function standbyMethodsProblem(path: string, value: unknown): string | undefined {
  const unsupported = unsupportedStandbyMethods(value);
  if (unsupported.length === 0) return undefined;
  return `${path} lists ${unsupported.join(', ')}: a standby leader is cloned with ${STANDBY_REPLICA_METHODS.join(', ')} only; remove the other methods or the key`;
}
