// SCRAM-SHA-256 (RFC 5802, RFC 7677) for both sides of the split listener, without channel binding: the proxy
// verifies clients against a stored verifier (or a plain password from the auth file), and logs in to servers with
// the password, or with the ClientKey a client just proved it holds (PgBouncer does the same; the server's salt and
// iteration count must then equal the verifier's, i.e. the auth file carries pg_authid.rolpassword). Passwords,
// proofs and keys are never put into errors or logs.
import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

const pbkdf2Async = promisify(pbkdf2);

export interface ScramSecret {
  readonly iterations: number;
  readonly salt: Buffer;
  readonly storedKey: Buffer;
  readonly serverKey: Buffer;
}

/** What the proxy logs in to a server with: a password, or the keys a client's proof revealed. */
export type ServerCredential =
  | { readonly kind: 'password'; readonly password: string }
  | { readonly kind: 'client-key'; readonly clientKey: Buffer; readonly secret: ScramSecret };

const hmac = (key: Buffer, text: string | Buffer): Buffer => createHmac('sha256', key).update(text).digest();
const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest();
const xor = (a: Buffer, b: Buffer): Buffer => Buffer.from(a.map((byte, index) => byte ^ b[index]!));

/** SASLprep as far as PostgreSQL's clients apply it (NFKC, non-ASCII spaces to space, mapped-to-nothing removed). */
export function saslprep(password: string): string {
  return (
    password
      .replace(/[\u00A0\u1680\u2000-\u200B\u202F\u205F\u3000]/g, ' ')
      // RFC 3454 B.1 holds joiners and variation selectors on purpose: they are removed, not matched as sequences.
      // eslint-disable-next-line no-misleading-character-class
      .replace(/[\u00AD\u034F\u1806\u180B-\u180D\u200C\u200D\u2060\uFE00-\uFE0F\uFEFF]/gu, '')
      .normalize('NFKC')
  );
}

export async function saltedPassword(password: string, salt: Buffer, iterations: number): Promise<Buffer> {
  return pbkdf2Async(saslprep(password), salt, iterations, 32, 'sha256');
}

/** The verifier PostgreSQL would store for `password` (password_encryption = scram-sha-256). */
export async function scramSecretOf(password: string, salt: Buffer = randomBytes(16), iterations = 4096): Promise<ScramSecret> {
  const salted = await saltedPassword(password, salt, iterations);
  return { iterations, salt, storedKey: sha256(hmac(salted, 'Client Key')), serverKey: hmac(salted, 'Server Key') };
}

/** `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (pg_authid.rolpassword); undefined when malformed. */
export function parseScramSecret(text: string): ScramSecret | undefined {
  const match = /^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/.exec(text);
  if (match === null) return undefined;
  const iterations = Number(match[1]);
  const salt = Buffer.from(match[2]!, 'base64');
  const storedKey = Buffer.from(match[3]!, 'base64');
  const serverKey = Buffer.from(match[4]!, 'base64');
  if (!(iterations > 0) || salt.length === 0 || storedKey.length !== 32 || serverKey.length !== 32) return undefined;
  return { iterations, salt, storedKey, serverKey };
}

/** The attributes of a SCRAM message (`r=...,s=...`); a repeated or malformed attribute throws. */
function attributes(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of text.split(',')) {
    const match = /^([A-Za-z])=(.*)$/s.exec(part);
    if (match === null || out.has(match[1]!)) throw new ScramError('malformed SCRAM message');
    out.set(match[1]!, match[2]!);
  }
  return out;
}

/** A SCRAM exchange that cannot go on: the message is safe to show (it holds no secret). */
export class ScramError extends Error {}

const PRINTABLE_NONCE = /^[\x21-\x2b\x2d-\x7e]+$/;

/**
 * The server side of one exchange. `secret` undefined (unknown user) runs the exchange with a made-up salt and fails
 * at the end, as PostgreSQL does, so a client cannot tell an unknown user from a wrong password.
 */
export class ScramServer {
  readonly #secret: ScramSecret;
  readonly #known: boolean;
  #clientFirstBare = '';
  #serverFirst = '';
  #gs2Header = '';
  #nonce = '';
  /** After a successful proof: the client's ClientKey (to log in to servers with). */
  clientKey: Buffer | undefined;

