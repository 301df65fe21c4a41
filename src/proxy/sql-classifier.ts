// Read/write classification of what a client sends (issue 17, first block of the read/write-splitting listener).
// A statement goes to a replica only when PostgreSQL's own grammar (libpg-query, the server's parser compiled to
// WebAssembly) shows it read-only; whatever does not parse goes to the primary. No I/O and no clock: the caller
// loads the parser once (createClassifier) and fills the function volatility from pg_proc. The parser package is
// imported there, not here: importing this module starts no WebAssembly.
import { statementShape } from './sql-shape.js';

export type Volatility = 'immutable' | 'stable' | 'volatile';

/**
 * What the classifier knows about functions: `lookup` answers from pg_proc (undefined: unknown, counted as volatile).
 * `allow` entries are treated as read-only, `deny` entries always go to the primary; an entry is `name` (any
 * schema) or `schema.name`, spelled as PostgreSQL stores it (lower case unless quoted). The built-in
 * always-primary functions (ALWAYS_PRIMARY_FUNCTIONS) cannot be allowed.
 */
export interface FunctionVolatility {
  lookup(name: string, schema: string | undefined): Volatility | undefined;
  readonly allow?: readonly string[];
  readonly deny?: readonly string[];
}

export interface SessionPin {
  readonly scope: 'session';
  /** What session state the statement leaves behind, e.g. `LISTEN`, `SET work_mem`. */
  readonly what: readonly string[];
}

export interface Classification {
  readonly route: 'replica-ok' | 'primary';
  /** Set when the statement leaves session state that cannot move: the session stays on the primary. */
  readonly pins?: SessionPin;
  readonly reason: string;
  /** The message is exactly one DISCARD ALL: the session's state is gone once it has run (see TransactionTracker). */
  readonly discardAll?: true;
}

/** Functions that never go to a replica, whatever pg_proc or the allow list say (name in any schema; also dblink*). */
export const ALWAYS_PRIMARY_FUNCTIONS: ReadonlySet<string> = new Set([
  // sequences and their per-session state
  'nextval',
  'setval',
  'currval',
  'lastval',
  // advisory locks: a replica's locks exclude nobody on the primary
  'pg_advisory_lock',
  'pg_advisory_lock_shared',
  'pg_try_advisory_lock',
  'pg_try_advisory_lock_shared',
  'pg_advisory_xact_lock',
  'pg_advisory_xact_lock_shared',
  'pg_try_advisory_xact_lock',
  'pg_try_advisory_xact_lock_shared',
  'pg_advisory_unlock',
  'pg_advisory_unlock_shared',
  'pg_advisory_unlock_all',
  // transaction ids and WAL positions: answered by the primary only
  'txid_current',
  'txid_current_if_assigned',
  'pg_current_xact_id',
  'pg_current_xact_id_if_assigned',
  'pg_current_wal_lsn',
  'pg_current_wal_insert_lsn',
  'pg_current_wal_flush_lsn',
  'pg_is_in_recovery',
  // large-object writers
  'lo_creat',
  'lo_create',
  'lo_import',
  'lo_export',
  'lo_unlink',
  'lo_put',
  'lo_from_bytea',
  'lo_open',
  'lo_write',
  'lowrite',
  'lo_truncate',
  'lo_truncate64',
  // side effects elsewhere (and every dblink* function: it runs SQL on another server)
  'dblink_exec',
  'dblink',
  'dblink_send_query',
  'pg_notify',
  'set_config',
]);

/** Session advisory locks: they outlive the transaction, so they pin the session. */
const SESSION_ADVISORY_LOCKS: ReadonlySet<string> = new Set([
  'pg_advisory_lock',
  'pg_advisory_lock_shared',
  'pg_try_advisory_lock',
  'pg_try_advisory_lock_shared',
]);

/** SHOW answers that differ on a replica: a client asking them wants to know whether it talks to the primary. */
const ROLE_REVEALING_SETTINGS: ReadonlySet<string> = new Set([
  'transaction_read_only',
  'default_transaction_read_only',
  'in_hot_standby',
  'all',
]);

/** DECLARE's CURSOR_OPT_HOLD bit (parsenodes.h). */
const CURSOR_OPT_HOLD = 0x20;

