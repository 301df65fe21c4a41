import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { trimWorkingSet } from '../../src/util/working-set.js';

test('the working-set trim shrinks the resident set and the process keeps running its code and data', () => {
  const result = trimWorkingSet();
  assert.ok(!('unavailable' in result), `addon unavailable: ${'unavailable' in result ? result.unavailable : ''}`);
  assert.ok(result.rssAfterMb < result.rssBeforeMb, `RSS ${result.rssBeforeMb} MB -> ${result.rssAfterMb} MB`);
  // Unmapped pages come back from the file on use: code, builtins' sources and ICU data all still work.
  assert.equal(createHash('sha256').update('pgwarden').digest('hex').length, 64);
  assert.equal(new Intl.NumberFormat('de-DE').format(1234.5), '1.234,5');
  assert.deepEqual(JSON.parse(JSON.stringify({ a: [1, 2] })), { a: [1, 2] });
  const again = trimWorkingSet();
  assert.ok(!('unavailable' in again));
});
