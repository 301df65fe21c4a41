// PostgreSQL LSNs ('16/B374D848') as bigint byte positions.

export function parseLsn(text: string): bigint {
  const match = /^([0-9A-Fa-f]+)\/([0-9A-Fa-f]+)$/.exec(text.trim());
  if (match === null) throw new Error(`not an LSN: ${text}`);
  return (BigInt(`0x${match[1]!}`) << 32n) + BigInt(`0x${match[2]!}`);
}

export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}
