// The in-memory DCS passes the same conformance suite as etcd, on a fake clock.
import { runDcsConformance } from '../../src/dcs/conformance.js';
import { MemoryDcs, MemoryDcsStore } from '../../src/dcs/memory/memory-dcs.js';
import { FakeClock } from '../kit/fake-clock.js';

const clock = new FakeClock();
const store = new MemoryDcsStore(clock);
let scopes = 0;

runDcsConformance('memory', () => ({
  ttlSeconds: 2,
  newScope: () => {
    const scope = `scope${++scopes}`;
    return (member: string) => new MemoryDcs(store, { namespace: '/service', scope, member });
  },
  advancePastTtl: async () => {
    clock.advance(2500);
    store.sweep();
  },
  unreachable: () => {
    const dcs = new MemoryDcs(store, { namespace: '/service', scope: 'unreachable', member: 'node9' });
    dcs.setReachable(false);
    return dcs;
  },
}));
