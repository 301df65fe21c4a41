// Parses a data directory's postmaster.pid (PostgreSQL's lock file): the one reader every caller uses.

/** The postmaster's status line (PostgreSQL pads it to 8 characters). */
export type PostmasterStatus = 'starting' | 'stopping' | 'ready' | 'standby';

export interface PostmasterPidFile {
  readonly pid: number;
  /** A single-user backend (postgres --single) writes its PID negated: it is no postmaster and takes no connections. */
  readonly isStandaloneBackend: boolean;
  readonly dataDir: string | undefined;
  readonly startEpochSeconds: number | undefined;
  readonly port: number | undefined;
  /** The first of unix_socket_directories ('' when there is none). */
  readonly socketDir: string | undefined;
  /** The first of listen_addresses ('' when it listens on no TCP address). */
  readonly listenAddress: string | undefined;
  /** Absent while the postmaster has not yet written it (the file grows line by line during start-up). */
  readonly status: PostmasterStatus | undefined;
}

const STATUSES: readonly PostmasterStatus[] = ['starting', 'stopping', 'ready', 'standby'];

const integerOrUndefined = (text: string | undefined): number | undefined => {
  if (text === undefined || !/^\d+$/.test(text.trim())) return undefined;
  return Number(text.trim());
};

/** Line layout of src/include/utils/pidfile.h; undefined when the first line holds no PID (torn or foreign file). */
export function parsePostmasterPid(text: string): PostmasterPidFile | undefined {
  const lines = text.split('\n');
  const first = (lines[0] ?? '').trim();
  if (!/^-?\d+$/.test(first)) return undefined;
  const signed = Number(first);
  if (!Number.isSafeInteger(signed) || signed === 0) return undefined;
  const status = (lines[7] ?? '').trim();
  return {
    pid: Math.abs(signed),
    isStandaloneBackend: signed < 0,
    dataDir: lines[1],
    startEpochSeconds: integerOrUndefined(lines[2]),
    port: integerOrUndefined(lines[3]),
    socketDir: lines[4],
    listenAddress: lines[5],
    status: STATUSES.find((candidate) => candidate === status),
  };
}

/** The PID of the postmaster the file names, or undefined (no PID, or a single-user backend). */
export function postmasterPidFrom(text: string): number | undefined {
  const file = parsePostmasterPid(text);
  return file === undefined || file.isStandaloneBackend ? undefined : file.pid;
}
