// Keys accepted for Patroni compatibility but not acted on are named in a warning, never silently ignored.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UNHONOURED_KEYS, unhonouredKeyWarnings } from '../../src/config/unhonoured-keys.js';

describe('accepted but unhonoured config keys', () => {
  it('warns once for each one present, saying why, and for none that is absent', () => {
    const warnings = unhonouredKeyWarnings(
      { postgresql: { pg_ctl_timeout: 60, pg_ident: [] }, tags: { nostream: true, replicatefrom: 'node1' }, watchdog: {} },
      'node1.yml',
    );
    assert.equal(warnings.length, 2);
    assert.match(warnings[0]!, /^postgresql\.pg_ident in node1\.yml is accepted for Patroni compatibility but not honoured: /);
    assert.match(warnings[1]!, /^postgresql\.pg_ctl_timeout/, 'replicatefrom and nostream are honoured now: no warning');
    assert.deepEqual(unhonouredKeyWarnings({}, 'x.yml'), []);
    assert.ok(UNHONOURED_KEYS.every(([, why]) => why.length > 10));
  });
});
