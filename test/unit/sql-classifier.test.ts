// The read/write classifier of issue 17 against its corpus: nothing that writes, locks, calls a volatile function or
// leaves session state behind may be called replica-ok; the transaction tracker keeps transactions and pins.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import {
  classifyParseResult,
  createClassifier,
  functionVolatilityFromPgProc,
  type Classification,
  type FunctionVolatility,
  type SqlClassifier,
} from '../../src/proxy/sql-classifier.js';
import { TransactionTracker } from '../../src/proxy/transaction-tracker.js';

/** A pg_proc excerpt as the caller would load it (overloads and two schemas for `f`). */
const PG_PROC = [
  { schema: 'pg_catalog', name: 'count', provolatile: 'i' },
  { schema: 'pg_catalog', name: 'max', provolatile: 'i' },
  { schema: 'pg_catalog', name: 'now', provolatile: 's' },
  { schema: 'pg_catalog', name: 'upper', provolatile: 'i' },
  { schema: 'pg_catalog', name: 'generate_series', provolatile: 'i' },
  { schema: 'pg_catalog', name: 'random', provolatile: 'v' },
  { schema: 'pg_catalog', name: 'nextval', provolatile: 'v' },
  { schema: 'pg_catalog', name: 'pg_sleep', provolatile: 'v' },
  { schema: 'public', name: 'my_volatile_fn', provolatile: 'v' },
  { schema: 'public', name: 'my_stable_fn', provolatile: 's' },
  { schema: 'public', name: 'f', provolatile: 'i' },
  { schema: 'other', name: 'f', provolatile: 'v' },
];

const functions: FunctionVolatility = functionVolatilityFromPgProc(PG_PROC);

interface Case {
  readonly sql: string;
  readonly route: Classification['route'];
  readonly reason: string;
  readonly pins?: readonly string[];
}

