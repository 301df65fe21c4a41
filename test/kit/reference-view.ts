// The Patroni 3.0.2 reference cluster (test/fixtures/etcd-get-prefix.decoded.json) as a ClusterView.
import { readFileSync } from 'node:fs';
import type { ClusterView } from '../../src/core/types.js';
import { buildClusterView } from '../../src/dcs/codec.js';
import { ClusterKeys } from '../../src/dcs/keys.js';

export const fixtures = new URL('../../../test/fixtures/', import.meta.url);

export function referenceView(): ClusterView {
  const dump = JSON.parse(readFileSync(new URL('etcd-get-prefix.decoded.json', fixtures), 'utf8')) as {
    key: string;
    value: string;
    mod_revision: number;
    create_revision: number;
    lease_hex: string;
  }[];
  return buildClusterView(
    new ClusterKeys('/service/', 'bench'),
    dump.map((kv) => ({
      key: kv.key,
      value: kv.value,
      modRevision: String(kv.mod_revision),
      createRevision: String(kv.create_revision),
      lease: kv.lease_hex,
    })),
    '18',
  );
}
