// The etcd backend with etcd authentication on, as a shared etcd is run: a user whose role has readwrite on its
// cluster's prefix only. The conformance suite passes through it, refusals are clear errors, and tokens that etcd
// expires (--auth-token-ttl=2 here) are replaced without a read or a watch failing.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { etcdConnection, openEtcdDcs, type EtcdSettings } from '../../src/bin/adapters.js';
import { runDcsConformance } from '../../src/dcs/conformance.js';
import { enableEtcdAuth, startEtcdCluster, type EtcdClusterHandle } from '../../src/local/etcd-cluster.js';
import { isPgwardenError } from '../../src/util/errors.js';
import { stopOnInterrupt } from '../kit/fixtures.js';

const TTL_SECONDS = 2;
/** etcd forgets a simple token this long after it was last used. */
const TOKEN_TTL_SECONDS = 2;
const PASSWORD = 'pgw-test-password';
/** Scopes the user may use: one prefix per conformance scope, as one role per cluster on a shared etcd. */
const CONFORMANCE_SCOPES = 20;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

let etcd: EtcdClusterHandle | undefined;
let dir = '';
let scopes = 0;
let forgetInterrupt: (() => void) | undefined;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pgw-etcd-auth-'));
  etcd = await startEtcdCluster({
    size: 1,
    dir: join(dir, 'etcd'),
    extraArgs: ['--auth-token=simple', `--auth-token-ttl=${TOKEN_TTL_SECONDS}`],
  });
  const started = etcd;
  forgetInterrupt = stopOnInterrupt(() => started.stop());
  await enableEtcdAuth(etcd, {
    rootPassword: 'root-test-password',
    username: 'pgw',
    password: PASSWORD,
    prefixes: [
      ...Array.from({ length: CONFORMANCE_SCOPES }, (_unused, index) => `/service/auth-conformance${index + 1}/`),
      '/service/auth-expiry/',
    ],
  });
});

after(async () => {
  await etcd?.stop();
  forgetInterrupt?.();
  await rm(dir, { recursive: true, force: true });
});

const settings = (overrides: Partial<EtcdSettings> = {}): EtcdSettings => ({
  hosts: etcd!.endpoints,
  protocol: 'http',
  username: 'pgw',
  password: PASSWORD,
  ...overrides,
});
const client = (scope: string, member = 'node1', overrides: Partial<EtcdSettings> = {}) =>
  openEtcdDcs({ ...etcdConnection(settings(overrides)), namespace: '/service', scope, member });

runDcsConformance('etcd with authentication (user limited to its prefix)', () => ({
  ttlSeconds: TTL_SECONDS,
  newScope: () => {
    const scope = `auth-conformance${++scopes}`;
    assert.ok(scopes <= CONFORMANCE_SCOPES, 'grant the user more conformance prefixes');
    return (member: string) => client(scope, member);
  },
  // Longer than the TTL, and than the token's life: the next call of each client finds its token gone.
  advancePastTtl: () => sleep(TTL_SECONDS * 1000 + 1500),
  unreachable: () => client('x', 'node9', { hosts: ['127.0.0.1:1'] }),
}));

describe('etcd authentication refusals: one clear error each', () => {
  it('a wrong password', async () => {
    const dcs = client('auth-expiry', 'node1', { password: 'not-the-password' });
    await assert.rejects(dcs.loadCluster(AbortSignal.timeout(5000)), (error: unknown) => {
      assert.ok(isPgwardenError(error, 'PGW_DCS_AUTH'), String(error));
      assert.equal(
        error.message,
        `etcd ${etcd!.endpoints[0]!}: authentication failed for user 'pgw': wrong password or unknown user (etcdserver: authentication failed, invalid user ID or password)`,
      );
      assert.doesNotMatch(JSON.stringify(error.context), /not-the-password/);
      return true;
    });
    await dcs.close();
  });

  it('a cluster prefix the user has no permission on', async () => {
    const dcs = client('someone-elses-cluster');
    await assert.rejects(dcs.loadCluster(AbortSignal.timeout(5000)), (error: unknown) => {
      assert.ok(isPgwardenError(error, 'PGW_DCS_AUTH'), String(error));
      assert.equal(
        error.message,
        `etcd ${etcd!.endpoints[0]!}: user 'pgw' may not /v3/kv/range /service/someone-elses-cluster/ (etcdserver: permission denied)`,
      );
      return true;
    });
    await dcs.close();
  });

  it('no credentials configured', async () => {
    const dcs = client('auth-expiry', 'node1', { username: undefined, password: undefined });
    await assert.rejects(
      dcs.loadCluster(AbortSignal.timeout(5000)),
      (error: unknown) => isPgwardenError(error, 'PGW_DCS_AUTH') && /no etcd3\.username is configured/.test(error.message),
    );
    await dcs.close();
  });
});

describe('etcd tokens that expire', () => {
  it('reads, writes and watches keep working across token expiries', async () => {
    const a = client('auth-expiry', 'node1');
    const b = client('auth-expiry', 'node2');
    try {
      const signal = (): AbortSignal => AbortSignal.timeout(5000);
      const first = await a.loadCluster(signal());
      await sleep(TOKEN_TTL_SECONDS * 1000 + 1500);
      // a's token is gone: the watch is opened with it, cancelled by etcd, and reopened with a new one.
      const woken = a.watch(first.revision, signal());
      assert.equal(await b.acquireLeader(10_000, signal()), true, "b's expired token is replaced before the write");
      await woken;
      // A watch that outlives the token it was opened with still wakes.
      const second = await a.loadCluster(signal());
      assert.equal(second.leader?.name, 'node2');
      const wokenLater = a.watch(second.revision, AbortSignal.timeout(10_000));
      await sleep(TOKEN_TTL_SECONDS * 1000 + 1500);
      assert.equal(await b.releaseLeader(signal()), true);
      await wokenLater;
      await sleep(TOKEN_TTL_SECONDS * 1000 + 1500);
      assert.equal((await a.loadCluster(signal())).leader, undefined, 'a read after another expiry');
    } finally {
      await a.close();
      await b.close();
    }
  });
});
