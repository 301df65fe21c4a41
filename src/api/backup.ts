// POST /backup, GET /backup and GET /backups (the `backup:` section): this member takes a backup, says what runs, and
// lists the repository's backups (pgBackRest's `info --output=json`).
import { BACKUP_TYPES, isBackupType, type BackupType } from '../core/backup-plan.js';
import type { BackupVisibility } from '../core/backup-visibility.js';
import type { BackupLockRecord } from '../core/ports.js';
import { describeError } from '../util/errors.js';
import type { ApiResponse } from './routes.js';

/** What the agent's backup runner (agent/backup-runner.ts) offers the REST API. */
export interface BackupEndpoint {
  start(
    type: BackupType,
  ): Promise<
    | { readonly kind: 'started'; readonly record: BackupLockRecord; readonly fromStandby: boolean }
    | { readonly kind: 'busy'; readonly holder: BackupLockRecord }
    | { readonly kind: 'refused'; readonly reason: string }
  >;
  status(): { readonly running: BackupLockRecord | null; readonly last: unknown };
  readLock(): Promise<BackupLockRecord | undefined>;
  info(): Promise<string>;
}

const json = (status: number, value: unknown): ApiResponse => ({ status, body: JSON.stringify(value), contentType: 'application/json' });
const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
const NOT_CONFIGURED = { error: 'no backup: section is configured on this member' };

/** 202 with the backup's id (member, type, start time) once started; 409 naming the member when one runs already. */
export async function handlePostBackup(body: unknown, backup: BackupEndpoint | undefined): Promise<ApiResponse> {
  if (backup === undefined) return json(501, NOT_CONFIGURED);
  if (!isObject(body)) return json(400, { error: 'the request body must be a JSON object, e.g. {"type":"full"}' });
  const unknown = Object.keys(body).filter((key) => key !== 'type');
  if (unknown.length > 0) return json(400, { error: `unknown field ${unknown[0]!} (known: type)` });
  const type = body.type ?? 'full';
  if (!isBackupType(type)) return json(400, { error: `type: expected one of ${BACKUP_TYPES.join(', ')}, got ${JSON.stringify(type)}` });
  try {
    const started = await backup.start(type);
    switch (started.kind) {
      case 'started':
        return json(202, {
          id: `${started.record.member}@${started.record.started}`,
          ...started.record,
          from: started.fromStandby ? 'standby' : 'primary',
        });
      case 'busy':
        return json(409, {
          error: `a ${started.holder.type} backup is already running on ${started.holder.member} (since ${started.holder.started})`,
          running: started.holder,
        });
      case 'refused':
        return json(503, { error: started.reason });
    }
  } catch (error) {
    return json(503, { error: `could not start the backup: ${describeError(error)}` });
  }
}

/**
 * GET /backup: the cluster's backup lock (who runs one now), how the last backup on this member went, and (core's
 * BackupVisibility) the repository as this member last read it and its WAL archiving.
 */
export async function handleGetBackup(backup: BackupEndpoint | undefined, visibility: BackupVisibility): Promise<ApiResponse> {
  if (backup === undefined) return json(501, NOT_CONFIGURED);
  const local = backup.status();
  try {
    const lock = await backup.readLock();
    return json(200, { running: lock ?? null, here: local.running, last: local.last, ...visibility });
  } catch (error) {
    return json(503, { error: `the DCS did not answer: ${describeError(error)}`, here: local.running, last: local.last, ...visibility });
  }
}

/** GET /backups: `pgbackrest info --output=json` for the stanza, as pgBackRest prints it. */
export async function handleGetBackups(backup: BackupEndpoint | undefined): Promise<ApiResponse> {
  if (backup === undefined) return json(501, NOT_CONFIGURED);
  try {
    return { status: 200, body: await backup.info(), contentType: 'application/json' };
  } catch (error) {
    return json(503, { error: `pgbackrest info failed: ${describeError(error)}` });
  }
}
