// libpq's sslmode and friends mapped onto node-postgres: which connection attempts to make (plain, TLS) and the
// node:tls options of each, so the agent's own sessions behave as libpq would with the same keys. Pure: files are
// read through the reader passed in.
//
// What libpq does, and what is done here:
// - disable: plain only. allow: plain, then TLS if the plain attempt is refused. prefer (libpq's default): TLS,
//   then plain if the TLS attempt fails. require, verify-ca, verify-full: TLS only. node-postgres cannot fall back
//   inside one connection, so the fallback is a second connection (connectTo), never made when nothing answers.
// - A root certificate (sslrootcert, else ~/.postgresql/root.crt when it exists) makes every mode verify the chain,
//   as libpq does: `require` then behaves as `verify-ca`. Only verify-full also checks the host name (SAN DNS or IP).
//   verify-ca and verify-full without a readable root certificate are refused, as libpq refuses them.
// - sslcert/sslkey (else ~/.postgresql/postgresql.crt and .key when they exist) are the client certificate;
//   sslpassword decrypts the key; sslcrl (else ~/.postgresql/root.crl) and every file in sslcrldir are CRLs.
// - Unix sockets carry no TLS (libpq ignores sslmode there), and no channel binding either.
// - channel_binding: prefer (default) and require offer SCRAM-SHA-256-PLUS over TLS; require also fails a login that
//   was not channel-bound. gssencmode: node-postgres has no GSSAPI; `require` is refused, other values mean no GSS.
import type { ConnectionOptions } from 'node:tls';
import { join } from 'node:path';
import type { PgSecurity } from './conninfo.js';

export const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

/** false: a plain connection; an object: TLS with these options. */
export type ConnectionAttempt = false | ConnectionOptions;

export interface NodeTlsPlan {
  readonly sslmode: SslMode;
  /** Tried in order; the next only when one fails after something answered (a refusal, a TLS failure). */
  readonly attempts: readonly ConnectionAttempt[];
  /** node-postgres's enableChannelBinding: use SCRAM-SHA-256-PLUS when the server offers it over TLS. */
  readonly isChannelBindingEnabled: boolean;
  /** channel_binding=require: a login that was not channel-bound fails. */
  readonly isChannelBindingRequired: boolean;
}

export interface TlsFiles {
  /** The file's bytes, or undefined when it cannot be read (missing, no permission). */
  readonly read: (path: string) => Buffer | undefined;
  /** The regular files of a directory (sslcrldir), or undefined when it cannot be listed. */
  readonly list: (path: string) => readonly string[] | undefined;
  /** libpq's default file location: ~/.postgresql of the user the agent runs as; undefined: no defaults. */
  readonly homeDir: string | undefined;
}

/** A setting that cannot work (bad value, a file libpq would demand): the message names the key and what to change. */
export class TlsSettingsError extends Error {}

function isSslMode(value: string): value is SslMode {
  return (SSL_MODES as readonly string[]).includes(value);
}

/** A libpq-style default path under ~/.postgresql, or undefined. */
function defaultPath(files: TlsFiles, name: string): string | undefined {
  return files.homeDir === undefined ? undefined : join(files.homeDir, '.postgresql', name);
}

/** The TLS options shared by every attempt of one connection. */
function tlsOptions(security: PgSecurity, sslmode: SslMode, files: TlsFiles): ConnectionOptions {
  const isVerifyMode = sslmode === 'verify-ca' || sslmode === 'verify-full';
  const rootPath = security.sslrootcert ?? defaultPath(files, 'root.crt');
  const ca = rootPath === undefined ? undefined : files.read(rootPath);
  if (isVerifyMode && ca === undefined)
    throw new TlsSettingsError(
      `sslmode ${sslmode} needs a root certificate, and ${rootPath ?? 'sslrootcert'} cannot be read: set sslrootcert to the CA file that signed the server's certificate`,
    );
  const options: { -readonly [key in keyof ConnectionOptions]: ConnectionOptions[key] } = {};
  if (ca !== undefined) {
    options.ca = ca;
    options.rejectUnauthorized = true;
    // libpq's verify-ca and the modes below it check the chain, never the host name.
    if (sslmode !== 'verify-full') options.checkServerIdentity = () => undefined;
  } else {
    options.rejectUnauthorized = false;
  }
  const certPath = security.sslcert ?? defaultPath(files, 'postgresql.crt');
  const cert = certPath === undefined ? undefined : files.read(certPath);
  if (cert !== undefined) {
    const keyPath = security.sslkey ?? defaultPath(files, 'postgresql.key');
    const key = keyPath === undefined ? undefined : files.read(keyPath);
    if (key === undefined)
      throw new TlsSettingsError(
        `the client certificate ${certPath} is there but its key ${keyPath ?? 'sslkey'} cannot be read: set sslkey to the private key of sslcert`,
      );
    options.cert = cert;
    options.key = key;
    if (security.sslpassword !== undefined) options.passphrase = security.sslpassword;
  }
  const crls: Buffer[] = [];
  const crlPath = security.sslcrl ?? defaultPath(files, 'root.crl');
  const crl = crlPath === undefined ? undefined : files.read(crlPath);
  if (crl !== undefined) crls.push(crl);
  if (security.sslcrldir !== undefined) {
    // OpenSSL's hashed-directory lookup, which libpq uses, reads only <subject hash>.r<n> files (c_rehash names).
    for (const name of (files.list(security.sslcrldir) ?? []).filter((entry) => /^[0-9a-f]{8}\.r\d+$/i.test(entry)).sort()) {
      const content = files.read(join(security.sslcrldir, name));
      if (content !== undefined) crls.push(content);
    }
  }
  if (crls.length > 0) options.crl = crls;
  return options;
}

/**
 * How the agent connects as a user with these settings to `host`: a path (a Unix socket directory) never uses TLS.
 * Throws TlsSettingsError for settings libpq would refuse too.
 */
export function nodeTlsPlan(security: PgSecurity, host: string, files: TlsFiles): NodeTlsPlan {
  const given = security.sslmode ?? 'prefer';
  if (!isSslMode(given)) throw new TlsSettingsError(`sslmode "${given}" is not one of ${SSL_MODES.join(', ')}`);
  const isUnixSocket = host.startsWith('/');
  if (isUnixSocket) return { sslmode: given, attempts: [false], isChannelBindingEnabled: false, isChannelBindingRequired: false };
  if (security.gssencmode === 'require')
    throw new TlsSettingsError(
      'gssencmode require: the agent connects with node-postgres, which has no GSSAPI encryption; use TLS (sslmode) instead, or gssencmode prefer',
    );
  const channelBinding = security.channel_binding ?? 'prefer';
  const binding = { isChannelBindingEnabled: channelBinding !== 'disable', isChannelBindingRequired: channelBinding === 'require' };
  if (given === 'disable') return { sslmode: given, attempts: [false], ...binding };
  const tls = tlsOptions(security, given, files);
  const attempts: ConnectionAttempt[] = given === 'allow' ? [false, tls] : given === 'prefer' ? [tls, false] : [tls];
  return { sslmode: given, attempts, ...binding };
}
