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

test('statements changing several counters at once take them in one order: no deadlock on a slot', async () => {
  // Every transaction on one slot, as two transactions 64 ids apart are: all contend for the same
  // counter rows, which each statement must lock in the same order.
  await sql`CREATE OR REPLACE FUNCTION task_counts_slot() RETURNS smallint LANGUAGE sql VOLATILE AS $$ SELECT 0::smallint $$`;
  await sql`
    INSERT INTO tasks (id, text, priority)
    SELECT gen_random_uuid(), 'task ' || g, (ARRAY['high', 'medium', 'low'])[1 + g % 3]::task_priority
    FROM generate_series(1, 3000) g`;
  const priorities = ['high', 'medium', 'low'];
  const failures: string[] = [];
  // Six writers, each on its own tasks (so the tasks' rows never make them wait for each other),
  // inserting and changing tasks of one to three priorities per statement.
  const writers = postgres(db.url, { max: 6, onnotice: () => undefined });
  const writer = async (w: number) => {
    for (let i = 0; i < 150; i += 1) {
      const chosen = priorities.filter(() => Math.random() < 0.6);
      if (chosen.length === 0) chosen.push('medium');
      const rows = 1 + Math.floor(Math.random() * 40);
      try {
        if (i % 2 === 0) {
          await writers`
            INSERT INTO tasks (id, text, priority)
            SELECT gen_random_uuid(), 'task', (${chosen}::task_priority[])[1 + g % ${chosen.length}]
            FROM generate_series(1, ${rows}) g`;
        } else {
          await writers`
            UPDATE tasks SET status = CASE status WHEN 'waiting' THEN 'sent' ELSE 'waiting' END
            WHERE id IN (SELECT id FROM tasks
                         WHERE priority = ANY(${chosen}::task_priority[]) AND abs(hashtext(id::text)) % 6 = ${w}
                         ORDER BY random() LIMIT ${rows})`;
        }
      } catch (err) {
        failures.push((err as { code?: string }).code ?? String(err));
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: 6 }, (_, w) => writer(w)));
  } finally {
    await writers.end({ timeout: 1 });
  }
  // 40P01 (deadlock_detected) when the rows were taken in the order each statement's groups came.
  expect(failures).toEqual([]);
  const now = await both();
  expect(now.counters).toEqual(now.table);
}, 120_000);
