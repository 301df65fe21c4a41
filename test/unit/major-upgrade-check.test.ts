// The in-place major upgrade's preflight verdict (core/major-upgrade-check.ts) and POST /bin_dir/major_check.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { handleBinDir, type BinDirEndpoint } from '../../src/api/bin-dir.js';
import { autoConfNames } from '../../src/postgres/major-check.js';
import {
  linkNeedsBytes,
  majorCheckVerdict,
  renderCheckTable,
  type MajorCheckFacts,
  type ReplicaBinDirAnswer,
} from '../../src/core/major-upgrade-check.js';

const GIB = 1024 ** 3;

/** Facts of a 15 -> 17 upgrade that passes every check. */
const passing: MajorCheckFacts = {
  member: 'pg1',
  new_bin_dir: '/usr/lib/postgresql/17/bin',
  old_bin_dir: '/usr/lib/postgresql/15/bin',
  missing_tools: [],
  new_version_output: 'postgres (PostgreSQL) 17.2',
  old_major: 15,
  is_primary_running: true,
  encoding: 'UTF8',
  lc_collate: 'C.UTF-8',
  lc_ctype: 'C.UTF-8',
  data_checksums: true,
  install_user: 'postgres',
  new_share_dir: '/usr/share/postgresql/17',
  extensions: [{ database: 'app', name: 'plpgsql', version: '1.0', has_new_control: true }],
  data_dir: '/var/lib/postgresql/data',
  data_dir_bytes: 10 * GIB,
  free_bytes: 20 * GIB,
  same_filesystem: true,
  pg_upgrade_check: { ran: true, ok: true, output: '*Clusters are compatible*', seconds: 3.2 },
  schema_restore: { ran: true, ok: true, output: '40 statements', seconds: 1.1 },
};

const outcome = (facts: MajorCheckFacts, check: string, to = 17, allowSameMajor = false): string | undefined =>
  majorCheckVerdict(facts, { to, allowSameMajor }).rows.find((row) => row.check === check)?.outcome;

