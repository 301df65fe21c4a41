// Parses `pg_controldata` output: what a stopped data directory says about its role, timeline and identity.

export interface ControlData {
  readonly state: string | undefined;
  readonly sysid: string | undefined;
  readonly timeline: number | undefined;
  readonly checkpointLsn: string | undefined;
  readonly minRecoveryEndLsn: string | undefined;
}

export function parseControlData(output: string): ControlData {
  const fields = new Map<string, string>();
  for (const line of output.split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) fields.set(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  const timeline = Number(fields.get("Latest checkpoint's TimeLineID"));
  return {
    state: fields.get('Database cluster state'),
    sysid: fields.get('Database system identifier'),
    timeline: Number.isInteger(timeline) && timeline > 0 ? timeline : undefined,
    checkpointLsn: fields.get('Latest checkpoint location'),
    minRecoveryEndLsn: fields.get('Minimum recovery ending location'),
  };
}

/** A data dir shut down (or crashed) while in recovery was a replica; anything else was a primary. */
export function roleFromControlState(state: string | undefined): 'primary' | 'replica' | undefined {
  if (state === undefined) return undefined;
  if (state === 'shut down in recovery' || state === 'in archive recovery' || state === 'in crash recovery') return 'replica';
  if (state === 'shut down' || state === 'in production' || state === 'shutting down') return 'primary';
  return undefined;
}

/** pg_rewind needs a cleanly shut down source; these states need crash recovery first. */
export function isCleanShutdown(state: string | undefined): boolean {
  return state === 'shut down' || state === 'shut down in recovery';
}
