// The synchronous replication settings the simulator runs under, by name.
import type { SyncSettings } from '../../src/core/types.js';

export const SYNC_MODES: Readonly<Record<string, SyncSettings>> = {
  off: { mode: 'off', isStrict: false, nodeCount: 1 },
  priority: { mode: 'priority', isStrict: false, nodeCount: 1 },
  'priority-strict': { mode: 'priority', isStrict: true, nodeCount: 1 },
  'priority-2': { mode: 'priority', isStrict: false, nodeCount: 2 },
  quorum: { mode: 'quorum', isStrict: false, nodeCount: 1 },
  'quorum-strict': { mode: 'quorum', isStrict: true, nodeCount: 1 },
};
