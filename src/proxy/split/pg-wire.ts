// The PostgreSQL v3 wire format as far as the split listener needs it: framing of typed messages, the few messages
// the proxy writes itself (authentication, errors, ReadyForQuery, a one-row result), and decoding of what it reads.
// Pure: no sockets. pg-protocol (pg's parser) was not used: the proxy relays raw bytes and reads a handful of
// messages, so framing plus small decoders is less code than adapting a callback parser that copies every message.

/** One typed message: its type byte, its body (after the length) and the whole frame, to relay unchanged. */
export interface WireMessage {
  readonly type: string;
  readonly body: Buffer;
  readonly frame: Buffer;
}

/** PostgreSQL itself accepts messages up to 1 GB; anything larger is garbage and ends the connection. */
export const MAX_MESSAGE_BYTES = 1024 * 1024 * 1024;

/** Splits a byte stream into typed messages (a partial message stays until its bytes arrive). */
export class MessageReader {
  #pending: Buffer = Buffer.alloc(0);

  /** The complete messages `chunk` finishes; throws on a length no PostgreSQL peer sends. */
  push(chunk: Buffer): WireMessage[] {
    const data = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    const messages: WireMessage[] = [];
    let offset = 0;
    while (data.length - offset >= 5) {
      const length = data.readInt32BE(offset + 1);
      if (length < 4 || length > MAX_MESSAGE_BYTES) throw new Error(`invalid message length ${length}`);
      if (data.length - offset < 1 + length) break;
      const frame = data.subarray(offset, offset + 1 + length);
      messages.push({ type: String.fromCharCode(frame[0]!), body: frame.subarray(5), frame });
      offset += 1 + length;
    }
    this.#pending = offset === data.length ? Buffer.alloc(0) : Buffer.from(data.subarray(offset));
    return messages;
  }

  get bufferedBytes(): number {
    return this.#pending.length;
  }
}

/** A typed message from its body. */
export function message(type: string, body: Buffer = Buffer.alloc(0)): Buffer {
  const frame = Buffer.alloc(5 + body.length);
  frame.write(type, 0, 'latin1');
  frame.writeInt32BE(4 + body.length, 1);
  body.copy(frame, 5);
  return frame;
}

const int32 = (value: number): Buffer => {
  const buffer = Buffer.alloc(4);
  buffer.writeInt32BE(value);
  return buffer;
};
const cstring = (text: string): Buffer => Buffer.from(`${text}\0`, 'utf8');

/** Reads a NUL-terminated string at `offset`: the text and the offset after the NUL. */
export function readCString(body: Buffer, offset: number): [string, number] {
  const end = body.indexOf(0, offset);
  if (end === -1) throw new Error('unterminated string in a protocol message');
  return [body.toString('utf8', offset, end), end + 1];
}

// Authentication request codes (AuthenticationXXX, message 'R').
export const AUTH_OK = 0;
export const AUTH_CLEARTEXT = 3;
export const AUTH_MD5 = 5;
export const AUTH_SASL = 10;
export const AUTH_SASL_CONTINUE = 11;
export const AUTH_SASL_FINAL = 12;

export const authentication = (code: number, data: Buffer = Buffer.alloc(0)): Buffer => message('R', Buffer.concat([int32(code), data]));
export const authenticationSasl = (mechanisms: readonly string[]): Buffer =>
  authentication(AUTH_SASL, Buffer.concat([...mechanisms.map(cstring), Buffer.from([0])]));
export const parameterStatus = (name: string, value: string): Buffer => message('S', Buffer.concat([cstring(name), cstring(value)]));
export const backendKeyData = (pid: number, secret: number): Buffer => message('K', Buffer.concat([int32(pid), int32(secret)]));
export const readyForQuery = (status: 'I' | 'T' | 'E'): Buffer => message('Z', Buffer.from(status, 'latin1'));

export interface ErrorFields {
  readonly severity: 'ERROR' | 'FATAL';
  readonly code: string;
  readonly message: string;
  readonly detail?: string;
  readonly hint?: string;
}

export function errorResponse(fields: ErrorFields): Buffer {
  const parts = [
    ['S', fields.severity],
    ['V', fields.severity],
    ['C', fields.code],
    ['M', fields.message],
    ...(fields.detail === undefined ? [] : [['D', fields.detail]]),
    ...(fields.hint === undefined ? [] : [['H', fields.hint]]),
  ];
  return message(
    'E',
    Buffer.concat([...parts.map(([key, value]) => Buffer.concat([Buffer.from(key!, 'latin1'), cstring(value!)])), Buffer.from([0])]),
  );
}