/**
 * A FunctionVolatility from pg_proc rows (`SELECT n.nspname, p.proname, p.provolatile FROM pg_proc p JOIN
 * pg_namespace n ON n.oid = p.pronamespace`). Overloads and, for unqualified calls, schemas are merged to the
 * most volatile answer, since the search_path and the argument types are not resolved here.
 */
export function functionVolatilityFromPgProc(
  rows: Iterable<{ readonly schema: string; readonly name: string; readonly provolatile: string }>,
  lists: { readonly allow?: readonly string[]; readonly deny?: readonly string[] } = {},
): FunctionVolatility {
  const rank: Record<Volatility, number> = { immutable: 0, stable: 1, volatile: 2 };
  const byName = new Map<string, Volatility>();
  const worse = (key: string, value: Volatility): void => {
    const known = byName.get(key);
    if (known === undefined || rank[value] > rank[known]) byName.set(key, value);
  };
  for (const row of rows) {
    const value: Volatility = row.provolatile === 'i' ? 'immutable' : row.provolatile === 's' ? 'stable' : 'volatile';
    worse(row.name, value);
    worse(`${row.schema}.${row.name}`, value);
  }
  return {
    lookup: (name, schema) => byName.get(schema === undefined ? name : `${schema}.${name}`),
    ...(lists.allow === undefined ? {} : { allow: lists.allow }),
    ...(lists.deny === undefined ? {} : { deny: lists.deny }),
  };
}

type Fields = Record<string, unknown>;

function isObject(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The node wrapper `{ SelectStmt: {...} }` → ['SelectStmt', fields]. */
function unwrap(node: unknown): [string, Fields] | undefined {
  if (!isObject(node)) return undefined;
  let type: string | undefined;
  for (const key in node) {
    if (type !== undefined) return undefined;
    type = key;
  }
  if (type === undefined) return undefined;
  const first = type.charCodeAt(0);
  const fields = node[type];
  return first >= 65 && first <= 90 && isObject(fields) ? [type, fields] : undefined;
}

/** Every node under `root` (root included), subqueries, CTEs, function arguments and clauses alike. */
function walk(root: unknown, visit: (type: string, fields: Fields) => void): void {
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const value = stack.pop();
    if (Array.isArray(value)) {
      for (const item of value as unknown[]) stack.push(item);
      continue;
    }
    if (!isObject(value)) continue;
    const node = unwrap(value);
    if (node !== undefined) visit(node[0], node[1]);
    // Some fields hold a RangeVar without its wrapper (CreateStmt.relation, IntoClause.rel).
    else if (typeof value.relname === 'string') visit('RangeVar', value);
    const body = node === undefined ? value : node[1];
    for (const key in body) {
      const child = body[key];
      if (typeof child === 'object' && child !== null) stack.push(child);
    }
  }
}

function names(list: unknown): string[] {
  if (!Array.isArray(list)) return [];
  return list.map((item) => {
    const node = unwrap(item);
    return node !== undefined && node[0] === 'String' && typeof node[1].sval === 'string' ? node[1].sval : '';
  });
}

/** A DefElem's boolean argument: absent means true (EXPLAIN (ANALYZE)); undefined when not a plain boolean. */
function defElemBoolean(fields: Fields): boolean | undefined {
  const arg = unwrap(fields.arg);
  if (arg === undefined) return true;
  const [type, value] = arg;
  if (type === 'A_Const') {
    if (isObject(value.boolval)) return value.boolval.boolval === true;
    if (isObject(value.ival)) return value.ival.ival !== undefined && value.ival.ival !== 0;
    if (isObject(value.sval) && typeof value.sval.sval === 'string') return stringBoolean(value.sval.sval);
    return undefined;
  }
  if (type === 'String' && typeof value.sval === 'string') return stringBoolean(value.sval);
  if (type === 'Boolean') return value.boolval === true;
  if (type === 'Integer') return value.ival !== undefined && value.ival !== 0;
  return undefined;
}

function stringBoolean(text: string): boolean | undefined {
  const lower = text.toLowerCase();
  if (['true', 'on', '1', 'yes', 't', 'y'].includes(lower)) return true;
  if (['false', 'off', '0', 'no', 'f', 'n'].includes(lower)) return false;
  return undefined;
}

