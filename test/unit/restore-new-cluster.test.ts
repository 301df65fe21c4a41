// `pgwarden restore --scope NEW` without processes: the checks of the new cluster's member configs, the bootstrap
// section written into them (it must load as bootstrap.method pgbackrest). The CLI flow runs in the integration test.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pgbackrestBootstrapOf, resolveBackup } from '../../src/config/backup.js';
import { planNewClusterRestore, type NewClusterMemberConfig, type NewClusterRestoreInput } from '../../src/core/restore-new-cluster.js';
import type { RestoreTarget } from '../../src/core/restore-target.js';
import { view } from '../sim/builders.js';

const REPO = '/var/lib/pgbackrest';
const member = (name: string, overrides: Partial<NewClusterMemberConfig> = {}): NewClusterMemberConfig => ({
  path: `/etc/pgwarden/${name}.yml`,
  name,
  scope: 'demo2',
  dataDir: `/data/${name}`,
  dataDirState: 'missing',
  backup: { repository: REPO, stanza: 'demo2' },
  ...overrides,
});
const target: RestoreTarget = { type: 'time', target: '2026-12-07 10:15:30+00', timeline: 2 };
const input = (overrides: Partial<NewClusterRestoreInput> = {}): NewClusterRestoreInput => ({
  sourceScope: 'demo',
  sourceBackup: { repository: REPO, stanza: 'demo' },
  newScope: 'demo2',
  members: [member('a'), member('b', { dataDirState: 'empty' })],
  newView: view({ initialize: undefined, members: [] }),
  target,
  ...overrides,
});
const problemsOf = (overrides: Partial<NewClusterRestoreInput>): readonly string[] => {
  const plan = planNewClusterRestore(input(overrides));
  return 'problems' in plan ? plan.problems : [];
};

describe('restore into a new cluster: the plan', () => {
  it('writes bootstrap.method pgbackrest with the source stanza, the target and its timeline, which the agent loads', () => {
    const plan = planNewClusterRestore(input());
    assert.ok(!('problems' in plan), JSON.stringify(plan));
    assert.deepEqual(plan.bootstrap, {
      method: 'pgbackrest',
      pgbackrest: { stanza: 'demo', target_time: '2026-12-07 10:15:30+00', target_timeline: 2 },
    });
    assert.deepEqual(plan.steps, [
      'write bootstrap.method: pgbackrest (stanza demo, time 2026-12-07 10:15:30+00 on timeline 2) into /etc/pgwarden/a.yml, /etc/pgwarden/b.yml',
      'start the agents of demo2: the first to bootstrap (e.g. a) restores the stanza to the target and is promoted',
      'b clones from it',
      'demo2 archives into stanza demo2; demo is not touched',
    ]);
    // The agent reads it back as the restore it means.
    const settings = resolveBackup({ tool: 'pgbackrest', repository: REPO }, 'demo2', 'a', '/data/a');
    const bootstrap = pgbackrestBootstrapOf(plan.bootstrap.pgbackrest, settings, '/data/a');
    assert.deepEqual(bootstrap.argv.slice(2), [
      '--stanza=demo',
      '--pg1-path=/data/a',
      '--type=time',
      '--target=2026-12-07 10:15:30+00',
      '--target-action=promote',
      '--target-timeline=2',
      'restore',
    ]);
  });

  it('other targets: lsn, restore point name, immediate', () => {
    const keysOf = (restoreTarget: RestoreTarget): unknown => {
      const plan = planNewClusterRestore(input({ target: restoreTarget }));
      return 'problems' in plan ? plan.problems : plan.bootstrap.pgbackrest;
    };
    assert.deepEqual(keysOf({ type: 'lsn', target: '0/3000060', timeline: 'latest' }), {
      stanza: 'demo',
      target_lsn: '0/3000060',
      target_timeline: 'latest',
    });
    assert.deepEqual(keysOf({ type: 'name', target: 'before_drop' }), { stanza: 'demo', target_name: 'before_drop' });
    assert.deepEqual(keysOf({ type: 'immediate', timeline: 'current' }), { stanza: 'demo', immediate: true, target_timeline: 'current' });
  });

  it('refuses what would be unsafe, naming the file and what to change', () => {
    assert.deepEqual(problemsOf({ newScope: 'demo', members: [member('a', { scope: 'demo' })] }), [
      "--scope demo is the source cluster's own scope: leave --scope out to restore in place",
    ]);
    assert.deepEqual(problemsOf({ members: [] }), ['give the new cluster its members: --member-config <file> for each (its agent config)']);
    assert.deepEqual(problemsOf({ members: [member('a', { scope: 'other', dataDirState: 'not-empty' })] }), [
      '/etc/pgwarden/a.yml (member a) has scope other, not demo2: set scope: demo2 in it',
      '/etc/pgwarden/a.yml (member a): its data dir /data/a is not empty: a member is restored into an empty or missing data dir only',
    ]);
    assert.match(
      problemsOf({ members: [member('a', { backup: { repository: REPO, stanza: 'demo' } })] }).join('\n'),
      /backup\.stanza demo is the source cluster's: .*split brain in the archive; remove backup\.stanza \(default: the scope demo2\)/,
    );
    assert.match(
      problemsOf({ members: [member('a', { backup: { repository: '/elsewhere', stanza: 'demo2' } })] }).join('\n'),
      /backup\.repository is \/elsewhere, the source's is \/var\/lib\/pgbackrest/,
    );
    assert.match(
      problemsOf({ members: [member('a', { backup: undefined })] }).join('\n'),
      /has no backup: section: add one with repository \/var\/lib\/pgbackrest/,
    );
    assert.match(
      problemsOf({ members: [member('a'), member('a', { path: '/x.yml' })] }).join('\n'),
      /has the name or data dir of member a/,
    );
    assert.match(
      problemsOf({ members: [member('a'), member('b', { dataDir: '/data/a' })] }).join('\n'),
      /has the name or data dir of member a/,
    );
    assert.match(
      problemsOf({ members: [member('a'), member('b', { backup: { repository: REPO, stanza: 'x' } })] }).join('\n'),
      /the members archive into different stanzas \(demo2, x\)/,
    );
    assert.match(problemsOf({ sourceBackup: undefined }).join('\n'), /the source cluster's config \(-c\) has no backup: section/);
    assert.match(
      problemsOf({ newView: view({ members: [] }) }).join('\n'),
      /cluster demo2 already exists in the DCS \(its initialize key\): choose another scope, or remove it first/,
    );
    assert.match(problemsOf({ newScope: 'bad scope' }).join('\n'), /--scope "bad scope" may contain letters, digits/);
  });
});
