// The repository's own statements (captured as they are sent) explained on a table of 200,000 tasks:
// lookups, reports, redrives and the batch update must reach rows through an index, never a scan of
// the table. (The dispatcher's claim and record statements are explained in the dispatcher's tests.)
import { randomUUID } from 'node:crypto';
import type { TestDatabase } from '@task-pipeline/testkit/isolation';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTaskRepository } from '../../src/tasks/repository.js';
import { createProducerDatabase } from '../support/database.js';
import { type ExplainedStatement, explainStatement, type SentStatement } from '../support/plans.js';

const ROWS = 200_000;

let db: TestDatabase;
let sql: postgres.Sql;
let sent: SentStatement[] = [];
let ids: string[];

beforeAll(async () => {
  db = await createProducerDatabase('query_plans');
  sql = postgres(db.url, {
    max: 2,
    onnotice: () => undefined,
    debug: (_connection, query, params) => sent.push({ query, params: [...params] }),
  });
  // A realistic spread: most tasks finished, some in flight, a backlog waiting.
  await sql`
    insert into tasks (id, text, priority, status, attempts, idempotency_key, request_hash, sent_at, finished_at)
    select gen_random_uuid(), 'text ' || g,
           (array['high','medium','low'])[1 + g % 3]::task_priority,
           case when g % 10 < 7 then 'success' when g % 10 = 7 then 'error' when g % 10 = 8 then 'sent' else 'waiting' end,
           case when g % 10 = 9 then 0 else 1 end,
           case when g % 4 = 0 then 'key-' || g end, case when g % 4 = 0 then '\\x00'::bytea end,
           case when g % 10 between 7 and 8 then now() end, case when g % 10 < 8 then now() end
      from generate_series(1, ${ROWS}) g`;
  await sql`analyze tasks`;
  ids = (await sql<{ id: string }[]>`select id from tasks where status = 'sent' limit 1000`).map((r) => r.id);
});

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await db?.drop();
});

/** Runs `action`, then EXPLAINs every statement it sent that touches tasks. */
async function explainStatements(action: () => Promise<unknown>): Promise<ExplainedStatement[]> {
  sent = [];
  await action();
  const statements = sent.filter((s) => /\btasks\b/.test(s.query) && !/^\s*(begin|commit)/i.test(s.query));
  const explained = [];
  for (const statement of statements) explained.push(await explainStatement(sql, statement));
  return explained;
}

function expectIndexOnly(explained: ExplainedStatement[], index: string) {
  expect(explained.length).toBeGreaterThan(0);
  for (const { query, nodes: planNodes } of explained) {
    const onTasks = planNodes.filter((n) => n['Relation Name'] === 'tasks');
    expect(onTasks.length, query).toBeGreaterThan(0);
    for (const node of onTasks) {
      expect(node['Node Type'], query).not.toBe('Seq Scan');
      if (node['Node Type'].includes('Index')) expect(node['Index Name'], query).toBe(index);
    }
  }
}

describe(`plans at ${ROWS.toLocaleString('en')} rows`, () => {
  test('get-task-data reads one row through the primary key', async () => {
    const repo = createTaskRepository(sql, { deadlineMs: 60_000 });
    expectIndexOnly(await explainStatements(() => repo.get(ids[0] as string)), 'tasks_pkey');
  });

  test('a single report takes the batch path: one statement, through the primary key', async () => {
    const repo = createTaskRepository(sql, { deadlineMs: 60_000 });
    const explained = await explainStatements(() =>
      repo.report({ taskId: ids[1] as string, taskStatus: 'success', attempt: 0 }),
    );
    expect(explained).toHaveLength(1);
    expectIndexOnly(explained, 'tasks_pkey');
  });

  test('the batch locks and updates 1,000 rows in one statement through the primary key', async () => {
    const repo = createTaskRepository(sql, { deadlineMs: 60_000 });
    const reports = ids.map((taskId) => ({ taskId, taskStatus: 'success' as const, attempt: 1 }));
    const explained = await explainStatements(() => repo.reportBatch(reports));
    expect(explained).toHaveLength(1);
    expectIndexOnly(explained, 'tasks_pkey');
  });

  test('redrive uses the primary key', async () => {
    const repo = createTaskRepository(sql, { deadlineMs: 60_000 });
    expectIndexOnly(await explainStatements(() => repo.redrive(randomUUID())), 'tasks_pkey');
  });

  test('an Idempotency-Key replay finds the first task through the key index', async () => {
    const repo = createTaskRepository(sql, { deadlineMs: 60_000 });
    await repo.create({ text: 'once', priority: 'low', idempotencyKey: 'plan-key' });
    const explained = await explainStatements(() =>
      repo.create({ text: 'once', priority: 'low', idempotencyKey: 'plan-key' }),
    );
    const lookup = explained.filter((e) => e.query.startsWith('select'));
    expectIndexOnly(lookup, 'tasks_idempotency_key');
  });
});
