// Parameters renamed or removed between PostgreSQL versions: a config written for one version renders for another.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { renderPostgresqlConf } from '../../src/postgres/conf-render.js';
import { adaptParametersToVersion } from '../../src/postgres/parameter-versions.js';

describe('parameters by PostgreSQL version', () => {
  it('rewrites wal_keep_segments as wal_keep_size (16 MB per segment) from PostgreSQL 13 on, and back before it', () => {
    const on15 = adaptParametersToVersion({ wal_keep_segments: 100, shared_buffers: '128MB' }, 15);
    assert.deepEqual(on15.parameters, { wal_keep_size: '1600MB', shared_buffers: '128MB' });
    assert.deepEqual(
      on15.changes.map((change) => [change.parameter, change.change, change.to?.parameter, change.to?.value]),
      [['wal_keep_segments', 'renamed', 'wal_keep_size', '1600MB']],
    );
    assert.deepEqual(adaptParametersToVersion({ wal_keep_size: '1GB' }, 12).parameters, { wal_keep_segments: 64 });
    assert.deepEqual(adaptParametersToVersion({ wal_keep_size: '100' }, 12).parameters, { wal_keep_segments: 7 });
    assert.deepEqual(adaptParametersToVersion({ wal_keep_size: '1GB' }, 13).changes, []);
  });

  it('keeps the name this version knows when both are given, and drops a value that cannot be converted', () => {
    const both = adaptParametersToVersion({ wal_keep_segments: 8, wal_keep_size: '2GB' }, 15);
    assert.deepEqual(both.parameters, { wal_keep_size: '2GB' });
    assert.equal(both.changes[0]?.change, 'superseded');
    const bad = adaptParametersToVersion({ wal_keep_segments: 'many' }, 15);
    assert.deepEqual([bad.parameters, bad.changes[0]?.change], [{}, 'removed']);
  });

  it('drops parameters the version removed and renames force_parallel_mode on 16', () => {
    const on15 = adaptParametersToVersion(
      { stats_temp_directory: '/tmp', operator_precedence_warning: 'on', vacuum_defer_cleanup_age: 0 },
      15,
    );
    assert.deepEqual(on15.parameters, { vacuum_defer_cleanup_age: 0 });
    assert.deepEqual(on15.changes.map((change) => change.parameter).sort(), ['operator_precedence_warning', 'stats_temp_directory']);
    assert.deepEqual(adaptParametersToVersion({ stats_temp_directory: '/tmp' }, 14).parameters, { stats_temp_directory: '/tmp' });
    assert.deepEqual(adaptParametersToVersion({ force_parallel_mode: 'on' }, 16).parameters, { debug_parallel_query: 'on' });
    assert.deepEqual(adaptParametersToVersion({ debug_parallel_query: 'on' }, 15).parameters, { force_parallel_mode: 'on' });
  });

  it("adapts pgwarden's own defaults too: PostgreSQL 12 gets wal_keep_segments, 15 wal_keep_size", () => {
    const render = (serverMajor: number): string =>
      renderPostgresqlConf({
        parameters: {},
        listenHost: '127.0.0.1',
        port: 5432,
        scope: 's',
        socketDir: '/tmp',
        replica: undefined,
        serverMajor,
      });
    assert.match(render(12), /^wal_keep_segments = '8'$/m);
    assert.doesNotMatch(render(12), /wal_keep_size/);
    assert.match(render(15), /^wal_keep_size = '128MB'$/m);
  });
});
