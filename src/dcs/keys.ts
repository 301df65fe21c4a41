// Patroni's key layout under <namespace>/<scope>/: the names users see with `etcdctl get --prefix`.

/** '/service/', 'service' and '/service' all mean '/service'. */
export function normalizeNamespace(namespace: string): string {
  const trimmed = namespace.replace(/^\/+|\/+$/g, '');
  return trimmed === '' ? '' : `/${trimmed}`;
}

export class ClusterKeys {
  readonly prefix: string;

  constructor(namespace: string, scope: string) {
    this.prefix = `${normalizeNamespace(namespace)}/${scope}/`;
  }

  get leader(): string {
    return `${this.prefix}leader`;
  }
  get config(): string {
    return `${this.prefix}config`;
  }
  get initialize(): string {
    return `${this.prefix}initialize`;
  }
  get failover(): string {
    return `${this.prefix}failover`;
  }
  get sync(): string {
    return `${this.prefix}sync`;
  }
  get history(): string {
    return `${this.prefix}history`;
  }
  get status(): string {
    return `${this.prefix}status`;
  }
  /** pgwarden's silent-leader detector (Patroni has no such key; its tools ignore it). */
  get heartbeat(): string {
    return `${this.prefix}heartbeat`;
  }
  /** failsafe_mode's topology, written by the leader (no lease: it must outlive a DCS outage's expiries). */
  get failsafe(): string {
    return `${this.prefix}failsafe`;
  }
  /** pgwarden's backup lock (the `backup:` section): one backup at a time in the cluster, on the runner's lease. */
  get backup(): string {
    return `${this.prefix}backup`;
  }
  /** A running `pgwarden upgrade`: its target and the steps done, so that a re-run continues it. */
  get upgrade(): string {
    return `${this.prefix}upgrade`;
  }
  /** A logical major upgrade's redirect: proxies of this scope hold clients or follow another scope's leader. */
  get redirect(): string {
    return `${this.prefix}redirect`;
  }
  /** A pgwarden proxy's routing record (Patroni has no such keys; its tools ignore them). */
  proxy(name: string): string {
    return `${this.prefix}proxies/${name}`;
  }
  get proxiesPrefix(): string {
    return `${this.prefix}proxies/`;
  }
  member(name: string): string {
    return `${this.prefix}members/${name}`;
  }
  get membersPrefix(): string {
    return `${this.prefix}members/`;
  }
  /**
   * Keys worth waking an agent's loop for. Member, status and history keys change every cycle somewhere; waking every
   * agent on each of them would make the agents wake each other in a storm (every cycle writes a member key). The
   * heartbeat changes several times a second and has its own watch (agent/leader-silence.ts). The failsafe key follows
   * the members and nobody acts on its change at once; nor does anybody act on the backup lock's or a proxy record's.
   * The upgrade record does wake them: a major upgrade's hold of writes must reach the proxies at once (a few writes per
   * upgrade).
   */
  isControlKey(key: string): boolean {
    return (
      key.startsWith(this.prefix) &&
      key !== this.status &&
      key !== this.history &&
      key !== this.heartbeat &&
      key !== this.failsafe &&
      key !== this.backup &&
      !key.startsWith(this.membersPrefix) &&
      !key.startsWith(this.proxiesPrefix)
    );
  }
}
