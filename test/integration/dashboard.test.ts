// The dashboard in a real browser (Debian's Chromium driven by playwright-core), on a real 3-node cluster with a proxy:
// opened on a replica it shows three members and the leader, each replica's lag in seconds and the lock's time left
// (from etcd), and restarts another member from the page; a switchover clicked on the page shows its new leader within
// 2 s of the DCS without a reload; a killed primary's failover appears in the page's timeline with its reason and a
// bound on its write pause; the
// proxy's own /ui shows the cluster and where the proxy routes, read-only.
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { LocalCluster } from '../../src/local/local-cluster.js';
import { waitUntil } from '../../src/util/wait-until.js';
import { sql, waitHealthy } from '../kit/cluster-kit.js';
import { startTestCluster, teardownCluster } from '../kit/fixtures.js';

const CHROMIUM = process.env.PGWARDEN_CHROMIUM ?? '/usr/bin/chromium';
const SCREENSHOTS = 'docs/screenshots';

/** The page's global object, typed for the little the test reads (this project compiles without the DOM library). */
interface InPage {
  document: { getElementById(id: string): { textContent: string | null } | null };
  marker?: number;
}

describe('the dashboard in Chromium', { timeout: 600_000 }, () => {
  let cluster: LocalCluster | undefined;
  let browser: Browser | undefined;
  let page: Page | undefined;
  let opened = '';
  let leader = '';
  let others: string[] = [];
  const prompts: string[] = [];
  const dialogs: string[] = [];
  const running = (): { cluster: LocalCluster; page: Page } => ({
    cluster: cluster ?? assert.fail('the cluster did not start'),
    page: page ?? assert.fail('the browser did not start'),
  });
  const apiOf = (name: string): string => `http://127.0.0.1:${running().cluster.node(name).apiPort}`;
  const shownLeader = (): Promise<string> => running().page.locator('#leader').innerText();

  before(async () => {
    // With restapi.authentication: the page's actions must ask for the credentials, as the CLI needs them.
    cluster = await startTestCluster('uitest', { restAuth: true, proxies: 1 });
    const credentials = cluster.state().restapiAuthentication ?? assert.fail('restAuth gave no credentials');
    const healthy = await waitHealthy(cluster, 120_000);
    leader = healthy.leader;
    [opened = '', ...others] = healthy.replicas;
    others = [...others, leader];
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    // confirm() is accepted; the 401 prompts get the user name, then the password.
    page.on('dialog', (dialog) => {
      const message = dialog.message();
      if (dialog.type() === 'prompt') prompts.push(message);
      else dialogs.push(message);
      const answer = /User name/.test(message) ? credentials.username : /Password/.test(message) ? (credentials.password ?? '') : undefined;
      void dialog.accept(answer);
    });
    await mkdir(SCREENSHOTS, { recursive: true });
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await teardownCluster(cluster);
  });

  it('opened on a replica, shows the three members and the leader', async () => {
    const { page } = running();
    await page.goto(`${apiOf(opened)}/ui`);
    await page.locator('#live.live').waitFor({ timeout: 10_000 });
    await waitUntil(async () => (await page.locator('#members tbody tr').count()) === 3, {
      timeoutMs: 10_000,
      describe: 'three member rows',
    });
    assert.equal(await shownLeader(), leader);
    assert.equal(await page.locator(`#members tr[data-member="${leader}"] td.role`).innerText(), 'leader');
    assert.match(await page.locator('#opened').innerText(), new RegExp(opened));
    await page.screenshot({ path: `${SCREENSHOTS}/ui-cluster.png`, fullPage: true });
  });

  it("a replica's page shows each replica's lag in seconds and the lock's time left from the DCS", async (t) => {
    const { cluster, page } = running();
    const replicas = [opened, others[0] ?? ''];
    // Every replica publishes lag_seconds in its member key; the page shows it in seconds.
    await waitUntil(
      async () => {
        const view = await cluster.view();
        return replicas.every((name) => typeof view.members.find((m) => m.name === name)?.lag_seconds === 'number');
      },
      { timeoutMs: 15_000, describe: 'lag_seconds in both replicas\u2019 member keys' },
    );
    let cells: string[] = [];
    await waitUntil(
      async () => {
        cells = await Promise.all(replicas.map((name) => page.locator(`#members tr[data-member="${name}"] td.lag-s`).innerText()));
        return cells.every((cell) => /^\d+(\.\d)? s$/.test(cell));
      },
      { timeoutMs: 10_000, describe: 'lag in seconds on both replica rows', lastState: () => cells.join(' | ') },
    );
    // A replica whose replay is paused while the leader commits falls behind in time: its row shows it (seconds since
    // its last replayed commit), and 0 again once it caught up.
    // (A replica that has replayed no commit since it started has no replay time: its lag in seconds is unknown.)
    await sql(cluster, leader, 'CREATE TABLE IF NOT EXISTS ui_lag (id int)');
    await waitUntil(
      async () => (await sql<{ ok: boolean }>(cluster, opened, 'SELECT pg_last_xact_replay_timestamp() IS NOT NULL AS ok'))[0]?.ok === true,
      { timeoutMs: 10_000, describe: `${opened} to replay a first commit` },
    );
    await sql(cluster, opened, 'SELECT pg_wal_replay_pause()');
    try {
      await sql(cluster, leader, 'INSERT INTO ui_lag VALUES (1)');
      let behind = '';
      await waitUntil(
        async () => {
          behind = await page.locator(`#members tr[data-member="${opened}"] td.lag-s`).innerText();
          return Number.parseFloat(behind) >= 1;
        },
        { timeoutMs: 15_000, describe: `${opened}'s lag in seconds above 1 s while its replay is paused`, lastState: () => behind },
      );
      t.diagnostic(`replay paused on ${opened}: the page shows ${behind}`);
    } finally {
      await sql(cluster, opened, 'SELECT pg_wal_replay_resume()');
    }
    await waitUntil(async () => (await page.locator(`#members tr[data-member="${opened}"] td.lag-s`).innerText()) === '0.0 s', {
      timeoutMs: 15_000,
      describe: `${opened} caught up: 0.0 s`,
    });
    // Not the leader's: this member reads the time left from etcd (the lease TTL of the leader key), once a second.
    let lock = '';
    await waitUntil(
      async () => {
        lock = `${await page.locator('#lock').innerText()} ${await page.locator('#lock-source').innerText()}`;
        return /TTL of the leader key's lease/.test(lock);
      },
      { timeoutMs: 10_000, describe: 'the lock time left from the DCS', lastState: () => lock },
    );
    const left = Number(/([\d.]+) s left/.exec(lock)?.[1]);
    const ttl = (await cluster.view()).config?.ttl ?? 0;
    assert.ok(left > 0 && left <= ttl, `lock time left ${left} s within the ttl of ${ttl} s: ${lock}`);
    t.diagnostic(`replica page: lag ${replicas.map((name, i) => `${name} ${cells[i]}`).join(', ')}; lock ${lock}`);
    // The proxy started with the cluster routes writes to the leader, and the members' pages say so.
    await page.locator('#proxies tr[data-proxy="proxy1"] td.route-primary').filter({ hasText: leader }).waitFor({ timeout: 15_000 });
    await page.screenshot({ path: `${SCREENSHOTS}/ui-cluster.png`, fullPage: true });
  });

  it('restarts another member from this member\u2019s page (relayed with the credentials asked for, after a confirmation)', async (t) => {
    const { cluster, page } = running();
    const target = others[0] ?? assert.fail('no other replica');
    const before = await cluster.postmasterPid(target);
    const confirmations = dialogs.length;
    const startedAtMs = Date.now();
    await page.locator(`#members tr[data-member="${target}"] button[data-action="restart"]`).click();
    let message = '';
    await waitUntil(
      async () => {
        message = await page.locator('#message').innerText();
        return /: \d{3} /.test(message);
      },
      { timeoutMs: 60_000, describe: 'the answer of the relayed restart', lastState: () => message },
    );
    assert.match(message, new RegExp(`POST /members/${target}/restart: 200 ${target}: `), message);
    assert.ok(
      dialogs.slice(confirmations).some((text) => text.includes(`Restart PostgreSQL on ${target} (relayed by ${opened}`)),
      `a confirmation naming the target: ${dialogs.slice(confirmations).join(' / ')}`,
    );
    assert.equal(prompts.length, 2, `asked for the user name and the password once: ${prompts.join(' / ')}`);
    const after = await waitUntil(
      async () => {
        const pid = await cluster.postmasterPid(target);
        return pid !== undefined && pid !== before ? pid : undefined;
      },
      { timeoutMs: 30_000, describe: `a new postmaster on ${target}` },
    );
    // Back to streaming before the switchover below picks it as the candidate.
    await waitUntil(async () => (await cluster.view()).members.find((m) => m.name === target)?.replication_state === 'streaming', {
      timeoutMs: 60_000,
      describe: `${target} streaming again`,
    });
    t.diagnostic(
      `restart of ${target} from ${opened}'s page: postmaster ${before} -> ${after}, answered in ${Date.now() - startedAtMs} ms`,
    );
  });

  it('a switchover clicked on the page shows the new leader within 2 s of the DCS, without a reload', async (t) => {
    const { cluster, page } = running();
    const candidate = others.find((name) => name !== leader) ?? assert.fail('no other replica');
    // The page must not reload: a marker on window survives only in the same document.
    await page.evaluate(() => {
      (globalThis as unknown as InPage).marker = 42;
    });
    await page.locator('#candidate').selectOption(candidate);
    // When the DCS names the new leader (polled every 50 ms) and when the page shows it (seen by the page itself).
    let dcsAtMs: number | undefined;
    const dcsWatch = waitUntil(
      async () => {
        const now = Date.now();
        if ((await cluster.view()).leader?.name !== candidate) return undefined;
        dcsAtMs = now;
        return now;
      },
      { timeoutMs: 60_000, intervalMs: 50, describe: `${candidate} as the leader in the DCS` },
    );
    dcsWatch.catch(() => undefined); // awaited below; not an unhandled rejection when the page check fails first
    const pageSaw = page.waitForFunction(
      (name) => ((globalThis as unknown as InPage).document.getElementById('leader')?.textContent === name ? Date.now() : false),
      candidate,
      { timeout: 60_000, polling: 'raf' },
    );
    const clickedAtMs = Date.now();
    await page.locator('#switchover').click();
    const pageAtMs = (await (await pageSaw).jsonValue()) as number;
    await dcsWatch;
    const delayMs = pageAtMs - (dcsAtMs ?? pageAtMs);
    const diagnostic = `switchover ${leader} -> ${candidate}: DCS leader after ${(dcsAtMs ?? 0) - clickedAtMs} ms, page after ${pageAtMs - clickedAtMs} ms (${delayMs} ms after the DCS, polled every 50 ms)`;
    t.diagnostic(diagnostic);
    assert.ok(delayMs <= 2000, diagnostic);
    assert.equal(await page.evaluate(() => (globalThis as unknown as InPage).marker), 42, 'the page was not reloaded');
    assert.equal(prompts.length, 2, `no new credentials prompt: ${prompts.join(' / ')}`);
    // The switchover appears in the timeline with the decision that made the candidate leader.
    await page.locator('#timeline li[data-timeline="2"]').waitFor({ timeout: 30_000 });
    await waitUntil(
      async () =>
        /switchover to .*switchover candidate.*writes paused ~[\d.]+ s/s.test(
          await page.locator('#timeline li[data-timeline="2"]').innerText(),
        ),
      {
        timeoutMs: 15_000,
        describe: 'the switchover, its reason and its write pause in the timeline',
        lastState: () => page.locator('#timeline').innerText(),
      },
    );
    await page.screenshot({ path: `${SCREENSHOTS}/ui-switchover.png`, fullPage: true });
    leader = candidate;
  });

  it('pause and resume from the page (the credentials given once are kept)', async () => {
    const { cluster, page } = running();
    await page.locator('#toggle-pause').click();
    await page.locator('#pause.paused').waitFor({ timeout: 15_000 });
    assert.equal((await cluster.view()).config?.pause, true);
    await page.locator('#toggle-pause').click();
    await waitUntil(async () => (await page.locator('#pause').innerText()) === 'automatic failover on', {
      timeoutMs: 15_000,
      describe: 'resumed on the page',
    });
    assert.notEqual((await cluster.view()).config?.pause, true);
    assert.equal(prompts.length, 2, 'no new credentials prompt');
  });

  it('a killed primary: the failover appears in the timeline with its reason and a bound on its write pause', async (t) => {
    const { cluster, page } = running();
    const postmaster = await cluster.postmasterPid(leader);
    cluster.killAgent(leader, 'SIGKILL');
    if (postmaster !== undefined) process.kill(postmaster, 'SIGKILL');
    const item = page.locator('#timeline li[data-timeline="3"]');
    await item.waitFor({ timeout: 90_000 });
    let text = '';
    await waitUntil(
      async () => {
        text = await item.innerText();
        return /failover/.test(text) && /healthiest member/.test(text);
      },
      { timeoutMs: 30_000, describe: 'the failover and its reason in the timeline', lastState: () => text },
    );
    const newLeader = (await cluster.view()).leader?.name;
    assert.notEqual(newLeader, leader);
    assert.equal(await shownLeader(), newLeader);
    // Its write pause: at most from the killed primary's last lease renewal (read by a replica that lost its stream) to
    // the new leader's history entry. Above 0, and below the ttl plus a loop and the promotion: the lock was removed as
    // stale (its API and PostgreSQL refused) well before its lease could run out.
    const pause = item.locator('span.pause[data-basis="lease"]');
    await pause.waitFor({ timeout: 15_000 }).catch(async () => {
      assert.fail(`no failover write pause from a lease reading: ${await item.innerText()}`);
    });
    const shown = await pause.innerText();
    const match = /writes paused \u2264 ([\d.]+) s \((\S+) last renewed its lease no earlier than [\d:.]+: \S+ read \d+ of \d+ s left/.exec(
      shown,
    );
    assert.ok(match, `the failover's pause says what it measures: ${shown}`);
    const seconds = Number(match[1]);
    const ttl = (await cluster.view()).config?.ttl ?? 0;
    assert.equal(match[2], leader, 'the lease read is the killed primary\u2019s');
    assert.ok(seconds > 0 && seconds < ttl + 5, `failover write pause ${seconds} s within (0, ttl ${ttl} s + 5 s): ${shown}`);
    text = await item.innerText();
    t.diagnostic(`failover after killing ${leader}: ${text.replace(/\n/g, ' | ')}`);
    await page.locator('#member-filter').selectOption(newLeader ?? '');
    await page.screenshot({ path: `${SCREENSHOTS}/ui-failover.png`, fullPage: true });
  });

  it("the proxy's /ui shows the cluster and where the proxy routes, read-only", async (t) => {
    const { cluster, page } = running();
    const chromium = browser ?? assert.fail('the browser did not start');
    const proxy = cluster.proxies[0] ?? assert.fail('no proxy started');
    const currentLeader = (await cluster.view()).leader?.name ?? assert.fail('no leader');
    const proxyPage = await chromium.newPage({ viewport: { width: 1280, height: 900 } });
    try {
      const openedAtMs = Date.now();
      await proxyPage.goto(`http://127.0.0.1:${proxy.apiPort}/ui`);
      await proxyPage.locator('#live.live').waitFor({ timeout: 10_000 });
      // The killed leader's key expired with its lease: the members the DCS has now.
      const members = (await cluster.view()).members.length;
      await waitUntil(async () => (await proxyPage.locator('#members tbody tr').count()) === members, {
        timeoutMs: 10_000,
        describe: `${members} member rows on the proxy's page`,
      });
      assert.equal(await proxyPage.locator('#leader').innerText(), currentLeader);
      assert.match(await proxyPage.locator('#opened').innerText(), /proxy proxy1/);
      // Its own route, as published in the DCS: primary traffic to the (new) leader.
      await proxyPage
        .locator('#proxies tr[data-proxy="proxy1"] td.route-primary')
        .filter({ hasText: currentLeader })
        .waitFor({ timeout: 15_000 });
      assert.match(await proxyPage.locator('#readonly').innerText(), /open a member's \/ui to act/);
      assert.equal(await proxyPage.locator('#members button').count(), 0, 'no restart/reinit buttons');
      assert.equal(await proxyPage.locator('#switchover').isDisabled(), true);
      await proxyPage.locator('#lock-source').filter({ hasText: 'TTL of the leader key' }).waitFor({ timeout: 10_000 });
      // The member's page shows the same proxy route after the failover.
      await page
        .locator('#proxies tr[data-proxy="proxy1"] td.route-primary')
        .filter({ hasText: currentLeader })
        .waitFor({ timeout: 15_000 });
      t.diagnostic(`proxy /ui: cluster, route to ${currentLeader} and lock shown ${Date.now() - openedAtMs} ms after opening`);
      await proxyPage.screenshot({ path: `${SCREENSHOTS}/ui-proxy.png`, fullPage: true });
    } finally {
      await proxyPage.close();
    }
  });
});
