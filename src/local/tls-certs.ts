// Test and local-cluster certificates made with openssl (execFile, no shell): a CA, server certificates (SAN IPs and
// DNS names) and client certificates, optionally with a validity window in the past. Keys and certificates are 0600.
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand } from '../util/run-command.js';

export interface CertificateFiles {
  readonly cert: string;
  readonly key: string;
}

export interface IssueOptions {
  /** The subject (default /CN=<name>); a client certificate for etcd's gateway with authentication on needs one without a CN. */
  readonly subject?: string;
  /** Subject alternative names of a server certificate, e.g. { ips: ['127.0.0.1'], dns: ['localhost'] }. */
  readonly server?: { readonly ips?: readonly string[]; readonly dns?: readonly string[] };
  /** Usable as a TLS client certificate (default true; a server certificate is both, as etcd's peer certs are). */
  readonly isClient?: boolean;
  /** Validity window (default: from an hour ago to ten years ahead); a window in the past makes an expired certificate. */
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  /** Encrypts the private key with this passphrase (AES-256), as restapi.keyfile_password and ctl.keyfile_password expect. */
  readonly keyPassphrase?: string;
}

export interface CertificateAuthority {
  readonly dir: string;
  /** The CA certificate (PEM): what a verifier trusts. */
  readonly cert: string;
  readonly key: string;
  /** Issues `<name>.pem` and `<name>-key.pem` in the CA's directory, signed by this CA. */
  issue(name: string, options?: IssueOptions): Promise<CertificateFiles>;
}

const HOUR_MS = 3_600_000;
const TEN_YEARS_MS = 10 * 365 * 24 * HOUR_MS;

/** openssl ca's date format, UTC: YYYYMMDDHHMMSSZ (GeneralizedTime, valid for any year). */
function opensslDate(date: Date): string {
  return `${date.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;
}

const OPENSSL_TIMEOUT_MS = 30_000;
const openssl = (args: readonly string[]): Promise<string> => runCommand('openssl', args, { timeoutMs: OPENSSL_TIMEOUT_MS });

/**
 * A new CA in `dir` (created). Certificates are signed with `openssl ca`, which, unlike `openssl x509 -req -days`,
 * takes an explicit start and end date: the only way to make an expired certificate without faking the clock.
 */
export async function createCertificateAuthority(dir: string, commonName = 'pgwarden test CA'): Promise<CertificateAuthority> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const cert = join(dir, 'ca.pem');
  const key = join(dir, 'ca-key.pem');
  await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
  await openssl(['req', '-x509', '-new', '-key', key, '-sha256', '-days', '3650', '-subj', `/CN=${commonName}`, '-out', cert]);
  await chmod(key, 0o600);
  await chmod(cert, 0o600);
  await mkdir(join(dir, 'issued'), { recursive: true, mode: 0o700 });
  await writeFile(join(dir, 'index.txt'), '');
  await writeFile(join(dir, 'serial'), '1000\n');
  const configPath = join(dir, 'openssl-ca.cnf');
  await writeFile(
    configPath,
    [
      '[ca]',
      'default_ca = local_ca',
      '[local_ca]',
      `dir = ${dir}`,
      'database = $dir/index.txt',
      'serial = $dir/serial',
      'new_certs_dir = $dir/issued',
      `certificate = ${cert}`,
      `private_key = ${key}`,
      'default_md = sha256',
      'policy = any_subject',
      'unique_subject = no',
      'copy_extensions = none',
      '[any_subject]',
      'commonName = optional',
      'organizationName = optional',
      '',
    ].join('\n'),
  );
  const issue = async (name: string, options: IssueOptions = {}): Promise<CertificateFiles> => {
    const certPath = join(dir, `${name}.pem`);
    const keyPath = join(dir, `${name}-key.pem`);
    const csrPath = join(dir, `${name}.csr`);
    const extensionsPath = join(dir, `${name}.ext`);
    await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', keyPath]);
    await openssl(['req', '-new', '-key', keyPath, '-subj', options.subject ?? `/CN=${name}`, '-out', csrPath]);
    const usages = [...(options.server !== undefined ? ['serverAuth'] : []), ...(options.isClient !== false ? ['clientAuth'] : [])];
    const altNames = [...(options.server?.ips ?? []).map((ip) => `IP:${ip}`), ...(options.server?.dns ?? []).map((dns) => `DNS:${dns}`)];
    await writeFile(
      extensionsPath,
      [
        '[cert]',
        'basicConstraints = critical,CA:FALSE',
        'keyUsage = critical,digitalSignature,keyEncipherment',
        ...(usages.length > 0 ? [`extendedKeyUsage = ${usages.join(',')}`] : []),
        ...(altNames.length > 0 ? [`subjectAltName = ${altNames.join(',')}`] : []),
        '',
      ].join('\n'),
    );
    const now = Date.now();
    await openssl([
      'ca',
      '-batch',
      '-notext',
      '-config',
      configPath,
      '-in',
      csrPath,
      '-out',
      certPath,
      '-startdate',
      opensslDate(options.notBefore ?? new Date(now - HOUR_MS)),
      '-enddate',
      opensslDate(options.notAfter ?? new Date(now + TEN_YEARS_MS)),
      '-extfile',
      extensionsPath,
      '-extensions',
      'cert',
    ]);
    if (options.keyPassphrase !== undefined)
      await openssl(['ec', '-in', keyPath, '-aes256', '-passout', `pass:${options.keyPassphrase}`, '-out', keyPath]);
    await chmod(keyPath, 0o600);
    await chmod(certPath, 0o600);
    return { cert: certPath, key: keyPath };
  };
  return { dir, cert, key, issue };
}

/**
 * Lets other OS users (postgres, when this runs as root) read the CA certificate and reach files in the CA's directory
 * by name, without listing it: the keys stay 0600.
 */
export async function shareCaCertificate(ca: CertificateAuthority): Promise<void> {
  await chmod(ca.dir, 0o711);
  await chmod(ca.cert, 0o644);
}

/** The certificates of an etcd with client-certificate authentication on loopback: a CA, etcd's server cert, a client. */
export interface EtcdTlsFiles {
  readonly ca: CertificateAuthority;
  readonly server: CertificateFiles;
  readonly client: CertificateFiles;
}

/**
 * `clientSubject`: the client certificate's subject (default /CN=pgwarden-client). etcd with client certificates and
 * authentication both on refuses gateway requests from a certificate with a CN: pass e.g. '/O=pgwarden' then.
 */
export async function createEtcdTlsFiles(
  dir: string,
  serverIps: readonly string[] = ['127.0.0.1'],
  clientSubject?: string,
): Promise<EtcdTlsFiles> {
  const ca = await createCertificateAuthority(dir);
  // The server certificate is also etcd's client certificate: its gateway connects to its own gRPC port with it.
  const server = await ca.issue('etcd-server', { server: { ips: serverIps, dns: ['localhost'] } });
  const client = await ca.issue('pgwarden-client', clientSubject !== undefined ? { subject: clientSubject } : {});
  return { ca, server, client };
}
