// Loads and validates patroni.yml-style config: every problem named by key path with what to change; unknown keys warned.
import { readFileSync, statSync } from 'node:fs';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { checkDynamicConfig } from '../core/dynamic-config-rules.js';
import type { DynamicConfig, MemberTags } from '../core/types.js';
import {
  configFromEnvironment,
  parsePatroniBool,
  parsePatroniInt,
  patchConfig,
  PATRONI_AUTH_PARAMETERS,
  type Environment,
} from './patroni-env.js';
import { closestName } from '../util/did-you-mean.js';
import { isSecretKey, redactText } from '../util/redact.js';
import { compilePlainFormat, PATRONI_PLAIN_FORMAT } from '../util/plain-log-format.js';
import { keyFindings, requiredKeyMessage, tableChildren } from './patroni-keys.js';
import {
  customBootstrapOf,
  replicaMethodSpecsOf,
  splitCommandLine,
  type CustomBootstrap,
  type ReplicaMethodSpec,
} from '../core/replica-methods.js';
import { applyBackupSection, pgbackrestBootstrapOf, resolveBackup, type BackupSettings } from './backup.js';
import { watchdogRefusal } from './watchdog.js';
import { PgwardenError } from '../util/errors.js';
import { configSchema, type RawPgwardenConfig } from './schema.js';

/** bootstrap.pgbackrest as a mapping (absent: empty). */
function builtinSection(bootstrap: unknown): Record<string, unknown> {
  const section = (bootstrap as { pgbackrest?: unknown } | undefined)?.pgbackrest;
  return section !== null && typeof section === 'object' && !Array.isArray(section) ? (section as Record<string, unknown>) : {};
}

/** `bootstrap.method: pgbackrest` with a backup: section and no command of its own: pgwarden's restore from the repository. */
function isBuiltinPgbackrestBootstrap(method: string | undefined, bootstrap: unknown, backup: BackupSettings | undefined): boolean {
  const command = builtinSection(bootstrap).command;
  return method === 'pgbackrest' && backup !== undefined && (typeof command !== 'string' || command.trim() === '');
}

/** How to reach etcd: endpoints, TLS files (paths, read when the client is made) and credentials. */
export interface EtcdSettings {
  readonly hosts: readonly string[];
  readonly protocol: string;
  /** CA that signed etcd's certificate (PEM path). */
  readonly cacert?: string | undefined;
  /** Client certificate (PEM path), for etcd's --client-cert-auth; may hold the key too. */
  readonly cert?: string | undefined;
  /** Private key of `cert` (PEM path); defaults to `cert`. */
  readonly key?: string | undefined;
  /** Passphrase of an encrypted `key`. Never logged or printed. */
  readonly keyPassword?: string | undefined;
  readonly username?: string | undefined;
  /** Never logged or printed. */
  readonly password?: string | undefined;
}

export interface PgwardenConfig extends Omit<RawPgwardenConfig, 'etcd3' | 'etcd' | 'bootstrap' | 'tags' | 'backup'> {
  /** The `backup:` section resolved (stanza, config file path...); its archive/restore commands are in postgresql already. */
  readonly backup?: BackupSettings | undefined;
  /** postgresql.create_replica_methods with each method's `postgresql.<method>` settings; undefined when not given. */
  readonly replicaMethods?: readonly ReplicaMethodSpec[] | undefined;
  /** bootstrap.method other than initdb, with its bootstrap.<method> section (command line built). */
  readonly customBootstrap?: CustomBootstrap | undefined;
  /** The etcd section, whichever name it had (`etcd3:` preferred, `etcd:` accepted). */
  readonly etcd: EtcdSettings;
  readonly bootstrap: Omit<RawPgwardenConfig['bootstrap'], 'dcs'> & { readonly dcs: DynamicConfig };
  readonly tags: MemberTags;
}

export interface LoadedConfig {
  readonly config: PgwardenConfig;
  readonly warnings: string[];
}

function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
  let node = raw;
  for (const part of path) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<PropertyKey, unknown>)[part];
  }
  return node;
}