function defElems(list: unknown): Array<[string, Fields]> {
  if (!Array.isArray(list)) return [];
  const out: Array<[string, Fields]> = [];
  for (const item of list) {
    const node = unwrap(item);
    if (node !== undefined && node[0] === 'DefElem' && typeof node[1].defname === 'string') out.push([node[1].defname, node[1]]);
  }
  return out;
}

interface Verdict {
  readOnly: boolean;
  reason: string;
  pins: string[];
}

const readOnly = (reason: string): Verdict => ({ readOnly: true, reason, pins: [] });
const primary = (reason: string, pins: string[] = []): Verdict => ({ readOnly: false, reason, pins });

function matchesList(
  list: readonly string[] | undefined,
  name: string,
  schema: string | undefined,
  unqualifiedMatchesAny: boolean,
): boolean {
  if (list === undefined) return false;
  return list.some(
    (entry) =>
      entry === name ||
      (schema !== undefined && entry === `${schema}.${name}`) ||
      (schema === undefined && unqualifiedMatchesAny && entry.endsWith(`.${name}`)),
  );
}

/** Facts about an expression tree: functions, locking clauses, nested writes, temporary objects. */
function inspectTree(root: unknown, functions: FunctionVolatility): Verdict {
  const problems: string[] = [];
  const pins: string[] = [];
  walk(root, (type, fields) => {
    switch (type) {
      case 'FuncCall': {
        const parts = names(fields.funcname);
        const name = parts[parts.length - 1] ?? '';
        const schema = parts.length >= 2 ? parts[parts.length - 2] : undefined;
        const shown = schema === undefined ? name : `${schema}.${name}`;
        if (ALWAYS_PRIMARY_FUNCTIONS.has(name) || name.startsWith('dblink')) {
          problems.push(`function ${shown}() always goes to the primary`);
          if (SESSION_ADVISORY_LOCKS.has(name)) pins.push(`session advisory lock ${name}()`);
          if (name === 'set_config' && !setConfigIsLocal(fields.args)) pins.push('set_config(..., false)');
        } else if (matchesList(functions.deny, name, schema, true)) {
          problems.push(`function ${shown}() is on the deny list`);
        } else if (!matchesList(functions.allow, name, schema, false)) {
          const volatility = functions.lookup(name, schema);
          if (volatility === undefined) problems.push(`function ${shown}() is unknown (counted as volatile)`);
          else if (volatility === 'volatile') problems.push(`function ${shown}() is volatile`);
        }
        break;
      }
      case 'LockingClause':
        problems.push('locking clause (FOR UPDATE/NO KEY UPDATE/SHARE/KEY SHARE)');
        break;
      case 'InsertStmt':
      case 'UpdateStmt':
      case 'DeleteStmt':
      case 'MergeStmt':
        problems.push(`data-modifying ${type.replace('Stmt', '').toUpperCase()} in a WITH clause or subquery`);
        break;
      case 'RangeVar':
        if (fields.relpersistence === 't') pins.push('temporary table');
        if (typeof fields.schemaname === 'string' && fields.schemaname.startsWith('pg_temp')) {
          problems.push('references a temporary object (pg_temp)');
          pins.push('temporary object');
        }
        break;
      default:
        break;
    }
  });
  if (pins.length > 0 && problems.length === 0) problems.push('creates session state');
  return problems.length === 0 ? readOnly('') : primary(problems[0]!, pins);
}

function setConfigIsLocal(args: unknown): boolean {
  if (!Array.isArray(args) || args.length < 3) return false;
  const third = unwrap(args[2]);
  if (third === undefined) return false;
  if (third[0] === 'A_Const' && isObject(third[1].boolval)) return third[1].boolval.boolval === true;
  if (third[0] === 'TypeCast') return setConfigIsLocal([undefined, undefined, third[1].arg]);
  return false;
}

/** Transaction characteristics (BEGIN/START TRANSACTION/SET TRANSACTION options). */
function transactionMode(options: unknown): { readOnly: boolean | undefined; serializable: boolean } {
  let readOnlyMode: boolean | undefined;
  let serializable = false;
  for (const [name, fields] of defElems(options)) {
    if (name === 'transaction_read_only') readOnlyMode = defElemBoolean(fields) ?? false;
    if (name === 'transaction_isolation') {
      const arg = unwrap(fields.arg);
      const text = arg !== undefined && arg[0] === 'A_Const' && isObject(arg[1].sval) ? arg[1].sval.sval : undefined;
      if (text !== 'read committed' && text !== 'repeatable read' && text !== 'read uncommitted') serializable = true;
    }
  }
  return { readOnly: readOnlyMode, serializable };
}

