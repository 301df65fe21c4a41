// One seeded simulation run: faults (crashes, kills, freezes, partitions) and operator actions (maintenance mode,
// switchovers, scheduled restarts) drawn from the seed, then a quiet period in which the cluster must converge.
import { SimWorld, type SimNode, type SimOptions } from './sim-world.js';

export const NAMES = ['node1', 'node2', 'node3'];
const FIRST_FAULT_MS = 20_000;
const FAULTY_UNTIL_MS = 150_000;
export const END_MS = Number(process.env.PGWARDEN_SIM_END_MS ?? 210_000);

type Healer = { atMs: number; heal: () => void; isDcsOutage?: boolean };

const KINDS = [
  'crash',
  'kill',
  'kill-both',
  'freeze',
  'partition',
  'maintenance',
  'switchover',
  'scheduled-restart',
  'silent-host',
  'etcd-election',
] as const;
/** With failsafe_mode on, the whole DCS may go away too (the case failsafe exists for). */
const FAILSAFE_KINDS = [...KINDS, 'dcs-outage', 'dcs-outage'] as const;

function injectFault(world: SimWorld, healers: Healer[], kinds: readonly (typeof FAILSAFE_KINDS)[number][]): void {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(world.random() * items.length)]!;
  const node: SimNode = pick(world.nodes);
  const now = world.runtime.nowMs;
  const duration = 1000 + Math.floor(world.random() * 12_000);
  switch (pick(kinds)) {
    case 'crash':
      world.crashPostmaster(node);
      break;
    case 'kill':
    case 'kill-both':
      if (!node.process.isAlive) break;
      world.killAgent(node, world.random() < 0.5);
      healers.push({ atMs: now + duration, heal: () => world.restartAgent(node) });
      break;
    case 'freeze':
      if (node.process.isAlive) world.pauseAgent(node, duration);
      break;
    case 'partition':
      if (node.isPartitioned) break;
      world.partition(node, true);
      healers.push({ atMs: now + duration, heal: () => world.partition(node, false) });
      break;
    case 'maintenance':
      world.setMaintenance(true);
      healers.push({ atMs: now + duration, heal: () => world.setMaintenance(false) });
      break;
    case 'switchover':
      world.requestSwitchover(world.random() < 0.5 ? undefined : node.name);
      break;
    case 'scheduled-restart':
      world.scheduleRestart(node, 500 + Math.floor(world.random() * 3000), pick([undefined, 'primary', 'replica']));
      break;
    case 'silent-host':
      // Power loss or a network blackhole: nothing refuses, nothing answers; the heartbeat detector's case.
      if (node.isPartitioned) break;
      world.silence(node, true);
      healers.push({ atMs: now + duration, heal: () => world.silence(node, false) });
      break;
    case 'etcd-election':
      // etcd answers nobody for one to two and a half seconds (a leader election): writes may pause, nobody may fail over.
      if (healers.some((healer) => healer.isDcsOutage === true)) break;
      world.dcsOutage(true);
      healers.push({ atMs: now + 1000 + Math.floor(world.random() * 1500), heal: () => world.dcsOutage(false), isDcsOutage: true });
      break;
    case 'dcs-outage':
      if (healers.some((healer) => healer.isDcsOutage === true)) break;
      world.dcsOutage(true);
      // Up to several ttls: the leader must live on confirmed rounds alone.
      healers.push({ atMs: now + 2 * duration, heal: () => world.dcsOutage(false), isDcsOutage: true });
      break;
  }
}

/** Runs one seed to the end (or to its first invariant violation). */
export async function runSeed(seed: number, options: SimOptions = {}): Promise<SimWorld> {
  const world = new SimWorld(seed, NAMES, options);
  const healers: Healer[] = [];
  let nextFaultAt = FIRST_FAULT_MS;
  while (world.runtime.nowMs < END_MS) {
    const nextHeal = Math.min(...healers.map((healer) => healer.atMs), Number.POSITIVE_INFINITY);
    const next = Math.min(END_MS, nextHeal, nextFaultAt < FAULTY_UNTIL_MS ? nextFaultAt : Number.POSITIVE_INFINITY);
    await world.runUntil(next);
    if (world.violations.length > 0) break;
    for (const healer of healers.filter((candidate) => candidate.atMs <= world.runtime.nowMs)) {
      healer.heal();
      healers.splice(healers.indexOf(healer), 1);
    }
    if (world.runtime.nowMs >= nextFaultAt && nextFaultAt < FAULTY_UNTIL_MS) {
      injectFault(world, healers, options.failsafeMode === true ? FAILSAFE_KINDS : KINDS);
      nextFaultAt = world.runtime.nowMs + 3000 + Math.floor(world.random() * 12_000);
    }
  }
  world.stop();
  return world;
}

export function describeRun(world: SimWorld, label: string, seed: number): string {
  return `${label}, seed ${seed} (replay: PGWARDEN_SIM_SEED=${seed}); violations: ${JSON.stringify(world.violations.slice(0, 3))}; last events:\n${world.events.slice(-25).join('\n')}`;
}
