// The systemd units shipped in deploy/systemd keep the settings the README's safety argument relies on: the agent's
// unit signals only the agent (PostgreSQL and the fence outlive an agent crash), runs as postgres, leaves time for a
// clean demote and reloads with SIGHUP; the proxy's unit has the capabilities the kernel data path needs.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

const UNITS = new URL('../../../deploy/systemd/', import.meta.url);

/** The [Service] settings of a unit file: key -> values in order (a key may repeat). */
function serviceSettings(file: string): Map<string, string[]> {
  const settings = new Map<string, string[]>();
  let section = '';
  for (const raw of readFileSync(new URL(file, UNITS), 'utf8').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header !== null) {
      section = header[1]!;
      continue;
    }
    const [key, ...value] = line.split('=');
    if (section === 'Service' && key !== undefined) settings.set(key, [...(settings.get(key) ?? []), value.join('=')]);
  }
  return settings;
}

const one = (settings: Map<string, string[]>, key: string): string | undefined => settings.get(key)?.at(-1);

describe('systemd units', () => {
  it('the agent: KillMode=process, User=postgres, a stop timeout for a clean demote, SIGHUP reload, an environment file', () => {
    const agent = serviceSettings('pgwarden-agent@.service');
    assert.equal(one(agent, 'KillMode'), 'process', 'an agent crash must not take PostgreSQL and the fence down');
    assert.equal(one(agent, 'User'), 'postgres');
    assert.equal(one(agent, 'Restart'), 'on-failure');
    const stopSeconds = Number(one(agent, 'TimeoutStopSec'));
    assert.ok(stopSeconds >= 60 && stopSeconds <= 300, `TimeoutStopSec ${stopSeconds}`);
    assert.match(one(agent, 'ExecReload') ?? '', /kill -HUP \$MAINPID$/);
    assert.match(one(agent, 'ExecStart') ?? '', /^pgwarden agent \/etc\/pgwarden\/%i\.yml$/);
    assert.match(one(agent, 'EnvironmentFile') ?? '', /^-\/etc\/pgwarden\/%i\.env$/);
  });

  it('the proxy: CAP_NET_ADMIN (nft, conntrack) and CAP_NET_BIND_SERVICE as ambient capabilities, SIGHUP reload', () => {
    const proxy = serviceSettings('pgwarden-proxy.service');
    const ambient = (one(proxy, 'AmbientCapabilities') ?? '').split(/\s+/);
    assert.ok(ambient.includes('CAP_NET_ADMIN') && ambient.includes('CAP_NET_BIND_SERVICE'), ambient.join(' '));
    assert.notEqual(one(proxy, 'User'), 'root');
    assert.match(one(proxy, 'ExecStart') ?? '', /^pgwarden proxy /);
    assert.match(one(proxy, 'ExecReload') ?? '', /kill -HUP \$MAINPID$/);
  });
});
