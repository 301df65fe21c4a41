// A cluster whose REST API runs HTTPS with client certificates required and Basic auth: the CLI works with the ctl
// keys and says what is missing without them; peers (leader probe, POST /failsafe) still reach each other, so failsafe
// and a failover work; and no password reaches an agent's log.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { restClientSettings } from '../../src/config/rest-client-settings.js';
import type { LocalCluster } from '../../src/local/local-cluster.js';
import { createCertificateAuthority } from '../../src/local/tls-certs.js';
import { HttpPeerClient } from '../../src/peers/http-peer-client.js';
import { createRestClient, type RestClient } from '../../src/util/rest-client.js';
import { waitUntil } from '../../src/util/wait-until.js';
import { assertStays } from '../kit/assert-stays.js';
import { agentLogTail, httpStatus, isWritable, runCli, sql, waitHealthy, writableAmong } from '../kit/cluster-kit.js';
import { FAST_TIMING, startTestCluster, teardownCluster } from '../kit/fixtures.js';

const API_PASSWORD = 'Api-pa55-Xq7zK2';

describe('REST API with TLS, client certificates and Basic auth', { timeout: 500_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgw-tlsauth-certs-'));
  const file = (name: string): string => join(dir, name);
  let cluster: LocalCluster | undefined;
  let ctlRest: RestClient;
  const configs: Record<'ctl' | 'noauth' | 'nocert' | 'noca', string> = { ctl: '', noauth: '', nocert: '', noca: '' };
  const running = (): LocalCluster => cluster ?? assert.fail('the cluster did not start');

  before(async () => {
    const ca = await createCertificateAuthority(join(dir, 'pki'));
    const loopback = { server: { ips: ['127.0.0.1'] } };
    const server = await ca.issue('server', loopback);
    const ctlPair = await ca.issue('ctl', loopback);
    // The agents call each other with restapi's certificate and credentials (patronictl's fallback): no ctl section.
    cluster = await startTestCluster('tlsauth', {
      bootstrapDcs: { failsafe_mode: true },
      restapi: {
        certfile: server.cert,
        keyfile: server.key,
        cafile: ca.cert,
        verify_client: 'required',
        authentication: { username: 'admin', password: API_PASSWORD },
      },
    });
    // CLI configs: node1's with the restapi TLS and auth keys removed, so only ctl can make the calls work.
    const base = parse(readFileSync(cluster.node('node1').configPath, 'utf8')) as { restapi: Record<string, unknown>; ctl?: unknown };
    const restapi = { listen: base.restapi.listen, connect_address: base.restapi.connect_address };
    const ctl = {
      certfile: ctlPair.cert,
      keyfile: ctlPair.key,
      cacert: ca.cert,
      authentication: { username: 'admin', password: API_PASSWORD },
    };
    const write = (name: keyof typeof configs, section: Record<string, unknown>): void => {
      configs[name] = file(`${name}.yml`);
      writeFileSync(configs[name], stringify({ ...base, restapi, ctl: section }), { mode: 0o600 });
    };
    write('ctl', ctl);
    write('noauth', { certfile: ctl.certfile, keyfile: ctl.keyfile, cacert: ctl.cacert });
    write('nocert', { cacert: ctl.cacert, authentication: ctl.authentication });
    write('noca', { certfile: ctl.certfile, keyfile: ctl.keyfile, authentication: ctl.authentication });
    ctlRest = createRestClient(restClientSettings({ ctl }));
  });

  after(async () => {
    ctlRest?.close();
    await teardownCluster(cluster);
    rmSync(dir, { recursive: true, force: true });
  });

  const metric = async (name: string): Promise<number | undefined> => {
    const node = running().node(name);
    try {
      const reply = await ctlRest.request(`https://${node.host}:${node.apiPort}/metrics`, { signal: AbortSignal.timeout(2000) });
      const match = /^patroni_failsafe_mode_is_active(?:\{[^}]*\})? (\d+)/m.exec(reply.text);
      return match === null ? undefined : Number(match[1]);
    } catch {
      return undefined;
    }
  };

  it('serves only HTTPS, and the CLI lists the cluster with the ctl keys', async () => {
    const local = running();
    const { leader, view } = await waitHealthy(local, 90_000);
    assert.ok(
      view.members.every((member) => member.api_url.startsWith('https://')),
      'api_url is https',
    );
    assert.notEqual(await httpStatus(local, leader, '/primary'), 200, 'no plain HTTP');
    const listed = await runCli(['-c', configs.ctl, 'list']);
    assert.equal(listed.code, 0, listed.stderr);
    for (const node of local.nodes) assert.match(listed.stdout, new RegExp(`\\| ${node.name} `));
    const primary = await ctlRest.callMember(view.members.find((member) => member.name === leader)!.api_url, '/primary', {
      signal: AbortSignal.timeout(5000),
    });
    assert.equal(primary.status, 200);
  });

  it('without credentials, a client certificate or the CA, the CLI fails saying which key to set', async () => {
    const { replicas } = await waitHealthy(running(), 60_000);
    const noauth = await runCli(['-c', configs.noauth, 'switchover', '--candidate', replicas[0]!, '--force']);
    assert.equal(noauth.code, 1, noauth.stdout);
    assert.match(noauth.stderr, /^Error: node\d: authentication required: set ctl\.authentication or restapi\.authentication/m);
    const nocert = await runCli(['-c', configs.nocert, 'restart', replicas[0]!, '--force']);
    assert.equal(nocert.code, 1);
    assert.match(
      nocert.stdout,
      /Failed: restart for member node\d: node\d: the REST API requires a client certificate: set ctl\.certfile and ctl\.keyfile/,
    );
    const noca = await runCli(['-c', configs.noca, 'switchover', '--candidate', replicas[0]!, '--force']);
    assert.equal(noca.code, 1);
    assert.match(noca.stderr, /TLS certificate is not trusted \(.+\); set ctl\.cacert \(or restapi\.cafile\)/);
    const view = await running().view();
    assert.equal(view.failover, undefined, 'no switchover was requested');
  });

  it('switches over and restarts a member through the CLI with the ctl keys', async () => {
    const local = running();
    const { leader, replicas } = await waitHealthy(local, 60_000);
    const candidate = replicas[0]!;
    const switched = await runCli(['-c', configs.ctl, 'switchover', '--candidate', candidate, '--force']);
    assert.equal(switched.code, 0, switched.stderr + switched.stdout);
    await waitUntil(async () => (await local.view()).leader?.name === candidate, {
      timeoutMs: 60_000,
      describe: `${candidate} leading after the switchover from ${leader}`,
    });
    const { replicas: now } = await waitHealthy(local, 60_000);
    const restarted = await runCli(['-c', configs.ctl, 'restart', now[0]!, '--force']);
    assert.equal(restarted.code, 0, restarted.stderr + restarted.stdout);
    assert.match(restarted.stdout, new RegExp(`Success: restart on member ${now[0]!}`));
  });

  it('peers reach each other over TLS with the agent settings: the leader probe answers and failsafe holds without etcd', async () => {
    const local = running();
    const { leader, replicas, view } = await waitHealthy(local, 60_000);
    // The agent's own peer client, built from a node's config as agent-main builds it.
    const nodeConfig = parse(readFileSync(local.node('node1').configPath, 'utf8')) as Parameters<typeof restClientSettings>[0];
    const peers = new HttpPeerClient(createRestClient(restClientSettings(nodeConfig)));
    for (const member of view.members) {
      const status = await peers.fetchStatus(member, AbortSignal.timeout(5000));
      assert.equal(status.isReachable, true, `${member.name} answers the leader probe`);
      assert.equal(status.role, member.name === leader ? 'primary' : 'replica');
    }
    await waitUntil(async () => Object.keys((await local.view()).failsafe ?? {}).length === local.nodes.length, {
      timeoutMs: 20_000,
      describe: 'the failsafe key listing every member',
    });
    const etcdMembers = local.etcd.members.map((_member, index) => index);
    for (const index of etcdMembers) await local.etcd.stopMember(index);
    try {
      // Only POST /failsafe accepted by every member (Basic auth, client certificate) keeps the leader past the ttl.
      await waitUntil(async () => (await metric(leader)) === 1, {
        timeoutMs: FAST_TIMING.ttl * 1000,
        describe: `${leader} on failsafe`,
        lastState: () => agentLogTail(local, leader, /./, 8),
      });
      await assertStays(async () => (await isWritable(local, leader)) && (await metric(leader)) === 1, {
        forMs: (FAST_TIMING.ttl + 2) * 1000,
        intervalMs: 500,
        describe: `${leader} writable on failsafe: every member accepted its authenticated POST /failsafe`,
      });
      for (const replica of replicas) assert.equal(await metric(replica), 1, `${replica} accepted POST /failsafe`);
    } finally {
      for (const index of etcdMembers) await local.etcd.startMember(index).catch(() => undefined);
    }
  });

  it('fails over when the leader dies', async () => {
    const local = running();
    const { leader, replicas } = await waitHealthy(local, 90_000);
    const postmaster = await local.postmasterPid(leader);
    local.killAgent(leader, 'SIGKILL');
    if (postmaster !== undefined) process.kill(postmaster, 'SIGKILL');
    const newLeader = await waitUntil(() => writableAmong(local, replicas), {
      timeoutMs: 60_000,
      intervalMs: 200,
      describe: `a new writable primary among ${replicas.join(', ')}`,
    });
    await sql(local, newLeader, 'CREATE TABLE IF NOT EXISTS after_failover (id int)');
    local.startAgent(leader);
    const healthy = await waitHealthy(local, 90_000);
    assert.equal(healthy.leader, newLeader);
  });

  it('writes no password to any agent log', async () => {
    const local = running();
    const config = parse(readFileSync(local.node('node1').configPath, 'utf8')) as {
      postgresql: { authentication: { replication: { password: string } } };
    };
    const secrets = [API_PASSWORD, local.superuserPassword, config.postgresql.authentication.replication.password];
    for (const node of local.nodes) {
      const log = readFileSync(node.logFile, 'utf8');
      assert.ok(log.length > 0, `${node.name} logged`);
      for (const secret of secrets) assert.ok(!log.includes(secret), `${node.name}'s log holds a password`);
    }
  });
});