function pathOf(path: readonly PropertyKey[]): string {
  return path.map(String).join('.') || '(top level)';
}

interface UnknownKey {
  /** Where it is, e.g. ['restapi', 'authentification']. */
  readonly path: readonly string[];
  /** The keys the schema knows at that level, for "did you mean". */
  readonly known: readonly string[];
}

function unwrap(schema: z.ZodType | undefined): z.ZodType | undefined {
  let current = schema;
  for (;;) {
    const type = current?.def.type;
    if (type === 'optional' || type === 'default' || type === 'nullable')
      current = (current!.def as unknown as { innerType: z.ZodType }).innerType;
    else if (type === 'pipe') current = (current!.def as unknown as { in: z.ZodType }).in;
    else return current;
  }
}

/**
 * Walks the raw YAML beside the schema and the Patroni key table (config/patroni-keys.ts) and lists the keys neither
 * knows, at any depth. Free-form places are left alone: a `*` row of the table (your own tags), or a map the schema
 * reads as a record (postgresql.parameters, slots) that the table lists no names under.
 */
function unknownKeys(schema: z.ZodType | undefined, value: unknown, path: string[]): UnknownKey[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [];
  const current = unwrap(schema);
  const table = tableChildren(path);
  if (table.isFreeForm) return [];
  const shape = current?.def.type === 'object' ? (current as unknown as { shape: Record<string, z.ZodType> }).shape : undefined;
  if (shape === undefined && table.names.length === 0) return [];
  const known = [...new Set([...Object.keys(shape ?? {}), ...table.names])];
  const found: UnknownKey[] = [];
  for (const [key, child] of Object.entries(value)) {
    if (!known.includes(key)) found.push({ path: [...path, key], known });
    else found.push(...unknownKeys(shape?.[key], child, [...path, key]));
  }
  return found;
}

/** "unknown configuration key log.levle in x.yml, ignored: did you mean log.level?" */
function unknownKeyWarning(unknown: UnknownKey, sourceName: string): string {
  const parent = unknown.path.slice(0, -1);
  const suggestion = closestName(unknown.path[unknown.path.length - 1]!, unknown.known);
  return (
    `unknown configuration key ${unknown.path.join('.')} in ${sourceName}, ignored: ` +
    (suggestion !== undefined
      ? `did you mean ${[...parent, suggestion].join('.')}?`
      : 'remove it (docs/patroni-keys.md lists the keys pgwarden reads)')
  );
}

/**
 * Sections where a misspelled key would silently drop a protection (a password, a client-certificate check, the CA to
 * verify against): an unknown key there is an error, not a warning. `*` is any PostgreSQL user entry.
 */
const STRICT_SECTIONS: ReadonlySet<string> = new Set([
  'restapi',
  'restapi.authentication',
  'ctl',
  'ctl.authentication',
  'postgresql.authentication',
  'postgresql.authentication.*',
]);

function isStrictSection(parent: readonly string[]): boolean {
  const isUserEntry = parent.length === 3 && parent[0] === 'postgresql' && parent[1] === 'authentication';
  return STRICT_SECTIONS.has(isUserEntry ? 'postgresql.authentication.*' : parent.join('.'));
}

/** A user entry's libpq settings Patroni accepts (sslmode, sslcert...) that this schema may not read yet: warned only. */
function isPatroniAuthParameter(parent: readonly string[], key: string): boolean {
  return parent.length === 3 && parent[1] === 'authentication' && PATRONI_AUTH_PARAMETERS.includes(key);
}

/** "unknown key restapi.authentification (did you mean restapi.authentication?)": an error in a strict section. */
export function strictKeyProblem(unknown: UnknownKey): string | undefined {
  const parent = unknown.path.slice(0, -1);
  const key = unknown.path[unknown.path.length - 1]!;
  if (!isStrictSection(parent) || isPatroniAuthParameter(parent, key)) return undefined;
  const suggestion = closestName(key, unknown.known);
  const where = unknown.path.join('.');
  return (
    `${where}: unknown key in the security section ${parent.join('.')}` +
    (suggestion !== undefined ? ` (did you mean ${[...parent, suggestion].join('.')}?)` : ` (known keys: ${unknown.known.join(', ')})`) +
    '; a misspelled security setting is never ignored: fix or remove it'
  );
}

