// SLOW (resilience tier: a 10,000,000-row fixture, minutes to build). The operator's statements,
// captured as the repository sends them, explained and run (EXPLAIN ANALYZE) on ten million tasks:
// every filter combination of the list and of the bulk redrive's selection, both orders, with and
// without a cursor, and the stats. None may scan the table: every access to tasks goes through an
// index, and the rows read from tasks stay within the scan budget of each status branch.

import { createTestDatabase, type TestDatabase } from '@task-pipeline/testkit/isolation';
import pino from 'pino';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { migrate } from '../../src/db/migrate.js';
import { RedriveTasksSchema, TaskListQuerySchema } from '../../src/schemas/operator.js';
import { createOperatorRepository } from '../../src/tasks/operator-repository.js';
import { MATCH_COUNT_BOUND, SCAN_BUDGET, type TaskFilter } from '../../src/tasks/operator-types.js';
import { type ExplainedStatement, explainStatement, type SentStatement } from '../support/plans.js';

const ROWS = 10_000_000;
const SENT = 10_000;
/** Indexes the operator's statements may use. */
const INDEXES = new Set(['tasks_created', 'tasks_error', 'tasks_sent', 'tasks_claim_fifo', 'tasks_pkey']);

/** EXPLAIN ANALYZE's execution times of the read statements, for the figures in BENCHMARKS.md. */
const executionMs: number[] = [];

/**
 * The cases go out on two connections at once, each capturing what it sent (one statement at a time
 * per connection): the plans are the same, and PostgreSQL, which does the work, gets both cores.
 */
const LANES = 2;

interface Lane {
  sql: postgres.Sql;
  sent: SentStatement[];
  repository: ReturnType<typeof createOperatorRepository>;
}

let db: TestDatabase;
let sql: postgres.Sql;
let lanes: Lane[] = [];
let midCursor: string;

beforeAll(async () => {
  db = await createTestDatabase('operator_plans');
  await migrate(db.url, pino({ level: 'silent' }));
  sql = postgres(db.url, { max: 2, onnotice: () => undefined });
  // The migration's own indexes, dropped for the load and built again from their definitions
  // afterwards (a bulk build is minutes faster than ten million inserts into six indexes). The
  // counters' triggers are not part of any plan: the load skips them.
  const indexes = await sql<{ name: string; def: string }[]>`
    select indexname as name, indexdef as def from pg_indexes
     where tablename = 'tasks' and indexname <> 'tasks_pkey'`;
  for (const { name } of indexes) await sql.unsafe(`drop index ${name}`);
  // Unlogged: the load and the index builds write no WAL (gigabytes at this size), and a plan does
  // not depend on it. The primary key is built again after the load too, from sorted input.
  await sql`alter table tasks set unlogged`;
  await sql`alter table tasks drop constraint tasks_pkey`;
  await sql.begin(async (tx) => {
    await tx`set local session_replication_role = replica`;
    // Ten days of tasks, newest last: 97.8 % success, 1 % error, 0.1 % sent, 1.1 % waiting.
    await tx`
      insert into tasks (id, text, priority, status, attempts, error, created_at, updated_at, sent_at, finished_at)
      select gen_random_uuid(), 'resize image ' || g,
             (array['high','medium','low'])[1 + g % 3]::task_priority,
             s, case when s = 'waiting' then 0 else 1 end,
             case when s = 'error' then 'timeout after ' || (g % 97) || ' s' end,
             c, c, case when s <> 'waiting' then c end, case when s in ('success', 'error') then c end
        from (select g, now() - interval '10 days' + g * interval '86 ms' as c,
                     case when g % 1000 < ${SENT / (ROWS / 1000)} then 'sent'
                          when g % 100 = 1 then 'error'
                          when g % 100 = 2 then 'waiting'
                          else 'success' end as s
                from generate_series(1, ${ROWS}) g) x`;
  });
  await sql`alter table tasks add constraint tasks_pkey primary key (id)`;
  for (const { def } of indexes) await sql.unsafe(def);
  await sql`vacuum analyze tasks`;
  const [mid] = await sql<{ micros: string; id: string }[]>`
    select (extract(epoch from created_at) * 1000000)::int8::text as micros, id from tasks
     where created_at < now() - interval '5 days' order by created_at desc, id desc limit 1`;
  const { encodeCursor } = await import('../../src/tasks/operator-repository.js');
  midCursor = encodeCursor(mid as { micros: string; id: string });
  lanes = Array.from({ length: LANES }, () => {
    const sent: SentStatement[] = [];
    const laneSql = postgres(db.url, {
      max: 1,
      onnotice: () => undefined,
      debug: (_connection, query, params) => sent.push({ query, params: [...params] }),
    });
    const repository = createOperatorRepository(laneSql, { deadlineMs: 600_000, staleSentAfterS: 600 });
    return { sql: laneSql, sent, repository };
  });
}, 1_800_000);

afterAll(async () => {
  if (executionMs.length > 0) {
    const sorted = [...executionMs].sort((a, b) => a - b);
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]?.toFixed(1);
    process.stdout.write(
      `operator statements at ${ROWS} rows: ${sorted.length} run, execution ms median ${at(0.5)}, p95 ${at(0.95)}, max ${at(1)}\n`,
    );
  }
  await Promise.all(lanes.map((lane) => lane.sql.end({ timeout: 1 })));
  await sql?.end({ timeout: 1 });
  await db?.drop();
});

/**
 * Runs `action` on a lane, then explains (and, unless it writes, runs) every statement it sent on
 * tasks.
 */
