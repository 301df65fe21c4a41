// Loads and validates patroni.yml-style config: every problem named by key path with what to change; unknown keys warned.
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { checkTimingRules } from '../core/timing-rules.js';
import type { DynamicConfig, MemberTags } from '../core/types.js';
import { unhonouredKeyWarnings } from './unhonoured-keys.js';
import { PgwardenError } from '../util/errors.js';
import { configSchema, type RawPgwardenConfig } from './schema.js';

export interface PgwardenConfig extends Omit<RawPgwardenConfig, 'etcd3' | 'etcd' | 'bootstrap' | 'tags'> {
  /** The etcd section, whichever name it had (`etcd3:` preferred, `etcd:` accepted). */
  readonly etcd: { readonly hosts: readonly string[]; readonly protocol: string };
  readonly bootstrap: Omit<RawPgwardenConfig['bootstrap'], 'dcs'> & { readonly dcs: DynamicConfig };
  readonly tags: MemberTags;
}

export interface LoadedConfig {
  readonly config: PgwardenConfig;
  readonly warnings: string[];
}

function pathOf(path: readonly PropertyKey[]): string {
  return path.map(String).join('.') || '(top level)';
}

/** Walks the raw YAML beside the schema and lists keys the schema does not know (loose sections accept anything). */
function unknownKeys(schema: z.ZodType, value: unknown, path: string[]): string[] {
  let current: z.ZodType = schema;
  for (;;) {
    const type = current.def.type;
    if (type === 'optional' || type === 'default' || type === 'nullable')
      current = (current.def as unknown as { innerType: z.ZodType }).innerType;
    else if (type === 'pipe') current = (current.def as unknown as { in: z.ZodType }).in;
    else break;
  }
  if (current.def.type !== 'object' || typeof value !== 'object' || value === null || Array.isArray(value)) return [];
  const shape = (current as unknown as { shape: Record<string, z.ZodType> }).shape;
  const isLoose = (current.def as unknown as { catchall?: { def: { type: string } } }).catchall?.def.type === 'unknown';
  const found: string[] = [];
  for (const [key, child] of Object.entries(value)) {
    const childSchema = shape[key];
    if (childSchema === undefined) {
      if (!isLoose) found.push([...path, key].join('.'));
    } else {
      found.push(...unknownKeys(childSchema, child, [...path, key]));
    }
  }
  return found;
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

export function parseConfig(text: string, sourceName: string): LoadedConfig {
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
  const raw: unknown = document.toJS();
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new PgwardenError(
      'PGW_CONFIG_INVALID',
      `${sourceName}: expected a YAML mapping with scope, name, restapi, etcd3 and postgresql sections`,
      { context: { path: sourceName } },
    );
  }
  const result = configSchema.safeParse(raw);
  const problems: string[] = [];
  if (!result.success) {
    for (const issue of result.error.issues) problems.push(`${pathOf(issue.path)}: ${issue.message}`);
  }
  const parsed = result.success ? result.data : undefined;
  const etcdSection = parsed?.etcd3 ?? parsed?.etcd;
  if (parsed !== undefined && (etcdSection === undefined || etcdHosts(etcdSection).length === 0)) {
    problems.push('etcd3: no etcd endpoints; add etcd3.hosts, e.g. hosts: 127.0.0.1:2379,127.0.0.1:2380');
  }
  if (parsed !== undefined) {
    for (const problem of checkTimingRules(parsed.bootstrap.dcs)) problems.push(`bootstrap.dcs.${problem}`);
    const tags = parsed.tags;
    if (tags.nofailover === true && (tags.failover_priority ?? 0) > 0)
      problems.push('tags: nofailover and failover_priority > 0 contradict each other; keep one');
  }
  if (problems.length > 0 || parsed === undefined) {
    throw new PgwardenError('PGW_CONFIG_INVALID', `invalid configuration in ${sourceName}:\n  - ${problems.join('\n  - ')}`, {
      context: { path: sourceName },
    });
  }
  const warnings = unknownKeys(configSchema, raw, []).map((key) => `unknown configuration key ${key} in ${sourceName} (ignored)`);
  warnings.push(...unhonouredKeyWarnings(raw, sourceName));
  if (parsed.watchdog?.mode === 'required')
    warnings.push('watchdog.mode is required but pgwarden has no watchdog support; fencing relies on the lock deadline');
  const { etcd3: _etcd3, etcd: _etcd, ...rest } = parsed;
  return {
    config: {
      ...rest,
      etcd: { hosts: etcdHosts(etcdSection!), protocol: etcdSection!.protocol ?? 'http' },
      bootstrap: { ...parsed.bootstrap, dcs: parsed.bootstrap.dcs as DynamicConfig },
      tags: parsed.tags as MemberTags,
    },
    warnings,
  };
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

export function loadConfig(path: string): LoadedConfig {
  return parseConfig(readConfigText(path), path);
}
