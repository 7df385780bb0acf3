// Retention against the real database: finished tasks past TASK_RETENTION go in batches, with their
// redrive records and their Idempotency-Keys; young ones, and waiting and sent tasks of any age, stay;
// a replica that cannot take the advisory lock deletes nothing, so two never delete at once; the
// counters the stats read follow the deletes.

import { createTestDatabase, type TestDatabase } from '@task-pipeline/testkit/isolation';
import postgres from 'postgres';
import { afterAll, beforeAll, beforeEach, expect, test } from 'vitest';
import { migrate } from '../../src/db/migrate.js';
import { createTaskRepository } from '../../src/tasks/repository.js';
import { RETENTION_LOCK_KEY, retentionBatch, startRetention } from '../../src/tasks/retention.js';
import { logger } from '../support/producer.js';

const WEEK_S = 7 * 86_400;

let db: TestDatabase;
let sql: postgres.Sql;

beforeAll(async () => {
  db = await createTestDatabase('retention');
  await migrate(db.url, logger);
  sql = postgres(db.url, { max: 4, onnotice: () => undefined });
});
afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await db?.drop();
});

/** label → [status, created days ago, finished days ago or null]. */
const ROWS: Record<string, [string, number, number | null]> = {
  oldSuccess1: ['success', 10, 10],
  oldSuccess2: ['success', 9, 8],
  oldError: ['error', 30, 29],
  youngSuccess: ['success', 1, 1],
  youngError: ['error', 3, 2],
  // Created long ago, finished yesterday (a redrive, a long retry): its finish is what counts.
  lateFinish: ['success', 30, 1],
  oldWaiting: ['waiting', 60, null],
  oldSent: ['sent', 60, null],
};
const OLD = ['oldSuccess1', 'oldSuccess2', 'oldError'];

beforeEach(async () => {
  await sql`delete from tasks`;
  for (const [label, [status, createdDays, finishedDays]] of Object.entries(ROWS)) {
    await sql`
      insert into tasks (id, text, status, attempts, idempotency_key, request_hash, created_at, sent_at, finished_at)
      values (gen_random_uuid(), ${label}, ${status}, 1, ${label}, '\\x00'::bytea,
              now() - make_interval(days => ${createdDays}),
              case when ${status} <> 'waiting' then now() - make_interval(days => ${createdDays}) end,
              case when ${finishedDays}::int is not null then now() - make_interval(days => ${finishedDays}::int) end)`;
  }
});

const left = async () =>
  (await sql<{ text: string }[]>`select text from tasks order by text`).map((r) => r.text);

test('deletes finished tasks past retention in batches; keeps young ones and waiting/sent of any age', async () => {
  const batches: number[] = [];
  for (;;) {
    const batch = await retentionBatch(sql, WEEK_S, { batchSize: 2 });
    if (!batch.locked) throw new Error('the lock is free in this test');
    batches.push(batch.deleted);
    if (batch.deleted < 2) break;
  }
  expect(batches).toEqual([2, 1]);
  const expected = Object.keys(ROWS)
    .filter((l) => !OLD.includes(l))
    .sort();
  expect(await left()).toEqual(expected);
  // The stats' counters followed the deletes.
  const counted = await sql<{ status: string; count: number }[]>`
    select status, sum(count)::int as count from task_counts group by status having sum(count) <> 0 order by status`;
  const actual = await sql<{ status: string; count: number }[]>`
    select status, count(*)::int as count from tasks group by status order by status`;
  expect([...counted]).toEqual([...actual]);
});

test('TASK_RETENTION=0 deletes nothing', async () => {
  expect(await retentionBatch(sql, 0)).toEqual({ locked: true, deleted: 0 });
  expect(await left()).toHaveLength(Object.keys(ROWS).length);
});

test('a replica that cannot take the advisory lock deletes nothing: two never delete at once', async () => {
  const holder = postgres(db.url, { max: 1, onnotice: () => undefined });
  try {
    await holder.begin(async (tx) => {
      // Another replica in the middle of its batch.
      await tx`select pg_advisory_xact_lock(${RETENTION_LOCK_KEY.toString()}::int8)`;
      expect(await retentionBatch(sql, WEEK_S)).toEqual({ locked: false });
      expect(await left()).toHaveLength(Object.keys(ROWS).length);
    });
    // Released with the other replica's transaction: the next turn deletes.
    expect(await retentionBatch(sql, WEEK_S)).toEqual({ locked: true, deleted: OLD.length });
  } finally {
    await holder.end({ timeout: 1 });
  }
});

test('two retention loops at once: every old row deleted exactly once, never two batches together', async () => {
  await sql`
    insert into tasks (id, text, status, attempts, created_at, sent_at, finished_at)
    select gen_random_uuid(), 'bulk ' || g, 'success', 1, now() - interval '20 days',
           now() - interval '20 days', now() - interval '20 days'
      from generate_series(1, 5000) g`;
  // Watches for two retention transactions holding the lock at the same time.
  let overlap = false;
  let seen = false;
  let watching = true;
  const watch = (async () => {
    while (watching) {
      const [row] = await sql<{ holders: number }[]>`
        select count(*)::int as holders from pg_locks
         where locktype = 'advisory' and granted
           and ((classid::int8 << 32) | objid::int8) = ${RETENTION_LOCK_KEY.toString()}::int8`;
      if ((row?.holders ?? 0) > 0) seen = true;
      if ((row?.holders ?? 0) > 1) overlap = true;
    }
  })();
  let deleted = 0;
  const loops = [1, 2].map(() =>
    startRetention({
      sql,
      retentionSeconds: WEEK_S,
      onDeleted: (n) => (deleted += n),
      logger,
      batchSize: 500,
      idleMs: 60_000,
    }),
  );
  for (let i = 0; i < 600 && deleted < 5000 + OLD.length; i += 1) await new Promise((r) => setTimeout(r, 50));
  for (const loop of loops) loop.stop();
  await Promise.all(loops.map((l) => l.idle()));
  watching = false;
  await watch;
  expect(deleted).toBe(5000 + OLD.length);
  // The watch did see the lock held (so it would have seen two holders).
  expect(seen).toBe(true);
  expect(overlap).toBe(false);
  expect(await left()).toEqual(
    Object.keys(ROWS)
      .filter((l) => !OLD.includes(l))
      .sort(),
  );
});

test('redrive records go with their task, and so does its Idempotency-Key', async () => {
  const repository = createTaskRepository(sql, { deadlineMs: 10_000 });
  const [old] = await sql<{ id: string }[]>`select id from tasks where text = 'oldError'`;
  const oldId = (old as { id: string }).id;
  expect((await repository.redrive(oldId)).outcome).toBe('applied');
  await repository.report({ taskId: oldId, taskStatus: 'error', attempt: 2, error: 'again' });
  await sql`update tasks set finished_at = now() - interval '8 days' where id = ${oldId}`;
  expect(await sql`select 1 from task_redrives where task_id = ${oldId}`).toHaveLength(1);
  await retentionBatch(sql, WEEK_S);
  expect(await sql`select 1 from task_redrives where task_id = ${oldId}`).toHaveLength(0);
  // The key of a deleted task is free again: the same request creates a new task.
  const again = await repository.create({
    text: 'oldSuccess1',
    priority: 'medium',
    idempotencyKey: 'oldSuccess1',
  });
  expect(again.outcome).toBe('created');
});
