// Each safety rule is needed: with the lease fence and the fence process off (they would mask a missing rule), the full
// core keeps every invariant, and weakening one rule makes seeds fail. And the fence process is needed: without it a
// frozen or killed agent's primary stays writable beside the next one. The failing seeds are printed for replay.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { findFailingSeeds } from './seeds.js';
import type { SeedRunOptions } from './seed-variants.js';
import { SYNC_MODES } from './sync-modes.js';

const SEEDS = 15;

/** `all`: every seed must pass (a finding is a bug); otherwise the first failing seed is enough (seeds.ts). */
async function failingSeeds(
  options: SeedRunOptions,
  all = false,
): Promise<{ readonly seeds: number[]; readonly first: string | undefined }> {
  return findFailingSeeds(SEEDS, { withoutFence: true, withoutFenceProcess: true, ...options }, 'rules, fences off', all || undefined);
}

describe('safety rules are load-bearing (lease fence off)', () => {
  it('off: without the fence process, a frozen or killed agent leaves its primary writable beside the next one', async (context) => {
    const { seeds, first } = await failingSeeds({ sync: SYNC_MODES.off!, withoutFence: false, checksOneWritable: true });
    context.diagnostic(`failing seeds: ${seeds.join(', ')}; first: ${first ?? 'none'}`);
    assert.ok(seeds.length > 0, 'without the fence process two members must be writable at once in some seed');
  });

  for (const mode of ['off', 'quorum']) {
    it(`${mode}: the whole core keeps every invariant on its own`, async () => {
      const { seeds, first } = await failingSeeds({ sync: SYNC_MODES[mode]! }, true);
      assert.deepEqual(seeds, [], first);
    });
  }

  for (const mode of ['off', 'priority', 'quorum']) {
    it(`${mode}: without primary-safety, seeds fail`, async (context) => {
      const { seeds, first } = await failingSeeds({ sync: SYNC_MODES[mode]!, withoutRules: ['primary-safety'] });
      context.diagnostic(`failing seeds: ${seeds.join(', ')}; first: ${first ?? 'none'}`);
      assert.ok(seeds.length > 0, 'removing primary-safety must break an invariant or convergence');
    });
  }

  // Quorum votes from standbys still streaming: with positions read per request the model (no WAL in flight after a
  // primary dies) cannot show the loss; test/unit/core-sync.test.ts pins the rule.
  it('priority: replicas that ignore the sync key in the race break the sync invariants', async (context) => {
    const { seeds, first } = await failingSeeds({
      sync: SYNC_MODES.priority!,
      mutation: 'replicas-ignore-sync-key',
    });
    context.diagnostic(`failing seeds: ${seeds.join(', ')}; first: ${first ?? 'none'}`);
    assert.ok(seeds.length > 0, 'ignoring the sync key in the race must be caught');
  });
});
