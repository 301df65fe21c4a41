// The one factory of real adapters: bin/ entry points and local/ construct the etcd DCS and the PostgreSQL
// controller only through here, so a new backend (or TLS options for etcd) is wired in one place.
// First: keeps pg from loading undici (see pg-node-runtime.ts).
import './pg-node-runtime.js';
import { EtcdDcs, parseEtcdHosts, type EtcdDcsOptions } from '../dcs/etcd/etcd-dcs.js';
import { PostgresController, resolveRunAs, type PgControllerOptions } from '../postgres/controller.js';

export { parseEtcdHosts, resolveRunAs };
export type { EtcdDcs, PostgresController };

export function openEtcdDcs(options: EtcdDcsOptions): EtcdDcs {
  return new EtcdDcs(options);
}

export function openPostgresController(options: PgControllerOptions): PostgresController {
  return new PostgresController(options);
}