  constructor(secret: ScramSecret | undefined, mockSeed: string) {
    this.#known = secret !== undefined;
    this.#secret = secret ?? {
      iterations: 4096,
      salt: hmac(MOCK_KEY, mockSeed).subarray(0, 16),
      storedKey: randomBytes(32),
      serverKey: randomBytes(32),
    };
  }

  /** client-first-message → server-first-message. */
  first(clientFirst: string): string {
    // gs2-header: 'n' (no binding) or 'y' (client can bind, thinks we cannot); 'p=' asks for binding we did not offer.
    const match = /^([ny]),(a=[^,]*)?,(.*)$/s.exec(clientFirst);
    if (match === null) throw new ScramError('malformed SCRAM message: channel binding is not supported here, or a bad gs2 header');
    if (match[2] !== undefined) throw new ScramError('SCRAM authorization identities are not supported');
    this.#gs2Header = `${match[1]},,`;
    this.#clientFirstBare = match[3]!;
    const fields = attributes(this.#clientFirstBare);
    if (fields.has('m')) throw new ScramError('SCRAM extensions are not supported');
    const clientNonce = fields.get('r');
    if (clientNonce === undefined || !PRINTABLE_NONCE.test(clientNonce)) throw new ScramError('malformed SCRAM nonce');
    this.#nonce = clientNonce + randomBytes(18).toString('base64');
    this.#serverFirst = `r=${this.#nonce},s=${this.#secret.salt.toString('base64')},i=${this.#secret.iterations}`;
    return this.#serverFirst;
  }

  /** client-final-message → server-final-message when the proof is right; undefined when it is wrong. */
  final(clientFinal: string): string | undefined {
    const proofAt = clientFinal.lastIndexOf(',p=');
    if (proofAt === -1) throw new ScramError('malformed SCRAM message: no proof');
    const withoutProof = clientFinal.slice(0, proofAt);
    const fields = attributes(withoutProof);
    if (fields.get('c') !== Buffer.from(this.#gs2Header).toString('base64')) throw new ScramError('SCRAM channel binding does not match');
    if (fields.get('r') !== this.#nonce) throw new ScramError('SCRAM nonce does not match');
    const proof = Buffer.from(clientFinal.slice(proofAt + 3), 'base64');
    const authMessage = `${this.#clientFirstBare},${this.#serverFirst},${withoutProof}`;
    const { storedKey, serverKey } = this.#secret;
    const clientSignature = hmac(storedKey, authMessage);
    if (proof.length !== clientSignature.length) return undefined;
    const clientKey = xor(proof, clientSignature);
    // Constant time, and the unknown-user path compares too, so timing tells nothing either.
    const matches = timingSafeEqual(sha256(clientKey), storedKey);
    if (!matches || !this.#known) return undefined;
    this.clientKey = clientKey;
    return `v=${hmac(serverKey, authMessage).toString('base64')}`;
  }
}

/** Per-process key for made-up salts: the same unknown user gets the same salt within a run (no probing by salt). */
const MOCK_KEY = randomBytes(32);

/** The client side towards a server: three steps, the server's signature checked at the end. */
export class ScramClient {
  readonly #credential: ServerCredential;
  readonly #clientNonce = randomBytes(18).toString('base64');
  #expectedServerSignature: Buffer | undefined;

  constructor(credential: ServerCredential) {
    this.#credential = credential;
  }

  get clientFirst(): string {
    return `n,,n=,r=${this.#clientNonce}`;
  }

  /** server-first-message → client-final-message. */
  async final(serverFirst: string): Promise<string> {
    const fields = attributes(serverFirst);
    const nonce = fields.get('r');
    const salt = Buffer.from(fields.get('s') ?? '', 'base64');
    const iterations = Number(fields.get('i'));
    if (nonce === undefined || !nonce.startsWith(this.#clientNonce) || nonce.length === this.#clientNonce.length)
      throw new ScramError('the server sent a bad SCRAM nonce');
    if (salt.length === 0 || !Number.isInteger(iterations) || iterations <= 0 || iterations > 10_000_000)
      throw new ScramError('the server sent a bad SCRAM salt or iteration count');
    let clientKey: Buffer;
    let storedKey: Buffer;
    let serverKey: Buffer;
    const credential = this.#credential;
    if (credential.kind === 'password') {
      const salted = await saltedPassword(credential.password, salt, iterations);
      clientKey = hmac(salted, 'Client Key');
      storedKey = sha256(clientKey);
      serverKey = hmac(salted, 'Server Key');
    } else {
      if (!credential.secret.salt.equals(salt) || credential.secret.iterations !== iterations)
        throw new ScramError(
          "the server's SCRAM salt or iteration count differs from the auth file's secret: copy the role's pg_authid.rolpassword into the auth file, or give its password there",
        );
      ({ clientKey } = credential);
      ({ storedKey, serverKey } = credential.secret);
    }
    const withoutProof = `c=biws,r=${nonce}`;
    const authMessage = `n=,r=${this.#clientNonce},${serverFirst},${withoutProof}`;
    this.#expectedServerSignature = hmac(serverKey, authMessage);
    return `${withoutProof},p=${xor(clientKey, hmac(storedKey, authMessage)).toString('base64')}`;
  }

  /** Checks server-final-message: a server that cannot prove it knows the secret is not trusted. */
  verify(serverFinal: string): void {
    const fields = attributes(serverFinal);
    if (fields.has('e')) throw new ScramError(`the server refused the SCRAM exchange: ${fields.get('e')}`);
    const signature = Buffer.from(fields.get('v') ?? '', 'base64');
    const expected = this.#expectedServerSignature;
    if (expected === undefined || signature.length !== expected.length || !timingSafeEqual(signature, expected))
      throw new ScramError("the server's SCRAM signature is wrong");
  }
}