/** The fields of an ErrorResponse or NoticeResponse by their one-letter codes. */
export function decodeError(body: Buffer): Record<string, string> {
  const fields: Record<string, string> = {};
  let offset = 0;
  while (offset < body.length && body[offset] !== 0) {
    const key = String.fromCharCode(body[offset]!);
    const [value, next] = readCString(body, offset + 1);
    fields[key] = value;
    offset = next;
  }
  return fields;
}

/** A text result of one column and one row, as a server answers SHOW: RowDescription, DataRow, CommandComplete. */
export function singleValueResult(column: string, value: string | null, tag: string): Buffer {
  const description = Buffer.concat([
    Buffer.from([0, 1]),
    cstring(column),
    int32(0), // table oid
    Buffer.from([0, 0]), // column number
    int32(25), // text
    Buffer.from([0xff, 0xff]), // typlen -1
    int32(-1), // typmod
    Buffer.from([0, 0]), // text format
  ]);
  const text = value === null ? undefined : Buffer.from(value, 'utf8');
  const row = Buffer.concat([Buffer.from([0, 1]), int32(text === undefined ? -1 : text.length), text ?? Buffer.alloc(0)]);
  return Buffer.concat([message('T', description), message('D', row), message('C', cstring(tag))]);
}

/** The text values of a DataRow (null for SQL NULL). */
export function decodeDataRow(body: Buffer): (string | null)[] {
  const count = body.readInt16BE(0);
  const values: (string | null)[] = [];
  let offset = 2;
  for (let index = 0; index < count; index++) {
    const length = body.readInt32BE(offset);
    offset += 4;
    if (length === -1) values.push(null);
    else {
      values.push(body.toString('utf8', offset, offset + length));
      offset += length;
    }
  }
  return values;
}

/** A simple Query's text (without its NUL). */
export const queryText = (body: Buffer): string =>
  body.toString('utf8', 0, body.length > 0 && body[body.length - 1] === 0 ? body.length - 1 : body.length);

/** A Parse message's statement name and text. */
export function decodeParse(body: Buffer): { name: string; sql: string } {
  const [name, next] = readCString(body, 0);
  const [sql] = readCString(body, next);
  return { name, sql };
}

// Frontend messages the proxy writes to servers.
export const query = (sql: string): Buffer => message('Q', cstring(sql));
export const terminate = (): Buffer => message('X');
export const saslInitialResponse = (mechanism: string, data: Buffer): Buffer =>
  message('p', Buffer.concat([cstring(mechanism), int32(data.length), data]));
export const saslResponse = (data: Buffer): Buffer => message('p', data);
export const passwordMessage = (password: string): Buffer => message('p', cstring(password));

/** A StartupMessage (protocol 3.0) with the given parameters. */
export function startupMessage(parameters: Readonly<Record<string, string>>): Buffer {
  const body = Buffer.concat([
    int32(196608),
    ...Object.entries(parameters).flatMap(([key, value]) => [cstring(key), cstring(value)]),
    Buffer.from([0]),
  ]);
  return Buffer.concat([int32(4 + body.length), body]);
}

/** A CancelRequest for a server's (pid, secret). */
export const cancelRequest = (pid: number, secret: number): Buffer =>
  Buffer.concat([int32(16), int32(80877102), int32(pid), int32(secret)]);

/** A SASLInitialResponse's mechanism and data (data is empty when the length is -1). */
export function decodeSaslInitialResponse(body: Buffer): { mechanism: string; data: Buffer } {
  const [mechanism, next] = readCString(body, 0);
  if (body.length < next + 4) throw new Error('truncated SASLInitialResponse');
  const length = body.readInt32BE(next);
  if (length === -1) return { mechanism, data: Buffer.alloc(0) };
  if (length < 0 || body.length < next + 4 + length) throw new Error('truncated SASLInitialResponse');
  return { mechanism, data: body.subarray(next + 4, next + 4 + length) };
}

/** A SQL string literal by dollar quoting, with a tag the text cannot contain: right whatever standard_conforming_strings says. */
export function dollarQuoted(text: string): string {
  let tag = 'pgw';
  while (text.includes(`$${tag}$`)) tag += '_';
  return `$${tag}$${text}$${tag}$`;
}
