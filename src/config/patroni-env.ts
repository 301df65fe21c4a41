// The PATRONI_* environment variables Patroni documents, as a partial config that takes precedence over the file
// (Patroni's _build_environment_configuration and patch_config), and Patroni's value parsing (parse_bool, parse_int).
// Pure: the caller passes the environment.
import { parse as parseYaml } from 'yaml';

export type Environment = Readonly<Record<string, string | undefined>>;

const PREFIX = 'PATRONI_';

/** Patroni's parse_bool: on/true/yes/1 and off/false/no/0, any case; undefined for anything else. */
export function parsePatroniBool(value: unknown): boolean | undefined {
  if (typeof value === 'boolean') return value;
  const text = String(value).toLowerCase();
  if (['on', 'true', 'yes', '1'].includes(text)) return true;
  if (['off', 'false', 'no', '0'].includes(text)) return false;
  return undefined;
}

/** Patroni's parse_int for plain integers (units are not accepted where an integer is expected). */
export function parsePatroniInt(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) ? value : undefined;
  const text = String(value).trim();
  return /^[-+]?\d+$/.test(text) ? Number(text) : undefined;
}

const SECTION_KEYS: Readonly<Record<string, readonly string[]>> = {
  restapi: [
    'listen',
    'connect_address',
    'certfile',
    'keyfile',
    'keyfile_password',
    'cafile',
    'ciphers',
    'verify_client',
    'http_extra_headers',
    'https_extra_headers',
    'allowlist',
    'allowlist_include_members',
    'request_queue_size',
    'server_tokens',
  ],
  ctl: ['insecure', 'cacert', 'certfile', 'keyfile', 'keyfile_password'],
  postgresql: ['listen', 'connect_address', 'proxy_address', 'config_dir', 'data_dir', 'pgpass', 'bin_dir'],
  log: [
    'type',
    'level',
    'traceback_level',
    'format',
    'dateformat',
    'static_fields',
    'max_queue_size',
    'dir',
    'mode',
    'file_size',
    'file_num',
    'loggers',
  ],
};
const BOOLEAN_KEYS: ReadonlySet<string> = new Set(['restapi.allowlist_include_members', 'ctl.insecure']);
const INTEGER_KEYS: ReadonlySet<string> = new Set([
  'restapi.request_queue_size',
  'log.max_queue_size',
  'log.file_size',
  'log.file_num',
  'log.mode',
]);
const LIST_KEYS: ReadonlySet<string> = new Set(['restapi.allowlist']);
const DICT_KEYS: ReadonlySet<string> = new Set([
  'restapi.http_extra_headers',
  'restapi.https_extra_headers',
  'log.static_fields',
  'log.loggers',
]);
/** Connection settings a PostgreSQL user entry may carry (Patroni's _AUTH_ALLOWED_PARAMETERS). */
export const PATRONI_AUTH_PARAMETERS: readonly string[] = [
  'username',
  'password',
  'sslmode',
  'sslcert',
  'sslkey',
  'sslpassword',
  'sslrootcert',
  'sslcrl',
  'sslcrldir',
  'gssencmode',
  'channel_binding',
];
/** PATRONI_<DCS>_<SUFFIX> for the DCS sections pgwarden reads. */
const DCS_SECTIONS = ['ETCD3', 'ETCD'];
const DCS_SUFFIXES = [
  'HOST',
  'HOSTS',
  'PORT',
  'PROTOCOL',
  'URL',
  'PROXY',
  'SRV',
  'SRV_SUFFIX',
  'CACERT',
  'CERT',
  'KEY',
  'KEY_PASSWORD',
  'USERNAME',
  'PASSWORD',
  'USE_PROXIES',
];

/** A YAML list written inline ("a, b" or "[a, b]" or "- a"), as Patroni's _parse_list reads it. */
function parseList(value: string): unknown {
  const text = value.trim().startsWith('-') || value.includes('[') ? value : `[${value}]`;
  return parseYaml(text) as unknown;
}

function parseDict(value: string): unknown {
  return parseYaml(value.trim().startsWith('{') ? value : `{${value}}`) as unknown;
}

export interface EnvironmentConfig {
  /** The partial config the variables make (sections as in the file). */
  readonly config: Record<string, unknown>;
  /** The variables used, for the start-up log (names only: values may be secrets). */
  readonly variables: readonly string[];
  /** Variables whose value could not be read (a non-boolean for a boolean key, bad YAML), with why. */
  readonly problems: readonly string[];
}

