// Loads the config in a worker thread so the schema validator's memory is released once the agent has its config.
import { parentPort, workerData } from 'node:worker_threads';
import { loadConfig } from '../config/load.js';
import { isPgwardenError } from '../util/errors.js';

try {
  parentPort?.postMessage({ ok: true, loaded: loadConfig(workerData as string) });
} catch (error) {
  parentPort?.postMessage({
    ok: false,
    message: error instanceof Error ? error.message : String(error),
    code: isPgwardenError(error) ? error.code : 'PGW_CONFIG_INVALID',
  });
}
