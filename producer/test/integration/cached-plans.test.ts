// PostgreSQL settles on one generic plan for a prepared statement after five runs and keeps it until
// the table is analyzed again. A producer starts on an empty or small table and fills it, so its
// statements must not keep a plan that scans the table, made while it was small (PLANNING, db.ts).
// Each case runs on a connection set up like the pools', in one transaction, rolled back, and counts
// the table's sequential scans and the rows it read there (pg_stat_xact_user_tables): this test's
// alone, and current.
import type { TestDatabase } from '@task-pipeline/testkit/isolation';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createDispatchRepository } from '../../src/dispatch/dispatch-repository.js';
import { PLANNING } from '../../src/plugins/db.js';
import { createOperatorRepository } from '../../src/tasks/operator-repository.js';
import { createTaskRepository } from '../../src/tasks/repository.js';
import { retentionBatch } from '../../src/tasks/retention.js';
import { createProducerDatabase, inRolledBackTransaction } from '../support/database.js';

let db: TestDatabase;
let sql: postgres.Sql;

beforeAll(async () => {
  db = await createProducerDatabase('cached_plans');
  // One connection: the statements prepared by one case's runs are the ones its last run uses.
  sql = postgres(db.url, { max: 1, onnotice: () => undefined, connection: PLANNING });
});

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await db?.drop();
});

/** Tasks in every status, at attempt 1; returns the ids of the sent and of the waiting ones. */
async function addTasks(tx: postgres.TransactionSql, count: number): Promise<Ids> {
  const rows = await tx<{ id: string; status: string }[]>`
    insert into tasks (id, text, status, attempts, error, sent_at, finished_at)
    select gen_random_uuid(), 'task ' || g, s.status, 1,
           case when s.status = 'error' then 'failed' end,
           case when s.status <> 'waiting' then now() end,
           case when s.status in ('success', 'error') then now() end
      from generate_series(1, ${count}) g,
           lateral (select (array['sent', 'sent', 'waiting', 'success', 'error'])[1 + g % 5] as status) s
    returning id, status`;
  const of = (status: string) => rows.filter((r) => r.status === status).map((r) => r.id);
  return { sent: of('sent'), waiting: of('waiting') };
}

interface Ids {
  sent: string[];
  waiting: string[];
}

type Run = (tx: postgres.TransactionSql, ids: Ids, round: number) => Promise<unknown>;

const repository = (tx: postgres.TransactionSql) =>
  createTaskRepository(tx as unknown as postgres.Sql, { deadlineMs: 60_000 });
const operator = (tx: postgres.TransactionSql) =>
  createOperatorRepository(tx as unknown as postgres.Sql, { deadlineMs: 60_000, staleSentAfterS: 60 });

const cases: [string, Run][] = [
  [
    'a report batch',
    (tx, ids, round) =>
      repository(tx).reportBatchMinimal(
        ids.sent
          .slice(round * 4, round * 4 + 4)
          .map((taskId) => ({ taskId, taskStatus: 'success', attempt: 1 })),
      ),
  ],
  ['get-task-data', (tx, ids, round) => repository(tx).get(ids.sent[round] as string)],
  ['a redrive', (tx, ids, round) => repository(tx).redrive(ids.sent[round] as string)],
  ['the newest page of the operator list', (tx) => operator(tx).list({ limit: 20, order: 'newest' })],
  ['a page of failed tasks', (tx) => operator(tx).list({ limit: 20, order: 'oldest', status: ['error'] })],
  ['a task with its history', (tx, ids, round) => operator(tx).detail(ids.sent[round] as string)],
  ['the operator stats', (tx) => operator(tx).stats()],
  // Nothing here is old enough to go: the walk from the oldest end stops at once, whatever the size.
  ['a retention batch', (tx) => retentionBatch(tx as unknown as postgres.Sql, 3_600, { deadlineMs: 60_000 })],
  [
    "the dispatcher's record of confirmed tasks",
    (tx, ids, round) =>
      createDispatchRepository(tx as unknown as postgres.Sql, { statementDeadlineMs: 60_000 }).recordSent(
        ids.waiting.slice(round * 2, round * 2 + 2).map((id) => ({
          id,
          text: '',
          priority: 'medium',
          createdAt: new Date(),
          attempt: 1,
        })),
        new Date(),
      ),
  ],
];

// The sizes a plan is made at: a hundred rows prices a scan of everything below a lookup; around a
// thousand, a merge join that walks the whole primary key in order beats a hundred lookups, and a
// jsonb_to_recordset of reports is estimated at a hundred rows whatever it holds.
const PLANNED_AT = [100, 1_000];
const GROWN_TO = 30_000;
// A statement of this test touches at most a page of rows (20) and their neighbours; anything near
// the grown table's size means it walked the table, by a scan or by a whole index.
const ROWS_READ_AT_MOST = 500;

describe('statements planned on a small table, run once it has grown', () => {
  const planned = PLANNED_AT.flatMap((size) => cases.map(([name, run]) => [name, size, run] as const));
  test.each(planned)('%s, planned at %i rows, reads no whole table', async (_name, size, run) => {
    await inRolledBackTransaction(sql, async (tx) => {
      const small = await addTasks(tx, size);
      await tx`analyze tasks`;
      for (let round = 0; round < 8; round += 1) await run(tx, small, round);

      const grown = await addTasks(tx, GROWN_TO);
      const reads = async () =>
        (
          await tx<{ scans: number; rows: number }[]>`
            select seq_scan::int as scans, (seq_tup_read + coalesce(idx_tup_fetch, 0))::int as rows
              from pg_stat_xact_user_tables where relname = 'tasks'`
        )[0] as { scans: number; rows: number };
      const before = await reads();
      await run(tx, grown, 0);
      const after = await reads();
      expect(after.scans - before.scans).toBe(0);
      expect(after.rows - before.rows).toBeLessThan(ROWS_READ_AT_MOST);
    });
  });
});
