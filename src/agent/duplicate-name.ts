// Refuses to start a second agent under a name another running agent already uses (Patroni 3.0.4+): with an empty
// data dir it would take the live member's keys for an interrupted bootstrap of its own, delete them and run initdb.
import type { Dcs, PeerClient } from '../core/ports.js';
import { PgwardenError } from '../util/errors.js';

/** Rejects with PGW_DUPLICATE_MEMBER when a member key with this name exists and its REST API answers. */
export async function assertNoRunningNamesake(
  name: string,
  dcs: Dcs,
  peers: PeerClient,
  signal: AbortSignal,
): Promise<'checked' | 'dcs-unreachable'> {
  let view;
  try {
    view = await dcs.loadCluster(signal);
  } catch {
    // Without the DCS nothing can be taken over either: the HA loop waits for it anyway.
    return 'dcs-unreachable';
  }
  const member = view.members.find((candidate) => candidate.name === name);
  if (member === undefined) return 'checked';
  const status = await peers.fetchStatus(member, signal);
  if (!status.isReachable) return 'checked';
  throw new PgwardenError(
    'PGW_DUPLICATE_MEMBER',
    `Can't start; there is already a node named '${name}' running (its REST API ${member.api_url} answers)`,
    {
      context: {
        member: name,
        hint: 'every member needs its own name: change name (or PATRONI_NAME), or stop the other agent first',
      },
    },
  );
}
