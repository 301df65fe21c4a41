import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Allowlist } from '../../src/api/allowlist.js';
import { startApiServer, type ApiServer } from '../../src/api/server.js';
import { requestText } from '../../src/util/http-request.js';
import { silentLog } from '../../src/util/log.js';
import { agentSnapshot, member, view } from '../sim/builders.js';

const fixedClock = (): number => 0;

describe('restapi.allowlist matching', () => {
  it('admits literal addresses and CIDR networks, IPv4 and IPv6', async () => {
    const list = new Allowlist({ entries: ['10.1.2.3', '192.168.0.0/16', 'fd00::/8'], includeMembers: false, nowMs: fixedClock });
    assert.equal(await list.allows('10.1.2.3', []), true);
    assert.equal(await list.allows('10.1.2.4', []), false);
    assert.equal(await list.allows('192.168.77.1', []), true);
    assert.equal(await list.allows('fd12::1', []), true);
    assert.equal(await list.allows('fe80::1', []), false);
  });

  it('matches an IPv4 client seen on a dual-stack socket as ::ffff:a.b.c.d', async () => {
    const list = new Allowlist({ entries: ['127.0.0.0/8'], includeMembers: false, nowMs: fixedClock });
    assert.equal(await list.allows('::ffff:127.0.0.1', []), true);
    assert.equal(await list.allows('::ffff:10.0.0.1', []), false);
  });

  it('resolves host names, caches them, and admits nobody for a name that does not resolve', async () => {
    let lookups = 0;
    let now = 0;
    const list = new Allowlist({
      entries: ['ops.example', 'gone.example'],
      includeMembers: false,
      nowMs: () => now,
      refreshMs: 1000,
      resolve: async (host) => {
        lookups++;
        if (host === 'ops.example') return ['10.9.9.9'];
        throw new Error('ENOTFOUND');
      },
    });
    assert.equal(await list.allows('10.9.9.9', []), true);
    assert.equal(await list.allows('10.9.9.9', []), true);
    assert.equal(lookups, 1, 'the first answer is cached');
    assert.equal(await list.allows('10.0.0.1', []), false);
    now = 5000;
    await list.allows('10.0.0.1', []);
    assert.equal(lookups, 4, 'both names are looked up again after refreshMs');
  });

  it('with allowlist_include_members admits the hosts of member api_urls', async () => {
    const list = new Allowlist({ entries: [], includeMembers: true, nowMs: fixedClock, resolve: async () => ['10.5.5.5'] });
    assert.equal(list.isOpen, false);
    assert.equal(await list.allows('10.0.0.7', ['http://10.0.0.7:8008/patroni', 'https://[fd00::7]:8008/patroni']), true);
    assert.equal(await list.allows('fd00::7', ['http://10.0.0.7:8008/patroni', 'https://[fd00::7]:8008/patroni']), true);
    assert.equal(await list.allows('10.5.5.5', ['http://db3.internal:8008/patroni']), true);
    assert.equal(await list.allows('10.0.0.8', ['http://10.0.0.7:8008/patroni']), false);
  });

  it('an empty allowlist restricts nothing', async () => {
    const list = new Allowlist({ entries: [], includeMembers: false, nowMs: fixedClock });
    assert.equal(list.isOpen, true);
    assert.equal(await list.allows('203.0.113.9', []), true);
  });

  it('rejects a malformed network with the offending entry in the message', () => {
    assert.throws(
      () => new Allowlist({ entries: ['10.0.0.0/33'], includeMembers: false, nowMs: fixedClock }),
      /restapi\.allowlist entry "10\.0\.0\.0\/33"/,
    );
    assert.throws(() => new Allowlist({ entries: ['nonsense/8'], includeMembers: false, nowMs: fixedClock }), /not a valid CIDR/);
  });
});

describe('REST API with restapi.allowlist', () => {
  const snapshot = agentSnapshot({ view: view({ leaderName: 'node1', members: [member('node1', { role: 'primary' })] }) });
  const servers: ApiServer[] = [];
  const start = async (entries: string[], includeMembers = false): Promise<number> => {
    const server = await startApiServer({
      host: '127.0.0.1',
      port: 0,
      getSnapshot: () => snapshot,
      nowMs: fixedClock,
      log: silentLog,
      allowlist: new Allowlist({ entries, includeMembers, nowMs: fixedClock }),
    });
    servers.push(server);
    return server.port;
  };
  const post = (port: number, path: string): Promise<{ status: number; text: string }> =>
    requestText(`http://127.0.0.1:${port}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"leader":"node1"}',
      signal: AbortSignal.timeout(5000),
    });

  let deniedPort = 0;
  let allowedPort = 0;
  let membersPort = 0;
  before(async () => {
    deniedPort = await start(['10.0.0.0/8']);
    allowedPort = await start(['10.0.0.0/8', '127.0.0.1']);
    membersPort = await start([], true);
  });
  after(async () => {
    await Promise.all(servers.map((server) => server.close()));
  });

  it('refuses unsafe requests from a client outside the list with 403 Access is denied, and still serves health checks', async () => {
    const denied = await post(deniedPort, '/switchover');
    assert.equal(denied.status, 403);
    assert.equal(denied.text, 'Access is denied');
    const health = await requestText(`http://127.0.0.1:${deniedPort}/primary`, { signal: AbortSignal.timeout(5000) });
    assert.equal(health.status, 200);
  });

  it('lets a listed client through to the endpoint (this server has no DCS, so it answers 501)', async () => {
    const allowed = await post(allowedPort, '/switchover');
    assert.equal(allowed.status, 501);
  });

  it('admits a client whose address is a member api_url host', async () => {
    const allowed = await post(membersPort, '/switchover');
    assert.equal(allowed.status, 501);
  });
});
