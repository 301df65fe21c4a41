// Where a data dir's fence listens and records its PID: beside the data dir, so one fence serves one data dir
// whichever agent process (an old one, a restarted one) feeds it.

export function fenceSocketPathOf(dataDir: string): string {
  return `${dataDir.replace(/\/+$/, '')}.fence.sock`;
}

export function fencePidPathOf(dataDir: string): string {
  return `${fenceSocketPathOf(dataDir)}.pid`;
}
