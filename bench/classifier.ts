// Classifier cost per statement (µs): parse + judgement, without and with the parse cache. Prints figures, asserts nothing.
import { createClassifier, functionVolatilityFromPgProc } from '../src/proxy/sql-classifier.js';

const functions = functionVolatilityFromPgProc([
  { schema: 'pg_catalog', name: 'count', provolatile: 'i' },
  { schema: 'pg_catalog', name: 'now', provolatile: 's' },
]);

const STATEMENTS = {
  'short SELECT': 'SELECT id, name FROM users WHERE id = $1',
  'join + aggregate':
    'SELECT u.id, count(*) FROM users u JOIN orders o ON o.user_id = u.id WHERE o.created > now() GROUP BY u.id ORDER BY 2 DESC LIMIT 10',
  'writable CTE': 'WITH moved AS (DELETE FROM queue WHERE id < $1 RETURNING *) INSERT INTO done SELECT * FROM moved',
};

const rounds = Number(process.argv[2] ?? 20000);
for (const cacheSize of [0, 1000]) {
  const classifier = await createClassifier({ parseCacheSize: cacheSize });
  for (const [label, sql] of Object.entries(STATEMENTS)) {
    for (let i = 0; i < 1000; i++) classifier.classifyStatement(sql, functions); // warm-up
    const started = process.hrtime.bigint();
    for (let i = 0; i < rounds; i++) classifier.classifyStatement(sql, functions);
    const micros = Number(process.hrtime.bigint() - started) / 1000 / rounds;
    console.log(`${cacheSize === 0 ? 'no cache  ' : 'parse cache'}  ${label.padEnd(17)} ${micros.toFixed(1).padStart(7)} µs/statement`);
  }
}
