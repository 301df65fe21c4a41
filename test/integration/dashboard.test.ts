// The dashboard in a real browser (Debian's Chromium driven by playwright-core), on a real 3-node cluster: opened on a
// replica it shows three members and the leader; a switchover clicked on the page shows its new leader within 2 s of
// the DCS without a reload; a killed primary's failover appears in the page's timeline with its reason.
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { LocalCluster } from '../../src/local/local-cluster.js';
import { waitUntil } from '../../src/util/wait-until.js';
import { waitHealthy } from '../kit/cluster-kit.js';
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
  const running = (): { cluster: LocalCluster; page: Page } => ({
    cluster: cluster ?? assert.fail('the cluster did not start'),
    page: page ?? assert.fail('the browser did not start'),
  });
  const apiOf = (name: string): string => `http://127.0.0.1:${running().cluster.node(name).apiPort}`;
  const shownLeader = (): Promise<string> => running().page.locator('#leader').innerText();

  before(async () => {
    // With restapi.authentication: the page's actions must ask for the credentials, as the CLI needs them.
    cluster = await startTestCluster('uitest', { restAuth: true });
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
    assert.equal(prompts.length, 2, `asked for the user name and the password once: ${prompts.join(' / ')}`);
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

  it('a killed primary: the failover appears in the timeline with its reason', async (t) => {
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
    t.diagnostic(`failover after killing ${leader}: ${text.replace(/\n/g, ' | ')}`);
    await page.locator('#member-filter').selectOption(newLeader ?? '');
    await page.screenshot({ path: `${SCREENSHOTS}/ui-failover.png`, fullPage: true });
  });
});
