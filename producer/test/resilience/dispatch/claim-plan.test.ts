// The dispatcher's statements explained over a backlog of ~1,000,000 waiting tasks (plus finished and
// sent ones): the claim reads each priority's branch of the partial claim index in index order and
// stops at the batch size (no sort of the backlog, no scan of the table), with the planner's custom
// plan and with the generic plan a prepared statement switches to; record and counts use indexes too.

import type { TestDatabase } from '@task-pipeline/testkit/isolation';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildClaimPlan, type DispatchOrder, randomStartIds } from '../../../src/dispatch/claim-query.js';
import { createProducerDatabase, inRolledBackTransaction } from '../../support/database.js';
import { dispatchRepository, logger } from '../../support/dispatch.js';
import { type PlanNode, planNodes } from '../../support/plans.js';

const WAITING = 1_000_000;
const FINISHED = 200_000;
const SENT = 10_000;
const BATCH = 500;

let db: TestDatabase;
let sql: postgres.Sql;
let sent: { query: string; params: unknown[] }[] = [];
let probes = 0;

beforeAll(async () => {
  db = await createProducerDatabase('claim_plan');
  sql = postgres(db.url, {
    max: 2,
    onnotice: () => undefined,
    debug: (_connection, query, params) => sent.push({ query, params: [...params] }),
  });
  // A backlog in the three priorities (20/50/30 %), some of it leased right now, behind a history
  // of finished tasks and a few thousand in flight.
  await sql`
    INSERT INTO tasks (id, text, priority, created_at, claimed_until)
    SELECT gen_random_uuid(), 'task ' || g,
           (CASE WHEN g % 10 < 2 THEN 'high' WHEN g % 10 < 7 THEN 'medium' ELSE 'low' END)::task_priority,
           now() - interval '1 day' + g * interval '1 ms',
           CASE WHEN g % 100 = 0 THEN now() + interval '1 hour' END
    FROM generate_series(1, ${WAITING}) g`;
  await sql`
    INSERT INTO tasks (id, text, status, attempts, created_at, sent_at, finished_at)
    SELECT gen_random_uuid(), 'done ' || g, CASE WHEN g <= ${SENT} THEN 'sent' ELSE 'success' END, 1,
           now() - interval '2 days', now() - interval '1 hour', CASE WHEN g > ${SENT} THEN now() END
    FROM generate_series(1, ${FINISHED + SENT}) g`;
  await sql`VACUUM ANALYZE tasks`;
}, 600_000);

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await db?.drop();
});

function expectIndexedClaim(plan: PlanNode, index: string) {
  const all = planNodes(plan);
  expect(all.map((n) => n['Node Type'])).not.toContain('Sort');
  expect(all.filter((n) => n['Node Type'] === 'Seq Scan')).toEqual([]);
  const scans = all.filter((n) => n['Node Type'] === 'Index Scan' && n['Index Name'] === index);
  expect(scans.length).toBeGreaterThan(0);
  // The only other index the claim touches is the primary key, to update the picked rows.
  const otherIndexes = all.filter((n) => n['Index Name'] && n['Index Name'] !== index);
  expect(otherIndexes.every((n) => n['Index Name'] === 'tasks_pkey')).toBe(true);
}

/** EXPLAINs the claim as the prepared statement it is; EXPLAIN ANALYZE really claims, so roll back. */
async function explainClaim<F extends 'json' | 'text'>(
  order: DispatchOrder,
  format: F,
  options: { analyze?: boolean; generic?: boolean } = {},
): Promise<F extends 'json' ? PlanNode : string> {
  const plan = buildClaimPlan({
    order,
    limit: BATCH,
    leaseSeconds: 30,
    startIds: randomStartIds(() => crypto.randomUUID()),
  });
  const explainOptions = [
    ...(options.analyze ? ['ANALYZE', 'BUFFERS'] : []),
    ...(format === 'json' ? ['FORMAT JSON'] : []),
  ];
  const explain = explainOptions.length > 0 ? `EXPLAIN (${explainOptions.join(', ')})` : 'EXPLAIN';
  const result = await inRolledBackTransaction(sql, async (tx) => {
    if (options.generic) await tx.unsafe('SET LOCAL plan_cache_mode = force_generic_plan');
    const types = order === 'random' ? '(int, float8, uuid, uuid, uuid)' : '(int, float8)';
    // PREPARE outlives a rollback: a fresh name each time, deallocated right after.
    probes += 1;
    const name = `claim_probe_${probes}`;
    await tx.unsafe(`PREPARE ${name} ${types} AS ${plan.text}`);
    const args = plan.params.map((p) => (typeof p === 'string' ? `'${p}'` : String(p))).join(', ');
    const rows = await tx.unsafe(`${explain} EXECUTE ${name}(${args})`);
    await tx.unsafe(`DEALLOCATE ${name}`);
    return format === 'json'
      ? (rows[0]?.['QUERY PLAN'] as { Plan: PlanNode }[] | undefined)?.[0]?.Plan
      : rows.map((r) => r['QUERY PLAN'] as string).join('\n');
  });
  if (result === undefined) throw new Error('no plan');
  return result as F extends 'json' ? PlanNode : string;
}

