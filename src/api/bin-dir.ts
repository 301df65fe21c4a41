// POST /bin_dir/check and POST /bin_dir (pgwarden upgrade): what a bin_dir holds for this member, and switching this
// member to it for its next start. Both run programs from the path given, so both are unsafe (authenticated) methods.
import { binDirProblems, type BinDirReport } from '../core/minor-upgrade.js';
import type { MajorCheckFacts } from '../core/major-upgrade-check.js';
import { describeError } from '../util/errors.js';
import type { ApiResponse } from './routes.js';

/** What the agent offers: a look at a bin_dir, and the switch (persisted, effective from PostgreSQL's next start). */
export interface BinDirEndpoint {
  inspect(dir: string): Promise<BinDirReport>;
  use(dir: string): Promise<void>;
  /** The facts of a major upgrade's preflight (pg_upgrade --check on a scratch cluster); absent: 501. */
  majorCheck?(dir: string): Promise<MajorCheckFacts>;
}

const json = (status: number, value: unknown): ApiResponse => ({ status, body: JSON.stringify(value), contentType: 'application/json' });
const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** The bin_dir of the body, or the 400 that says what was wrong. */
function requestedDir(body: unknown): string | ApiResponse {
  if (!isObject(body)) return json(400, { error: 'the request body must be a JSON object, e.g. {"bin_dir":"/usr/lib/postgresql/15/bin"}' });
  const unknown = Object.keys(body).filter((key) => key !== 'bin_dir' && key !== 'major_upgrade');
  if (unknown.length > 0) return json(400, { error: `unknown field ${unknown[0]!} (known: bin_dir, major_upgrade)` });
  if (body.major_upgrade !== undefined && typeof body.major_upgrade !== 'boolean')
    return json(400, { error: `major_upgrade: expected true or false, got ${JSON.stringify(body.major_upgrade)}` });
  const dir = body.bin_dir;
  if (typeof dir !== 'string' || !dir.startsWith('/') || dir.includes('\0'))
    return json(400, { error: `bin_dir: expected an absolute directory path, got ${JSON.stringify(dir)}` });
  return dir.length > 1 ? dir.replace(/\/+$/, '') : dir;
}

/**
 * `/bin_dir/major_check`: 200 with the facts of the major upgrade preflight (the primary's host runs pg_upgrade --check
 * against a scratch new cluster it removes afterwards; nothing of the running cluster changes).
 * `/bin_dir/check`: 200 with the report. `/bin_dir`: 409 with the problems when the directory cannot serve this member
 * (a missing tool, another major than the data directory's), else 200 once it is persisted and in force for the next
 * start; the running server keeps its binaries until restarted (POST /restart).
 */
export async function handleBinDir(
  path: string,
  body: unknown,
  endpoint: BinDirEndpoint | undefined,
  member: string,
): Promise<ApiResponse> {
  if (endpoint === undefined) return json(501, { error: 'bin_dir changes are not available on this server' });
  if (path !== '/bin_dir' && path !== '/bin_dir/check' && path !== '/bin_dir/major_check')
    return json(404, { error: `${path}: use /bin_dir, /bin_dir/check or /bin_dir/major_check` });
  const dir = requestedDir(body);
  if (typeof dir !== 'string') return dir;
  try {
    if (path === '/bin_dir/major_check') {
      // Facts only, 200 even when they mean a refusal: core/major-upgrade-check.ts judges them on the caller's side.
      if (endpoint.majorCheck === undefined) return json(501, { error: 'the major upgrade check is not available on this server' });
      return json(200, await endpoint.majorCheck(dir));
    }
    const report = await endpoint.inspect(dir);
    if (path === '/bin_dir/check') return json(200, report);
    // A replica of a major upgrade is re-cloned from the upgraded primary right after: its data directory's major is
    // about to be the new one, so only the tools and the version are checked.
    const isMajorUpgrade = isObject(body) && body.major_upgrade === true;
    const problems = binDirProblems(member, isMajorUpgrade ? { ...report, data_major: undefined } : report);
    if (problems.length > 0) return json(409, { error: problems.join('; '), problems });
    await endpoint.use(dir);
    return json(200, { bin_dir: dir, previous: report.current_bin_dir, version: report.version_output ?? null });
  } catch (error) {
    return json(500, { error: `${member}: ${describeError(error)}` });
  }
}
