// The dashboard on a plain node:http server that is not an agent's REST API (the proxy's API port): GET /ui and
// GET /ui/stream, nothing else. The agent's REST server routes the same two paths itself (routes.ts, server.ts).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { UI_HEADERS, UI_PAGE } from './ui-page.js';
import type { UiStream } from './ui-stream.js';

/** Answers the request when it is the dashboard's; false when it is not (the caller answers it). */
export function serveDashboard(stream: UiStream, request: IncomingMessage, response: ServerResponse): boolean {
  if (request.method !== 'GET') return false;
  const path = new URL(request.url ?? '/', 'http://localhost').pathname;
  if (path === '/ui/stream') {
    stream.attach(request, response);
    return true;
  }
  if (path !== '/ui' && path !== '/ui/') return false;
  response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(UI_PAGE), ...UI_HEADERS });
  response.end(UI_PAGE);
  return true;
}
