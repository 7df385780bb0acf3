// The lists rendered once (db/fragments.ts) read back in PostgreSQL as the names and values they
// were made from, quotes included, and one fragment serves many statements at once.
import type { TestDatabase } from '@task-pipeline/testkit/isolation';
import postgres from 'postgres';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { columnList, literalList } from '../../src/db/fragments.js';
import { createProducerDatabase } from '../support/database.js';

let db: TestDatabase;
let sql: postgres.Sql;

beforeAll(async () => {
  db = await createProducerDatabase('fragments');
  sql = postgres(db.url, { max: 2, onnotice: () => undefined });
});

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await db?.drop();
});

test('a column list names exactly its columns, with or without a table', async () => {
  const names = ['plain', 'with "quotes"', 'Mixed.Case'];
  const [row] = await sql`
    select ${columnList(sql, names)}
      from (select 1 as plain, 2 as "with ""quotes""", 3 as "Mixed.Case", 4 as other) t`;
  expect(row).toEqual({ plain: 1, 'with "quotes"': 2, 'Mixed.Case': 3 });
  const [qualified] = await sql`
    select ${columnList(sql, ['a', 'b'], 'x')} from (select 1 as a, 2 as b) x, (select 3 as a) y`;
  expect(qualified).toEqual({ a: 1, b: 2 });
});

test('a literal list matches exactly its values', async () => {
  const list = literalList(sql, ["it's", 'sent']);
  const [row] = await sql`
    select 'it''s' in ${list} as quoted, 'sent' in ${list} as plain, 'its' in ${list} as other`;
  expect(row).toEqual({ quoted: true, plain: true, other: false });
});

test('one fragment serves statements running at once', async () => {
  const columns = columnList(sql, ['n']);
  const results = await Promise.all(
    [1, 2, 3, 4].map((n) => sql`select ${columns} from (select ${n}::int as n) t`),
  );
  expect(results.map(([row]) => row)).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }]);
});