const CORPUS: readonly Case[] = [
  // reads
  { sql: 'SELECT 1', route: 'replica-ok', reason: 'read-only SELECT' },
  { sql: 'SELECT count(*), upper(max(name)) FROM users WHERE created < now()', route: 'replica-ok', reason: 'read-only SELECT' },
  { sql: "/* app: report */ SELECT * FROM t -- trailing comment\n WHERE name = 'x;y'", route: 'replica-ok', reason: 'read-only SELECT' },
  { sql: 'VALUES (1, 2), (3, 4)', route: 'replica-ok', reason: 'VALUES' },
  { sql: 'TABLE accounts', route: 'replica-ok', reason: 'read-only SELECT' },
  { sql: 'SHOW work_mem', route: 'replica-ok', reason: 'SHOW' },
  { sql: 'EXPLAIN SELECT * FROM t', route: 'replica-ok', reason: 'EXPLAIN without ANALYZE' },
  { sql: 'EXPLAIN (ANALYZE false, VERBOSE) SELECT 1', route: 'replica-ok', reason: 'EXPLAIN without ANALYZE' },
  { sql: 'COPY t TO STDOUT', route: 'replica-ok', reason: 'COPY table TO STDOUT' },
  { sql: 'COPY (SELECT a FROM t WHERE b > 1) TO STDOUT WITH (FORMAT csv)', route: 'replica-ok', reason: 'COPY (read-only query)' },
  { sql: 'SELECT 1; SELECT 2', route: 'replica-ok', reason: 'read-only SELECT' },
  { sql: 'SELECT * FROM (SELECT a FROM t UNION ALL SELECT b FROM u) s ORDER BY 1 LIMIT 5', route: 'replica-ok', reason: 'SELECT' },
  {
    sql: 'WITH r AS (SELECT * FROM t) SELECT * FROM r JOIN LATERAL generate_series(1, r.n) g ON true',
    route: 'replica-ok',
    reason: 'SELECT',
  },
  { sql: 'SELECT my_stable_fn(a) FROM t', route: 'replica-ok', reason: 'read-only SELECT' },
  { sql: 'SELECT public.f(1)', route: 'replica-ok', reason: 'read-only SELECT' },
  { sql: 'BEGIN READ ONLY', route: 'replica-ok', reason: 'BEGIN READ ONLY' },
  { sql: 'START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY', route: 'replica-ok', reason: 'BEGIN READ ONLY' },
  { sql: 'BEGIN READ ONLY; SELECT 1; COMMIT', route: 'replica-ok', reason: 'BEGIN READ ONLY' },
  { sql: 'BEGIN; SET TRANSACTION READ ONLY; SELECT 1; COMMIT', route: 'replica-ok', reason: 'SET TRANSACTION READ ONLY' },
  { sql: 'SET LOCAL statement_timeout = 1000', route: 'replica-ok', reason: 'this transaction only' },
  { sql: 'SELECT * FROM t WHERE a = $1', route: 'replica-ok', reason: 'read-only SELECT' },
  { sql: 'DECLARE c CURSOR FOR SELECT * FROM t', route: 'replica-ok', reason: 'DECLARE of a read-only query' },
  { sql: 'FETCH 10 FROM c', route: 'replica-ok', reason: 'cursor operation' },
  // the corpus: none may reach a replica
  {
    sql: 'WITH moved AS (DELETE FROM queue WHERE id < 10 RETURNING *) SELECT * FROM moved',
    route: 'primary',
    reason: 'data-modifying DELETE',
  },
  { sql: 'WITH n AS (INSERT INTO t(a) VALUES (1) RETURNING id) SELECT id FROM n', route: 'primary', reason: 'data-modifying INSERT' },
  {
    sql: 'SELECT * FROM (WITH u AS (UPDATE t SET a = 1 RETURNING a) SELECT a FROM u) s',
    route: 'primary',
    reason: 'data-modifying UPDATE',
  },
  { sql: 'SELECT * FROM t WHERE id = 1 FOR NO KEY UPDATE', route: 'primary', reason: 'locking clause' },
  { sql: 'SELECT * FROM t FOR SHARE', route: 'primary', reason: 'locking clause' },
  { sql: 'SELECT * FROM t FOR UPDATE SKIP LOCKED', route: 'primary', reason: 'locking clause' },
  { sql: 'SELECT * FROM (SELECT * FROM t FOR KEY SHARE) s', route: 'primary', reason: 'locking clause' },
  { sql: 'WITH l AS (SELECT * FROM t FOR UPDATE) SELECT * FROM l', route: 'primary', reason: 'locking clause' },
  { sql: 'SELECT * FROM t WHERE a IN (VALUES (nextval($$s$$)))', route: 'primary', reason: 'nextval()' },
  { sql: 'SELECT a FROM t GROUP BY a HAVING max(my_volatile_fn()) > 0', route: 'primary', reason: 'my_volatile_fn()' },
  { sql: 'SELECT * FROM my_volatile_fn() AS r', route: 'primary', reason: 'my_volatile_fn() is volatile' },
  { sql: "SELECT nextval('s')", route: 'primary', reason: 'nextval() always goes to the primary' },
  { sql: "SELECT a FROM t ORDER BY setval('s', a)", route: 'primary', reason: 'setval()' },
  { sql: "SELECT * FROM t WHERE id IN (SELECT currval('s'))", route: 'primary', reason: 'currval()' },
  { sql: 'SELECT my_volatile_fn()', route: 'primary', reason: 'my_volatile_fn() is volatile' },
  { sql: 'SELECT upper(my_volatile_fn()::text)', route: 'primary', reason: 'my_volatile_fn() is volatile' },
  { sql: 'SELECT random()', route: 'primary', reason: 'random() is volatile' },
  { sql: 'SELECT f(1)', route: 'primary', reason: 'f() is volatile' },
  { sql: 'SELECT other.f(1)', route: 'primary', reason: 'other.f() is volatile' },
  { sql: 'SELECT unknown_fn(1)', route: 'primary', reason: 'unknown (counted as volatile)' },
  { sql: 'SELECT pg_advisory_xact_lock(1)', route: 'primary', reason: 'pg_advisory_xact_lock() always goes to the primary' },
  {
    sql: 'SELECT pg_try_advisory_lock(42)',
    route: 'primary',
    reason: 'pg_try_advisory_lock()',
    pins: ['session advisory lock pg_try_advisory_lock()'],
  },
  { sql: 'SELECT txid_current()', route: 'primary', reason: 'txid_current()' },
  { sql: "SELECT pg_notify('ch', 'x')", route: 'primary', reason: 'pg_notify()' },
  { sql: "SELECT set_config('search_path', 'x', false)", route: 'primary', reason: 'set_config()', pins: ['set_config(..., false)'] },
  { sql: "SELECT set_config('work_mem', '1MB', true)", route: 'primary', reason: 'set_config()' },
  { sql: "SELECT lo_import('/etc/hosts')", route: 'primary', reason: 'lo_import()' },
  { sql: "SELECT * FROM dblink_get_result('c') AS r(a int)", route: 'primary', reason: 'dblink_get_result() always goes to the primary' },
  { sql: 'SELECT pg_is_in_recovery()', route: 'primary', reason: 'pg_is_in_recovery()' },
  { sql: 'CREATE TEMP TABLE tt (a int)', route: 'primary', reason: 'Create is not read-only', pins: ['temporary table'] },
  { sql: 'CREATE TEMPORARY TABLE tt AS SELECT 1', route: 'primary', reason: 'CreateTableAs', pins: ['temporary table'] },
  { sql: 'SELECT * INTO TEMP tt FROM t', route: 'primary', reason: 'SELECT INTO', pins: ['temporary table'] },
  { sql: 'CREATE TABLE pg_temp.x (a int)', route: 'primary', reason: 'Create', pins: ['temporary object'] },
  { sql: 'SELECT * FROM pg_temp.x', route: 'primary', reason: 'pg_temp', pins: ['temporary object'] },
  { sql: 'SELECT 1 INTO t2', route: 'primary', reason: 'SELECT INTO creates a table' },
  { sql: 'SET work_mem = 1024', route: 'primary', reason: 'SET work_mem changes the session', pins: ['SET work_mem'] },
  { sql: 'SET search_path TO app, public; SELECT * FROM t', route: 'primary', reason: 'statement 1 of 2', pins: ['SET search_path'] },
  { sql: 'SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY', route: 'primary', reason: 'SET', pins: ['SET SESSION CHARACTERISTICS'] },
  { sql: 'RESET work_mem', route: 'primary', reason: 'RESET' },
  { sql: 'LISTEN jobs', route: 'primary', reason: 'LISTEN', pins: ['LISTEN'] },
  { sql: 'SELECT 1; INSERT INTO t VALUES (1)', route: 'primary', reason: 'statement 2 of 2: Insert is not read-only' },
  { sql: 'INSERT INTO t VALUES (1); SELECT 1', route: 'primary', reason: 'statement 1 of 2' },
  { sql: 'COPY t FROM STDIN', route: 'primary', reason: 'COPY FROM writes' },
  { sql: "COPY t TO '/tmp/t.csv'", route: 'primary', reason: 'COPY TO a server file' },
  { sql: 'COPY (SELECT nextval($$s$$)) TO STDOUT', route: 'primary', reason: 'COPY TO of a query that is not read-only' },
  { sql: 'PREPARE q (int) AS SELECT * FROM t WHERE a = $1', route: 'primary', reason: 'PREPARE', pins: ['prepared statement q'] },
  { sql: 'EXECUTE q (1)', route: 'primary', reason: 'EXECUTE' },
  { sql: 'DEALLOCATE q', route: 'primary', reason: 'Deallocate' },
  { sql: 'DECLARE c CURSOR WITH HOLD FOR SELECT * FROM t', route: 'primary', reason: 'WITH HOLD', pins: ['WITH HOLD cursor'] },
  { sql: 'DECLARE c CURSOR FOR SELECT * FROM t FOR UPDATE', route: 'primary', reason: 'locking clause' },
  { sql: 'EXPLAIN ANALYZE SELECT 1', route: 'primary', reason: 'EXPLAIN ANALYZE executes' },
  { sql: 'EXPLAIN (ANALYZE, BUFFERS) SELECT 1', route: 'primary', reason: 'EXPLAIN ANALYZE executes' },
  { sql: 'EXPLAIN INSERT INTO t VALUES (1)', route: 'primary', reason: 'EXPLAIN of a statement that is not read-only' },
  { sql: 'BEGIN', route: 'primary', reason: 'explicit transaction that is not READ ONLY' },
  { sql: 'BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY', route: 'primary', reason: 'SERIALIZABLE' },
  { sql: 'BEGIN READ WRITE', route: 'primary', reason: 'not READ ONLY' },
  { sql: 'SET TRANSACTION SNAPSHOT $$00000003-0000001B-1$$', route: 'primary', reason: 'SNAPSHOT' },
  { sql: "PREPARE TRANSACTION 'x'", route: 'primary', reason: 'two-phase commit' },
  { sql: 'SHOW transaction_read_only', route: 'primary', reason: 'tells primary from replica' },
  { sql: 'SHOW ALL', route: 'primary', reason: 'tells primary from replica' },
  { sql: 'CALL do_things()', route: 'primary', reason: 'Call is not read-only' },
  { sql: 'DO $$ BEGIN PERFORM 1; END $$', route: 'primary', reason: 'Do is not read-only' },
  { sql: 'UPDATE t SET a = 1', route: 'primary', reason: 'Update is not read-only' },
  { sql: 'MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN DELETE', route: 'primary', reason: 'Merge is not read-only' },
  { sql: 'LOCK TABLE t IN ACCESS SHARE MODE', route: 'primary', reason: 'Lock is not read-only' },
  { sql: "LOAD 'auto_explain'", route: 'primary', reason: 'LOAD', pins: ['LOAD'] },
  { sql: 'DISCARD ALL', route: 'primary', reason: 'DISCARD' },
  { sql: 'VACUUM t', route: 'primary', reason: 'Vacuum is not read-only' },
  // unparseable and empty
  { sql: 'this is not sql', route: 'primary', reason: 'unparseable' },
  { sql: 'SELECT FROM WHERE (', route: 'primary', reason: 'unparseable' },
  { sql: "SELECT 'unterminated", route: 'primary', reason: 'unparseable' },
  { sql: '', route: 'primary', reason: 'empty query' },
  { sql: '-- only a comment', route: 'primary', reason: 'empty query' },
];

