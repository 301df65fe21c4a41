// The fence process's event loop: a Unix socket the agent feeds with deadlines, one timer, and the stop at the deadline.
// It runs in its own process, so an agent that is stopped, hung or starved cannot keep a primary writable past the
// moment another member may promote.
import { chmod, rm } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { applyFenceMessage, INITIAL_FENCE_STATE, isFenceDue, parseFenceMessage, type FenceState } from './fence-state.js';
import type { FenceOutcome } from './stop-primary.js';

export interface FenceServerOptions {
  readonly socketPath: string;
  readonly dataDir: string;
  readonly nowNs: () => bigint;
  readonly stopPrimary: (dataDir: string) => Promise<FenceOutcome>;
  /** One structured line per event. */
  readonly log: (event: string, fields?: Readonly<Record<string, unknown>>) => void;
  /** Leave after this long with no agent connected and nothing armed (a stopped agent's fence does not linger). */
  readonly idleExitMs: number;
  readonly onExit: () => void;
}

export interface FenceServer {
  state(): FenceState;
  close(): Promise<void>;
}

/** Whether a fence already answers on the socket (a second one must not take it over). */
function isServed(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createConnection(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

export async function startFenceServer(options: FenceServerOptions): Promise<FenceServer | undefined> {
  if (await isServed(options.socketPath)) return undefined;
  await rm(options.socketPath, { force: true });
  let state = INITIAL_FENCE_STATE;
  let timer: NodeJS.Timeout | undefined;
  let idleTimer: NodeJS.Timeout | undefined;
  const clients = new Set<Socket>();
  let isClosed = false;

  const close = async (): Promise<void> => {
    if (isClosed) return;
    isClosed = true;
    clearTimeout(timer);
    clearTimeout(idleTimer);
    for (const client of clients) client.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(options.socketPath, { force: true });
    options.onExit();
  };

  const scheduleIdleExit = (): void => {
    clearTimeout(idleTimer);
    if (clients.size > 0 || state.deadlineNs !== undefined) return;
    idleTimer = setTimeout(() => {
      options.log('no agent connected and nothing armed: fence exiting');
      void close();
    }, options.idleExitMs);
  };

  const fire = async (): Promise<void> => {
    timer = undefined;
    if (!isFenceDue(state, options.nowNs())) {
      schedule();
      return;
    }
    const lateMs = Number(options.nowNs() - state.deadlineNs!) / 1e6;
    state = { ...state, deadlineNs: undefined };
    const outcome = await options.stopPrimary(options.dataDir);
    if (outcome.kind === 'stopped')
      options.log('lock deadline passed without a renewal from the agent: PostgreSQL primary frozen and killed', {
        pid: outcome.pid,
        processes: outcome.processes,
        late_ms: Math.round(lateMs * 10) / 10,
      });
    else options.log(`lock deadline passed without a renewal; nothing to stop (${outcome.kind})`);
    scheduleIdleExit();
  };

  const schedule = (): void => {
    clearTimeout(timer);
    timer = undefined;
    if (state.deadlineNs === undefined) return;
    const inMs = Math.max(0, Number(state.deadlineNs - options.nowNs()) / 1e6);
    timer = setTimeout(() => void fire(), Math.ceil(inMs));
  };

  const onLine = (line: string): void => {
    if (line.trim() === '') return;
    const message = parseFenceMessage(line);
    if (message === undefined) {
      options.log('ignoring a message that is not part of the fence protocol', { line: line.slice(0, 200) });
      return;
    }
    state = applyFenceMessage(state, message);
    if (state.isExiting) {
      options.log('agent stopped cleanly: fence exiting');
      void close();
      return;
    }
    schedule();
    scheduleIdleExit();
  };

  const server: Server = createServer((socket) => {
    clients.add(socket);
    clearTimeout(idleTimer);
    let buffered = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      let newline = buffered.indexOf('\n');
      while (newline !== -1) {
        onLine(buffered.slice(0, newline));
        buffered = buffered.slice(newline + 1);
        newline = buffered.indexOf('\n');
      }
      // A peer that never sends a newline cannot grow the buffer without bound.
      if (buffered.length > 4096) buffered = '';
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clients.delete(socket);
      // The agent is gone: the deadline it proved last still stands; nothing else changes.
      if (!isClosed) scheduleIdleExit();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.socketPath, () => resolve());
  });
  // Only the agent's own OS user may feed (or disarm) the fence.
  await chmod(options.socketPath, 0o600);
  scheduleIdleExit();
  return { state: () => state, close };
}
