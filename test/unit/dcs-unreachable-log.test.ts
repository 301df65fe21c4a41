// An unreachable etcd is said with the cause of each endpoint (refused, unknown host, timeout) and said again, with
// its duration and count, while it lasts; its end is said too.
import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { observeDcs, type DcsReadState } from '../../src/agent/observe.js';
import type { Dcs } from '../../src/core/ports.js';
import { describeQuorumLoss, EtcdGateway } from '../../src/dcs/etcd/gateway.js';
import { pickFreePorts } from '../../src/local/free-port.js';
import { PgwardenError } from '../../src/util/errors.js';
import type { Log } from '../../src/util/log.js';
import { FakeClock } from '../kit/fake-clock.js';
import { view } from '../sim/builders.js';

const sockets: Socket[] = [];
let silent: Server | undefined;
after(() => {
  for (const socket of sockets) socket.destroy();
  silent?.close();
});

describe('etcd gateway: why each endpoint failed', () => {
  it('names refused and unknown-host endpoints apart', async () => {
    const [closedPort] = await pickFreePorts(1);
    const gateway = new EtcdGateway([`http://127.0.0.1:${closedPort}`, 'http://nosuchhost.invalid:2379'], 'node1');
    await assert.rejects(gateway.call('/v3/kv/range', { key: 'eA==' }, AbortSignal.timeout(5000)), (error: Error) => {
      assert.match(error.message, new RegExp(`http://127\\.0\\.0\\.1:${closedPort}: connection refused \\(ECONNREFUSED\\)`));
      assert.match(
        error.message,
        /http:\/\/nosuchhost\.invalid:2379: (host name not found \(ENOTFOUND\)|DNS lookup failed for now \(EAI_AGAIN\))/,
      );
      return true;
    });
  });

  it('says timeout for an endpoint that accepts and never answers, and which endpoints were not tried', async () => {
    silent = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent!.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;
    const [closedPort] = await pickFreePorts(1);
    const gateway = new EtcdGateway([`http://127.0.0.1:${port}`, `http://127.0.0.1:${closedPort}`], 'node1');
    await assert.rejects(
      gateway.call('/v3/kv/range', { key: 'eA==' }, AbortSignal.timeout(300)),
      new RegExp(
        `127\\.0\\.0\\.1:${port}: timeout: no answer before the deadline; http://127\\.0\\.0\\.1:${closedPort}: not tried before the deadline`,
      ),
    );
  });
});

describe('etcd without quorum', () => {
  it("is named as such from the members' own status: one answers without a raft leader, the others refuse", async () => {
    // etcd 3.4's answer on the one member left of three once its election timeout passed.
    const lonely = createHttpServer((request, response) => {
      assert.equal(request.url, '/v3/maintenance/status');
      response.end(JSON.stringify({ header: { member_id: '1' }, version: '3.4.23', raftTerm: '2', errors: ['etcdserver: no leader'] }));
    });
    await new Promise<void>((resolve) => lonely.listen(0, '127.0.0.1', resolve));
    try {
      const port = (lonely.address() as { port: number }).port;
      const [closedA, closedB] = await pickFreePorts(2);
      const endpoints = [`http://127.0.0.1:${port}`, `http://127.0.0.1:${closedA}`, `http://127.0.0.1:${closedB}`];
      const statuses = await new EtcdGateway(endpoints, 'node1').endpointStatuses(1000);
      assert.equal(
        describeQuorumLoss(statuses),
        `etcd has no quorum (no raft leader): http://127.0.0.1:${port}: answers, but knows no raft leader (etcdserver: no leader); ` +
          `http://127.0.0.1:${closedA}: connection refused (ECONNREFUSED): is etcd running and listening on this address?; ` +
          `http://127.0.0.1:${closedB}: connection refused (ECONNREFUSED): is etcd running and listening on this address?. ` +
          'Nothing can be read or written until a majority of the etcd members runs and reaches each other again (etcdctl endpoint status --cluster)',
      );
    } finally {
      lonely.close();
    }
  });

  it('is not claimed when no member answers, or when the members that answer know their leader', () => {
    assert.equal(describeQuorumLoss([{ endpoint: 'http://a:2379', failure: 'connection refused (ECONNREFUSED)' }]), undefined);
    assert.equal(
      describeQuorumLoss([
        { endpoint: 'http://a:2379', leader: '42', errors: [] },
        { endpoint: 'http://b:2379', failure: 'timeout: no answer before the deadline' },
      ]),
      undefined,
    );
    assert.match(describeQuorumLoss([{ endpoint: 'http://a:2379', leader: '0', errors: [] }]) ?? '', /^etcd has no quorum/);
  });
});

describe('observeDcs', () => {
  it('says an unreachable DCS again every 10 s with its duration and count, and when it is back', async () => {
    const clock = new FakeClock();
    const lines: { level: string; message: string; fields: Record<string, unknown> }[] = [];
    const record = (level: string) => (fields: Record<string, unknown>, message: string) => void lines.push({ level, message, fields });
    const log = { info: record('info'), warn: record('warn'), error: record('error'), debug: () => undefined } as unknown as Log;
    let isDown = true;
    const dcs = {
      loadCluster: () =>
        isDown
          ? Promise.reject(
              new PgwardenError('PGW_DCS_UNAVAILABLE', 'etcd is not reachable: http://127.0.0.1:1: connection refused (ECONNREFUSED)'),
            )
          : Promise.resolve(view({ leaderName: 'node1' })),
    } as unknown as Dcs;
    const state: DcsReadState = { view: undefined, unreachableSinceMs: undefined, lastOkWallEpochS: undefined };
    for (let read = 0; read < 25; read++) {
      await observeDcs(dcs, clock, 1000, state, log);
      clock.advance(1000);
    }
    const said = lines.filter((line) => line.level === 'warn');
    assert.equal(said.length, 3, said.map((line) => line.message).join('\n'));
    assert.equal(said[0]!.message, 'DCS is not accessible');
    assert.match(String(said[0]!.fields.error), /connection refused \(ECONNREFUSED\)/);
    assert.equal(said[1]!.message, 'DCS is still not accessible (for 10 s, 11 failed reads)');
    assert.equal(said[2]!.fields.unreachable_for_ms, 20_000);
    isDown = false;
    await observeDcs(dcs, clock, 1000, state, log);
    const back = lines.at(-1)!;
    assert.equal(back.message, 'DCS reachable again');
    assert.deepEqual(back.fields, { unreachable_for_ms: 25_000, failed_reads: 25 });
  });
});
