// statementShape: constants become parameters only where this small lexer is sure of the lexing; anything else is
// left to PostgreSQL's parser (undefined), which is what keeps a shape verdict sound for the text it stands for.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { statementShape } from '../../src/proxy/sql-shape.js';

describe('statementShape', () => {
  it('replaces numeric and plain string constants, in order', () => {
    assert.equal(
      statementShape('SELECT abalance FROM pgbench_accounts WHERE aid = 4242;'),
      'SELECT abalance FROM pgbench_accounts WHERE aid = $1;',
    );
    assert.equal(
      statementShape("SELECT * FROM t WHERE a = 'x;y' AND b IN (1, 2.5, .5, 1e3, 6E-2)"),
      'SELECT * FROM t WHERE a = $1 AND b IN ($2, $3, $4, $5, $6)',
    );
    assert.equal(statementShape("SELECT 'it''s' || name FROM t1 LIMIT 10"), 'SELECT $1 || name FROM t1 LIMIT $2');
    assert.equal(statementShape('SELECT "col 1", t2.c3 FROM "Tab""le" WHERE x>-1'), 'SELECT "col 1", t2.c3 FROM "Tab""le" WHERE x>-$1');
    assert.equal(statementShape("SELECT 'a$b', '--', '/*' FROM t"), 'SELECT $1, $2, $3 FROM t');
  });

  it('leaves identifiers with digits and texts without constants alone', () => {
    assert.equal(statementShape('SELECT t1.col_2 FROM s3.t1'), undefined);
    assert.equal(statementShape('BEGIN READ ONLY'), undefined);
    assert.equal(statementShape(''), undefined);
  });

  it('gives up where its lexing could differ from PostgreSQL', () => {
    for (const sql of [
      'SELECT * FROM t WHERE a = $1', // parameters
      'DO $$ BEGIN PERFORM 1; END $$', // dollar quotes
      'SELECT 1 -- comment',
      'SELECT /* c */ 1',
      "SELECT E'\\n', 1",
      "SELECT 'a\\'' , 1", // backslash: standard_conforming_strings decides
      "SELECT B'101', X'1F', N'x', U&'d\\0061t', 1",
      "SELECT 'unterminated",
      'SELECT "unterminated',
      'SELECT 0x1F', // PostgreSQL 15 and 16 lex this differently
      'SELECT 1..2',
      'SELECT 123abc',
      'SELECT 1e',
      "SELECT 'a'b", // the string would run into the identifier
      "SELECT 'abc'[1]", // $1[1] parses, 'abc'[1] does not
      "SELECT 'abc' .x",
      'SELECT t.5',
    ])
      assert.equal(statementShape(sql), undefined, sql);
  });
});