function classifyOne(type: string, fields: Fields, functions: FunctionVolatility): Verdict {
  switch (type) {
    case 'SelectStmt': {
      if (fields.intoClause !== undefined)
        return primary('SELECT INTO creates a table', inspectTree({ SelectStmt: fields }, functions).pins);
      const verdict = inspectTree({ SelectStmt: fields }, functions);
      return verdict.readOnly ? readOnly(fields.valuesLists !== undefined ? 'VALUES' : 'read-only SELECT') : verdict;
    }
    case 'VariableShowStmt': {
      const name = typeof fields.name === 'string' ? fields.name.toLowerCase() : '';
      return ROLE_REVEALING_SETTINGS.has(name) ? primary(`SHOW ${name} tells primary from replica`) : readOnly('SHOW');
    }
    case 'ExplainStmt': {
      for (const [name, option] of defElems(fields.options)) {
        if (name === 'analyze' && defElemBoolean(option) !== false) return primary('EXPLAIN ANALYZE executes the statement');
      }
      const inner = unwrap(fields.query);
      if (inner === undefined) return primary('EXPLAIN without a statement');
      const verdict = classifyOne(inner[0], inner[1], functions);
      return verdict.readOnly
        ? readOnly('EXPLAIN without ANALYZE')
        : primary(`EXPLAIN of a statement that is not read-only: ${verdict.reason}`);
    }
    case 'CopyStmt': {
      if (fields.is_from === true) return primary('COPY FROM writes');
      if (typeof fields.filename === 'string' || fields.is_program === true) return primary('COPY TO a server file or program');
      if (fields.query !== undefined) {
        const inner = unwrap(fields.query);
        const verdict = inner === undefined ? primary('COPY of an unknown query') : classifyOne(inner[0], inner[1], functions);
        return verdict.readOnly
          ? readOnly('COPY (read-only query) TO STDOUT')
          : primary(`COPY TO of a query that is not read-only: ${verdict.reason}`);
      }
      return readOnly('COPY table TO STDOUT');
    }
    case 'TransactionStmt': {
      const kind = fields.kind;
      if (kind === 'TRANS_STMT_BEGIN' || kind === 'TRANS_STMT_START') {
        const mode = transactionMode(fields.options);
        if (mode.serializable) return primary('SERIALIZABLE transactions cannot run on a hot standby');
        return mode.readOnly === true ? readOnly('BEGIN READ ONLY') : primary('explicit transaction that is not READ ONLY');
      }
      if (kind === 'TRANS_STMT_PREPARE' || kind === 'TRANS_STMT_COMMIT_PREPARED' || kind === 'TRANS_STMT_ROLLBACK_PREPARED') {
        return primary('two-phase commit');
      }
      return readOnly('transaction control follows its transaction');
    }
    case 'VariableSetStmt': {
      const kind = fields.kind;
      const name = typeof fields.name === 'string' ? fields.name : '';
      if (kind === 'VAR_SET_MULTI' && name === 'TRANSACTION') {
        const mode = transactionMode(fields.args);
        if (mode.serializable) return primary('SERIALIZABLE transactions cannot run on a hot standby');
        return mode.readOnly === false ? primary('SET TRANSACTION READ WRITE') : readOnly('SET TRANSACTION (this transaction only)');
      }
      if (kind === 'VAR_SET_MULTI' && name === 'TRANSACTION SNAPSHOT')
        return primary('SET TRANSACTION SNAPSHOT imports a primary snapshot');
      if (kind === 'VAR_RESET' || kind === 'VAR_RESET_ALL') return primary('RESET (session state)');
      if (fields.is_local === true) return readOnly(`SET LOCAL ${name} (this transaction only)`);
      const shown = kind === 'VAR_SET_MULTI' ? name : name === '' ? 'SET' : name;
      return primary(`SET ${shown} changes the session`, [`SET ${shown}`]);
    }
    case 'ListenStmt':
      return primary('LISTEN', ['LISTEN']);
    case 'DeclareCursorStmt': {
      const hold = typeof fields.options === 'number' && (fields.options & CURSOR_OPT_HOLD) !== 0;
      const inner = unwrap(fields.query);
      const verdict = inner === undefined ? primary('DECLARE of an unknown query') : classifyOne(inner[0], inner[1], functions);
      if (hold) return primary('DECLARE ... WITH HOLD outlives the transaction', ['WITH HOLD cursor', ...verdict.pins]);
      return verdict.readOnly
        ? readOnly('DECLARE of a read-only query')
        : primary(`DECLARE of a query that is not read-only: ${verdict.reason}`, verdict.pins);
    }
    case 'FetchStmt':
    case 'ClosePortalStmt':
      return readOnly('cursor operation follows its transaction');
    case 'PrepareStmt':
      return primary('PREPARE (named prepared statement)', [`prepared statement ${String(fields.name)}`]);
    case 'ExecuteStmt':
      return primary('EXECUTE of a prepared statement');
    case 'DiscardStmt':
      return primary('DISCARD');
    case 'LoadStmt':
      return primary('LOAD', ['LOAD']);
    case 'CreateFunctionStmt': {
      const parts = names(fields.funcname);
      const temp = parts.length >= 2 && parts[0]!.startsWith('pg_temp');
      return primary('CREATE FUNCTION', temp ? ['temporary function'] : []);
    }
    default: {
      // Everything else (DML, DDL, CALL, DO, VACUUM, LOCK, NOTIFY...) is for the primary; temporary objects pin.
      const verdict = inspectTree({ [type]: fields }, functions);
      return primary(`${type.replace(/Stmt$/, '')} is not read-only`, verdict.pins);
    }
  }
}

