// The Patroni key table (config/patroni-keys.ts) is the one source of docs/patroni-keys.md, of the keys the loader
// refuses or warns about, and of the names behind "unknown key ... did you mean": each checked here against the others.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import type { z } from 'zod';
import { parse, stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import {
  expandPath,
  keyCountsLine,
  PATRONI_KEYS,
  patroniKey,
  renderKeysDoc,
  renderKeysTable,
  tableChildren,
  type PatroniKey,
} from '../../src/config/patroni-keys.js';
import { configSchema } from '../../src/config/schema.js';
import { isPgwardenError } from '../../src/util/errors.js';

const fixture = readFileSync(new URL('../../../test/fixtures/patroni-node1.yml', import.meta.url), 'utf8');

/** The fixture (Patroni 3.0.2's node config) with `path` set to `value` (undefined deletes it). */
function withKey(path: string, value: unknown, base: string = fixture): string {
  const document = parse(base) as Record<string, unknown>;
  const parts = path.split('.');
  let node = document;
  for (const part of parts.slice(0, -1)) {
    if (typeof node[part] !== 'object' || node[part] === null) node[part] = {};
    node = node[part] as Record<string, unknown>;
  }
  if (value === undefined) delete node[parts[parts.length - 1]!];
  else node[parts[parts.length - 1]!] = value;
  return stringify(document);
}

function problems(yaml: string): string {
  try {
    parseConfig(yaml, 'test.yml');
  } catch (error) {
    assert.ok(isPgwardenError(error, 'PGW_CONFIG_INVALID'), `expected PGW_CONFIG_INVALID, got ${String(error)}`);
    return error.message;
  }
  assert.fail('config was accepted');
}

function warningsOf(yaml: string): string[] {
  return parseConfig(yaml, 'test.yml').warnings;
}

/** Every key path the schema reads: nested objects walked, a map or free value is one path. */
function schemaPaths(schema: z.ZodType, path: string[]): string[] {
  let current = schema;
  for (;;) {
    const type = current.def.type;
    if (type === 'optional' || type === 'default' || type === 'nullable')
      current = (current.def as unknown as { innerType: z.ZodType }).innerType;
    else if (type === 'pipe') current = (current.def as unknown as { in: z.ZodType }).in;
    else break;
  }
  if (current.def.type !== 'object') return [path.join('.')];
  const shape = (current as unknown as { shape: Record<string, z.ZodType> }).shape;
  return Object.entries(shape).flatMap(([key, child]) => [
    ...(path.length > 0 ? [path.join('.')] : []),
    ...schemaPaths(child, [...path, key]),
  ]);
}

const concretePaths = (entry: PatroniKey): string[] => expandPath(entry.path).filter((path) => !/[*<]/.test(path));

/** The shortest refused path at or above `path` whose value would be present: the one the loader names. */
function namedSection(path: string): string {
  const parts = path.split('.');
  for (let length = 1; length <= parts.length; length++) {
    const prefix = parts.slice(0, length).join('.');
    if (patroniKey(prefix)?.status === 'refused') return prefix;
  }
  return path;
}

/** A value for `path` the loader accepts as input, tried in turn (the schema types some keys). */
const CANDIDATE_VALUES: readonly unknown[] = ['x', 60, true, ['x'], {}];

describe('Patroni key table', () => {
  it('is the table in docs/patroni-keys.md, with its counts line', () => {
    const doc = readFileSync(new URL('../../../docs/patroni-keys.md', import.meta.url), 'utf8');
    assert.ok(
      doc.includes(`${renderKeysTable()}\n`) && renderKeysDoc(doc) === doc,
      'docs/patroni-keys.md differs from src/config/patroni-keys.ts: npm run build && node scripts/render-patroni-keys.mjs',
    );
    assert.ok(doc.includes(keyCountsLine()), `docs/patroni-keys.md lacks the counts line: ${keyCountsLine()}`);
    assert.equal([...doc.matchAll(/^\| `/gm)].length, PATRONI_KEYS.length, 'one table, one row per entry');
    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    assert.match(readme, /\(docs\/patroni-keys\.md\)/, 'the README links the table');
  });

  it('lists every key the schema reads, each path once', () => {
    const missing = [...new Set(schemaPaths(configSchema, []))].filter(
      (path) => patroniKey(path) === undefined && tableChildren(path.split('.')).names.length === 0,
    );
    assert.deepEqual(missing, []);
    const all = PATRONI_KEYS.flatMap((entry) => expandPath(entry.path));
    assert.deepEqual(
      all.filter((path, index) => all.indexOf(path) !== index),
      [],
    );
    assert.ok(PATRONI_KEYS.every((entry) => entry.note.length > 8 && !entry.note.endsWith('.')));
  });

  it('makes the config invalid for every refused key, with its path and what to do', () => {
    const samples: Record<string, unknown> = {
      'bootstrap.dcs.postgresql.create_replica_methods': ['wal_g'],
      'bootstrap.dcs.standby_cluster.create_replica_methods': ['pgbackrest'],
      'postgresql.remove_data_directory_on_rewind_failure': false,
      'postgresql.remove_data_directory_on_diverged_timelines': false,
    };
    let checked = 0;
    for (const entry of PATRONI_KEYS.filter((key) => key.status === 'refused')) {
      for (const path of concretePaths(entry)) {
        const base = path === 'bootstrap.dcs.postgresql.pg_hba' ? withKey('postgresql.pg_hba', undefined) : fixture;
        const message = problems(withKey(path, samples[path] ?? 'x', base));
        const section = namedSection(path);
        const note = patroniKey(section)!.note;
        if (path === 'bootstrap.dcs.standby_cluster.create_replica_methods')
          assert.match(
            message,
            /create_replica_methods lists pgbackrest: a standby leader is cloned with basebackup only; remove the other methods or the key/,
          );
        else assert.ok(message.includes(`${section} is not supported by pgwarden: ${note}`), `${path}: ${message}`);
        checked++;
      }
    }
    assert.ok(checked > 60, `${checked} refused paths checked`);
  });

  it('accepts the values of a refused key that pgwarden honours as written', () => {
    for (const [path, value] of [
      ['postgresql.create_replica_methods', ['basebackup']],
      ['bootstrap.dcs.standby_cluster.create_replica_methods', ['basebackup']],
      ['postgresql.remove_data_directory_on_rewind_failure', true],
      ['postgresql.remove_data_directory_on_diverged_timelines', true],
      // Local pg_hba lines win over the dynamic configuration's, in Patroni too.
      ['bootstrap.dcs.postgresql.pg_hba', ['host all all 10.0.0.0/8 scram-sha-256']],
    ] as const) {
      const yaml =
        path === 'bootstrap.dcs.standby_cluster.create_replica_methods'
          ? withKey('bootstrap.dcs.standby_cluster', { host: '10.0.0.9', port: 5432, create_replica_methods: value })
          : withKey(path, value);
      assert.deepEqual(
        warningsOf(yaml).filter((warning) => !warning.includes('holds passwords')),
        [],
        path,
      );
    }
  });

  it('warns about every warned key present, naming it with the reason, and loads', () => {
    const samples: Record<string, unknown> = { 'postgresql.basebackup': [{ 'max-rate': '100M' }], 'bootstrap.method': 'wal_e' };
    for (const entry of PATRONI_KEYS.filter((key) => key.status === 'warned')) {
      for (const path of concretePaths(entry)) {
        const candidates = path in samples ? [samples[path]] : CANDIDATE_VALUES;
        const base = path.startsWith('postgresql.authentication.rewind.')
          ? withKey('postgresql.authentication.rewind', { username: 'rewinder', password: 'x' })
          : path.startsWith('backup.')
            ? withKey('backup', { repository: '/var/lib/pgbackrest' })
            : fixture;
        const warnings = candidates
          .map((value) => {
            try {
              return warningsOf(withKey(path, value, base));
            } catch {
              return undefined;
            }
          })
          .find((found) => found !== undefined);
        assert.ok(warnings !== undefined, `${path}: no value of ${JSON.stringify(candidates)} loads`);
        const expected = `${path} in test.yml is accepted for Patroni compatibility but not honoured: ${entry.note}`;
        assert.ok(warnings.includes(expected), `${path}: ${JSON.stringify(warnings)}`);
        assert.ok(!warnings.some((warning) => warning.startsWith('unknown configuration key')), `${path} is a known key`);
      }
    }
    assert.deepEqual(
      warningsOf(withKey('postgresql.basebackup', [{ checkpoint: 'fast' }])).filter((warning) => !warning.includes('holds passwords')),
      [],
      'the options pgwarden uses anyway are not warned about',
    );
  });

  it('warns about unknown keys at any depth with a did-you-mean, and leaves free-form maps alone', () => {
    let yaml = withKey('bootstrap.dcs.postgresql.use_slot', true);
    yaml = withKey('bootstrap.dcs.loop_wiat', 5, yaml);
    yaml = withKey('postgresql.callbacks.on_strat', '/bin/true', yaml);
    yaml = withKey('log.levle', 'DEBUG', yaml);
    yaml = withKey('watchdog.safety_margn', 5, yaml);
    yaml = withKey('frobnicate', 1, yaml);
    yaml = withKey('postgresql.parameters.my_guc', 'x', yaml);
    yaml = withKey('tags.rack', 'r1', yaml);
    yaml = withKey('bootstrap.dcs.slots', { keep: { type: 'physical' } }, yaml);
    yaml = withKey('restapi.http_extra_headers', { 'X-Frame-Options': 'DENY' }, yaml);
    const unknown = warningsOf(yaml).filter((warning) => warning.startsWith('unknown configuration key'));
    assert.deepEqual(unknown, [
      'unknown configuration key log.levle in test.yml, ignored: did you mean log.level?',
      'unknown configuration key bootstrap.dcs.postgresql.use_slot in test.yml, ignored: did you mean bootstrap.dcs.postgresql.use_slots?',
      'unknown configuration key bootstrap.dcs.loop_wiat in test.yml, ignored: did you mean bootstrap.dcs.loop_wait?',
      'unknown configuration key postgresql.callbacks.on_strat in test.yml, ignored: did you mean postgresql.callbacks.on_start?',
      'unknown configuration key watchdog.safety_margn in test.yml, ignored: did you mean watchdog.safety_margin?',
      'unknown configuration key frobnicate in test.yml, ignored: remove it (docs/patroni-keys.md lists the keys pgwarden reads)',
    ]);
  });

  it('says what a missing required key is, in its own words', () => {
    assert.match(problems(withKey('restapi.listen', undefined)), /restapi\.listen is required: host:port the REST API listens on/);
    assert.match(problems(withKey('postgresql.data_dir', undefined)), /postgresql\.data_dir is required: the PostgreSQL data directory/);
    assert.match(problems(withKey('name', undefined)), /name is required: a name unique in the cluster/);
  });
});
