// Loads the config in a worker thread so the schema validator's memory is released once the agent has its config.
import { parentPort, workerData } from 'node:worker_threads';
import { loadConfig, loadConfigFromEnvironment } from '../config/load.js';
import { isPgwardenError } from '../util/errors.js';

try {
  const path = workerData as string | null;
  parentPort?.postMessage({ ok: true, loaded: path === null ? loadConfigFromEnvironment() : loadConfig(path) });
} catch (error) {
  parentPort?.postMessage({
    ok: false,
    message: error instanceof Error ? error.message : String(error),
    code: isPgwardenError(error) ? error.code : 'PGW_CONFIG_INVALID',
  });
}
