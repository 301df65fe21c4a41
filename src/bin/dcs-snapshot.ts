// `pgwarden dcs snapshot FILE`: etcd's snapshot of the config file's etcd, for recovery from a lost etcd quorum.
import { resolve } from 'node:path';
import { loadConfig } from '../config/load.js';
import { EtcdGateway } from '../dcs/etcd/gateway.js';
import { saveEtcdSnapshot } from '../dcs/etcd/snapshot.js';
import { etcdConnection } from './adapters.js';

/** A snapshot of a busy etcd takes well under a second; this bounds one of a large or slow one. */
const SNAPSHOT_TIMEOUT_MS = 120_000;

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

export async function runDcsSnapshot(configPath: string, file: string, out: (text: string) => void): Promise<void> {
  const { config } = loadConfig(configPath);
  const connection = etcdConnection(config.etcd);
  const closed = new AbortController();
  const gateway = new EtcdGateway(connection.endpoints, '__pgwarden_cli', closed.signal, { tls: connection.tls, auth: connection.auth });
  try {
    const result = await saveEtcdSnapshot(gateway, resolve(file), AbortSignal.timeout(SNAPSHOT_TIMEOUT_MS));
    const { revisionBefore: before, revisionAfter: after } = result;
    const revision =
      before === undefined || after === undefined
        ? `revision ${after ?? before ?? 'unknown'}`
        : before === after
          ? `revision ${before}`
          : `revision between ${before} and ${after} (etcd was written to meanwhile)`;
    out(
      `Wrote etcd snapshot ${result.path} (mode 0600) from ${result.endpoint}: ${result.bytes} bytes (${formatBytes(result.bytes)}), ${revision}, SHA-256 checked`,
    );
    out('To recover from a lost etcd quorum with it: etcdctl snapshot restore (see docs/etcd-quorum-loss.md)');
  } finally {
    closed.abort();
    gateway.close();
  }
}