let classifier: SqlClassifier;

describe('sql-classifier', () => {
  before(async () => {
    classifier = await createClassifier();
  });

  for (const example of CORPUS) {
    it(`${example.route}: ${example.sql.replace(/\s+/g, ' ')}`, () => {
      const result = classifier.classifyStatement(example.sql, functions);
      assert.equal(result.route, example.route, result.reason);
      assert.ok(result.reason.includes(example.reason), `reason "${result.reason}" lacks "${example.reason}"`);
      assert.deepEqual(result.pins?.what ?? [], example.pins ?? [], result.reason);
    });
  }

  it('allow list: an allowed volatile function is read-only; the deny list and the built-ins win', () => {
    const lists = functionVolatilityFromPgProc(PG_PROC, {
      allow: ['random', 'public.my_volatile_fn', 'nextval'],
      deny: ['public.my_stable_fn'],
    });
    assert.equal(classifier.classifyStatement('SELECT random()', lists).route, 'replica-ok');
    assert.equal(classifier.classifyStatement('SELECT public.my_volatile_fn()', lists).route, 'replica-ok');
    // a schema-qualified allow entry does not vouch for an unqualified call (search_path unknown)
    assert.equal(classifier.classifyStatement('SELECT my_volatile_fn()', lists).route, 'primary');
    // a schema-qualified deny entry catches the unqualified call too
    const denied = classifier.classifyStatement('SELECT my_stable_fn()', lists);
    assert.equal(denied.route, 'primary');
    assert.match(denied.reason, /deny list/);
    assert.match(classifier.classifyStatement("SELECT nextval('s')", lists).reason, /always goes to the primary/);
  });

  it('without a catalog every function is unknown, so only function-free reads go to a replica', () => {
    const none: FunctionVolatility = { lookup: () => undefined };
    assert.equal(classifier.classifyStatement('SELECT a FROM t', none).route, 'replica-ok');
    assert.equal(classifier.classifyStatement('SELECT count(*) FROM t', none).route, 'primary');
  });

  it('parses PostgreSQL 15 syntax (MERGE, SQL/JSON-free 15 features, NULLS NOT DISTINCT)', () => {
    for (const sql of [
      'MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (s.id) WHEN MATCHED THEN UPDATE SET a = s.a',
      'CREATE UNIQUE INDEX i ON t (a) NULLS NOT DISTINCT',
      "SELECT regexp_count('aaa', 'a')",
      'SELECT * FROM t ORDER BY a LIMIT 10 OFFSET 0',
    ]) {
      assert.doesNotMatch(classifier.classifyStatement(sql, functions).reason, /unparseable/, sql);
    }
  });

  it('classifyParseResult refuses a parse tree it does not understand', () => {
    assert.equal(classifyParseResult({ stmts: [{ stmt: 42 }] }, functions).route, 'primary');
    assert.equal(classifyParseResult(undefined, functions).reason, 'empty query');
  });

  it('the parse cache keeps trees, not judgements: a new function list applies to a cached text', () => {
    const sql = 'SELECT my_volatile_fn()';
    assert.equal(classifier.classifyStatement(sql, functions).route, 'primary');
    assert.equal(
      classifier.classifyStatement(sql, functionVolatilityFromPgProc(PG_PROC, { allow: ['my_volatile_fn'] })).route,
      'replica-ok',
    );
    assert.equal(classifier.classifyStatement(sql, functions).route, 'primary');
  });

  it('the shape cache gives the verdict the text itself gets, for every corpus entry and its constants changed', async () => {
    const uncached = await createClassifier({ shapeCacheSize: 0, parseCacheSize: 0 });
    const cached = await createClassifier();
    const variants = CORPUS.flatMap(({ sql }) => [
      sql,
      sql.replace(/\b\d+\b/g, '7'),
      sql.replace(/'[^']*'/g, "'other'"),
      sql.replace(/\b\d+\b/g, '0'),
    ]);
    variants.push('EXPLAIN (ANALYZE 0) SELECT 1', 'EXPLAIN (ANALYZE 1) SELECT 1', "SELECT set_config('a', 'b', true)", "SELECT 'abc'[1]");
    for (let round = 0; round < 2; round++)
      for (const sql of variants)
        assert.deepEqual(cached.classifyStatement(sql, functions), uncached.classifyStatement(sql, functions), sql);
  });

  it('a shape verdict is kept per function list: a new pg_proc read judges the shape afresh', async () => {
    const subject = await createClassifier();
    assert.equal(subject.classifyStatement('SELECT my_stable_fn(1) FROM t WHERE a = 1', functions).route, 'replica-ok');
    const nowVolatile = functionVolatilityFromPgProc([...PG_PROC, { schema: 'public', name: 'my_stable_fn', provolatile: 'v' }]);
    assert.equal(subject.classifyStatement('SELECT my_stable_fn(2) FROM t WHERE a = 2', nowVolatile).route, 'primary');
    assert.equal(subject.classifyStatement('SELECT my_stable_fn(3) FROM t WHERE a = 3', functions).route, 'replica-ok');
  });

  it('marks a lone DISCARD ALL only', () => {
    assert.equal(classifier.classifyStatement('DISCARD ALL', functions).discardAll, true);
    assert.equal(classifier.classifyStatement('DISCARD ALL; SELECT 1', functions).discardAll, undefined);
    assert.equal(classifier.classifyStatement('DISCARD TEMP', functions).discardAll, undefined);
  });

  it(`performance: a short SELECT (see bench/classifier.ts for µs per statement)`, async () => {
    const sql = 'SELECT id, name FROM users WHERE id = $1';
    const uncached = await createClassifier({ parseCacheSize: 0 });
    const cached = await createClassifier({ parseCacheSize: 1000 });
    const best = (subject: SqlClassifier): number => {
      let fastest = Infinity;
      for (let batch = 0; batch < 4; batch++) {
        const started = process.hrtime.bigint();
        for (let i = 0; i < 1000; i++) subject.classifyStatement(sql, functions);
        fastest = Math.min(fastest, Number(process.hrtime.bigint() - started) / 1000 / 1000);
      }
      return fastest;
    };
    // No timed assertion: the figures are for the reader of the test output (best of 4 batches, JIT warm).
    process.stdout.write(
      `# classifyStatement, short SELECT: ${best(uncached).toFixed(1)} µs parsed, ${best(cached).toFixed(1)} µs from the parse cache\n`,
    );
  });
});

