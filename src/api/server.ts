// node:http wiring of the REST API: parses the request line, calls the pure routes, and never dies on bad input.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AgentSnapshot } from '../agent/snapshot.js';
import { describeError } from '../util/errors.js';
import type { Log } from '../util/log.js';
import { handleRequest } from './routes.js';

export interface ApiServerOptions {
  readonly host: string;
  readonly port: number;
  readonly getSnapshot: () => AgentSnapshot;
  readonly nowMs: () => number;
  readonly log: Log;
}

export interface ApiServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const onRequest = (request: IncomingMessage, response: ServerResponse): void => {
    try {
      const url = new URL(request.url ?? '/', 'http://localhost');
      const result = handleRequest({ method: request.method ?? 'GET', path: url.pathname, query: url.searchParams }, { snapshot: options.getSnapshot(), nowMs: options.nowMs() });
      if (result.body === undefined) {
        response.writeHead(result.status, { 'content-length': '0' });
        response.end();
        return;
      }
      response.writeHead(result.status, { 'content-type': result.contentType, 'content-length': Buffer.byteLength(result.body) });
      response.end(result.body);
    } catch (error) {
      options.log.error({ error: describeError(error), url: request.url ?? '' }, 'REST request failed');
      if (!response.headersSent) response.writeHead(500, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ error: 'internal error' }));
    }
  };
  const server = createServer({ requestTimeout: 10_000, headersTimeout: 5_000, maxHeaderSize: 16 * 1024 }, onRequest);
  // Garbage on the socket (bad request lines, oversized headers) gets a 400 and a closed connection, never a crash.
  server.on('clientError', (_error, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    else socket.destroy();
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: options.host, port: options.port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
