// The README's table of accepted-but-not-honoured keys is the table the config loader warns from.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { UNHONOURED_KEYS } from '../../src/config/unhonoured-keys.js';

describe('README', () => {
  it('lists exactly the keys config/unhonoured-keys.ts warns about, with the same reasons', () => {
    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    const section = readme.slice(
      readme.indexOf('### Keys accepted but not honoured yet'),
      readme.indexOf('\n## ', readme.indexOf('### Keys accepted')),
    );
    const rows = [...section.matchAll(/^\| `([^`]+)` +\| (.+?) +\|$/gm)].map((match) => [match[1], match[2]]);
    assert.deepEqual(
      rows,
      UNHONOURED_KEYS.map(([key, why]) => [key, why]),
    );
  });
});
