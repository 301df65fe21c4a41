// Issue 16 point 1 on real processes: create_replica_methods with no_leader (Patroni's "bootstrap (without leader)").
// The only running member, the primary, is SIGKILLed (agent and postmaster) after a backup and an archived segment;
// once its leader key expired, a new member with an empty data dir starts: with no leader to copy from it restores
// from the pgBackRest repository (its method is marked no_leader), replays the archive, wins the leader race and runs
// as primary with every archived row. Without no_leader the same member would wait for a leader for ever.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { LocalCluster } from '../../src/local/local-cluster.js';
import { waitUntil } from '../../src/util/wait-until.js';
import { agentLogTail, runCli, sql, writableAmong } from '../kit/cluster-kit.js';
import { startTestCluster, teardownCluster } from '../kit/fixtures.js';

const SCOPE = 'noleader';

describe('create_replica_methods no_leader: a member restored from the backup while there is no leader', { timeout: 600_000 }, () => {
  let cluster: LocalCluster | undefined;
  const local = (): LocalCluster => cluster!;

  before(async () => {
    cluster = await startTestCluster(SCOPE, {
      nodes: 2,
      backup: true,
      agents: ['node1'],
      postgresqlExtra: { create_replica_methods: ['pgbackrest', 'basebackup'], pgbackrest: { no_leader: true } },
    });
  });

  after(async () => {
    await teardownCluster(cluster);
  });

  it('restores node2 from the repository with the primary dead, and node2 takes over with the archived rows', async (t) => {
    const logFile = local().node('node1').logFile;
    await waitUntil(async () => existsSync(logFile) && /pgBackRest stanza is ready/.test(readFileSync(logFile, 'utf8')), {
      timeoutMs: 120_000,
      describe: 'node1 primary with its stanza',
      lastState: () => agentLogTail(local(), 'node1', /pgBackRest|stanza|bootstrap/),
    });
    await sql(local(), 'node1', 'CREATE TABLE nl_rows (id int PRIMARY KEY)');
    const backup = await runCli(['-c', local().node('node1').configPath, 'backup', '--wait', '--from', 'primary'], 300_000);
    assert.equal(backup.code, 0, backup.stderr);
    await sql(local(), 'node1', 'INSERT INTO nl_rows SELECT generate_series(1, 100)');
    const wal = (await sql<{ wal: string }>(local(), 'node1', 'SELECT pg_walfile_name(pg_switch_wal()) AS wal'))[0]!.wal;
    await waitUntil(
      async () => {
        const last = (await sql<{ last: string | null }>(local(), 'node1', 'SELECT last_archived_wal AS last FROM pg_stat_archiver'))[0];
        return (last?.last ?? '') >= wal;
      },
      { timeoutMs: 60_000, intervalMs: 250, describe: `${wal} archived` },
    );

    const postmaster = await local().postmasterPid('node1');
    local().killAgent('node1', 'SIGKILL');
    if (postmaster !== undefined) process.kill(postmaster, 'SIGKILL');
    await waitUntil(async () => (await local().view()).leader === undefined, {
      timeoutMs: 60_000,
      intervalMs: 250,
      describe: "node1's leader key to expire",
    });
    const view = await local().view();
    assert.notEqual(view.initialize, undefined, 'the cluster stays initialized');

    const startedAt = Date.now();
    local().startAgent('node2');
    const promoted = await waitUntil(() => writableAmong(local(), ['node2']), {
      timeoutMs: 180_000,
      intervalMs: 500,
      describe: 'node2 restored from the backup and promoted',
      lastState: () => agentLogTail(local(), 'node2', /leader|restor|pgbackrest|bootstrap|promot|error/i, 12),
    });
    t.diagnostic(`${promoted} writable ${Date.now() - startedAt} ms after its agent started`);
    const log = readFileSync(local().node('node2').logFile, 'utf8');
    assert.match(log, /trying to bootstrap \(without leader\) with a no_leader replica method/);
    assert.match(log, /restored pgBackRest backup \d{8}-\d{6}F/);
    // Only the no_leader method was planned: basebackup needs a leader to copy from.
    assert.match(log, /"msg":"creating the replica from \(no leader\) with pgbackrest"/);
    const [{ n } = { n: '' }] = await sql<{ n: string }>(local(), 'node2', 'SELECT count(*)::text AS n FROM nl_rows');
    assert.equal(n, '100', 'every archived row');
    assert.equal((await local().view()).leader?.name, 'node2');
  });
});
