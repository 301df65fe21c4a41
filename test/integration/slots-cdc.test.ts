// Replication slots on real etcd and PostgreSQL: member and permanent slots on every failover-capable member,
// ignore_slots, retained WAL in /metrics and `list -e`, and a pg_recvlogical (test_decoding) consumer that
// continues on the new primary after a failover without missing a change.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { LocalCluster } from '../../src/local/local-cluster.js';
import { waitUntil } from '../../src/util/wait-until.js';
import { agentLogTail, runCliOk, sql, waitHealthy, writableAmong } from '../kit/cluster-kit.js';
import { startTestCluster, teardownCluster } from '../kit/fixtures.js';
const RECVLOGICAL = '/usr/lib/postgresql/15/bin/pg_recvlogical';

interface SlotRow extends Record<string, unknown> {
  slot_name: string;
  slot_type: string;
  confirmed_flush_lsn: string | null;
}

describe('replication slots and logical slot failover on real etcd and PostgreSQL', { timeout: 600_000 }, () => {
  let cluster: LocalCluster;
  let started: LocalCluster | undefined;
  const consumers: ChildProcess[] = [];
  const permanentSlots = {
    slots: { cdc: { type: 'logical', database: 'postgres', plugin: 'test_decoding' }, archiver: { type: 'physical' } },
    ignore_slots: [{ name: 'keep_me', type: 'physical' }],
  };

  const slotsOn = async (name: string): Promise<SlotRow[]> =>
    sql<SlotRow>(
      cluster,
      name,
      'SELECT slot_name, slot_type, confirmed_flush_lsn::text AS confirmed_flush_lsn FROM pg_replication_slots ORDER BY slot_name',
    );
  const slotNames = async (name: string): Promise<string[]> => (await slotsOn(name)).map((row) => row.slot_name);

  function startConsumer(node: string, file: string): ChildProcess {
    const child = spawn(
      RECVLOGICAL,
      [
        '-h',
        '127.0.0.1',
        '-p',
        String(cluster.node(node).pgPort),
        '-U',
        'postgres',
        '-d',
        'postgres',
        '-S',
        'cdc',
        '--start',
        '-f',
        file,
        '-F',
        '0',
        '-s',
        '1',
        '--no-loop',
      ],
      {
        env: { ...process.env, PGPASSWORD: cluster.superuserPassword },
        stdio: 'ignore',
      },
    );
    consumers.push(child);
    return child;
  }

  async function receivedIds(files: readonly string[]): Promise<Set<number>> {
    const ids = new Set<number>();
    for (const file of files) {
      const text = await readFile(file, 'utf8').catch(() => '');
      for (const match of text.matchAll(/table public\.cdc_rows: INSERT: id\[integer\]:(\d+)/g)) ids.add(Number(match[1]));
    }
    return ids;
  }

  /** The permanent slots in the dynamic config (PATCH is idempotent) and the cdc slot on the leader: what each test needs. */
  async function withPermanentSlots(): Promise<string> {
    const { leader } = await waitHealthy(cluster, 120_000);
    const response = await fetch(`http://127.0.0.1:${cluster.node(leader).apiPort}/config`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(permanentSlots),
    });
    assert.equal(response.status, 200, await response.text());
    await waitUntil(async () => (await slotNames(leader)).includes('cdc'), {
      timeoutMs: 30_000,
      intervalMs: 200,
      describe: `the permanent slots from the new config on ${leader}`,
      lastState: () => agentLogTail(cluster, leader, /slot|config/i, 15),
    });
    return leader;
  }

  before(async () => {
    started = await startTestCluster('slotstest', { parameters: { wal_level: 'logical' } });
    cluster = started;
    await waitHealthy(cluster, 120_000);
  });

  after(async () => {
    for (const child of consumers) if (child.exitCode === null) child.kill('SIGKILL');
    await teardownCluster(started);
  });

  it('keeps member and permanent slots on every member, drops unknown ones and spares ignored ones', async () => {
    // Slots made by hand only after the agent acted on the new config (cdc exists): before it, keep_me is not yet
    // ignored and the agent may rightly drop it. stray being dropped then proves a pass ran that spared keep_me.
    const leader = await withPermanentSlots();
    await sql(cluster, leader, "SELECT pg_create_physical_replication_slot('stray')");
    await sql(cluster, leader, "SELECT pg_create_physical_replication_slot('keep_me')");
    const replicas = cluster.nodes.map((node) => node.name).filter((name) => name !== leader);
    let seen: string[] = [];
    await waitUntil(
      async () => {
        seen = await slotNames(leader);
        return seen.includes('cdc') && seen.includes('archiver') && seen.includes('keep_me') && !seen.includes('stray');
      },
      {
        timeoutMs: 30_000,
        intervalMs: 200,
        describe: 'permanent slots on the leader, stray dropped, ignored kept',
        lastState: () =>
          `slots on ${leader}: ${seen.join(',')}; agent log:\n${agentLogTail(cluster, leader, /slot|config|leader|demot|promot/i, 15)}`,
      },
    );
    for (const replica of replicas) {
      const others = cluster.nodes.map((node) => node.name).filter((name) => name !== replica);
      let names: string[] = [];
      await waitUntil(
        async () => {
          const rows = await slotsOn(replica);
          names = rows.map((row) => row.slot_name);
          return (
            [...others, 'archiver'].every((name) => names.includes(name)) &&
            rows.some((row) => row.slot_name === 'cdc' && row.slot_type === 'logical')
          );
        },
        {
          timeoutMs: 60_000,
          intervalMs: 300,
          describe: `${replica} keeps copies of the member slots, archiver and the logical cdc slot`,
          lastState: () => names,
        },
      );
    }
    const status = (await cluster.view()).statusSlots ?? {};
    assert.ok(
      status.cdc !== undefined && status.archiver !== undefined,
      `status.slots publishes the leader's slots: ${JSON.stringify(status)}`,
    );
  });

  it('applies max_slot_wal_keep_size from the dynamic config on every member', async () => {
    const { leader } = await waitHealthy(cluster, 120_000);
    const response = await fetch(`http://127.0.0.1:${cluster.node(leader).apiPort}/config`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ postgresql: { parameters: { max_slot_wal_keep_size: '64MB' } } }),
    });
    assert.equal(response.status, 200, await response.text());
    for (const node of cluster.nodes) {
      let seen = '';
      await waitUntil(
        async () => {
          seen =
            (await sql<{ max_slot_wal_keep_size: string }>(cluster, node.name, 'SHOW max_slot_wal_keep_size'))[0]?.max_slot_wal_keep_size ??
            '';
          return seen === '64MB';
        },
        {
          timeoutMs: 30_000,
          intervalMs: 300,
          describe: `max_slot_wal_keep_size on ${node.name}`,
          lastState: () => `SHOW says ${JSON.stringify(seen)}`,
        },
      );
    }
  });

  it('shows retained WAL per slot in /metrics and list -e', async () => {
    const leader = await withPermanentSlots();
    const metrics = await (await fetch(`http://127.0.0.1:${cluster.node(leader).apiPort}/metrics`)).text();
    assert.match(
      metrics,
      /pgwarden_replication_slot_retained_wal_bytes\{scope="slotstest",name="[^"]+",slot_name="cdc",slot_type="logical"\} \d+/,
    );
    assert.match(metrics, /pgwarden_replication_slot_active\{[^}]*slot_name="archiver"[^}]*\} 0/);
    const { stdout } = await runCliOk(['-c', cluster.node(leader).configPath, 'list', '-e']);
    assert.match(stdout, /Slot WAL in MB/);
    assert.match(stdout, / Slot cdc: \d+ MB behind the leader/);
  });

  it('a pg_recvlogical consumer continues on the new primary after a failover without missing a change', async () => {
    const oldLeader = await withPermanentSlots();
    await sql(cluster, oldLeader, 'CREATE TABLE cdc_rows (id int PRIMARY KEY)');
    const before = join(cluster.dir, 'cdc-before.txt');
    const afterFile = join(cluster.dir, 'cdc-after.txt');
    const first = startConsumer(oldLeader, before);
    await sql(cluster, oldLeader, 'INSERT INTO cdc_rows SELECT generate_series(1, 200)');
    await waitUntil(async () => (await receivedIds([before])).size >= 200, {
      timeoutMs: 30_000,
      intervalMs: 200,
      describe: 'the consumer to receive the first 200 changes',
    });
    // The consumer confirms every second; the leader publishes it, and each replica advances its copy past it.
    const replicas = cluster.nodes.map((node) => node.name).filter((name) => name !== oldLeader);
    const confirmed = await waitUntil(
      async () => {
        const row = (await slotsOn(oldLeader)).find((slot) => slot.slot_name === 'cdc');
        const published = (await cluster.view()).statusSlots?.cdc;
        return row?.confirmed_flush_lsn !== null && published !== undefined ? published : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 200, describe: 'the consumer position confirmed on the leader' },
    );
    for (const replica of replicas) {
      await waitUntil(
        async () => {
          const row = (await slotsOn(replica)).find((slot) => slot.slot_name === 'cdc');
          const [hi, lo] = (row?.confirmed_flush_lsn ?? '0/0').split('/').map((part) => BigInt(`0x${part}`));
          return (hi! << 32n) + lo! >= BigInt(confirmed);
        },
        { timeoutMs: 30_000, intervalMs: 300, describe: `${replica}'s copy of cdc advanced to the confirmed position` },
      );
    }
    // The first consumer dies before the next changes: they can only come from the new primary's copy of the slot.
    first.kill('SIGKILL');
    await waitUntil(() => first.exitCode !== null || first.signalCode !== null, {
      timeoutMs: 5000,
      intervalMs: 50,
      describe: 'the first consumer to exit',
    });
    await sql(cluster, oldLeader, 'INSERT INTO cdc_rows SELECT generate_series(201, 300)');
    const postmaster = await cluster.postmasterPid(oldLeader);
    cluster.killAgent(oldLeader, 'SIGKILL');
    if (postmaster !== undefined) process.kill(postmaster, 'SIGKILL');
    const leader = await waitUntil(() => writableAmong(cluster, replicas), {
      timeoutMs: 60_000,
      describe: `a new writable primary among ${replicas.join(', ')}`,
    });
    await sql(cluster, leader, 'INSERT INTO cdc_rows SELECT generate_series(301, 350)');
    const consumer = startConsumer(leader, afterFile);
    cluster.startAgent(oldLeader);
    const committed = (await sql<{ id: number }>(cluster, leader, 'SELECT id FROM cdc_rows ORDER BY id')).map((row) => row.id);
    let missing: number[] = [];
    await waitUntil(
      async () => {
        const received = await receivedIds([before, afterFile]);
        missing = committed.filter((id) => !received.has(id));
        return missing.length === 0;
      },
      {
        timeoutMs: 60_000,
        intervalMs: 300,
        describe: 'every committed change delivered before or after the failover',
        lastState: () => `missing ${missing.length}: ${missing.slice(0, 10).join(',')}; consumer exit ${consumer.exitCode}`,
      },
    );
    assert.ok(committed.includes(350));
    const afterFailover = await receivedIds([afterFile]);
    assert.ok(
      afterFailover.has(301) && [...afterFailover].some((id) => id > 200 && id <= 300) === committed.some((id) => id > 200 && id <= 300),
      'changes made after the first consumer died came from the new primary',
    );
    await waitHealthy(cluster, 120_000);
  });
});
