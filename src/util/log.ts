// The logging surface modules depend on; pino's Logger satisfies it, tests can pass a recorder.

export interface Log {
  debug(fields: Record<string, unknown>, message: string): void;
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

/** Discards everything: for tests that do not assert on logs. */
export const silentLog: Log = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};