/**
 * The strict-section problems of `sections` of a raw document, judged by the agent's schema: for readers of an agent's
 * config file that validate only part of it (the proxy reads ctl and restapi to reach the REST APIs).
 */
export function securityKeyProblems(raw: unknown, sections: readonly ('restapi' | 'ctl')[]): string[] {
  if (typeof raw !== 'object' || raw === null) return [];
  const picked = Object.fromEntries(sections.filter((name) => name in raw).map((name) => [name, (raw as Record<string, unknown>)[name]]));
  return unknownKeys(configSchema, picked, [])
    .map(strictKeyProblem)
    .filter((problem): problem is string => problem !== undefined);
}

export function etcdHosts(section: NonNullable<RawPgwardenConfig['etcd3']>): string[] {
  if (section.hosts !== undefined)
    return (typeof section.hosts === 'string' ? section.hosts.split(',') : section.hosts)
      .map((host) => host.trim())
      .filter((host) => host !== '');
  if (section.host !== undefined) return [section.host];
  if (section.url !== undefined) return [section.url];
  return [];
}

/** The settings of an etcd section, as the client factory takes them. */
export function etcdSettings(section: NonNullable<RawPgwardenConfig['etcd3']>): EtcdSettings {
  return {
    hosts: etcdHosts(section),
    protocol: section.protocol ?? 'http',
    ...(section.cacert !== undefined ? { cacert: section.cacert } : {}),
    ...(section.cert !== undefined ? { cert: section.cert } : {}),
    ...(section.key !== undefined ? { key: section.key } : {}),
    ...(section.key_password !== undefined ? { keyPassword: section.key_password } : {}),
    ...(section.username !== undefined ? { username: section.username } : {}),
    ...(section.password !== undefined ? { password: section.password } : {}),
  };
}

