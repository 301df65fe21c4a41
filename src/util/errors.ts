// PgwardenError: every failure that crosses a module boundary, with a stable code, context and a retryable flag.

export type ErrorCode =
  | 'PGW_CONFIG_INVALID'
  | 'PGW_CONFIG_UNREADABLE'
  | 'PGW_PROXY_LISTEN'
  | 'PGW_WAIT_TIMEOUT'
  | 'PGW_CHAOS_USAGE'
  | 'PGW_CHAOS_FAULT'
  | 'PGW_CHAOS_CLUSTER'
  | 'PGW_BENCH_SETUP'
  | 'PGW_DCS_UNAVAILABLE'
  | 'PGW_DCS_BAD_VALUE'
  | 'PGW_PG_COMMAND_FAILED'
  | 'PGW_PG_QUERY_FAILED'
  | 'PGW_PG_TIMEOUT'
  | 'PGW_API_BAD_REQUEST'
  | 'PGW_CLI_USAGE'
  | 'PGW_LOCAL_PROCESS'
  | 'PGW_PROXY_KERNEL'
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
  if (error instanceof Error) return error.message;
  return String(error);
}