/** Classify a parse result (pure: no parser needed). */
export function classifyParseResult(result: unknown, functions: FunctionVolatility): Classification {
  const stmts = isObject(result) && Array.isArray(result.stmts) ? (result.stmts as unknown[]) : [];
  const parsed: Array<[string, Fields]> = [];
  for (const raw of stmts) {
    const node = isObject(raw) ? unwrap(raw.stmt) : undefined;
    if (node === undefined) return { route: 'primary', reason: 'unparseable: unexpected parse tree' };
    parsed.push(node);
  }
  if (parsed.length === 0) return { route: 'primary', reason: 'empty query' };
  const pins: string[] = [];
  let firstProblem: string | undefined;
  const reasons: string[] = [];
  for (let index = 0; index < parsed.length; index++) {
    const [type, fields] = parsed[index]!;
    let verdict = classifyOne(type, fields, functions);
    // "BEGIN; SET TRANSACTION READ ONLY; ..." in one message opens a read-only transaction.
    if (!verdict.readOnly && type === 'TransactionStmt' && readOnlyFollows(parsed[index + 1], fields)) {
      verdict = readOnly('BEGIN then SET TRANSACTION READ ONLY');
    }
    pins.push(...verdict.pins);
    reasons.push(verdict.reason);
    if (!verdict.readOnly && firstProblem === undefined) {
      firstProblem = parsed.length > 1 ? `statement ${index + 1} of ${parsed.length}: ${verdict.reason}` : verdict.reason;
    }
  }
  const pin: { pins?: SessionPin } = pins.length > 0 ? { pins: { scope: 'session', what: [...new Set(pins)] } } : {};
  const discard: { discardAll?: true } =
    parsed.length === 1 && parsed[0]![0] === 'DiscardStmt' && parsed[0]![1].target === 'DISCARD_ALL' ? { discardAll: true } : {};
  if (firstProblem !== undefined) return { route: 'primary', reason: firstProblem, ...pin, ...discard };
  return { route: 'replica-ok', reason: [...new Set(reasons)].join('; '), ...pin };
}

function readOnlyFollows(next: [string, Fields] | undefined, begin: Fields): boolean {
  if (begin.kind !== 'TRANS_STMT_BEGIN' && begin.kind !== 'TRANS_STMT_START') return false;
  const mode = transactionMode(begin.options);
  if (mode.serializable || mode.readOnly === false || next === undefined) return false;
  if (next[0] !== 'VariableSetStmt' || next[1].kind !== 'VAR_SET_MULTI' || next[1].name !== 'TRANSACTION') return false;
  const nextMode = transactionMode(next[1].args);
  return nextMode.readOnly === true && !nextMode.serializable;
}

/** Classify one simple-protocol Query message (one or more statements): parse with PostgreSQL's grammar, then judge. */
export type ClassifyStatement = (sql: string, functions: FunctionVolatility) => Classification;

