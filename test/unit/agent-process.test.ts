// The agent process: its shebang applies the settings of src/util/agent-process.ts, the startup check names what is
// missing, and the logger writes pino-shaped JSON lines (level label, ISO time, member, scope, fields, msg).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { AGENT_ENV, AGENT_NODE_FLAGS, missingAgentSettings } from '../../src/util/agent-process.js';

describe('agent process settings', () => {
  for (const entry of ['agent.ts', 'pgwarden.ts']) {
    it(`the shebang of ${entry} (an agent runs from either) sets exactly AGENT_ENV and AGENT_NODE_FLAGS`, () => {
      const source = readFileSync(fileURLToPath(new URL(`../../../src/bin/${entry}`, import.meta.url)), 'utf8');
      const shebang = source.split('\n')[0]!;
      const env = Object.entries(AGENT_ENV).map(([name, value]) => `${name}=${value}`);
      assert.equal(shebang, `#!/usr/bin/env -S ${[...env, 'node', ...AGENT_NODE_FLAGS].join(' ')}`);
    });
  }

  it('names the missing settings; flags count whatever their value, from execArgv or NODE_OPTIONS', () => {
    assert.deepEqual(missingAgentSettings([], {}), [...Object.entries(AGENT_ENV).map(([n, v]) => `${n}=${v}`), ...AGENT_NODE_FLAGS]);
    assert.deepEqual(missingAgentSettings([...AGENT_NODE_FLAGS], { ...AGENT_ENV }), []);
    assert.deepEqual(
      missingAgentSettings(['--max-semi-space-size=4'], { UV_THREADPOOL_SIZE: '8', NODE_OPTIONS: '--v8-pool-size=2 --optimize_for_size' }),
      [],
    );
  });
});

describe('agent logger', () => {
  const loggerUrl = new URL('../../src/obs/logger.js', import.meta.url).href;
  const run = (level: string, body: string): string[] =>
    execFileSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { createLogger } from ${JSON.stringify(loggerUrl)}; const log = createLogger({ member: 'node1', scope: 'batman', level: ${JSON.stringify(level)} }); ${body}`,
      ],
      { encoding: 'utf8' },
    )
      .split('\n')
      .filter((line) => line !== '');

  it('writes one JSON line per event: level, time, member, scope, the fields, msg', () => {
    const [line] = run('INFO', `log.info({ actions: ['renewLeader'], lsn: 83886080n, error: new Error('boom') }, 'no action');`);
    const record = JSON.parse(line!) as Record<string, unknown>;
    assert.deepEqual(Object.keys(record), ['level', 'time', 'member', 'scope', 'actions', 'lsn', 'error', 'msg']);
    assert.equal(record.level, 'info');
    assert.match(String(record.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.deepEqual(
      [record.member, record.scope, record.actions, record.lsn, record.msg],
      ['node1', 'batman', ['renewLeader'], 83886080, 'no action'],
    );
    assert.equal((record.error as { message?: string }).message, 'boom');
  });

  it('drops events below the configured level (Patroni level names)', () => {
    const lines = run('WARNING', `log.debug({}, 'a'); log.info({}, 'b'); log.warn({}, 'c'); log.error({ x: 1 }, 'd');`);
    assert.deepEqual(
      lines.map((line) => {
        const record = JSON.parse(line) as { level: string; msg: string };
        return `${record.level}:${record.msg}`;
      }),
      ['warn:c', 'error:d'],
    );
  });
});
