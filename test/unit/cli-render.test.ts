// `pgwarden list` renders the reference cluster exactly like patronictl 3.0.2 does.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { historyTable } from '../../src/cli/commands/inspect.js';
import { renderMemberTable, renderTopology } from '../../src/cli/render.js';
import { summarizeCluster } from '../../src/core/cluster-summary.js';
import { fixtures, referenceView } from '../kit/reference-view.js';

const view = referenceView();

describe('member table', () => {
  it('matches patronictl list byte for byte', () => {
    const expected = readFileSync(new URL('patronictl-list.txt', fixtures), 'utf8').trimEnd();
    assert.equal(renderMemberTable('bench', summarizeCluster(view), 'pretty'), expected);
  });

  it('matches patronictl topology byte for byte', () => {
    const expected = readFileSync(new URL('patronictl-topology.txt', fixtures), 'utf8').trimEnd();
    assert.equal(renderTopology('bench', summarizeCluster(view)), expected);
  });

  it('builds the /cluster document like Patroni', () => {
    const summary = summarizeCluster(view);
    assert.deepEqual(summary.members[1], {
      name: 'node2',
      role: 'replica',
      state: 'running',
      api_url: 'http://127.0.0.1:28009/patroni',
      host: '127.0.0.1',
      port: 25433,
      timeline: 1,
      lag: 16777216,
    });
    assert.equal(summary.members[0]?.lag, undefined);
  });

  it('renders json, yaml and tsv with patronictl column names', () => {
    const json = JSON.parse(renderMemberTable('bench', summarizeCluster(view), 'json')) as Record<string, unknown>[];
    assert.deepEqual(json[0], { Cluster: 'bench', Member: 'node1', Host: '127.0.0.1:25432', Role: 'Leader', State: 'running', TL: 1 });
    assert.deepEqual(json[1]?.['Lag in MB'], 16);
    const tsv = renderMemberTable('bench', summarizeCluster(view), 'tsv').split('\n');
    assert.equal(tsv[0], 'Cluster\tMember\tHost\tRole\tState\tTL\tLag in MB');
    assert.match(renderMemberTable('bench', summarizeCluster(view), 'yaml'), /- Cluster: bench\n {2}Member: node1/);
  });

  it('renders history as patronictl does, in every format', () => {
    const withHistory = {
      ...view,
      history: [[1, 83886240, 'no recovery target specified', '2026-11-22T17:56:01.123456+00:00', 'node2'] as const],
    };
    assert.equal(
      historyTable(withHistory).split('\n')[1],
      '| TL |      LSN | Reason                       | Timestamp                        | New Leader |',
    );
    assert.deepEqual(JSON.parse(historyTable(withHistory, 'json')), [
      {
        TL: 1,
        LSN: 83886240,
        Reason: 'no recovery target specified',
        Timestamp: '2026-11-22T17:56:01.123456+00:00',
        'New Leader': 'node2',
      },
    ]);
    assert.equal(
      historyTable(withHistory, 'tsv').split('\n')[1],
      '1\t83886240\tno recovery target specified\t2026-11-22T17:56:01.123456+00:00\tnode2',
    );
  });

  it('shows the maintenance footer when paused', () => {
    const paused = summarizeCluster({ ...view, config: { ...view.config!, pause: true } });
    assert.match(renderMemberTable('bench', paused, 'pretty'), /\n Maintenance mode: on$/);
  });
});
