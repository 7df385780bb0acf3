// PostgreSQL settles on one generic plan for a prepared statement after five runs and keeps it until
// the table is analyzed again. A producer starts on an empty or small table and fills it, so its
// statements must reach rows by index under a plan made while the table was small. Counted in one
// transaction (pg_stat_xact_user_tables), so the figures are this test's alone and current.
import type { TestDatabase } from '@task-pipeline/testkit/isolation';
import postgres from 'postgres';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTaskRepository } from '../../src/tasks/repository.js';
import { createProducerDatabase } from '../support/database.js';

let db: TestDatabase;
let sql: postgres.Sql;

beforeAll(async () => {
  db = await createProducerDatabase('cached_plans');
  sql = postgres(db.url, { max: 1, onnotice: () => undefined });
});

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await db?.drop();
});

async function sentTasks(tx: postgres.TransactionSql, count: number): Promise<string[]> {
  const rows = await tx<{ id: string }[]>`
    insert into tasks (id, text, status, attempts, sent_at)
    select gen_random_uuid(), 'task ' || g, 'sent', 1, now() from generate_series(1, ${count}) g
    returning id`;
  return rows.map((r) => r.id);
}

test('report batches planned on a small table still reach rows by the primary key once it has grown', async () => {
  await sql
    .begin(async (tx) => {
      const repo = createTaskRepository(tx as unknown as postgres.Sql, { deadlineMs: 60_000 });
      const report = (ids: string[]) =>
        repo.reportBatchMinimal(ids.map((taskId) => ({ taskId, taskStatus: 'success', attempt: 1 })));
      const small = await sentTasks(tx, 60);
      await tx`analyze tasks`;
      for (let i = 0; i < 10; i++) await report(small.slice(i * 5, i * 5 + 5));

      const grown = await sentTasks(tx, 30_000);
      const seqScans = async () =>
        (
          await tx<{ n: number }[]>`
          select seq_scan::int as n from pg_stat_xact_user_tables where relname = 'tasks'`
        )[0]?.n;
      const before = await seqScans();
      const results = await report(grown.slice(0, 8));
      expect(results.map((r) => r.outcome)).toEqual(new Array(8).fill('applied'));
      expect(await seqScans()).toBe(before);

      // The batch ran under the cached generic plan, the case this is about.
      const [plans] = await tx<{ generic: number }[]>`
        select generic_plans::int as generic from pg_prepared_statements
         where statement like '%jsonb_to_recordset%'`;
      expect(plans?.generic).toBeGreaterThan(0);
      throw new RolledBack();
    })
    .catch((err: unknown) => {
      if (!(err instanceof RolledBack)) throw err;
    });
});

/** Leaves the database as it was: the test's rows go with its transaction. */
class RolledBack extends Error {}
