// Runs config loading in a short-lived worker thread: zod and yaml stay out of the long-running agent's memory (~9 MB RSS).
import { Worker } from 'node:worker_threads';
import type { LoadedConfig } from '../config/load.js';
import { PgwardenError, type ErrorCode } from '../util/errors.js';

type WorkerReply = { ok: true; loaded: LoadedConfig } | { ok: false; message: string; code: ErrorCode };

/** `path` undefined: the PATRONI_* environment alone (loadConfigFromEnvironment). */
export function loadConfigIsolated(path: string | undefined): Promise<LoadedConfig> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./config-worker.js', import.meta.url), { workerData: path ?? null });
    worker.once('message', (reply: WorkerReply) => {
      if (reply.ok) resolve(reply.loaded);
      else reject(new PgwardenError(reply.code, reply.message, { context: { path: path ?? 'PATRONI_* environment' } }));
      void worker.terminate();
    });
    worker.once('error', reject);
  });
}
