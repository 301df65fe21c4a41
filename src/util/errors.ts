// PgwardenError: every failure that crosses a module boundary, with a stable code, context and a retryable flag.
import { redactText } from './redact.js';

export type ErrorCode =
  | 'PGW_CONFIG_INVALID'
  | 'PGW_WATCHDOG_UNAVAILABLE'
  | 'PGW_WATCHDOG_ABSENT'
  | 'PGW_CONFIG_UNREADABLE'
  | 'PGW_PROXY_LISTEN'
  /** The split listener cannot log in to a server (context: member); the client gets the server's error. */
  | 'PGW_PROXY_SERVER_LOGIN'
  /** No server connection became free within proxy.split.query_wait_timeout (context: member). */
  | 'PGW_PROXY_POOL_TIMEOUT'
  | 'PGW_WAIT_TIMEOUT'
  | 'PGW_CHAOS_USAGE'
  | 'PGW_CHAOS_FAULT'
  | 'PGW_CHAOS_CLUSTER'
  | 'PGW_BENCH_SETUP'
  | 'PGW_DCS_UNAVAILABLE'
  | 'PGW_DCS_BAD_VALUE'
  /** The DCS client was closed: every call still in flight ends with this (open a new client to go on). */
  | 'PGW_DCS_CLOSED'
  /** A key was written with a lease that does not exist (expired or never granted). */
  | 'PGW_DCS_LEASE_NOT_FOUND'
  /** A watch stream broke off (etcd closed it); the watcher re-reads and watches again. */
  | 'PGW_DCS_WATCH_BROKEN'
  /** A watch was cancelled by its caller. */
  | 'PGW_DCS_WATCH_ABORTED'
  /** TLS to etcd failed: etcd's certificate is not trusted, or etcd refused ours (context: endpoint, path of the file, tlsCode). */
  | 'PGW_DCS_TLS'
  /** etcd refused our credentials or permissions: wrong password, no user, no permission on the prefix (context: endpoint, username). */
  | 'PGW_DCS_AUTH'
  /** etcd answered an HTTP request with a non-2xx status (context: endpoint, path, status). */
  | 'PGW_ETCD_ANSWER'
  /** `pgwarden dcs snapshot`: the file cannot be written, or etcd's stream was incomplete (context: path, endpoint). */
  | 'PGW_DCS_SNAPSHOT'
  | 'PGW_PG_COMMAND_FAILED'
  /** data_dir cannot hold a database (a file, /proc, read-only, out of the postgres user's reach): not retryable. */
  | 'PGW_DATA_DIR_UNUSABLE'
  | 'PGW_PG_QUERY_FAILED'
  | 'PGW_PG_TIMEOUT'
  | 'PGW_PG_UNREACHABLE'
  | 'PGW_API_BAD_REQUEST'
  /** No member's REST API answered at all (network, TLS, auth layer): retryable. */
  | 'PGW_API_UNREACHABLE'
  /** A member's REST API wants credentials or a client certificate this client lacks or got wrong (context: member, key). */
  | 'PGW_API_AUTH'
  /** A member's REST API answered but refused the request (context: member, path, status). */
  | 'PGW_API_REQUEST_FAILED'
  /** Bad flags or arguments on the command line (context: flag, value, hint). */
  | 'PGW_CLI_USAGE'
  /** The user declined a confirmation, or the edit was abandoned: nothing was changed. */
  | 'PGW_CLI_ABORTED'
  /** No member by that name, or none with the asked role (context: member or role, scope). */
  | 'PGW_CLI_NO_MEMBER'
  /** The cluster is not in the state the verb needs (already paused, not initialized, no members yet). */
  | 'PGW_CLI_CLUSTER_STATE'
  /** A --wait ran out of time before every member got there. */
  | 'PGW_CLI_TIMEOUT'
  /** A verb acting on several members failed on some of them (each failure was printed above). */
  | 'PGW_CLI_PARTIAL_FAILURE'
  /** A short system command (ip, nft, mount...) failed, timed out or is not installed (context: command, exitCode). */
  | 'PGW_SYSTEM_COMMAND_FAILED'
  | 'PGW_LOCAL_PROCESS'
  | 'PGW_PROXY_KERNEL'
  | 'PGW_MEMBER_UNKNOWN'
  /** Another running agent already uses this member name (its REST API answers): this one refuses to start. */
  | 'PGW_DUPLICATE_MEMBER'
  /** A backup runs in the cluster already (the DCS backup lock is held; context: member running it). */
  | 'PGW_BACKUP_RUNNING'
  /** A backup failed or was stopped (context: member, type, reason). */
  | 'PGW_BACKUP_FAILED'
  /** The pgBackRest repository's stanza belongs to another database system (context: repository, stanza, hint). */
  | 'PGW_BACKUP_FOREIGN_SYSTEM'
  /** pgwarden upgrade's preflight refused (each reason printed), or an upgrade step did not complete (context: member, step). */
  | 'PGW_UPGRADE_REFUSED'
  | 'PGW_UPGRADE_FAILED'
  | 'PGW_TASK_CANCELLED'
  | 'PGW_AGENT_STOPPING'
  | 'PGW_INTERNAL';

export interface ErrorContext {
  readonly member?: string;
  readonly key?: string;
  readonly command?: readonly string[];
  readonly path?: string;
  readonly exitCode?: number | null;
  readonly stderrTail?: string;
  readonly hint?: string;
  readonly [extra: string]: unknown;
}

export class PgwardenError extends Error {
  readonly code: ErrorCode;
  readonly context: ErrorContext;
  readonly isRetryable: boolean;

  constructor(code: ErrorCode, message: string, options: { context?: ErrorContext; cause?: unknown; isRetryable?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PgwardenError';
    this.code = code;
    this.context = options.context ?? {};
    this.isRetryable = options.isRetryable ?? false;
  }
}

export function isPgwardenError(error: unknown, code?: ErrorCode): error is PgwardenError {
  return error instanceof PgwardenError && (code === undefined || error.code === code);
}

/** A short, single-line description of any thrown value for logs. */
export function describeError(error: unknown): string {
  // A message may quote a conninfo or URL with its password (a driver's, a library's): never pass it on.
  return redactText(error instanceof Error ? error.message : String(error));
}
