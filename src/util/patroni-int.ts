// Patroni's parse_int (patroni/utils.py): PostgreSQL-style integers with units (`1MB`, `16kB`, `30s`), as its REST API reads them.

/** Multipliers to the base unit, by base unit then given unit (units are case-sensitive, as in PostgreSQL and Patroni). */
const CONVERSIONS: Readonly<Record<string, Readonly<Record<string, number>>>> = {
  B: { B: 1, kB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 },
  kB: { B: 1 / 1024, kB: 1, MB: 1024, GB: 1024 ** 2, TB: 1024 ** 3 },
  MB: { B: 1 / 1024 ** 2, kB: 1 / 1024, MB: 1, GB: 1024, TB: 1024 ** 2 },
  ms: { us: 1 / 1000, ms: 1, s: 1000, min: 60_000, h: 3_600_000, d: 86_400_000 },
  s: { us: 1 / 1_000_000, ms: 1 / 1000, s: 1, min: 60, h: 3600, d: 86_400 },
  min: { us: 1 / 60_000_000, ms: 1 / 60_000, s: 1 / 60, min: 1, h: 60, d: 1440 },
};

/** A value given in a unit is rounded to the next smaller unit first (PostgreSQL's guc.c does the same). */
const ROUND_TO: Readonly<Record<string, string>> = { TB: 'GB', GB: 'MB', MB: 'kB', kB: 'B', d: 'h', h: 'min', min: 's', s: 'ms', ms: 'us' };

const HEX = /^[-+]?0x[0-9a-fA-F]+/;
const OCTAL = /^[-+]?0[0-7]*/;
const DECIMAL = /^[-+]?(0|[1-9][0-9]*)/;
const REAL = /^[-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?/;

/** Round half to even, as Patroni's rint. */
function rint(value: number): number {
  const rounded = Math.round(value);
  return Math.abs(rounded - value) === 0.5 ? 2 * Math.round(value / 2) : rounded;
}

function strtol(text: string): { value: number | undefined; rest: string } {
  for (const [pattern, base] of [
    [HEX, 16],
    [OCTAL, 8],
    [DECIMAL, 10],
  ] as const) {
    const match = pattern.exec(text);
    if (match !== null) return { value: parseInt(match[0], base), rest: text.slice(match[0].length) };
  }
  return { value: undefined, rest: text };
}

function strtod(text: string): { value: number | undefined; rest: string } {
  const match = REAL.exec(text);
  return match === null ? { value: undefined, rest: text } : { value: Number(match[0]), rest: text.slice(match[0].length) };
}

/**
 * The integer `value` means in `baseUnit`, or undefined when it is not a number or its unit is unknown for that base
 * (`1XB`, `abc`, `1kb`: units are case-sensitive). Accepts what Patroni does: hex and octal, decimals, spaces before the unit.
 */
export function parsePatroniInt(value: unknown, baseUnit: keyof typeof CONVERSIONS): number | undefined {
  const text = String(value).trim();
  let { value: number, rest } = strtol(text);
  if ((number === undefined && rest.startsWith('.')) || (rest !== '' && '.eE'.includes(rest[0] ?? '')))
    ({ value: number, rest } = strtod(text));
  if (number === undefined || !Number.isFinite(number)) return undefined;
  const unit = rest.trim();
  if (unit === '') return rint(number);
  const table = CONVERSIONS[baseUnit];
  const factor = table?.[unit];
  if (table === undefined || factor === undefined) return undefined;
  let converted = number * factor;
  const roundUnit = ROUND_TO[unit];
  const multiplier = roundUnit === undefined ? undefined : table[roundUnit];
  if (multiplier !== undefined) converted = rint(converted / multiplier) * multiplier;
  return rint(converted);
}
