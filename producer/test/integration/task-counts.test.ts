// task_counts against the table it counts: the dispatcher's in-flight figure and the gauges read it,
// so every way rows come and go must keep it exact, TRUNCATE included (which fires no row trigger).
import type { TestDatabase } from '@task-pipeline/testkit/isolation';
import postgres from 'postgres';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createProducerDatabase } from '../support/database.js';

let db: TestDatabase;
let sql: postgres.Sql;

beforeAll(async () => {
  db = await createProducerDatabase('task_counts');
  sql = postgres(db.url, { max: 2, onnotice: () => undefined });
});

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await db?.drop();
});

/** The counters summed over their slots, and the table counted, by status. */
async function both(): Promise<{ counters: Record<string, number>; table: Record<string, number> }> {
  const counters = await sql<{ status: string; n: number }[]>`
    SELECT status, sum(count)::int AS n FROM task_counts GROUP BY status HAVING sum(count) <> 0`;
  const table = await sql<{ status: string; n: number }[]>`
    SELECT status, count(*)::int AS n FROM tasks GROUP BY status`;
  const byStatus = (rows: { status: string; n: number }[]) =>
    Object.fromEntries(rows.map((r) => [r.status, r.n]));
  return { counters: byStatus(counters), table: byStatus(table) };
}

test('inserts, status changes, deletes and TRUNCATE keep the counters equal to the table', async () => {
  await sql`
    INSERT INTO tasks (id, text, priority)
    SELECT gen_random_uuid(), 'task ' || g, 'medium' FROM generate_series(1, 30) g`;
  await sql`UPDATE tasks SET status = 'sent', attempts = 1 WHERE id IN (SELECT id FROM tasks LIMIT 10)`;
  await sql`DELETE FROM tasks WHERE id IN (SELECT id FROM tasks WHERE status = 'waiting' LIMIT 5)`;
  let now = await both();
  expect(now.table).toEqual({ waiting: 15, sent: 10 });
  expect(now.counters).toEqual(now.table);

  // A rolled-back TRUNCATE keeps the counters with the rows.
  await sql
    .begin(async (tx) => {
      await tx`TRUNCATE tasks`;
      throw new Error('roll back');
    })
    .catch(() => undefined);
  now = await both();
  expect(now.counters).toEqual({ waiting: 15, sent: 10 });

  await sql`TRUNCATE tasks`;
  now = await both();
  expect(now).toEqual({ counters: {}, table: {} });

  await sql`INSERT INTO tasks (id, text) VALUES (gen_random_uuid(), 'after the truncate')`;
  now = await both();
  expect(now.counters).toEqual({ waiting: 1 });
  expect(now.table).toEqual({ waiting: 1 });
});