describe('TransactionTracker', () => {
  const tracker = (): TransactionTracker => new TransactionTracker((sql) => classifier.classifyStatement(sql, functions));

  before(async () => {
    classifier = await createClassifier();
  });

  it('routes single reads to a replica and writes to the primary while idle', () => {
    const t = tracker();
    assert.equal(t.onQuery('SELECT 1').route, 'replica-ok');
    t.onReadyForQuery('I');
    assert.equal(t.onQuery('INSERT INTO t VALUES (1)').route, 'primary');
    t.onReadyForQuery('I');
    assert.equal(t.onQuery('SELECT 2').route, 'replica-ok');
    assert.deepEqual(t.pinnedBy, []);
  });

  it('keeps a read-write transaction on the primary, reads included, and frees the session at idle', () => {
    const t = tracker();
    assert.equal(t.onQuery('BEGIN').route, 'primary');
    t.onReadyForQuery('T');
    assert.equal(t.transactionBackend, 'primary');
    const read = t.onQuery('SELECT 1');
    assert.equal(read.route, 'primary');
    assert.match(read.reason, /inside a transaction on the primary/);
    t.onReadyForQuery('T');
    assert.equal(t.onQuery('COMMIT').route, 'primary');
    t.onReadyForQuery('I');
    assert.equal(t.transactionBackend, undefined);
    assert.equal(t.onQuery('SELECT 1').route, 'replica-ok');
  });

  it('keeps a BEGIN READ ONLY transaction on the replica and refuses what would leave state there', () => {
    const t = tracker();
    assert.equal(t.onQuery('BEGIN READ ONLY').route, 'replica-ok');
    t.onForwarded('replica');
    t.onReadyForQuery('T');
    assert.equal(t.transactionBackend, 'replica');
    assert.equal(t.onQuery('SELECT * FROM t').route, 'replica-ok');
    t.onReadyForQuery('T');
    assert.equal(t.onQuery('DECLARE c CURSOR FOR SELECT * FROM t').route, 'replica-ok');
    t.onReadyForQuery('T');
    assert.equal(t.onQuery('FETCH 10 FROM c').route, 'replica-ok');
    t.onReadyForQuery('T');
    for (const sql of [
      'SET work_mem = 1',
      'PREPARE p AS SELECT 1',
      'DECLARE h CURSOR WITH HOLD FOR SELECT 1',
      'SELECT pg_advisory_lock(1)',
      'INSERT INTO t VALUES (1)',
    ]) {
      const decision = t.onQuery(sql);
      assert.equal(decision.route, 'refuse', sql);
      assert.match(decision.reason, /not allowed inside a transaction on a replica/);
    }
    assert.equal(t.onParse('named', 'SELECT 1').route, 'refuse');
    assert.deepEqual(t.pinnedBy, [], 'a refused statement pins nothing');
    assert.equal(t.onQuery('SET LOCAL work_mem = 1').route, 'replica-ok');
    t.onReadyForQuery('T');
    assert.equal(t.onQuery('COMMIT').route, 'replica-ok');
    t.onReadyForQuery('I');
    assert.equal(t.transactionBackend, undefined);
  });

  it('a failed transaction on a replica stays there until ROLLBACK', () => {
    const t = tracker();
    t.onQuery('BEGIN READ ONLY');
    t.onReadyForQuery('T');
    t.onQuery('SELECT 1/0');
    t.onReadyForQuery('E');
    assert.equal(t.onQuery('SELECT 1').route, 'replica-ok');
    assert.equal(t.onQuery('ROLLBACK').route, 'replica-ok');
    t.onReadyForQuery('I');
    assert.equal(t.transactionBackend, undefined);
  });

  it('a replica-ok transaction the listener sent to the primary stays on the primary', () => {
    const t = tracker();
    assert.equal(t.onQuery('BEGIN READ ONLY').route, 'replica-ok');
    t.onForwarded('primary');
    t.onReadyForQuery('T');
    assert.equal(t.transactionBackend, 'primary');
    assert.equal(t.onQuery('SET work_mem = 1').route, 'primary');
    assert.deepEqual(t.pinnedBy, ['SET work_mem']);
  });

  it('CREATE TEMP TABLE then SELECT from it: the session is pinned, the SELECT goes to the primary', () => {
    const t = tracker();
    const created = t.onQuery('CREATE TEMP TABLE tt (a int)');
    assert.equal(created.route, 'primary');
    assert.match(created.reason, /pins the session \(temporary table\)/);
    t.onReadyForQuery('I');
    const read = t.onQuery('SELECT * FROM tt');
    assert.equal(read.route, 'primary');
    assert.match(read.reason, /session pinned to the primary by temporary table/);
  });

  for (const [first, pin] of [
    ['SET statement_timeout = 0', 'SET statement_timeout'],
    ['LISTEN jobs', 'LISTEN'],
    ['SELECT pg_advisory_lock(7)', 'session advisory lock pg_advisory_lock()'],
    ['PREPARE p AS SELECT 1', 'prepared statement p'],
    ['DECLARE c CURSOR WITH HOLD FOR SELECT 1', 'WITH HOLD cursor'],
  ] as const) {
    it(`"${first}" then SELECT: pinned by ${pin}`, () => {
      const t = tracker();
      assert.equal(t.onQuery(first).route, 'primary');
      t.onReadyForQuery('I');
      assert.equal(t.onQuery('SELECT 1').route, 'primary');
      assert.deepEqual(t.pinnedBy, [pin]);
    });
  }

  it('a pin taken inside a primary transaction outlives it', () => {
    const t = tracker();
    t.onQuery('BEGIN');
    t.onReadyForQuery('T');
    t.onQuery('LISTEN ch');
    t.onReadyForQuery('T');
    t.onQuery('COMMIT');
    t.onReadyForQuery('I');
    assert.equal(t.onQuery('SELECT 1').route, 'primary');
  });

  it('extended protocol: a named Parse pins, an unnamed one is classified', () => {
    const t = tracker();
    assert.equal(t.onParse('', 'SELECT * FROM t WHERE a = $1').route, 'replica-ok');
    t.onReadyForQuery('I');
    assert.equal(t.onParse('', 'UPDATE t SET a = $1').route, 'primary');
    t.onReadyForQuery('I');
    assert.deepEqual(t.pinnedBy, []);
    const named = t.onParse('stmt1', 'SELECT 1');
    assert.equal(named.route, 'primary');
    assert.deepEqual(t.pinnedBy, ['named prepared statement stmt1']);
  });

  it('DISCARD ALL sent alone unpins once it has run; inside a message with others it does not', () => {
    const t = tracker();
    t.onQuery('SET work_mem = 1');
    t.onReadyForQuery('I');
    t.onQuery('DISCARD ALL; SELECT 1');
    t.onReadyForQuery('I');
    assert.deepEqual(t.pinnedBy, ['SET work_mem']);
    assert.equal(t.onQuery('DISCARD ALL').route, 'primary');
    assert.deepEqual(t.pinnedBy, ['SET work_mem'], 'not before the server is ready again');
    t.onReadyForQuery('I');
    assert.deepEqual(t.pinnedBy, []);
    assert.equal(t.onQuery('SELECT 1').route, 'replica-ok');
  });

  it('multi-statement messages: a read-only transaction in one message goes to a replica, a mixed one to the primary', () => {
    const t = tracker();
    assert.equal(t.onQuery('BEGIN READ ONLY; SELECT 1; COMMIT').route, 'replica-ok');
    t.onReadyForQuery('I');
    assert.equal(t.onQuery('BEGIN; SELECT 1; UPDATE t SET a = 1; COMMIT').route, 'primary');
    t.onReadyForQuery('I');
    assert.deepEqual(t.pinnedBy, []);
  });

  it('COPY FROM STDIN goes to the primary, COPY TO STDOUT may go to a replica', () => {
    const t = tracker();
    assert.equal(t.onQuery('COPY t FROM STDIN').route, 'primary');
    t.onReadyForQuery('I');
    assert.equal(t.onQuery('COPY t TO STDOUT').route, 'replica-ok');
  });
});
