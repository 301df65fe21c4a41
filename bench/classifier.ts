// Classifier cost per statement (µs): parse + judgement with no cache, with the parse cache (the same text again), and
// with the shape cache (the same statement with a new constant each time, as pgbench -S sends). Prints figures only.
import { createClassifier, functionVolatilityFromPgProc } from '../src/proxy/sql-classifier.js';

const functions = functionVolatilityFromPgProc([
  { schema: 'pg_catalog', name: 'count', provolatile: 'i' },
  { schema: 'pg_catalog', name: 'now', provolatile: 's' },
]);

/** Statements with a constant `N` that varies per call in the shape-cache runs. */
const STATEMENTS = {
  'short SELECT': 'SELECT id, name FROM users WHERE id = N',
  'join + aggregate':
    'SELECT u.id, count(*) FROM users u JOIN orders o ON o.user_id = u.id WHERE o.created > now() GROUP BY u.id ORDER BY 2 DESC LIMIT N',
  'writable CTE': 'WITH moved AS (DELETE FROM queue WHERE id < N RETURNING *) INSERT INTO done SELECT * FROM moved',
};

const rounds = Number(process.argv[2] ?? 20000);
const runs = [
  { label: 'no cache   ', options: { parseCacheSize: 0, shapeCacheSize: 0 }, vary: false },
  { label: 'parse cache', options: { shapeCacheSize: 0 }, vary: false },
  { label: 'shape cache', options: {}, vary: true },
];
for (const { label, options, vary } of runs) {
  const classifier = await createClassifier(options);
  for (const [name, template] of Object.entries(STATEMENTS)) {
    const texts = Array.from({ length: 1000 }, (_, i) => template.replace('N', String(vary ? 1000 + i : 42)));
    for (const text of texts) classifier.classifyStatement(text, functions); // warm-up
    const started = process.hrtime.bigint();
    for (let i = 0; i < rounds; i++) classifier.classifyStatement(texts[i % texts.length]!, functions);
    const micros = Number(process.hrtime.bigint() - started) / 1000 / rounds;
    console.log(`${label}  ${name.padEnd(17)} ${micros.toFixed(1).padStart(7)} µs/statement`);
  }
}
