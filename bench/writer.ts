// The benchmarks' writer: the shared workload (src/chaos/workload.ts) at one INSERT every 10 ms, with libpq-like
// short timeouts so a dead host is skipped quickly (multi-host, target_session_attrs=read-write).
import { Writer, type Target } from '../src/chaos/workload.js';

export function benchWriter(targets: readonly Target[], password: string, table: string): Writer {
  return new Writer({ targets, password, table, intervalMs: 10, connectTimeoutMs: 1000, queryTimeoutMs: 2000 });
}
