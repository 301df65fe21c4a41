// The pgwarden command line, parsed for real, against a fixed cluster view (no DCS, no network).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { buildProgram } from '../../src/cli/main.js';
import { fixtures, referenceView } from '../kit/reference-view.js';

const view = referenceView();

async function run(...args: string[]): Promise<string> {
  const lines: string[] = [];
  const program = buildProgram({
    loadCluster: async () => ({ scope: 'bench', view }),
    version: '0.0.0-test',
    out: (text) => lines.push(text),
  });
  program.configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  await program.parseAsync(['node', 'pgwarden', '-c', '/dev/null', ...args]);
  return lines.join('\n');
}

describe('pgwarden CLI formats', () => {
  it('topology draws the tree by default and prints rows with --format json', async () => {
    assert.equal(await run('topology'), readFileSync(new URL('patronictl-topology.txt', fixtures), 'utf8').trimEnd());
    const rows = JSON.parse(await run('topology', '-f', 'json')) as { Member: string; Role: string }[];
    assert.deepEqual(
      rows.map((row) => [row.Member, row.Role]),
      [
        ['node1', 'Leader'],
        ['node2', 'Replica'],
        ['node3', 'Replica'],
      ],
    );
  });

  it('show-config prints the same configuration as YAML and as JSON', async () => {
    const asYaml = parse(await run('show-config')) as unknown;
    const asJson = JSON.parse(await run('show-config', '--format', 'json')) as unknown;
    assert.deepEqual(asJson, asYaml);
    assert.deepEqual(asJson, view.config);
  });

  it('haproxy-config prints Patroni-style checks for every member from the DCS', async () => {
    const config = await run('haproxy-config', '--primary-port', '6000', '--replica-port', '6001', '--check-interval', '500');
    assert.match(config, /listen primary\n {2}bind 0\.0\.0\.0:6000\n {2}option httpchk GET \/primary/);
    assert.match(config, /listen replicas\n {2}bind 0\.0\.0\.0:6001\n {2}balance leastconn\n {2}option httpchk GET \/replica/);
    assert.match(config, /default-server inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions/);
    for (const name of ['node1', 'node2', 'node3']) {
      const member = view.members.find((candidate) => candidate.name === name)!;
      const conn = new URL(member.conn_url);
      const api = new URL(member.api_url);
      assert.ok(
        config.includes(`server ${name} ${conn.hostname}:${conn.port} check port ${api.port}`),
        `${name} is checked on its REST API port`,
      );
    }
    await assert.rejects(run('haproxy-config', '--primary-port', '70000'), /--primary-port expects a port number/);
  });

  it('refuses an unknown format and an unknown flag', async () => {
    await assert.rejects(run('topology', '-f', 'xml'), /Allowed choices are pretty, tsv, json, yaml/);
    await assert.rejects(run('show-config', '--format', 'tsv'), /Allowed choices are yaml, json/);
    await assert.rejects(run('list', '--bogus'), /unknown option '--bogus'/);
  });
});