export function configFromEnvironment(env: Environment): EnvironmentConfig {
  const config: Record<string, unknown> = {};
  const variables: string[] = [];
  const problems: string[] = [];
  const section = (name: string): Record<string, unknown> => {
    const existing = config[name];
    if (typeof existing === 'object' && existing !== null) return existing as Record<string, unknown>;
    const created: Record<string, unknown> = {};
    config[name] = created;
    return created;
  };
  const read = (name: string): string | undefined => {
    const value = env[PREFIX + name.toUpperCase()];
    if (value === undefined || value === '') return undefined;
    variables.push(PREFIX + name.toUpperCase());
    return value;
  };
  for (const key of ['name', 'namespace', 'scope']) {
    const value = read(key);
    if (value !== undefined) config[key] = value;
  }
  // Older names of the log variables; the new name wins when both are set.
  for (const [current, old] of [
    ['level', 'loglevel'],
    ['format', 'logformat'],
    ['dateformat', 'log_datefmt'],
  ] as const) {
    const value = env[PREFIX + `LOG_${current}`.toUpperCase()] === undefined ? read(old) : undefined;
    if (value !== undefined) section('log')[current] = value;
  }
  for (const [sectionName, keys] of Object.entries(SECTION_KEYS)) {
    for (const key of keys) {
      const value = read(`${sectionName}_${key}`);
      if (value === undefined) continue;
      const path = `${sectionName}.${key}`;
      const variable = `${PREFIX}${sectionName}_${key}`.toUpperCase();
      let parsed: unknown = value;
      try {
        if (BOOLEAN_KEYS.has(path)) parsed = parsePatroniBool(value);
        else if (INTEGER_KEYS.has(path)) parsed = parsePatroniInt(value);
        else if (LIST_KEYS.has(path)) parsed = parseList(value);
        else if (DICT_KEYS.has(path)) parsed = parseDict(value);
      } catch (error) {
        problems.push(`${variable}: not valid YAML (${error instanceof Error ? (error.message.split('\n')[0] ?? '') : String(error)})`);
        continue;
      }
      if (parsed === undefined) {
        problems.push(`${variable}: cannot read ${JSON.stringify(value)} as ${BOOLEAN_KEYS.has(path) ? 'a boolean' : 'an integer'}`);
        continue;
      }
      section(sectionName)[key] = parsed;
    }
  }
  for (const sectionName of ['restapi', 'ctl']) {
    const username = read(`${sectionName}_username`);
    const password = read(`${sectionName}_password`);
    if (username !== undefined || password !== undefined)
      section(sectionName).authentication = {
        ...(username !== undefined ? { username } : {}),
        ...(password !== undefined ? { password } : {}),
      };
  }
  const authentication: Record<string, Record<string, string>> = {};
  for (const user of ['replication', 'superuser', 'rewind']) {
    const entry: Record<string, string> = {};
    for (const key of PATRONI_AUTH_PARAMETERS) {
      const value = read(`${user}_${key}`);
      if (value !== undefined) entry[key] = value;
    }
    if (Object.keys(entry).length > 0) authentication[user] = entry;
  }
  if (Object.keys(authentication).length > 0) section('postgresql').authentication = authentication;
  for (const dcs of DCS_SECTIONS) {
    for (const suffix of DCS_SUFFIXES) {
      const value = read(`${dcs}_${suffix}`);
      if (value === undefined) continue;
      const target = section(dcs.toLowerCase());
      const key = suffix.toLowerCase();
      if (suffix === 'PORT') target[key] = parsePatroniInt(value) ?? value;
      else if (suffix === 'HOSTS') {
        try {
          target[key] = parseList(value);
        } catch {
          problems.push(`${PREFIX}${dcs}_${suffix}: not a list of host:port, e.g. '10.0.0.1:2379','10.0.0.2:2379'`);
        }
      } else if (suffix === 'USE_PROXIES') target[key] = parsePatroniBool(value) ?? value;
      else target[key] = value;
    }
  }
  return { config, variables, problems };
}

/** Patroni's patch_config: `patch` wins, mappings merge key by key, null removes a key. */
export function patchConfig(base: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  if (typeof base !== 'object' || base === null || Array.isArray(base)) return patch;
  const merged: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete merged[key];
    else merged[key] = patchConfig(merged[key], value);
  }
  return merged;
}
