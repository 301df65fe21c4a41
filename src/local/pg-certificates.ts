// Certificates for a local cluster's PostgreSQL over TLS, issued by the one certificate helper (tls-certs.ts): a CA, a
// server certificate per node (SAN IP of the node, IP:127.0.0.1, DNS:localhost) and a client certificate per user
// (CN = the user name, for pg_hba's clientcert=verify-full). Keys are 0600 and owned by the postgres OS user when
// running as root: PostgreSQL refuses a server key others can read, libpq a client key.
import { chmod, chown, rm } from 'node:fs/promises';
import { runCommand } from '../util/run-command.js';
import { createCertificateAuthority, shareCaCertificate, type CertificateFiles } from './tls-certs.js';

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

async function postgresOwner(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const uid = Number((await runCommand('id', ['-u', 'postgres'])).trim());
  const gid = Number((await runCommand('id', ['-g', 'postgres'])).trim());
  return { uid, gid };
}

async function protect(files: CertificateFiles, owner: { uid: number; gid: number } | undefined): Promise<CertificatePair> {
  await chmod(files.cert, 0o644);
  if (owner !== undefined) {
    await chown(files.key, owner.uid, owner.gid);
    await chown(files.cert, owner.uid, owner.gid);
  }
  return { certFile: files.cert, keyFile: files.key };
}

/** The CA, one server certificate per node and one client certificate per user, under `dir`. */
export async function generatePgCertificates(options: {
  readonly dir: string;
  readonly servers: readonly { readonly name: string; readonly host: string }[];
  readonly users: readonly string[];
}): Promise<PgCertificates> {
  await rm(options.dir, { recursive: true, force: true });
  const ca = await createCertificateAuthority(options.dir, 'pgwarden PostgreSQL CA');
  // postgres reaches its own keys (0600, its own) in here.
  await shareCaCertificate(ca);
  const owner = await postgresOwner();
  const servers = new Map<string, CertificatePair>();
  for (const server of options.servers) {
    const ips = [...new Set([server.host, '127.0.0.1'])];
    const files = await ca.issue(`server-${server.name}`, {
      subject: `/CN=${server.name}`,
      server: { ips, dns: ['localhost'] },
      isClient: false,
    });
    servers.set(server.name, await protect(files, owner));
  }
  const clients = new Map<string, CertificatePair>();
  for (const user of options.users) {
    const files = await ca.issue(`client-${user}`, { subject: `/CN=${user}` });
    clients.set(user, await protect(files, owner));
  }
  return { dir: options.dir, ca: { certFile: ca.cert, keyFile: ca.key }, servers, clients };
}