export interface SqlClassifier {
  readonly classifyStatement: ClassifyStatement;
}

let loading: Promise<(sql: string) => unknown> | undefined;

async function loadParser(): Promise<(sql: string) => unknown> {
  const parser = await import('libpg-query');
  await parser.loadModule();
  return (sql) => parser.parseSync(sql);
}

export interface ClassifierOptions {
  /** Parse trees kept for repeated statement texts (least recently used goes first); 0 disables. Default 1000. */
  readonly parseCacheSize?: number;
  /** Longer texts are not cached. Default 4096 characters. */
  readonly parseCacheMaxLength?: number;
  /** Read-only verdicts kept per function-volatility source, by statement shape (LRU); 0 disables. Default 1000. */
  readonly shapeCacheSize?: number;
}

/** A bounded map that forgets the least recently used entry first (a Map iterates in insertion order). */
class Lru<V> {
  readonly #entries = new Map<string, V>();

  constructor(readonly size: number) {}

  get(key: string): V | undefined {
    const value = this.#entries.get(key);
    if (value !== undefined) {
      this.#entries.delete(key);
      this.#entries.set(key, value);
    }
    return value;
  }

  set(key: string, value: V): void {
    if (this.size <= 0) return;
    if (this.#entries.size >= this.size) this.#entries.delete(this.#entries.keys().next().value!);
    this.#entries.set(key, value);
  }
}

/**
 * Whether a verdict on a statement's shape (its constants replaced by parameters, see sql-shape.ts) holds for the
 * statement itself: only a plain read-only one does. The two trees differ only where a constant stands for a
 * parameter, and the judgement reads constants only where it judges a parameter as the unsafe value (an EXPLAIN or
 * transaction option, set_config's third argument), so a shape judged read-only is read-only whatever its constants.
 * Any other shape verdict (primary, pins, DISCARD ALL, a shape that does not parse) sends the text to be judged itself.
 */
const shapeVerdictHolds = (verdict: Classification): boolean =>
  verdict.route === 'replica-ok' && verdict.pins === undefined && verdict.discardAll === undefined;

/**
 * Loads the parser's WebAssembly once (tens of milliseconds), then classifies synchronously. A parse tree depends
 * on the text alone, so repeated texts skip the parser (bounded cache); the judgement is made anew each time, except
 * that a read-only verdict on a statement's shape is kept per function-volatility source (a new pg_proc read starts
 * afresh): statements that differ only in constants (SELECT ... WHERE aid = 4242) are parsed and judged once.
 */
export async function createClassifier(options: ClassifierOptions = {}): Promise<SqlClassifier> {
  loading ??= loadParser().catch((error: unknown) => {
    loading = undefined; // a later call tries again
    throw error;
  });
  const parseSync = await loading;
  const maxLength = options.parseCacheMaxLength ?? 4096;
  const shapeCacheSize = options.shapeCacheSize ?? 1000;
  const cache = new Lru<unknown>(options.parseCacheSize ?? 1000);
  const parse = (sql: string): unknown => {
    const cached = cache.get(sql);
    if (cached !== undefined) return cached;
    const tree = parseSync(sql);
    if (sql.length <= maxLength) cache.set(sql, tree);
    return tree;
  };
  const judge = (sql: string, functions: FunctionVolatility): Classification => {
    if (sql.trim() === '') return { route: 'primary', reason: 'empty query' };
    let result: unknown;
    try {
      result = parse(sql);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      return { route: 'primary', reason: `unparseable: ${message}` };
    }
    return classifyParseResult(result, functions);
  };
  const shapes = new WeakMap<FunctionVolatility, Lru<Classification>>();
  return {
    classifyStatement: (sql, functions) => {
      const shape = shapeCacheSize > 0 && sql.length <= maxLength ? statementShape(sql) : undefined;
      if (shape === undefined) return judge(sql, functions);
      let known = shapes.get(functions);
      if (known === undefined) {
        known = new Lru<Classification>(shapeCacheSize);
        shapes.set(functions, known);
      }
      let verdict = known.get(shape);
      if (verdict === undefined) {
        verdict = judge(shape, functions);
        known.set(shape, verdict);
      }
      return shapeVerdictHolds(verdict) ? verdict : judge(sql, functions);
    },
  };
}
