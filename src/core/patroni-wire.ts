// The Patroni release pgwarden behaves as on the wire (REST documents, DCS member keys, callback arguments): 3.0.2,
// the patronictl Debian 12 ships and the release whose outputs shared/reference/patroni-3.0.2 holds. Internally the
// role is 'primary'; Patroni before 4.0 says 'master' wherever a client can see it.

export const PATRONI_WIRE_VERSION = '3.0.2';

/** A role as Patroni 3.0.2 writes it. */
export function wireRole(role: string): string {
  return role === 'primary' ? 'master' : role;
}

/** A role read from a Patroni document of any version (3.x 'master', 4.x 'primary'). */
export function roleFromWire(role: string): string {
  return role === 'master' ? 'primary' : role;
}
