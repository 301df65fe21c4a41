// postmaster.pid parsing: the layout PostgreSQL 15 writes, the file while it is still being written, and junk.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parsePostmasterPid, postmasterPidFrom } from '../../src/postgres/postmaster-pid.js';

const READY = `4242
/var/lib/postgresql/15/main
1764623000
25432
/run/pgwarden/node1
127.0.0.1
  25432001         3
ready   
`;

describe('postmaster.pid', () => {
  it('reads every line of a running postmaster', () => {
    assert.deepEqual(parsePostmasterPid(READY), {
      pid: 4242,
      isStandaloneBackend: false,
      dataDir: '/var/lib/postgresql/15/main',
      startEpochSeconds: 1764623000,
      port: 25432,
      socketDir: '/run/pgwarden/node1',
      listenAddress: '127.0.0.1',
      status: 'ready',
    });
    assert.equal(parsePostmasterPid(READY.replace('ready   ', 'standby '))?.status, 'standby');
    assert.equal(postmasterPidFrom(READY), 4242);
  });

  it('takes a file cut short during start-up', () => {
    assert.deepEqual(parsePostmasterPid('4242\n/data\n'), {
      pid: 4242,
      isStandaloneBackend: false,
      dataDir: '/data',
      startEpochSeconds: undefined,
      port: undefined,
      socketDir: undefined,
      listenAddress: undefined,
      status: undefined,
    });
  });

  it('knows a single-user backend (negative PID) is no postmaster', () => {
    const file = parsePostmasterPid('-4242\n/data\n');
    assert.equal(file?.pid, 4242);
    assert.equal(file?.isStandaloneBackend, true);
    assert.equal(postmasterPidFrom('-4242\n/data\n'), undefined);
  });

  it('refuses files that do not start with a PID', () => {
    for (const text of ['', '\n', 'abc\n/data', '0\n/data', '12.5\n', ' \n4242'])
      assert.equal(parsePostmasterPid(text), undefined, JSON.stringify(text));
  });
});
