// The rolling minor upgrade's pure parts: version parsing, preflight refusals, the step plan as a function of the
// observed cluster (a re-run after an interruption), the persisted bin_dir, the DCS record, and POST /bin_dir.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { handleBinDir, type BinDirEndpoint } from '../../src/api/bin-dir.js';
import {
  binDirProblems,
  effectiveBinDir,
  nextUpgradeStep,
  parseServerVersion,
  preflight,
  type BinDirReport,
  type UpgradeMember,
  type UpgradeTarget,
} from '../../src/core/minor-upgrade.js';
import { decodeUpgrade, encodeUpgrade } from '../../src/dcs/codec.js';
import { ClusterKeys } from '../../src/dcs/keys.js';
import { buildProgram } from '../../src/cli/main.js';
import type { UpgradeLedger } from '../../src/core/ports.js';
import type { UpgradeRecord } from '../../src/core/minor-upgrade.js';
import { referenceView } from '../kit/reference-view.js';

const NEW = '/opt/pg-15.18/bin';
const OLD = '/opt/pg-15.17/bin';
const TARGET: UpgradeTarget = { binDir: NEW, versionNum: 150018 };
const BOUNDS = { maxLagBytes: 10 * 1024 * 1024, maxTransactionSeconds: 60 };

function member(name: string, overrides: Partial<UpgradeMember> = {}): UpgradeMember {
  return {
    name,
    isLeader: false,
    isRunning: true,
    isStreaming: true,
    binDir: OLD,
    serverVersionNum: 150017,
    lagBytes: 0,
    isNoFailover: false,
    ...overrides,
  };
}

const leader = (name: string, overrides: Partial<UpgradeMember> = {}): UpgradeMember =>
  member(name, { isLeader: true, isStreaming: false, lagBytes: undefined, ...overrides });
const upgraded = { binDir: NEW, serverVersionNum: 150018 };

function report(overrides: Partial<BinDirReport> = {}): BinDirReport {
  return {
    bin_dir: NEW,
    version_output: 'postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)',
    missing: [],
    data_major: 15,
    current_bin_dir: OLD,
    ...overrides,
  };
}

const allReports = (members: readonly UpgradeMember[], overrides: Partial<BinDirReport> = {}): Map<string, BinDirReport> =>
  new Map(members.map((one) => [one.name, report({ ...(one.isLeader ? { oldest_transaction_seconds: 0 } : {}), ...overrides })]));

describe('parseServerVersion', () => {
  it('reads Debian, upstream and two-part versions', () => {
    assert.deepEqual(parseServerVersion('postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)'), {
      major: 15,
      minor: 18,
      versionNum: 150018,
      text: '15.18',
    });
    assert.equal(parseServerVersion('postgres (PostgreSQL) 17.2')?.versionNum, 170002);
    assert.equal(parseServerVersion('postgres (PostgreSQL) 16beta1')?.text, '16.0');
  });
  it('gives undefined for output that is not a PostgreSQL version', () => {
    assert.equal(parseServerVersion('bash: postgres: command not found'), undefined);
    assert.equal(parseServerVersion('postgres (PostgreSQL) 9.6.24'), undefined);
  });
});

