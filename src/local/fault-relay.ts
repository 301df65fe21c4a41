// A TCP relay between one agent and one etcd member, for chaos runs where network namespaces are not available (no
// root). A partition is emulated the way lost packets behave: nothing is closed or reset, the bytes just stop moving
// (the relay stops reading, so TCP's own buffers and retransmissions take over) and flow again after healing.
import { connect, createServer, type Server, type Socket } from 'node:net';

/** pass: both ways; blackhole: neither way; drop-outbound: the agent's bytes do not reach etcd, etcd's still reach it. */
export type RelayMode = 'pass' | 'blackhole' | 'drop-outbound';

interface RelayedConnection {
  readonly client: Socket;
  upstream: Socket | undefined;
  readonly close: () => void;
}

export class FaultRelay {
  readonly #server: Server;
  readonly #target: { readonly host: string; readonly port: number };
  readonly #connections = new Set<RelayedConnection>();
  #mode: RelayMode = 'pass';
  port = 0;

  private constructor(target: { host: string; port: number }) {
    this.#target = target;
    this.#server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => this.#accept(client));
  }

  static async start(target: { host: string; port: number }): Promise<FaultRelay> {
    const relay = new FaultRelay(target);
    await new Promise<void>((resolve, reject) => {
      relay.#server.once('error', reject);
      relay.#server.listen(0, '127.0.0.1', () => resolve());
    });
    relay.port = (relay.#server.address() as { port: number }).port;
    return relay;
  }

  get mode(): RelayMode {
    return this.#mode;
  }

  setMode(mode: RelayMode): void {
    this.#mode = mode;
    for (const connection of this.#connections) this.#apply(connection);
  }

  get #canSend(): boolean {
    return this.#mode === 'pass';
  }

  get #canReceive(): boolean {
    return this.#mode !== 'blackhole';
  }

  #accept(client: Socket): void {
    const connection: RelayedConnection = {
      client,
      upstream: undefined,
      close: () => {
        if (!this.#connections.delete(connection)) return;
        client.destroy();
        connection.upstream?.destroy();
      },
    };
    this.#connections.add(connection);
    client.on('error', connection.close);
    client.on('close', connection.close);
    // While the agent cannot send, its connection is not passed on: the connect waits, as for a dropped SYN.
    this.#apply(connection);
  }

  #openUpstream(connection: RelayedConnection): void {
    const upstream = connect({ host: this.#target.host, port: this.#target.port, allowHalfOpen: true });
    connection.upstream = upstream;
    upstream.on('error', connection.close);
    upstream.on('close', connection.close);
    const { client } = connection;
    client.on('data', (chunk: Buffer) => {
      if (!upstream.write(chunk)) client.pause();
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!client.write(chunk)) upstream.pause();
    });
    upstream.on('drain', () => {
      if (this.#canSend) client.resume();
    });
    client.on('drain', () => {
      if (this.#canReceive) upstream.resume();
    });
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
  }

  #apply(connection: RelayedConnection): void {
    if (connection.upstream === undefined) {
      if (!this.#canSend) return;
      this.#openUpstream(connection);
    }
    if (this.#canSend) connection.client.resume();
    else connection.client.pause();
    if (this.#canReceive) connection.upstream?.resume();
    else connection.upstream?.pause();
  }

  async close(): Promise<void> {
    for (const connection of this.#connections) {
      connection.client.destroy();
      connection.upstream?.destroy();
    }
    this.#connections.clear();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