describe('majorCheckVerdict', () => {
  it('passes a 15 -> 17 upgrade whose every fact is good, with a row per check', () => {
    const verdict = majorCheckVerdict(passing, { to: 17, allowSameMajor: false });
    assert.equal(verdict.isOk, true, verdict.refusals.join('; '));
    assert.deepEqual(
      verdict.rows.map((row) => row.check),
      [
        'tools',
        'new major',
        'old cluster',
        'pg_upgrade --check',
        'ALTER SYSTEM',
        'extensions',
        'disk',
        'hard links',
        'replicas',
        'schema-only restore',
      ],
    );
  });

  it("carries ALTER SYSTEM's settings over, and refuses one the new server does not know", () => {
    assert.equal(outcome({ ...passing, alter_system: { names: [], unknown: [] } }, 'ALTER SYSTEM'), 'ok');
    assert.equal(outcome({ ...passing, alter_system: undefined }, 'ALTER SYSTEM'), 'skipped');
    const refused = majorCheckVerdict(
      { ...passing, alter_system: { names: ['work_mem', 'vacuum_defer_cleanup_age'], unknown: ['vacuum_defer_cleanup_age'] } },
      { to: 17, allowSameMajor: false },
    );
    assert.match(refused.refusals.join('\n'), /pg1: ALTER SYSTEM: .*sets vacuum_defer_cleanup_age, unknown to .*RESET it first/);
    assert.equal(outcome({ ...passing, alter_system: { names: ['work_mem'], unknown: [], error: 'exit 1' } }, 'ALTER SYSTEM'), 'refused');
    assert.deepEqual(autoConfNames("# Do not edit\nwork_mem = '7MB'\nWork_Mem = '8MB'\npg_stat_statements.max = '500'\n"), [
      'work_mem',
      'pg_stat_statements.max',
    ]);
  });

  it('refuses missing tools, naming them', () => {
    const verdict = majorCheckVerdict({ ...passing, missing_tools: ['pg_upgrade', 'vacuumdb'] }, { to: 17, allowSameMajor: false });
    assert.equal(verdict.isOk, false);
    assert.match(verdict.refusals.join('\n'), /pg1: tools: .*lacks pg_upgrade, vacuumdb/);
  });

  it('refuses a bin dir of another major than --to, an older major, and an unreadable version', () => {
    assert.equal(outcome(passing, 'new major', 16), 'refused');
    assert.equal(outcome({ ...passing, new_version_output: 'postgres (PostgreSQL) 14.9' }, 'new major', 14), 'refused');
    assert.equal(
      outcome({ ...passing, new_version_output: undefined, new_version_error: 'libpq.so.5: not found' }, 'new major'),
      'refused',
    );
  });

  it('refuses the same major unless --allow-same-major (the test path), then warns', () => {
    const same = { ...passing, new_version_output: 'postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)' };
    const refused = majorCheckVerdict(same, { to: 15, allowSameMajor: false });
    assert.equal(refused.isOk, false);
    assert.match(refused.refusals.join('\n'), /--allow-same-major/);
    const allowed = majorCheckVerdict(same, { to: 15, allowSameMajor: true });
    assert.equal(allowed.isOk, true, allowed.refusals.join('; '));
    assert.equal(allowed.rows.find((row) => row.check === 'new major')?.outcome, 'warning');
  });

  it('refuses when the member is not a running primary', () => {
    assert.equal(outcome({ ...passing, is_primary_running: false }, 'old cluster'), 'refused');
  });

  it("refuses a failed pg_upgrade --check and shows pg_upgrade's own output; a skipped one is not a pass", () => {
    const facts = {
      ...passing,
      pg_upgrade_check: {
        ran: true,
        ok: false,
        output: 'Checking for presence of required libraries fatal\nloadable_libraries.txt:\ncould not load library "$libdir/pgx"',
      },
    };
    const verdict = majorCheckVerdict(facts, { to: 17, allowSameMajor: false });
    assert.equal(verdict.isOk, false);
    assert.match(renderCheckTable(verdict.rows), /\| could not load library "\$libdir\/pgx"/);
    assert.equal(outcome({ ...passing, pg_upgrade_check: { ran: false, skipped: 'lacks pg_upgrade' } }, 'pg_upgrade --check'), 'skipped');
  });

  it('refuses an extension without a control file in the new share directory, naming it and its database', () => {
    const facts = {
      ...passing,
      extensions: [...passing.extensions, { database: 'app', name: 'postgis', version: '3.4.2', has_new_control: false }],
    };
    const verdict = majorCheckVerdict(facts, { to: 17, allowSameMajor: false });
    assert.equal(verdict.isOk, false);
    assert.match(verdict.refusals.join('\n'), /postgis 3\.4\.2 \(database app\)/);
  });

  it('refuses too little free disk for --link, warns when a copy would not fit, refuses different file systems', () => {
    assert.equal(outcome({ ...passing, free_bytes: linkNeedsBytes(10 * GIB) - 1 }, 'disk'), 'refused');
    assert.equal(outcome({ ...passing, free_bytes: 5 * GIB }, 'disk'), 'warning');
    assert.equal(outcome({ ...passing, data_dir_bytes: undefined }, 'disk'), 'refused');
    assert.equal(outcome({ ...passing, same_filesystem: false }, 'hard links'), 'refused');
    assert.equal(linkNeedsBytes(1024), 64 * 1024 * 1024);
  });

  it('refuses a replica whose host lacks NEW, lacks an agent tool, holds another major or did not answer', () => {
    const report = (missing: string[], version?: string) => ({
      bin_dir: passing.new_bin_dir,
      missing,
      current_bin_dir: passing.old_bin_dir,
      ...(version !== undefined ? { version_output: version } : {}),
    });
    const verdictWith = (answers: [string, ReplicaBinDirAnswer][]) =>
      majorCheckVerdict(passing, { to: 17, allowSameMajor: false, replicas: new Map(answers) });
    const ok = verdictWith([['pg2', report([], 'postgres (PostgreSQL) 17.2')]]);
    assert.equal(ok.isOk, true, ok.refusals.join('; '));
    assert.match(ok.rows.find((row) => row.check === 'replicas')!.detail, /pg2 17\.2/);
    const refused = verdictWith([
      ['pg2', report(['pg_rewind'], 'postgres (PostgreSQL) 17.2')],
      ['pg3', report([], 'postgres (PostgreSQL) 16.6')],
      ['pg4', { error: '0: connect ECONNREFUSED' }],
      ['pg5', report(['postgres', 'initdb', 'pg_controldata', 'pg_basebackup', 'pg_rewind'])],
    ]);
    assert.equal(refused.isOk, false);
    const text = refused.refusals.join('\n');
    assert.match(text, /pg2: .*lacks pg_rewind/);
    assert.match(text, /pg3: .*holds PostgreSQL 16\.6, the primary's holds 17/);
    assert.match(text, /pg4 did not answer/);
    assert.match(text, /pg5: .*lacks postgres, initdb/);
    assert.equal(outcome(passing, 'replicas'), 'skipped', 'replicas not asked: skipped, not passed');
  });

  it('refuses a failed schema-only restore', () => {
    assert.equal(
      outcome(
        { ...passing, schema_restore: { ran: true, ok: false, output: 'ERROR:  type "abstime" does not exist' } },
        'schema-only restore',
      ),
      'refused',
    );
  });
});

describe('POST /bin_dir/major_check', () => {
  const endpoint: BinDirEndpoint = {
    inspect: () => Promise.reject(new Error('not called')),
    use: () => Promise.reject(new Error('not called')),
    majorCheck: (dir) => Promise.resolve({ ...passing, new_bin_dir: dir }),
  };

  it('answers 200 with the facts for the bin dir asked about', async () => {
    const reply = await handleBinDir('/bin_dir/major_check', { bin_dir: '/opt/pg17/bin/' }, endpoint, 'pg1');
    assert.equal(reply.status, 200);
    assert.equal((JSON.parse(reply.body ?? '') as MajorCheckFacts).new_bin_dir, '/opt/pg17/bin');
  });

  it('answers 400 for a relative path and 501 when the server cannot run the check', async () => {
    assert.equal((await handleBinDir('/bin_dir/major_check', { bin_dir: 'pg17' }, endpoint, 'pg1')).status, 400);
    const withoutCheck: BinDirEndpoint = { inspect: endpoint.inspect.bind(endpoint), use: endpoint.use.bind(endpoint) };
    assert.equal((await handleBinDir('/bin_dir/major_check', { bin_dir: '/x' }, withoutCheck, 'pg1')).status, 501);
  });
});