/** Problems (credentials half given) and warnings (TLS files that no https endpoint uses) of an etcd section. */
export function checkEtcdSettings(settings: EtcdSettings, sectionName: string): { problems: string[]; warnings: string[] } {
  const problems: string[] = [];
  const warnings: string[] = [];
  if (settings.username !== undefined && settings.password === undefined)
    problems.push(`${sectionName}.password: required with ${sectionName}.username (or set PATRONI_ETCD3_PASSWORD)`);
  if (settings.password !== undefined && settings.username === undefined)
    problems.push(`${sectionName}.username: required with ${sectionName}.password (or set PATRONI_ETCD3_USERNAME)`);
  if (settings.key !== undefined && settings.cert === undefined)
    problems.push(`${sectionName}.cert: required with ${sectionName}.key (the client certificate the key belongs to)`);
  const isAnyHttps = settings.hosts.some(
    (host) => host.startsWith('https://') || (!/^[a-z]+:\/\//.test(host) && settings.protocol === 'https'),
  );
  const tlsKeys = (['cacert', 'cert', 'key'] as const).filter((key) => settings[key] !== undefined);
  if (!isAnyHttps && tlsKeys.length > 0)
    warnings.push(
      `${tlsKeys.map((key) => `${sectionName}.${key}`).join(', ')} set but no etcd endpoint uses https: set ${sectionName}.protocol: https to use them`,
    );
  return { problems, warnings };
}

/** The standard boolean tags, read with Patroni's parse_bool; failover_priority with parse_int. */
const BOOLEAN_TAGS = ['nofailover', 'clonefrom', 'noloadbalance', 'nosync', 'nostream'] as const;

/** Tags as Patroni reads them: "true"/"off"/1 for booleans, '1' for a priority; a contradiction warned, nofailover wins. */
function normalizeTags(raw: Record<string, unknown>, sourceName: string, warnings: string[]): void {
  const tags = raw.tags;
  if (typeof tags !== 'object' || tags === null || Array.isArray(tags)) return;
  const normalized: Record<string, unknown> = { ...(tags as Record<string, unknown>) };
  for (const name of BOOLEAN_TAGS) {
    const value = normalized[name];
    if (value === undefined || value === null || typeof value === 'boolean') continue;
    const parsed = parsePatroniBool(value);
    if (parsed !== undefined) normalized[name] = parsed;
  }
  const priority = normalized.failover_priority;
  if (priority !== undefined && typeof priority !== 'number') {
    const parsed = parsePatroniInt(priority);
    if (parsed !== undefined) normalized.failover_priority = parsed;
  }
  if (typeof normalized.failover_priority === 'number' && typeof normalized.nofailover === 'boolean') {
    const isContradictory = normalized.nofailover ? normalized.failover_priority > 0 : normalized.failover_priority <= 0;
    if (isContradictory) {
      warnings.push(
        `${sourceName}: tags.nofailover (${String(normalized.nofailover)}) and tags.failover_priority (${normalized.failover_priority}) contradict each other; using nofailover, as Patroni does`,
      );
      delete normalized.failover_priority;
    }
  }
  raw.tags = normalized;
}

/** True when a secret key (password, keyfile_password...) has a value anywhere in the document. */
function holdsSecret(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  return Object.entries(value).some(
    ([key, item]) =>
      (isSecretKey(key) && item !== null && item !== undefined && item !== '' && typeof item !== 'object') || holdsSecret(item),
  );
}

/** The warning for a config file that holds passwords and that its group or everyone can read (`mode`: st_mode). */
export function secretFileModeWarning(sourceName: string, mode: number, document: unknown): string | undefined {
  const permissions = mode & 0o777;
  if ((permissions & 0o044) === 0 || !holdsSecret(document)) return undefined;
  const who = (permissions & 0o004) !== 0 ? 'others' : 'its group';
  return `config ${sourceName} holds passwords and is readable by ${who} (mode ${permissions.toString(8).padStart(4, '0')}); chmod 600 it`;
}

/** `fileMode`: the file's st_mode, to warn when it holds passwords and others can read it. */
export function parseConfig(text: string, sourceName: string, env: Environment = {}, fileMode?: number): LoadedConfig {
  const document = parseDocument(text, { prettyErrors: true });
  if (document.errors.length > 0) {
    const messages = document.errors.map(
      (error) =>
        `${error.linePos?.[0] !== undefined ? `line ${error.linePos[0].line}, column ${error.linePos[0].col}: ` : ''}${error.message.split('\n')[0] ?? ''}`,
    );
    throw new PgwardenError('PGW_CONFIG_INVALID', `${sourceName} is not valid YAML: ${messages.join('; ')}`, {
      context: { path: sourceName },
    });
  }
  const fromFile: unknown = document.toJS() ?? {};
  if (typeof fromFile !== 'object' || fromFile === null || Array.isArray(fromFile)) {
    throw new PgwardenError(
      'PGW_CONFIG_INVALID',
      `${sourceName}: expected a YAML mapping with scope, name, restapi, etcd3 and postgresql sections`,
      { context: { path: sourceName } },
    );
  }
  // PATRONI_* variables win over the file, as in Patroni.
  const fromEnv = configFromEnvironment(env);
  const raw = patchConfig(fromFile, fromEnv.config) as Record<string, unknown>;
  const early: string[] = [];
  normalizeTags(raw, sourceName, early);
  const result = configSchema.safeParse(raw);
  // postgresql.<method> holds a create_replica_method's settings (Patroni's layout): not an unknown key.
  const methodNames = replicaMethodNamesOf(raw);
  const bootstrapMethod = (raw.bootstrap as { method?: unknown } | undefined)?.method;
  const unknown = unknownKeys(configSchema, raw, []).filter(
    (key) =>
      !(key.path.length === 2 && key.path[0] === 'postgresql' && methodNames.includes(key.path[1]!)) &&
      !(key.path.length === 2 && key.path[0] === 'bootstrap' && key.path[1] === bootstrapMethod),
  );
  const strictProblems = unknown.map(strictKeyProblem).filter((problem): problem is string => problem !== undefined);
  const findings = keyFindings(raw, sourceName);
  const problems: string[] = [...fromEnv.problems, ...strictProblems, ...findings.problems];
  // bootstrap.dcs is checked by the rules every path uses (REST, edit-config, the agent reading the DCS), and
  // their message wins over the schema's for the keys they cover.
  const bootstrapDcs = (raw.bootstrap as { dcs?: unknown } | undefined)?.dcs;
  const dcsProblems =
    typeof bootstrapDcs === 'object' && bootstrapDcs !== null && !Array.isArray(bootstrapDcs)
      ? checkDynamicConfig(bootstrapDcs as Record<string, unknown>)
      : [];
  const coveredKeys = new Set(dcsProblems.map((problem) => /^[a-z_]+/.exec(problem)?.[0]));
  if (!result.success) {
    for (const issue of result.error.issues) {
      const isCovered = issue.path[0] === 'bootstrap' && issue.path[1] === 'dcs' && coveredKeys.has(String(issue.path[2]));
      if (isCovered) continue;
      // A missing required key is said in pgwarden's words ("restapi.listen is required: host:port the REST API ...").
      const required =
        issue.code === 'invalid_type' && valueAt(raw, issue.path) === undefined ? requiredKeyMessage(pathOf(issue.path)) : undefined;
      problems.push(required ?? `${pathOf(issue.path)}: ${issue.message}`);
    }
  }
  for (const problem of dcsProblems) problems.push(`bootstrap.dcs.${problem}`);
  const parsed = result.success ? result.data : undefined;
  const postgresqlRaw = (raw.postgresql ?? {}) as Record<string, unknown>;
  const replicaMethods = replicaMethodSpecsOf(parsed?.postgresql.create_replica_methods, postgresqlRaw);
  for (const spec of replicaMethods ?? []) {
    try {
      if (spec.command !== undefined) splitCommandLine(spec.command);
    } catch (error) {
      problems.push(`postgresql.${spec.name}.command: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  const backup =
    parsed?.backup === undefined ? undefined : resolveBackup(parsed.backup, parsed.scope, parsed.name, parsed.postgresql.data_dir);
  const applied =
    backup === undefined || parsed === undefined
      ? undefined
      : applyBackupSection(backup, parsed.postgresql.parameters, parsed.postgresql.recovery_conf, sourceName);
  problems.push(...(applied?.problems ?? []));
  let customBootstrap: CustomBootstrap | undefined;
  try {
    customBootstrap =
      parsed === undefined
        ? undefined
        : isBuiltinPgbackrestBootstrap(parsed.bootstrap.method, raw.bootstrap, backup)
          ? pgbackrestBootstrapOf(builtinSection(raw.bootstrap), backup!, parsed.postgresql.data_dir)
          : customBootstrapOf(parsed.bootstrap.method, (raw.bootstrap ?? {}) as Record<string, unknown>, {
              scope: parsed.scope,
              dataDir: parsed.postgresql.data_dir,
            });
  } catch (error) {
    problems.push(error instanceof Error ? error.message : String(error));
  }
  const etcdSection = parsed?.etcd3 ?? parsed?.etcd;
  if (parsed !== undefined && (etcdSection === undefined || etcdHosts(etcdSection).length === 0)) {
    problems.push('etcd3: no etcd endpoints; add etcd3.hosts, e.g. hosts: 127.0.0.1:2379,127.0.0.1:2380');
  }
  const etcdCheck =
    etcdSection === undefined
      ? { problems: [], warnings: [] }
      : checkEtcdSettings(etcdSettings(etcdSection), parsed?.etcd3 !== undefined ? 'etcd3' : 'etcd');
  problems.push(...etcdCheck.problems);
  if (problems.length > 0 || parsed === undefined) {
    // A problem may quote a value (a conninfo with its password): the message is redacted like any output.
    throw new PgwardenError('PGW_CONFIG_INVALID', redactText(`invalid configuration in ${sourceName}:\n  - ${problems.join('\n  - ')}`), {
      context: { path: sourceName },
    });
  }
  const modeWarning = fileMode === undefined ? undefined : secretFileModeWarning(sourceName, fileMode, fromFile);
  const warnings = [
    ...(modeWarning !== undefined ? [modeWarning] : []),
    ...early,
    ...etcdCheck.warnings.map((warning) => `${warning} (${sourceName})`),
    ...unknown.filter((key) => strictKeyProblem(key) === undefined).map((key) => unknownKeyWarning(key, sourceName)),
  ];
  if (fromEnv.variables.length > 0)
    warnings.push(`configuration from the environment, over ${sourceName}: ${fromEnv.variables.join(', ')}`);
  warnings.push(...findings.warnings);
  if (parsed.log.type !== 'plain' && parsed.log.format !== undefined)
    warnings.push(`log.format in ${sourceName} is used only with log.type: plain (JSON lines have pgwarden's fixed fields)`);
  if (parsed.log.type === 'plain') {
    try {
      compilePlainFormat(parsed.log.format ?? PATRONI_PLAIN_FORMAT, parsed.log.dateformat);
    } catch (error) {
      throw new PgwardenError(
        'PGW_CONFIG_INVALID',
        `invalid configuration in ${sourceName}:\n  - ${error instanceof Error ? error.message : String(error)}`,
        {
          context: { path: sourceName },
        },
      );
    }
  }
  const refusal = watchdogRefusal(parsed.watchdog);
  if (refusal !== undefined) warnings.push(refusal);
  warnings.push(...(applied?.warnings ?? []));
  const { etcd3: _etcd3, etcd: _etcd, backup: _backup, ...rest } = parsed;
  return {
    config: {
      ...rest,
      postgresql:
        applied === undefined
          ? rest.postgresql
          : { ...rest.postgresql, parameters: { ...applied.parameters }, recovery_conf: { ...applied.recoveryConf } },
      backup,
      replicaMethods,
      customBootstrap,
      etcd: etcdSettings(etcdSection!),
      bootstrap: { ...parsed.bootstrap, dcs: parsed.bootstrap.dcs as DynamicConfig },
      // Never leader under watchdog.mode: required (published, so no race or switchover picks this member).
      tags: (refusal === undefined ? parsed.tags : { ...parsed.tags, nofailover: true }) as MemberTags,
    },
    warnings,
  };
}

function replicaMethodNamesOf(raw: Record<string, unknown>): string[] {
  const postgresql = raw.postgresql;
  if (typeof postgresql !== 'object' || postgresql === null) return [];
  const methods = (postgresql as Record<string, unknown>).create_replica_methods;
  return Array.isArray(methods) ? methods.filter((method): method is string => typeof method === 'string' && method !== 'basebackup') : [];
}

/** The text of a config file, or an error that names the path and what to pass instead. */
export function readConfigText(path: string, what = 'your pgwarden/patroni YAML'): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new PgwardenError(
      'PGW_CONFIG_UNREADABLE',
      `cannot read config file ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}; pass the path of ${what} with -c`,
      { context: { path }, cause: error },
    );
  }
}

export function loadConfig(path: string, env: Environment = process.env): LoadedConfig {
  const text = readConfigText(path);
  let mode: number | undefined;
  try {
    mode = statSync(path).mode;
  } catch {
    mode = undefined;
  }
  return parseConfig(text, path, env, mode);
}

/** No config file: PATRONI_CONFIGURATION (a whole YAML document) or the PATRONI_* variables alone, as Patroni does. */
export function loadConfigFromEnvironment(env: Environment = process.env): LoadedConfig {
  const document = env.PATRONI_CONFIGURATION;
  if (document !== undefined && document.trim() !== '') return parseConfig(document, 'PATRONI_CONFIGURATION', env);
  return parseConfig('{}', 'the PATRONI_* environment', env);
}
