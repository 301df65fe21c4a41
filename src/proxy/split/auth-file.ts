// PgBouncer's auth_file format: one `"user" "secret"` per line, a `""` inside quotes is a quote, other lines are
// comments. The secret is a SCRAM verifier (pg_authid.rolpassword), or a plain password (the proxy then uses it
// towards clients and servers). md5 hashes are refused: SCRAM towards clients cannot be built from them.
import { parseScramSecret, scramSecretOf, type ScramSecret } from './scram.js';

export type AuthEntry =
  | { readonly kind: 'scram'; readonly secret: ScramSecret }
  | { readonly kind: 'password'; readonly password: string; readonly secret: ScramSecret };

export interface AuthFileParse {
  readonly entries: ReadonlyMap<
    string,
    { readonly kind: 'scram'; readonly secret: ScramSecret } | { readonly kind: 'password'; readonly password: string }
  >;
  /** Line-numbered problems, safe to log (no secret in them). */
  readonly problems: readonly string[];
}

function quoted(line: string, from: number): [string, number] | undefined {
  if (line[from] !== '"') return undefined;
  let text = '';
  for (let index = from + 1; index < line.length; index++) {
    if (line[index] === '"') {
      if (line[index + 1] === '"') {
        text += '"';
        index++;
        continue;
      }
      return [text, index + 1];
    }
    text += line[index];
  }
  return undefined;
}

export function parseAuthFile(text: string): AuthFileParse {
  const entries = new Map<string, { kind: 'scram'; secret: ScramSecret } | { kind: 'password'; password: string }>();
  const problems: string[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (!line.startsWith('"')) return;
    const user = quoted(line, 0);
    const rest = user === undefined ? -1 : line.slice(user[1]).search(/\S/);
    const secret = user === undefined || rest === -1 ? undefined : quoted(line, user[1] + rest);
    if (user === undefined || secret === undefined) {
      problems.push(`line ${index + 1}: expected "user" "secret"`);
      return;
    }
    const [name] = user;
    const [value] = secret;
    if (value.startsWith('SCRAM-SHA-256$')) {
      const parsed = parseScramSecret(value);
      if (parsed === undefined) problems.push(`line ${index + 1} (user ${name}): malformed SCRAM-SHA-256 secret`);
      else entries.set(name, { kind: 'scram', secret: parsed });
    } else if (/^md5[0-9a-f]{32}$/.test(value)) {
      problems.push(`line ${index + 1} (user ${name}): md5 hashes are not supported; give a SCRAM-SHA-256 secret or the password`);
    } else if (value === '') {
      problems.push(`line ${index + 1} (user ${name}): empty password`);
    } else entries.set(name, { kind: 'password', password: value });
  });
  return { entries, problems };
}

/** Turns parsed entries into ones ready to verify clients with (a plain password gets a verifier once, cached by the caller). */
export async function prepareEntry(
  entry: { readonly kind: 'scram'; readonly secret: ScramSecret } | { readonly kind: 'password'; readonly password: string },
): Promise<AuthEntry> {
  return entry.kind === 'scram' ? entry : { kind: 'password', password: entry.password, secret: await scramSecretOf(entry.password) };
}