describe('upgrade preflight', () => {
  const healthy = [leader('pg1'), member('pg2'), member('pg3')];

  it('passes a healthy cluster and names the target version', () => {
    const result = preflight({ members: healthy, reports: allReports(healthy), bounds: BOUNDS });
    assert.deepEqual(result.problems, []);
    assert.equal(result.target?.versionNum, 150018);
  });

  it('refuses a replica lagging more than the bound, with its lag and the flag to change it', () => {
    const members = [leader('pg1'), member('pg2', { lagBytes: 11 * 1024 * 1024 }), member('pg3')];
    const { problems } = preflight({ members, reports: allReports(members), bounds: BOUNDS });
    assert.deepEqual(problems, [
      'pg2: lags 11534336 bytes behind the primary (bound 10485760 bytes); wait for it or pass a larger --max-lag',
    ]);
  });

  it('refuses a replica that does not stream, and one whose lag is unknown', () => {
    const members = [leader('pg1'), member('pg2', { isStreaming: false }), member('pg3', { lagBytes: undefined })];
    const { problems } = preflight({ members, reports: allReports(members), bounds: BOUNDS });
    assert.equal(problems.length, 2);
    assert.match(problems[0]!, /pg2: is not streaming/);
    assert.match(problems[1]!, /pg3: lags an unknown amount/);
  });

  it('refuses an old transaction on the primary', () => {
    const reports = allReports(healthy);
    reports.set('pg1', report({ oldest_transaction_seconds: 125.4 }));
    const { problems } = preflight({ members: healthy, reports, bounds: BOUNDS });
    assert.deepEqual(problems, [
      'pg1: a transaction has been open for 125 s (bound 60 s): the switchover would cut it; end it or pass a larger --max-transaction-age',
    ]);
  });

  it('refuses new binaries of another major, against the running server and the data directory', () => {
    const reports = allReports(healthy, { version_output: 'postgres (PostgreSQL) 17.2' });
    const { problems, target } = preflight({ members: healthy, reports, bounds: BOUNDS });
    assert.equal(problems.length, 6);
    assert.match(problems[0]!, /pg1: \/opt\/pg-15\.18\/bin holds PostgreSQL 17\.2, but the data directory is PostgreSQL 15/);
    assert.match(problems[1]!, /pg1: runs PostgreSQL 15\.17 and \/opt\/pg-15\.18\/bin holds 17\.2: not the same major/);
    assert.equal(target?.major, 17);
  });

  it('names each tool the new bin_dir lacks, per member', () => {
    const reports = allReports(healthy);
    reports.set('pg3', report({ missing: ['pg_controldata', 'pg_basebackup', 'pg_rewind'] }));
    const { problems } = preflight({ members: healthy, reports, bounds: BOUNDS });
    assert.equal(problems.length, 1);
    assert.match(problems[0]!, /^pg3: \/opt\/pg-15\.18\/bin lacks pg_controldata, pg_basebackup, pg_rewind \(the agent runs/);
  });

  it('refuses when postgres --version fails, quoting why, and when members see different versions', () => {
    const reports = allReports(healthy);
    reports.set('pg2', report({ version_output: undefined, version_error: 'error while loading shared libraries: libicuuc.so.60' }));
    reports.set('pg3', report({ version_output: 'postgres (PostgreSQL) 15.16' }));
    const { problems, target } = preflight({ members: healthy, reports, bounds: BOUNDS });
    assert.match(problems[0]!, /pg2: .*postgres --version did not give a PostgreSQL version \(error while loading shared libraries/);
    assert.match(problems[1]!, /different versions on different members \(pg1: 15\.18, pg3: 15\.16\)/);
    assert.equal(target, undefined);
  });

  it('refuses a cluster without a leader, and a member that could not be asked', () => {
    const members = [member('pg1'), member('pg2')];
    const reports = new Map<string, BinDirReport | { error: string }>([
      ['pg1', report()],
      ['pg2', { error: '0: connect ECONNREFUSED' }],
    ]);
    const { problems } = preflight({ members, reports, bounds: BOUNDS });
    assert.match(problems[0]!, /no leader/);
    assert.match(problems[1]!, /pg2: could not check the new binaries \(0: connect ECONNREFUSED\)/);
  });

  it('binDirProblems passes a complete bin_dir of the same major', () => {
    assert.deepEqual(binDirProblems('pg1', report()), []);
  });
});

describe('upgrade step plan', () => {
  it('goes replica by replica (by name), then switches over, then is done once the old primary rejoined upgraded', () => {
    let members = [member('pg3'), leader('pg1'), member('pg2')];
    assert.deepEqual(nextUpgradeStep(members, TARGET), { kind: 'restart', member: 'pg2', why: 'a replica on the old binaries' });
    members = [member('pg3'), leader('pg1'), member('pg2', upgraded)];
    assert.deepEqual(nextUpgradeStep(members, TARGET), { kind: 'restart', member: 'pg3', why: 'a replica on the old binaries' });
    members = [member('pg3', upgraded), leader('pg1'), member('pg2', upgraded)];
    assert.deepEqual(nextUpgradeStep(members, TARGET), { kind: 'switchover', from: 'pg1', to: 'pg2' });
    // Right after the switchover: the old primary is a replica that does not stream yet.
    members = [member('pg3', upgraded), member('pg1', { ...upgraded, isStreaming: false }), leader('pg2', upgraded)];
    assert.deepEqual(nextUpgradeStep(members, TARGET), { kind: 'waitStreaming', member: 'pg1' });
    members = [member('pg3', upgraded), member('pg1', upgraded), leader('pg2', upgraded)];
    assert.deepEqual(nextUpgradeStep(members, TARGET), { kind: 'done' });
  });

  it('restarts the old primary when it rejoined on its old binaries', () => {
    const members = [member('pg1'), leader('pg2', upgraded), member('pg3', upgraded)];
    assert.deepEqual(nextUpgradeStep(members, TARGET), { kind: 'restart', member: 'pg1', why: 'a replica on the old binaries' });
  });

  it('a member pointed at the new bin_dir but still on the old server (an interrupted restart) is restarted again', () => {
    const members = [leader('pg1'), member('pg2', { binDir: NEW })];
    assert.equal(nextUpgradeStep(members, TARGET).kind, 'restart');
  });

  it('waits for a replica that does not stream before touching another', () => {
    const members = [leader('pg1'), member('pg2'), member('pg3', { isRunning: false, isStreaming: false })];
    assert.deepEqual(nextUpgradeStep(members, TARGET), { kind: 'waitStreaming', member: 'pg3' });
  });

  it('switches over only to a replica without nofailover, and is blocked without one', () => {
    const members = [leader('pg1'), member('pg2', { ...upgraded, isNoFailover: true }), member('pg3', upgraded)];
    assert.deepEqual(nextUpgradeStep(members, TARGET), { kind: 'switchover', from: 'pg1', to: 'pg3' });
    const none = [leader('pg1'), member('pg2', { ...upgraded, isNoFailover: true })];
    assert.equal(nextUpgradeStep(none, TARGET).kind, 'blocked');
  });

  it('restarts a lone primary in place, and is blocked without a leader', () => {
    assert.equal(nextUpgradeStep([leader('pg1')], TARGET).kind, 'restart');
    assert.deepEqual(nextUpgradeStep([member('pg1'), member('pg2')], TARGET), { kind: 'blocked', reason: 'the cluster has no leader' });
  });
});

describe('the bin_dir an agent starts with', () => {
  const persisted = { bin_dir: NEW, overrides: OLD, set_at: '2026-12-07T10:00:00Z' };
  it('is the persisted one while the config file still says what it said then', () => {
    assert.deepEqual(effectiveBinDir(OLD, persisted), { binDir: NEW, source: 'persisted' });
  });
  it("is the config file's once it changed since", () => {
    assert.deepEqual(effectiveBinDir('/opt/other/bin', persisted), { binDir: '/opt/other/bin', source: 'config-changed' });
    assert.deepEqual(effectiveBinDir(OLD, undefined), { binDir: OLD, source: 'config' });
  });
});

describe('the upgrade record in the DCS', () => {
  it('round-trips, and a value that is not one reads as undefined', () => {
    const record = { kind: 'minor' as const, bin_dir: NEW, version: '15.18', version_num: 150018, started: 'now', steps: ['a'] };
    assert.deepEqual(decodeUpgrade(encodeUpgrade(record)), record);
    assert.equal(decodeUpgrade('{"kind":"major"}'), undefined);
    assert.equal(decodeUpgrade('not json'), undefined);
  });
  it('lives under the cluster prefix and wakes watchers (a major upgrade holds writes through it)', () => {
    const keys = new ClusterKeys('/service', 'demo');
    assert.equal(keys.upgrade, '/service/demo/upgrade');
    assert.equal(keys.isControlKey(keys.upgrade), true, "a major upgrade's hold of writes wakes the proxies");
  });
});

describe('POST /bin_dir and /bin_dir/check', () => {
  function endpoint(found: BinDirReport): BinDirEndpoint & { used: string[] } {
    const used: string[] = [];
    return { used, inspect: (dir) => Promise.resolve({ ...found, bin_dir: dir }), use: (dir) => Promise.resolve(void used.push(dir)) };
  }

  it('refuses a body without an absolute bin_dir, or with unknown fields', async () => {
    const target = endpoint(report());
    assert.equal((await handleBinDir('/bin_dir', { bin_dir: 'relative/bin' }, target, 'pg1')).status, 400);
    assert.equal((await handleBinDir('/bin_dir', { bin_dir: NEW, restart: true }, target, 'pg1')).status, 400);
    assert.equal((await handleBinDir('/bin_dir', [], target, 'pg1')).status, 400);
    assert.equal((await handleBinDir('/bin_dir/other', { bin_dir: NEW }, target, 'pg1')).status, 404);
    assert.equal((await handleBinDir('/bin_dir', { bin_dir: NEW }, undefined, 'pg1')).status, 501);
    assert.deepEqual(target.used, []);
  });

  it('/check reports without switching; /bin_dir switches a complete bin_dir and refuses one lacking tools (409)', async () => {
    const good = endpoint(report());
    const checked = await handleBinDir('/bin_dir/check', { bin_dir: `${NEW}/` }, good, 'pg1');
    assert.equal(checked.status, 200);
    assert.equal((JSON.parse(checked.body!) as BinDirReport).bin_dir, NEW);
    assert.deepEqual(good.used, []);
    const switched = await handleBinDir('/bin_dir', { bin_dir: NEW }, good, 'pg1');
    assert.equal(switched.status, 200, switched.body);
    assert.deepEqual(good.used, [NEW]);
    const lacking = endpoint(report({ missing: ['pg_rewind'] }));
    const refused = await handleBinDir('/bin_dir', { bin_dir: NEW }, lacking, 'pg1');
    assert.equal(refused.status, 409);
    assert.match(refused.body!, /pg1: \/opt\/pg-15\.18\/bin lacks pg_rewind/);
    assert.deepEqual(lacking.used, []);
  });
});

describe('pgwarden upgrade: usage and the record in progress (no network)', () => {
  const inProgress: UpgradeRecord = { kind: 'minor', bin_dir: NEW, version: '15.18', version_num: 150018, started: 'then', steps: ['one'] };

  async function run(record: UpgradeRecord | undefined, ...args: string[]): Promise<{ lines: string[]; deleted: number }> {
    const lines: string[] = [];
    let deleted = 0;
    let stored = record;
    const ledger: UpgradeLedger = {
      readUpgrade: () => Promise.resolve(stored === undefined ? undefined : { record: stored, revision: '7' }),
      writeUpgrade: () => Promise.reject(new Error('no write expected')),
      deleteUpgrade: () => {
        deleted += 1;
        stored = undefined;
        return Promise.resolve();
      },
    };
    const program = buildProgram({
      loadCluster: () => Promise.resolve({ scope: 'bench', view: referenceView() }),
      version: '0.0.0-test',
      out: (text) => lines.push(text),
      openUpgradeLedger: () => Promise.resolve({ ledger, close: () => Promise.resolve() }),
    });
    program.configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
    await program.parseAsync(['node', 'pgwarden', '-c', '/dev/null', 'upgrade', ...args]);
    return { lines, deleted };
  }

  it('refuses a call without --minor, a bad --max-lag or --max-transaction-age, and a relative --bin-dir', async () => {
    await assert.rejects(run(undefined, '--bin-dir', NEW), /upgrade needs --minor/);
    await assert.rejects(run(undefined, '--minor', '--bin-dir', NEW, '--max-lag', 'lots'), /--max-lag expects a size/);
    await assert.rejects(
      run(undefined, '--minor', '--bin-dir', NEW, '--max-transaction-age', '-1'),
      /--max-transaction-age expects seconds/,
    );
    await assert.rejects(run(undefined, '--minor', '--bin-dir', 'bin'), /--bin-dir must be an absolute path/);
    await assert.rejects(run(undefined, '--minor'), /upgrade --minor needs --bin-dir/);
  });

  it('refuses another --bin-dir while an upgrade is in progress, naming it and how to go on', async () => {
    await assert.rejects(run(inProgress, '--minor', '--bin-dir', OLD), (error: Error & { context?: { hint?: string } }) => {
      assert.match(error.message, /an upgrade to \/opt\/pg-15\.18\/bin \(15\.18\) is in progress since then/);
      assert.match(error.context?.hint ?? '', /--bin-dir \/opt\/pg-15\.18\/bin to finish it, or pgwarden upgrade --abort/);
      return true;
    });
  });

  it('--abort deletes the record in progress, and says so when there is none', async () => {
    const aborted = await run(inProgress, '--abort');
    assert.equal(aborted.deleted, 1);
    assert.match(aborted.lines.join('\n'), /Forgot the upgrade to 15\.18/);
    const none = await run(undefined, '--abort');
    assert.equal(none.deleted, 0);
    assert.deepEqual(none.lines, ['No upgrade in progress']);
  });
});