describe(`dispatcher plans over ${WAITING.toLocaleString('en')} waiting tasks`, () => {
  for (const order of ['random', 'fifo'] as const) {
    const index = order === 'random' ? 'tasks_claim_random' : 'tasks_claim_fifo';
    test(`${order} claim: range scans of ${index} in index order, custom and generic plans`, async () => {
      expectIndexedClaim(await explainClaim(order, 'json'), index);
      expectIndexedClaim(await explainClaim(order, 'json', { generic: true }), index);
    });

    test(`${order} claim, executed: reads about one batch of rows, not the backlog`, async () => {
      const json = await explainClaim(order, 'json', { analyze: true });
      const text = await explainClaim(order, 'text', { analyze: true });
      logger.info({ order, plan: text }, 'claim plan (EXPLAIN ANALYZE, rolled back)');
      const scanned = planNodes(json)
        .filter((n) => n['Index Name'] === index)
        .reduce((sum, n) => sum + (n['Actual Rows'] ?? 0) * (n['Actual Loops'] ?? 1), 0);
      expect(scanned).toBeGreaterThanOrEqual(BATCH);
      // 1 % of the backlog is leased and filtered out on the way: a few rows more than the batch.
      expect(scanned).toBeLessThan(BATCH * 2);
    });
  }

  test('record, release, the in-flight count and the gauges reach tasks through indexes, if at all', async () => {
    const repository = dispatchRepository(sql);
    const rows = await sql<{ id: string; attempts: number }[]>`
      SELECT id, attempts FROM tasks WHERE status = 'waiting' LIMIT ${BATCH}`;
    const claimed = rows.map((r) => ({
      id: r.id,
      text: '',
      priority: 'medium' as const,
      createdAt: new Date(),
      attempt: r.attempts + 1,
    }));
    sent = [];
    await repository.recordSent(claimed, new Date());
    await repository.release(claimed, 1_000);
    const inFlight = await repository.countInFlight({ cap: 10_001, dispatcherId: crypto.randomUUID() });
    const gauges = await repository.counts(600);
    // The EXPLAINs below are captured too: take the repository's statements out first.
    const statements = sent.splice(0);
    // The counts come from task_counts, which the triggers keep in step with the table.
    const [actual] = await sql<{ waiting: number; sent: number }[]>`
      SELECT count(*) FILTER (WHERE status = 'waiting')::int AS waiting,
             count(*) FILTER (WHERE status = 'sent')::int AS sent FROM tasks`;
    expect(inFlight.sent).toBe(Math.min(actual?.sent ?? -1, 10_001));
    expect({ waiting: gauges.waiting, sent: gauges.sent }).toEqual(actual);
    expect(statements).toHaveLength(4);
    const readsTasks: boolean[] = [];
    for (const statement of statements) {
      const [row] = await sql.unsafe<{ 'QUERY PLAN': { Plan: PlanNode }[] }[]>(
        `EXPLAIN (FORMAT JSON) ${statement.query}`,
        statement.params as postgres.ParameterOrJSON<never>[],
      );
      const all = planNodes(row?.['QUERY PLAN'][0]?.Plan as PlanNode);
      const onTasks = all.filter((n) => n['Relation Name'] === 'tasks');
      readsTasks.push(onTasks.length > 0);
      for (const node of onTasks) expect(node['Node Type'], statement.query).not.toBe('Seq Scan');
    }
    // Record and release write rows; the in-flight count reads no task at all.
    expect(readsTasks.slice(0, 3)).toEqual([true, true, false]);
  });
});
