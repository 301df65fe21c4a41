// The stale-read checker of issue 17: a session inserts a row, then reads it back at once, N times, while replay on
// the replicas is delayed part of the time (recovery_min_apply_delay toggled). A read that misses the row it just
// wrote is stale. Used by the split listener's integration test and by npm run bench:stale-reads (10,000 rounds).
import type pg from 'pg';
import type { LocalCluster } from '../../src/local/local-cluster.js';
import { sql } from './cluster-kit.js';

export interface StaleReadResult {
  readonly rounds: number;
  readonly stale: number;
  /** Reads by the port of the server that answered (inet_server_port()). */
  readonly servedBy: ReadonlyMap<number, number>;
  readonly elapsedMs: number;
}

/**
 * `rounds` times: INSERT id through `writer`, then SELECT it through `reader` (the same client for one session).
 * Even rounds use the simple protocol, odd ones a parameterised (extended) query, as drivers mix both.
 */
export async function checkStaleReads(options: {
  readonly writer: pg.Client;
  readonly reader: pg.Client;
  readonly table: string;
  readonly firstId: number;
  readonly rounds: number;
}): Promise<StaleReadResult> {
  const { writer, reader, table, firstId, rounds } = options;
  const servedBy = new Map<number, number>();
  let stale = 0;
  const startedAt = performance.now();
  for (let index = 0; index < rounds; index++) {
    const id = firstId + index;
    if (index % 2 === 0) await writer.query(`INSERT INTO ${table} (id) VALUES (${id})`);
    else await writer.query(`INSERT INTO ${table} (id) VALUES ($1)`, [id]);
    const result =
      index % 2 === 0
        ? await reader.query(`SELECT count(*)::int AS n, inet_server_port() AS port FROM ${table} WHERE id = ${id}`)
        : await reader.query(`SELECT count(*)::int AS n, inet_server_port() AS port FROM ${table} WHERE id = $1`, [id]);
    const row = result.rows[0] as { n: number; port: number };
    servedBy.set(Number(row.port), (servedBy.get(Number(row.port)) ?? 0) + 1);
    if (row.n !== 1) stale++;
  }
  return { rounds, stale, servedBy, elapsedMs: performance.now() - startedAt };
}

/**
 * Toggles recovery_min_apply_delay on every replica (ALTER SYSTEM, reload) between `delayMs` and 0 every
 * `periodMs`, until stopped; the stop resets it. Replicas stay streaming and within a byte lag limit: only their
 * replay is late, which is what a read-your-writes guarantee must survive.
 */
export function toggleApplyDelay(
  cluster: LocalCluster,
  replicas: readonly string[],
  options: { readonly delayMs: number; readonly periodMs: number },
): { readonly toggles: () => number; stop(): Promise<void> } {
  let running = true;
  let toggles = 0;
  const set = async (ms: number): Promise<void> => {
    for (const member of replicas) {
      await sql(cluster, member, `ALTER SYSTEM SET recovery_min_apply_delay = '${ms}ms'`);
      await sql(cluster, member, 'SELECT pg_reload_conf()');
    }
  };
  let wake: (() => void) | undefined;
  const loop = (async () => {
    let delayed = false;
    while (running) {
      delayed = !delayed;
      await set(delayed ? options.delayMs : 0);
      toggles++;
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, options.periodMs);
      });
    }
  })();
  return {
    toggles: () => toggles,
    async stop() {
      running = false;
      wake?.();
      await loop;
      for (const member of replicas) {
        await sql(cluster, member, 'ALTER SYSTEM RESET recovery_min_apply_delay');
        await sql(cluster, member, 'SELECT pg_reload_conf()');
      }
    },
  };
}
