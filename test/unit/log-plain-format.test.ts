// Patroni's plain log layout: the default format, custom formats and dates, fields after the message, typos refused.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compilePlainFormat, PATRONI_PLAIN_FORMAT } from '../../src/util/plain-log-format.js';

const record = (fields = '') => ({
  level: 'info',
  time: new Date(2026, 10, 22, 17, 54, 29, 123),
  message: 'no action. I am (node1), the leader with the lock',
  member: 'node1',
  scope: 'batman',
  fields,
});

describe('plain log format', () => {
  it("writes Patroni's default line", () => {
    assert.equal(
      compilePlainFormat(PATRONI_PLAIN_FORMAT)(record()),
      '2026-11-22 17:54:29,123 INFO: no action. I am (node1), the leader with the lock',
    );
  });

  it('fills custom formats, dates and widths, and appends fields', () => {
    const format = compilePlainFormat('%(asctime)s [%(levelname)-8s] %(member)s/%(scope)s %(message)s', '%d.%m.%Y %H:%M');
    assert.equal(
      format({ ...record('error="boom"'), level: 'warn' }),
      '22.11.2026 17:54 [WARNING ] node1/batman no action. I am (node1), the leader with the lock error="boom"',
    );
  });

  it('refuses a placeholder it cannot fill, naming it', () => {
    assert.throws(() => compilePlainFormat('%(asctime)s %(levlname)s'), /%\(levlname\)s is not supported/);
  });
});
