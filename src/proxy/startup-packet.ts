// The PostgreSQL startup handshake as far as the proxy needs it: read the client's first message and add run-time
// options (`-c default_transaction_read_only=on`) to its StartupMessage, so a read falling back to the primary is read-only.
import type { Socket } from 'node:net';

/** Request codes that take the place of a protocol version in the first message (PostgreSQL's pqcomm.h). */
const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
/** A startup packet is small; anything larger is garbage (PostgreSQL's MAX_STARTUP_PACKET_LENGTH is 10000). */
const MAX_STARTUP_BYTES = 10_000;

export type StartupMessage =
  /** A StartupMessage of protocol 3.x: its parameters, in order. */
  | { readonly kind: 'startup'; readonly protocol: number; readonly parameters: ReadonlyArray<readonly [string, string]> }
  /** A CancelRequest or anything else that is not a session: forwarded as it came. */
  | { readonly kind: 'other'; readonly bytes: Buffer };

/** Parses one complete first message (length included). */
export function parseStartupMessage(bytes: Buffer): StartupMessage {
  const protocol = bytes.readInt32BE(4);
  if (protocol >> 16 !== 3) return { kind: 'other', bytes };
  const parameters: [string, string][] = [];
  let offset = 8;
  for (;;) {
    const keyEnd = bytes.indexOf(0, offset);
    if (keyEnd === -1 || keyEnd === offset) break;
    const valueEnd = bytes.indexOf(0, keyEnd + 1);
    if (valueEnd === -1) break;
    parameters.push([bytes.toString('utf8', offset, keyEnd), bytes.toString('utf8', keyEnd + 1, valueEnd)]);
    offset = valueEnd + 1;
  }
  return { kind: 'startup', protocol, parameters };
}

export function encodeStartupMessage(message: Extract<StartupMessage, { kind: 'startup' }>): Buffer {
  const body = Buffer.concat([...message.parameters.map(([key, value]) => Buffer.from(`${key}\0${value}\0`, 'utf8')), Buffer.from([0])]);
  const header = Buffer.alloc(8);
  header.writeInt32BE(8 + body.length, 0);
  header.writeInt32BE(message.protocol, 4);
  return Buffer.concat([header, body]);
}

/**
 * Appends `-c name=value` settings to the `options` parameter (created when absent). A client's own `-c` for the same
 * setting comes first, so ours, later on the command line, wins.
 */
export function withSessionSettings(
  message: Extract<StartupMessage, { kind: 'startup' }>,
  settings: Readonly<Record<string, string>>,
): Extract<StartupMessage, { kind: 'startup' }> {
  const added = Object.entries(settings)
    .map(([name, value]) => `-c ${name}=${value}`)
    .join(' ');
  const existing = message.parameters.find(([key]) => key === 'options');
  const options = existing === undefined || existing[1].trim() === '' ? added : `${existing[1]} ${added}`;
  return {
    ...message,
    parameters: [...message.parameters.filter(([key]) => key !== 'options'), ['options', options]],
  };
}

/** Reads exactly one length-prefixed first message from a paused client socket (resolves undefined if it goes away). */
function readFirstMessage(client: Socket, signal: AbortSignal, timeoutMs: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    let received = Buffer.alloc(0);
    const finish = (message: Buffer | undefined, rest?: Buffer): void => {
      clearTimeout(timer);
      client.pause();
      client.removeListener('data', onData);
      client.removeListener('end', onEnd);
      signal.removeEventListener('abort', onEnd);
      if (rest !== undefined && rest.length > 0) client.unshift(rest);
      resolve(message);
    };
    const onData = (chunk: Buffer): void => {
      received = Buffer.concat([received, chunk]);
      if (received.length < 4) return;
      const length = received.readInt32BE(0);
      if (length < 8 || length > MAX_STARTUP_BYTES) return finish(undefined);
      if (received.length >= length) finish(received.subarray(0, length), received.subarray(length));
    };
    const onEnd = (): void => finish(undefined);
    const timer = setTimeout(onEnd, timeoutMs);
    client.on('data', onData);
    client.once('end', onEnd);
    signal.addEventListener('abort', onEnd, { once: true });
    client.resume();
  });
}

/**
 * Reads the client's startup message, declining TLS and GSS encryption itself (the proxy can only rewrite a plaintext
 * startup; a client that requires TLS is then refused by its own driver rather than given a writable session).
 * Returns the bytes to send to the server in place of what the client sent, or undefined when the client went away,
 * sent garbage or took longer than `timeoutMs`.
 */
export async function readRewrittenStartup(
  client: Socket,
  settings: Readonly<Record<string, string>>,
  signal: AbortSignal,
  timeoutMs: number,
): Promise<Buffer | undefined> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const bytes = await readFirstMessage(client, signal, timeoutMs);
    if (bytes === undefined) return undefined;
    const code = bytes.length === 8 ? bytes.readInt32BE(4) : undefined;
    if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
      // 'N': go on in plaintext; the client sends its StartupMessage next.
      if (!client.write('N')) await new Promise((resolve) => client.once('drain', resolve));
      continue;
    }
    if (code === CANCEL_REQUEST) return bytes;
    // Not a protocol 3 StartupMessage (protocol 2 is gone since PostgreSQL 14): refused rather than passed through unchanged.
    const message = parseStartupMessage(bytes);
    return message.kind === 'startup' ? encodeStartupMessage(withSessionSettings(message, settings)) : undefined;
  }
  return undefined;
}
