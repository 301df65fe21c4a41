// The pgwarden command line, parsed for real, against a fixed cluster view (no DCS, no network).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { buildProgram } from '../../src/cli/main.js';
import { buildClusterView } from '../../src/dcs/codec.js';
import { ClusterKeys } from '../../src/dcs/keys.js';

const fixtures = new URL('../../../test/fixtures/', import.meta.url);
const dump = JSON.parse(readFileSync(new URL('etcd-get-prefix.decoded.json', fixtures), 'utf8')) as { key: string; value: string; mod_revision: number; create_revision: number; lease_hex: string }[];
const view = buildClusterView(
  new ClusterKeys('/service/', 'bench'),
  dump.map((kv) => ({ key: kv.key, value: kv.value, modRevision: String(kv.mod_revision), createRevision: String(kv.create_revision), lease: kv.lease_hex })),
  '18',
);

async function run(...args: string[]): Promise<string> {
  const lines: string[] = [];
  const program = buildProgram({ loadCluster: async () => ({ scope: 'bench', view }), version: '0.0.0-test', out: (text) => lines.push(text) });
  program.configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  await program.parseAsync(['node', 'pgwarden', '-c', '/dev/null', ...args]);
  return lines.join('\n');
}

describe('pgwarden CLI formats', () => {
  it('topology draws the tree by default and prints rows with --format json', async () => {
    assert.equal(await run('topology'), readFileSync(new URL('patronictl-topology.txt', fixtures), 'utf8').trimEnd());
    const rows = JSON.parse(await run('topology', '-f', 'json')) as { Member: string; Role: string }[];
    assert.deepEqual(rows.map((row) => [row.Member, row.Role]), [['node1', 'Leader'], ['node2', 'Replica'], ['node3', 'Replica']]);
  });

  it('show-config prints the same configuration as YAML and as JSON', async () => {
    const asYaml = parse(await run('show-config')) as unknown;
    const asJson = JSON.parse(await run('show-config', '--format', 'json')) as unknown;
    assert.deepEqual(asJson, asYaml);
    assert.deepEqual(asJson, view.config);
  });

  it('refuses an unknown format and an unknown flag', async () => {
    await assert.rejects(run('topology', '-f', 'xml'), /Allowed choices are pretty, tsv, json, yaml/);
    await assert.rejects(run('show-config', '--format', 'tsv'), /Allowed choices are yaml, json/);
    await assert.rejects(run('list', '--bogus'), /unknown option '--bogus'/);
  });
});
