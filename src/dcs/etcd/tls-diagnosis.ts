// Turns a failed TLS connection to etcd into one clear error naming the endpoint, the file at fault and the cause.
// Loaded with node:https (only for https endpoints): node:crypto's X509Certificate tells an expired client
// certificate from one signed by another CA, which etcd's alert ("bad certificate") does not.
import { X509Certificate } from 'node:crypto';
import { PgwardenError } from '../../util/errors.js';

export interface TlsFile {
  readonly path: string;
  readonly pem: Buffer;
}

/** The TLS material of the etcd client: what etcd3.cacert, etcd3.cert and etcd3.key name, read at start. */
export interface EtcdTls {
  readonly ca?: TlsFile | undefined;
  readonly cert?: TlsFile | undefined;
  readonly key?: TlsFile | undefined;
  /** etcd3.key_password: the passphrase of an encrypted key. */
  readonly keyPassphrase?: string | undefined;
}

/** Verification failures of etcd's certificate against our CA (Node's codes, from OpenSSL's X509_V_ERR_*). */
const UNTRUSTED_SERVER = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_CA',
]);

/** Alerts etcd sends when it refuses our client certificate (Go sends "bad certificate" for all of them today). */
const CLIENT_REFUSED =
  /^ERR_SSL_.*ALERT_(BAD_CERTIFICATE|CERTIFICATE_REQUIRED|UNKNOWN_CA|CERTIFICATE_EXPIRED|CERTIFICATE_UNKNOWN|UNSUPPORTED_CERTIFICATE|ACCESS_DENIED|HANDSHAKE_FAILURE|CERTIFICATE_REVOKED|DECRYPT_ERROR)$/;

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : '';
}

function parse(file: TlsFile): X509Certificate | undefined {
  try {
    return new X509Certificate(file.pem);
  } catch {
    return undefined;
  }
}

/** Why etcd refused our client certificate, from what we can check ourselves. */
function clientCause(tls: EtcdTls, code: string, nowMs: number): string {
  if (tls.cert === undefined) return `etcd requires a client certificate and none is configured: set etcd3.cert and etcd3.key (${code})`;
  const cert = parse(tls.cert);
  if (cert === undefined) return `etcd refused client certificate ${tls.cert.path}, which is not a PEM certificate (${code})`;
  if (Date.parse(cert.validTo) < nowMs)
    return `client certificate ${tls.cert.path} expired on ${new Date(cert.validTo).toISOString()}: issue a new one (${code})`;
  if (Date.parse(cert.validFrom) > nowMs)
    return `client certificate ${tls.cert.path} is not valid before ${new Date(cert.validFrom).toISOString()} (${code})`;
  const ca = tls.ca === undefined ? undefined : parse(tls.ca);
  if (ca !== undefined && !(cert.checkIssued(ca) && cert.verify(ca.publicKey)))
    return `etcd refused client certificate ${tls.cert.path}, issued by '${cert.issuer.replace(/\n/g, ', ')}', not by cacert ${tls.ca!.path}: sign it with the CA of etcd's --trusted-ca-file (${code})`;
  return `etcd refused client certificate ${tls.cert.path} (${code}): check that etcd's --trusted-ca-file holds its issuer and that it allows clientAuth`;
}

/**
 * The TLS failure `error` is, as one PgwardenError (code PGW_DCS_TLS), or undefined when it is not a TLS failure
 * (a refused connection, a timeout: the caller's usual unavailability).
 */
export function diagnoseTlsFailure(
  endpoint: string,
  member: string,
  error: unknown,
  tls: EtcdTls,
  nowMs = Date.now(),
): PgwardenError | undefined {
  const code = errorCode(error);
  const message = error instanceof Error ? error.message : String(error);
  let cause: string | undefined;
  let file: string | undefined;
  if (UNTRUSTED_SERVER.has(code)) {
    cause =
      tls.ca === undefined
        ? `server certificate not trusted by the system CAs: set etcd3.cacert to the CA that signed etcd's certificate (${code})`
        : `server certificate not trusted by cacert ${tls.ca.path} (${code})`;
    file = tls.ca?.path;
  } else if (code === 'CERT_HAS_EXPIRED') {
    cause = `server certificate has expired: renew etcd's --cert-file (${code})`;
  } else if (code === 'CERT_NOT_YET_VALID') {
    cause = `server certificate is not valid yet: check the clocks and etcd's --cert-file (${code})`;
  } else if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    cause = `server certificate does not name this host: ${message.replace(/^Hostname\/IP does not match certificate's altnames: /, '')} (${code})`;
  } else if (CLIENT_REFUSED.test(code)) {
    cause = clientCause(tls, code, nowMs);
    file = tls.cert?.path;
  } else if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || /wrong version number/.test(message)) {
    cause = `this endpoint does not speak TLS: use etcd3.protocol: http, or etcd's https client URL (${code || 'EPROTO'})`;
  } else if (code === 'ERR_OSSL_X509_KEY_VALUES_MISMATCH') {
    cause = `etcd3.key ${tls.key?.path ?? tls.cert?.path ?? ''} is not the private key of etcd3.cert ${tls.cert?.path ?? ''} (${code})`;
    file = tls.key?.path;
  } else if (code === 'ERR_OSSL_BAD_DECRYPT' || (code.startsWith('ERR_OSSL_') && /bad decrypt|interrupted or cancelled/i.test(message))) {
    cause = `cannot decrypt etcd3.key ${tls.key?.path ?? ''}: ${tls.keyPassphrase === undefined ? 'it is encrypted and etcd3.key_password is not set' : 'wrong etcd3.key_password'} (${code})`;
    file = tls.key?.path;
  } else if (code.startsWith('ERR_OSSL_') && /PEM|ASN1|DECODER|BAD_BASE64|NO_START_LINE/.test(code)) {
    cause = `cannot use etcd3.cacert/cert/key: ${message} (${code})`;
  }
  if (cause === undefined) return undefined;
  return new PgwardenError('PGW_DCS_TLS', `etcd ${endpoint}: ${cause}`, {
    cause: error,
    context: {
      member,
      endpoint,
      tlsCode: code,
      ...(file !== undefined ? { path: file } : {}),
      hint: 'fix etcd3.cacert, etcd3.cert or etcd3.key (or etcd\u2019s certificates); the agent retries every cycle and stays off primary meanwhile',
    },
  });
}
