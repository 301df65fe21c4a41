// Certificates for a local cluster's PostgreSQL over TLS, made with openssl (no shell): a CA, a server certificate
// per node (SAN IP of the node, IP:127.0.0.1, DNS:localhost) and a client certificate per user (CN = the user name,
// for pg_hba's clientcert=verify-full). Keys are 0600 and owned by the postgres OS user when running as root:
// PostgreSQL refuses a server key others can read, libpq a client key.
import { chmod, chown, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand } from '../util/run-command.js';

export interface CertificatePair {
  readonly certFile: string;
  readonly keyFile: string;
}

export interface PgCertificates {
  readonly dir: string;
  readonly ca: CertificatePair;
  /** By node name. */
  readonly servers: ReadonlyMap<string, CertificatePair>;
  /** By PostgreSQL user name. */
  readonly clients: ReadonlyMap<string, CertificatePair>;
}

/** Short-lived test material: P-256 keys are quick to make, and both PostgreSQL and node accept them. */
const KEY_ARGS = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
const DAYS = '30';

async function postgresOwner(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const uid = Number((await runCommand('id', ['-u', 'postgres'])).trim());
  const gid = Number((await runCommand('id', ['-g', 'postgres'])).trim());
  return { uid, gid };
}

async function protect(pair: CertificatePair, owner: { uid: number; gid: number } | undefined): Promise<void> {
  await chmod(pair.keyFile, 0o600);
  await chmod(pair.certFile, 0o644);
  if (owner !== undefined) {
    await chown(pair.keyFile, owner.uid, owner.gid);
    await chown(pair.certFile, owner.uid, owner.gid);
  }
}

/** A self-signed CA named `name` in `dir` (ca certificate and key; the key stays owned by whoever runs this). */
export async function generateCa(dir: string, name: string): Promise<CertificatePair> {
  await mkdir(dir, { recursive: true, mode: 0o711 });
  // postgres reaches its own keys (0600, its own) in here; nobody may list the directory (etcd's keys may be in it too).
  await chmod(dir, 0o711);
  const pair = { certFile: join(dir, `${name}.crt`), keyFile: join(dir, `${name}.key`) };
  await runCommand('openssl', [
    'req',
    '-x509',
    ...KEY_ARGS,
    '-keyout',
    pair.keyFile,
    '-out',
    pair.certFile,
    '-days',
    DAYS,
    '-subj',
    `/CN=${name}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  await chmod(pair.keyFile, 0o600);
  await chmod(pair.certFile, 0o644);
  return pair;
}

/** A certificate for `commonName` signed by `ca`, with these extensions (openssl -addext lines). */
async function issue(
  ca: CertificatePair,
  dir: string,
  fileName: string,
  commonName: string,
  extensions: readonly string[],
): Promise<CertificatePair> {
  const pair = { certFile: join(dir, `${fileName}.crt`), keyFile: join(dir, `${fileName}.key`) };
  await runCommand('openssl', [
    'req',
    '-x509',
    '-CA',
    ca.certFile,
    '-CAkey',
    ca.keyFile,
    ...KEY_ARGS,
    '-keyout',
    pair.keyFile,
    '-out',
    pair.certFile,
    '-days',
    DAYS,
    '-subj',
    `/CN=${commonName}`,
    '-addext',
    'basicConstraints=critical,CA:FALSE',
    ...extensions.flatMap((extension) => ['-addext', extension]),
  ]);
  return pair;
}

/** The CA, one server certificate per node and one client certificate per user, under `dir`. */
export async function generatePgCertificates(options: {
  readonly dir: string;
  readonly servers: readonly { readonly name: string; readonly host: string }[];
  readonly users: readonly string[];
}): Promise<PgCertificates> {
  await rm(options.dir, { recursive: true, force: true });
  const ca = await generateCa(options.dir, 'ca');
  const owner = await postgresOwner();
  const servers = new Map<string, CertificatePair>();
  for (const server of options.servers) {
    const addresses = [...new Set([server.host, '127.0.0.1'])].map((address) => `IP:${address}`);
    const pair = await issue(ca, options.dir, `server-${server.name}`, server.name, [
      `subjectAltName=${[...addresses, 'DNS:localhost'].join(',')}`,
      'extendedKeyUsage=serverAuth',
    ]);
    await protect(pair, owner);
    servers.set(server.name, pair);
  }
  const clients = new Map<string, CertificatePair>();
  for (const user of options.users) {
    const pair = await issue(ca, options.dir, `client-${user}`, user, ['extendedKeyUsage=clientAuth']);
    await protect(pair, owner);
    clients.set(user, pair);
  }
  return { dir: options.dir, ca, servers, clients };
}