async function explainStatements(
  lane: Lane,
  action: (repository: Lane['repository']) => Promise<unknown>,
): Promise<ExplainedStatement[]> {
  lane.sent.length = 0;
  await action(lane.repository);
  const explained = [];
  for (const statement of lane.sent.filter((s) => /\btasks\b/.test(s.query))) {
    const writes = /\bupdate\s+tasks\b/i.test(statement.query);
    const result = await explainStatement(lane.sql, statement, { analyze: !writes });
    if (result.executionMs !== undefined) executionMs.push(result.executionMs);
    explained.push(result);
  }
  return explained;
}

/** `check` for every item, the lanes taking the next one as each finishes. */
async function acrossLanes<T>(items: readonly T[], check: (lane: Lane, item: T) => Promise<void>) {
  let next = 0;
  await Promise.all(
    lanes.map(async (lane) => {
      while (next < items.length) {
        const item = items[next] as T;
        next += 1;
        await check(lane, item);
      }
    }),
  );
}

/** Index access only, and (when run) at most `maxRows` rows read from tasks in all. */
function expectBounded(explained: ExplainedStatement[], maxRows: number, label: string) {
  expect(explained.length, label).toBeGreaterThan(0);
  for (const { query, nodes: planNodes } of explained) {
    const onTasks = planNodes.filter((n) => n['Relation Name'] === 'tasks');
    for (const node of onTasks) {
      expect(node['Node Type'], `${label}: ${query}`).not.toBe('Seq Scan');
      if (node['Index Name'])
        expect(INDEXES, `${label}: ${node['Index Name']}`).toContain(node['Index Name']);
    }
    const read = planNodes
      .filter((n) => n['Relation Name'] === 'tasks' || n['Index Name'] !== undefined)
      .reduce((sum, n) => sum + (n['Actual Rows'] ?? 0) * (n['Actual Loops'] ?? 1), 0);
    expect(read, `${label}: rows read by ${query}`).toBeLessThanOrEqual(maxRows);
  }
}

const DAY = 86_400_000;
const FILTERS: TaskFilter[] = [];
for (const status of [
  undefined,
  ['waiting'],
  ['sent'],
  ['success'],
  ['error'],
  ['sent', 'error'],
  ['waiting', 'success'],
] as const)
  for (const priority of [undefined, ['high'] as const])
    for (const range of [false, true])
      for (const text of [undefined, 'image 4242'])
        for (const error of [undefined, 'after 42 s'])
          for (const sentBefore of [false, true])
            FILTERS.push({
              ...(status ? { status: [...status] } : {}),
              ...(priority ? { priority: [...priority] } : {}),
              ...(range
                ? {
                    createdAfter: new Date(Date.now() - 6 * DAY).toISOString(),
                    createdBefore: new Date(Date.now() - 2 * DAY).toISOString(),
                  }
                : {}),
              ...(text ? { text } : {}),
              ...(error ? { error } : {}),
              ...(sentBefore ? { sentBefore: new Date(Date.now() - DAY).toISOString() } : {}),
            });
/** Two branches (error, sent) at most, each reading its budget, plus the index entries it walked. */
const MAX_READ = 4 * SCAN_BUDGET + 2 * MATCH_COUNT_BOUND;

describe(`operator plans at ${ROWS.toLocaleString('en')} rows`, () => {
  test(`every filter combination of the list (${FILTERS.length * 4} queries) stays on indexes within the budget`, async () => {
    const cases = FILTERS.flatMap((filter) =>
      (['newest', 'oldest'] as const).flatMap((order) =>
        [undefined, midCursor].map((cursor) => ({ filter, order, cursor })),
      ),
    );
    await acrossLanes(cases, async (lane, { filter, order, cursor }) => {
      const query = TaskListQuerySchema.parse({ ...filter, order, ...(cursor ? { cursor } : {}) });
      const label = JSON.stringify({ ...filter, order, cursor: cursor !== undefined });
      const explained = await explainStatements(lane, (repository) => repository.list(query));
      // sentBefore with statuses that exclude sent selects nothing: no statement at all.
      const selectsNothing = filter.sentBefore !== undefined && filter.status?.includes('sent') === false;
      if (selectsNothing) expect(explained, label).toEqual([]);
      else expectBounded(explained, MAX_READ, label);
    });
  }, 1_800_000);

  test(`every filter combination of the bulk redrive's selection (${FILTERS.length}) stays on indexes within the budget`, async () => {
    await acrossLanes(FILTERS, async (lane, filter) => {
      const request = RedriveTasksSchema.parse({ ...filter, dryRun: true, limit: 1000 });
      const explained = await explainStatements(lane, (repository) => repository.redriveMany(request));
      // A selection of nothing (waiting or success only) sends no statement at all.
      if (explained.length > 0) expectBounded(explained, MAX_READ, JSON.stringify(filter));
    });
    // And the redrive itself (explained, not run again): the selection, then the primary key.
    const real = RedriveTasksSchema.parse({ status: ['error'], error: 'after 42', limit: 10 });
    const redriven = await explainStatements(lanes[0] as Lane, (repository) => repository.redriveMany(real));
    expectBounded(redriven, MAX_READ, 'redrive');
  }, 1_800_000);

  test('the stats read no more than the small partial indexes', async () => {
    const explained = await explainStatements(lanes[0] as Lane, (repository) => repository.stats());
    expectBounded(explained, 2 * SENT + 10, 'stats');
  }, 600_000);
});
