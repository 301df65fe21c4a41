// The fence process's event loop: a Unix socket the agent feeds with deadlines, one timer, and the stop at the deadline.
// It runs in its own process, so an agent that is stopped, hung or starved cannot keep a primary writable past the
// moment another member may promote.
import { chmod, rm } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import {
  applyFenceMessage,
  INITIAL_FENCE_STATE,
  nextFenceCheckNs,
  nextFenceStep,
  parseFenceMessage,
  type FenceState,
} from './fence-state.js';
import type { FenceOutcome, FreezeOutcome } from './stop-primary.js';

export interface FenceServerOptions {
  readonly socketPath: string;
  readonly dataDir: string;
  readonly nowNs: () => bigint;
  readonly stopPrimary: (dataDir: string) => Promise<FenceOutcome>;
  /** The silent-leader detector's freeze, its thaw and the kill of what it froze (stop-primary.ts). */
  readonly freezePrimary: (dataDir: string) => Promise<FreezeOutcome>;
  readonly thaw: (pids: readonly number[]) => void;
  readonly killFrozen: (pids: readonly number[]) => void;
  /** Whether a process still exists (the frozen postmaster may have been killed by the agent meanwhile). */
  readonly isAlive: (pid: number) => boolean;
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
    // A client's socket closes after close() destroyed it: no timer may outlive the server (in a test's process it would).
    if (isClosed || clients.size > 0 || state.deadlineNs !== undefined || state.isFrozen) return;
    idleTimer = setTimeout(() => {
      options.log('no agent connected and nothing armed: fence exiting');
      void close();
    }, options.idleExitMs);
  };

  /** The processes frozen now (the fence's only other memory besides `state`). */
  let frozen: readonly number[] = [];
  let frozenAtNs = 0n;
  let isStepping = false;

  const ms = (ns: bigint): number => Math.round(Number(ns) / 1e5) / 10;

  /** Does what the state calls for now (one step at a time: a freeze's process scan is asynchronous), then re-schedules. */
  const step = async (): Promise<void> => {
    // `timer` is left as it is: a step a message started must not lose a pending timer that close() has to clear.
    if (isStepping || isClosed) return;
    isStepping = true;
    try {
      if (state.isFrozen && !options.isAlive(frozen[0] ?? 0)) {
        // The agent killed what this fence froze (a demote stops a frozen postmaster by SIGKILL): a postmaster started
        // since is a new one, and a freeze instant already past must freeze it too.
        options.log('the postmaster this fence froze is gone', { pid: frozen[0] });
        frozen = [];
        state = { ...state, isFrozen: false };
      }
      const now = options.nowNs();
      const next = nextFenceStep(state, now);
      if (next === 'kill') await kill(now);
      else if (next === 'freeze') await freeze(now);
      else if (next === 'thaw') {
        options.thaw(frozen);
        options.log('the agent proved its lock again: PostgreSQL primary thawed', {
          processes: frozen.length,
          frozen_ms: ms(now - frozenAtNs),
        });
        frozen = [];
        state = { ...state, isFrozen: false };
      }
    } finally {
      isStepping = false;
    }
    if (nextFenceStep(state, options.nowNs()) !== 'none') {
      void step();
      return;
    }
    schedule();
    scheduleIdleExit();
  };

  const kill = async (now: bigint): Promise<void> => {
    const lateMs = state.deadlineNs === undefined ? 0 : ms(now - state.deadlineNs);
    if (state.isFrozen) {
      options.killFrozen(frozen);
      options.log(
        state.deadlineNs === undefined
          ? 'disarmed while PostgreSQL was frozen: primary killed rather than thawed'
          : 'lock deadline passed while PostgreSQL was frozen: primary killed',
        { processes: frozen.length, late_ms: lateMs },
      );
      frozen = [];
      state = { ...state, deadlineNs: undefined, freezeAtNs: undefined, isFrozen: false };
      return;
    }
    state = { ...state, deadlineNs: undefined, freezeAtNs: undefined };
    const outcome = await options.stopPrimary(options.dataDir);
    if (outcome.kind === 'stopped')
      options.log('lock deadline passed without a renewal from the agent: PostgreSQL primary frozen and killed', {
        pid: outcome.pid,
        processes: outcome.processes,
        late_ms: lateMs,
      });
    else options.log(`lock deadline passed without a renewal; nothing to stop (${outcome.kind})`);
  };

  const freeze = async (now: bigint): Promise<void> => {
    const lateMs = ms(now - (state.freezeAtNs ?? now));
    const outcome = await options.freezePrimary(options.dataDir);
    if (outcome.kind !== 'frozen') {
      // Nothing to freeze (a replica, or stopped): forget this window so that it is not tried again in a loop.
      state = { ...state, freezeAtNs: undefined };
      options.log(`heartbeat window passed without a proof; nothing to freeze (${outcome.kind})`);
      return;
    }
    frozen = outcome.pids;
    frozenAtNs = now;
    state = { ...state, isFrozen: true };
    options.log('heartbeat window passed without a proof from the agent: PostgreSQL primary frozen', {
      pid: outcome.pid,
      processes: outcome.pids.length,
      late_ms: lateMs,
    });
  };

  const schedule = (): void => {
    clearTimeout(timer);
    timer = undefined;
    const at = nextFenceCheckNs(state, options.nowNs());
    if (at === undefined || isClosed) return;
    const inMs = Math.max(0, Number(at - options.nowNs()) / 1e6);
    timer = setTimeout(() => void step(), Math.ceil(inMs));
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
      if (state.isFrozen) {
        options.killFrozen(frozen);
        options.log('PostgreSQL was frozen: primary killed rather than left stopped', { processes: frozen.length });
      }
      void close();
      return;
    }
    void step();
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
