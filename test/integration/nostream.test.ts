// The nostream tag (Patroni 3.0+) on real processes: a member that never opens a replication connection gets its WAL
// from the archive through postgresql.recovery_conf's restore_command, the leader keeps no slot for it, and it reports
// replication_state "in archive recovery".
import assert from 'node:assert/strict';
import { chmod, chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { slotNameForMember } from '../../src/core/slot-names.js';
import type { LocalCluster } from '../../src/local/local-cluster.js';
import { resolveRunAs } from '../../src/postgres/controller.js';
import { waitUntil } from '../../src/util/wait-until.js';
import { httpStatus, sql } from '../kit/cluster-kit.js';
import { startTestCluster, teardownCluster } from '../kit/fixtures.js';

describe('nostream member', { timeout: 300_000 }, () => {
  let cluster: LocalCluster | undefined;
  let archiveRoot: string | undefined;

  before(async () => {
    // The archive lives outside the cluster; PostgreSQL (run as the postgres OS user under root) writes and reads it.
    archiveRoot = await mkdtemp(join(tmpdir(), 'pgw-nostream-archive-'));
    const archive = join(archiveRoot, 'wal');
    await mkdir(archive, { mode: 0o700 });
    const runAs = resolveRunAs();
    if (runAs !== undefined) await chown(archive, runAs.uid, runAs.gid);
    await chmod(archiveRoot, 0o755);
    cluster = await startTestCluster('nostream', {
      nodes: 2,
      // node2 cannot win the bootstrap race either (nofailover), so it is the nostream replica of this test.
      tags: { node2: { nostream: true, nofailover: true } },
      parameters: { archive_mode: 'on', archive_command: `test ! -f ${archive}/%f && cp %p ${archive}/%f` },
      recoveryConf: { restore_command: `cp ${archive}/%f %p` },
    });
  });

  after(async () => {
    await teardownCluster(cluster);
    if (archiveRoot !== undefined) await rm(archiveRoot, { recursive: true, force: true });
  });

  it('replays from the archive, reports in archive recovery, and has no slot on the leader', async () => {
    const local = cluster!;
    const memberOf = async (name: string) => (await local.view()).members.find((member) => member.name === name);
    await waitUntil(async () => (await local.view()).leader?.name === 'node1', { timeoutMs: 90_000, describe: 'node1 to lead' });
    await waitUntil(async () => (await memberOf('node2'))?.state === 'running', { timeoutMs: 90_000, describe: 'node2 running' });
    assert.equal((await memberOf('node2'))?.replication_state, 'in archive recovery');
    assert.equal(await httpStatus(local, 'node2', '/replica'), 200);
    const receivers = await sql<{ n: string }>(local, 'node2', 'SELECT count(*) AS n FROM pg_stat_wal_receiver');
    assert.equal(receivers[0]?.n, '0', 'no WAL receiver on the nostream member');

    await sql(local, 'node1', 'CREATE TABLE nostream_rows AS SELECT generate_series(1, 50) AS id');
    await sql(local, 'node1', 'SELECT pg_switch_wal()');
    await waitUntil(
      async () => (await sql<{ n: string }>(local, 'node2', 'SELECT count(*) AS n FROM nostream_rows').catch(() => []))[0]?.n === '50',
      { timeoutMs: 30_000, describe: `the leader's rows on node2 through the archive` },
    );
    const slots = await sql<{ slot_name: string }>(local, 'node1', 'SELECT slot_name FROM pg_replication_slots');
    assert.equal(
      slots.some((slot) => slot.slot_name === slotNameForMember('node2')),
      false,
      'the leader keeps no slot for a nostream member',
    );
    const senders = await sql<{ n: string }>(
      local,
      'node1',
      "SELECT count(*) AS n FROM pg_stat_replication WHERE application_name = 'node2'",
    );
    assert.equal(senders[0]?.n, '0');
  });
});
