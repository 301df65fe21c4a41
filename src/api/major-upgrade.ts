// POST /major_upgrade/<step> (pgwarden upgrade --major): the primary host's steps of the in-place major upgrade, each
// refused unless this member stands where the step needs it (core/major-upgrade.ts hostStepRefusal). Unsafe methods:
// they run programs from the path given and replace the data directory.
import { hostStepRefusal, MAJOR_HOST_STEPS, type MajorHostStep } from '../core/major-upgrade.js';
import { describeError } from '../util/errors.js';
import type { ApiResponse } from './routes.js';

export interface MajorUpgradeEndpoint {
  /** Where this member stands now (from the agent's snapshot). */
  standing(): { readonly isLeaderWithLock: boolean; readonly isPaused: boolean; readonly isRunning: boolean };
  run(step: MajorHostStep, binDir: string | undefined): Promise<Record<string, unknown>>;
}

const json = (status: number, value: unknown): ApiResponse => ({ status, body: JSON.stringify(value), contentType: 'application/json' });
const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
const isStep = (value: string): value is MajorHostStep => (MAJOR_HOST_STEPS as readonly string[]).includes(value);
const NEEDS_BIN_DIR: readonly MajorHostStep[] = ['prepare', 'link', 'swap', 'analyze'];

export async function handleMajorUpgrade(
  path: string,
  body: unknown,
  endpoint: MajorUpgradeEndpoint | undefined,
  member: string,
): Promise<ApiResponse> {
  if (endpoint === undefined) return json(501, { error: 'the major upgrade is not available on this server' });
  const step = path.split('/')[2] ?? '';
  if (!isStep(step)) return json(404, { error: `${path}: use /major_upgrade/<${MAJOR_HOST_STEPS.join('|')}>` });
  if (!isObject(body)) return json(400, { error: 'the request body must be a JSON object, e.g. {"bin_dir":"/usr/lib/postgresql/17/bin"}' });
  const unknown = Object.keys(body).filter((key) => key !== 'bin_dir');
  if (unknown.length > 0) return json(400, { error: `unknown field ${unknown[0]!} (known: bin_dir)` });
  const dir = body.bin_dir;
  if (NEEDS_BIN_DIR.includes(step) && (typeof dir !== 'string' || !dir.startsWith('/') || dir.includes('\0')))
    return json(400, { error: `bin_dir: expected an absolute directory path, got ${JSON.stringify(dir ?? null)}` });
  const refusal = hostStepRefusal(step, endpoint.standing());
  if (refusal !== undefined) return json(409, { error: `${member}: ${refusal}` });
  try {
    return json(200, await endpoint.run(step, typeof dir === 'string' ? dir.replace(/(.)\/+$/, '$1') : undefined));
  } catch (error) {
    return json(500, { error: `${member}: ${describeError(error)}` });
  }
}
