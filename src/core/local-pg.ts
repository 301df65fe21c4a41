// The LocalPg of a node whose PostgreSQL is not running and of which nothing else is known yet.
import type { LocalPg } from './types.js';

export const STOPPED_PG: LocalPg = {
  dataDir: 'missing',
  isRunning: false,
  role: undefined,
  sysid: undefined,
  timeline: undefined,
  writeLsn: undefined,
  receivedLsn: undefined,
  replayedLsn: undefined,
  isStreaming: false,
  upstream: undefined,
  crashedAtMs: undefined,
  controlState: undefined,
  serverVersion: undefined,
  postmasterStartTime: undefined,
  replayedTimestamp: undefined,
  isReplayPaused: false,
  replication: [],
  isPendingRestart: false,
};
