// Sizes in pgwarden's own settings (proxy.replica_max_lag): bytes, or a number with B/kB/MB/GB/TB (powers of 1024,
// any case). The REST API's `?lag=` follows Patroni's parse_int instead (util/patroni-int.ts).
const UNITS: Readonly<Record<string, number>> = { '': 1, B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };

export function parseByteSize(text: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  if (match === null) return undefined;
  const factor = UNITS[(match[2] ?? '').toUpperCase()];
  return factor === undefined ? undefined : Math.floor(Number(match[1]) * factor);
}
