// A statement's shape: its text with numeric and plain string constants replaced by $1, $2... so that statements
// differing only in constants (pgbench's `WHERE aid = 4242`, an ORM's inlined ids) share one classifier verdict. This
// is a deliberately small lexer, not PostgreSQL's: wherever the text holds something whose lexing depends on more than
// it checks (comments, dollar quotes, parameters, backslashes, prefixed strings such as E'' or U&'', a number run into
// a letter), it gives up and the caller parses the text itself. Pure, no allocation beyond the result.

// Character codes (charCodeAt) the lexer looks at.
const QUOTE = 0x27; // '
const DOUBLE_QUOTE = 0x22; // "
const DOLLAR = 0x24;
const BACKSLASH = 0x5c;
const AMPERSAND = 0x26;
const DOT = 0x2e;
const MINUS = 0x2d;
const PLUS = 0x2b;
const SLASH = 0x2f;
const STAR = 0x2a;
const ZERO = 0x30;
const NINE = 0x39;
const LOWER_E = 0x65;
const UPPER_E = 0x45;

const isDigit = (code: number): boolean => code >= ZERO && code <= NINE;

/** A character that continues an identifier or keyword (PostgreSQL's ident_cont, plus any non-ASCII). */
const isIdentifierChar = (code: number): boolean =>
  (code >= 0x61 && code <= 0x7a) || (code >= 0x41 && code <= 0x5a) || isDigit(code) || code === 0x5f || code === DOLLAR || code >= 0x80;

/**
 * The text with its constants replaced by parameters, or undefined when the text has none or holds anything this lexer
 * does not handle (then only PostgreSQL's own parser can tell what it is).
 */
export function statementShape(sql: string): string | undefined {
  let out = '';
  let copiedUpTo = 0;
  let parameters = 0;
  const length = sql.length;
  /** Replaces sql[start, end) by the next parameter; false when a neighbour would run into it ($1 then 2 is $12). */
  const replace = (start: number, end: number): boolean => {
    if (start > 0 && isIdentifierChar(sql.charCodeAt(start - 1))) return false;
    if (end < length && isIdentifierChar(sql.charCodeAt(end))) return false;
    // $1[1] and $1.f parse where 'a'[1] does not: a shape must never parse where its text would not.
    let after = end;
    while (after < length && /\s/.test(sql[after]!)) after++;
    if (sql[after] === '[' || sql[after] === '.') return false;
    out += `${sql.slice(copiedUpTo, start)}$${++parameters}`;
    copiedUpTo = end;
    return true;
  };
  let index = 0;
  while (index < length) {
    const code = sql.charCodeAt(index);
    if (code === DOLLAR || code === BACKSLASH) return undefined; // dollar quotes, parameters, escapes
    if (code === MINUS && sql.charCodeAt(index + 1) === MINUS) return undefined; // -- comment
    if (code === SLASH && sql.charCodeAt(index + 1) === STAR) return undefined; // /* comment */
    if (code === DOUBLE_QUOTE) {
      // A quoted identifier: copied as it is ("" inside stands for one quote).
      const close = closing(sql, index, DOUBLE_QUOTE);
      if (close === undefined) return undefined;
      index = close;
      continue;
    }
    if (code === QUOTE) {
      // E'', B'', X'', N'', U&'' and the like: their lexing differs from a plain string.
      if (index > 0 && sql.charCodeAt(index - 1) === AMPERSAND) return undefined;
      const close = closing(sql, index, QUOTE);
      // A backslash means different things with standard_conforming_strings on and off.
      if (close === undefined || sql.slice(index, close).includes('\\') || !replace(index, close)) return undefined;
      index = close;
      continue;
    }
    if (isIdentifierChar(code) && !isDigit(code)) {
      // An identifier or keyword, digits included (t1, col_2): never a constant.
      while (index < length && isIdentifierChar(sql.charCodeAt(index))) index++;
      continue;
    }
    if (isDigit(code) || (code === DOT && isDigit(sql.charCodeAt(index + 1)))) {
      const end = numberEnd(sql, index);
      if (end === undefined || !replace(index, end)) return undefined;
      index = end;
      continue;
    }
    index++;
  }
  return parameters === 0 ? undefined : out + sql.slice(copiedUpTo);
}

/** The index after the quoted token opened at `start` (a doubled quote continues it); undefined when unterminated. */
function closing(sql: string, start: number, quote: number): number | undefined {
  let index = start + 1;
  for (;;) {
    const found = sql.indexOf(String.fromCharCode(quote), index);
    if (found === -1) return undefined;
    if (sql.charCodeAt(found + 1) !== quote) return found + 1;
    index = found + 2;
  }
}

/** The end of a numeric constant (digits, fraction, exponent); undefined when a letter, dot or $ runs into it. */
function numberEnd(sql: string, start: number): number | undefined {
  let index = start;
  while (isDigit(sql.charCodeAt(index))) index++;
  if (sql.charCodeAt(index) === DOT) {
    index++;
    while (isDigit(sql.charCodeAt(index))) index++;
  }
  const e = sql.charCodeAt(index);
  if (e === LOWER_E || e === UPPER_E) {
    let exponent = index + 1;
    const sign = sql.charCodeAt(exponent);
    if (sign === PLUS || sign === MINUS) exponent++;
    if (!isDigit(sql.charCodeAt(exponent))) return undefined;
    while (isDigit(sql.charCodeAt(exponent))) exponent++;
    index = exponent;
  }
  const next = sql.charCodeAt(index);
  // 1..2, 0x1F, 123abc: PostgreSQL versions lex these differently; leave them to the parser.
  if (next === DOT || isIdentifierChar(next)) return undefined;
  return index;
}
