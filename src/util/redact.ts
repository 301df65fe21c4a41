// The one redaction of secrets for every output boundary (logs, REST bodies, CLI output, errors, reports): secret keys
// lose their values, and passwords inside conninfo strings, URIs and Authorization headers are masked.

export const REDACTED = '******';

/**
 * Keys whose value is a secret: password, sslpassword, keyfile_password, key_password, passphrase, secret, token,
 * authorization, Patroni's `auth` ("user:password"), private keys. Paths to key files (keyfile, sslkey) are not secrets.
 */
const SECRET_KEY = /pass(word|wd|phrase)|secret|token|^auth$|authorization|credential|private_?key|api_?key/i;

/** `pgpass` names a file, not a password. */
const NOT_SECRET_KEY = /^pgpass(file)?$|^passfile$/i;

export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key) && !NOT_SECRET_KEY.test(key);
}

/** conninfo `password=...` (quoted or bare), and sslpassword=, keyfile_password=, PGPASSWORD=... in a command line. */
const CONNINFO_PASSWORD = /\b(\w*pass(?:word|wd|phrase))(\s*=\s*)('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s&,;'"]+)/gi;
/** scheme://user:password@host */
const URI_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^\s:/@]*:)([^\s@/]+)(@)/gi;
/** Authorization: Basic/Bearer <token> */
const AUTH_HEADER = /\b(Basic|Bearer)\s+[A-Za-z0-9+/=._~-]{6,}/g;
/** A PEM private key block. */
const PEM_KEY = /-----BEGIN ([A-Z ]*)PRIVATE KEY-----[\s\S]*?(-----END \1PRIVATE KEY-----|$)/g;

/** Masks secrets inside free text: conninfo passwords, URI passwords, Authorization values, PEM private keys. */
export function redactText(text: string): string {
  if (!/pass|:\/\/|Basic|Bearer|PRIVATE KEY/i.test(text)) return text;
  return text
    .replace(CONNINFO_PASSWORD, (_whole, key: string, equals: string) => `${key}${equals}${REDACTED}`)
    .replace(URI_PASSWORD, (_whole, before: string, _password: string, at: string) => `${before}${REDACTED}${at}`)
    .replace(AUTH_HEADER, (_whole, scheme: string) => `${scheme} ${REDACTED}`)
    .replace(PEM_KEY, (_whole, kind: string) => `-----BEGIN ${kind}PRIVATE KEY----- ${REDACTED} -----END ${kind}PRIVATE KEY-----`);
}

/**
 * A copy of `value` that is safe to show: the value of every secret key (at any depth) becomes "******" (null and
 * undefined stay, so "no password set" remains visible), and every string goes through redactText. Cycles are cut.
 */
export function redactSecrets<T>(value: T): T {
  return redactValue(value, new WeakSet()) as T;
}

function redactValue(value: unknown, seen: WeakSet<object>): unknown {
  if (typeof value === 'string') return redactText(value);
  if (typeof value !== 'object' || value === null) return value;
  if (seen.has(value)) return '[circular]';
  if (Buffer.isBuffer(value) || value instanceof Date) return value;
  seen.add(value);
  if (Array.isArray(value)) return value.map((item) => redactValue(item, seen));
  if (value instanceof Error) {
    const copy = new Error(redactText(value.message));
    copy.name = value.name;
    if (value.stack !== undefined) copy.stack = redactText(value.stack);
    return copy;
  }
  const copy: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    copy[key] = isSecretKey(key) && item !== null && item !== undefined && item !== '' ? REDACTED : redactValue(item, seen);
  }
  return copy;
}

/**
 * The key path of the first string that carries the placeholder, if any: a document read back from a redacted output
 * (GET /config, show-config) and written again would replace real passwords with "******".
 */
export function redactedPath(value: unknown, path: readonly string[] = []): string | undefined {
  if (typeof value === 'string') return value.includes(REDACTED) ? path.join('.') || '(value)' : undefined;
  if (typeof value !== 'object' || value === null) return undefined;
  for (const [key, item] of Object.entries(value)) {
    const found = redactedPath(item, [...path, key]);
    if (found !== undefined) return found;
  }
  return undefined;
}
