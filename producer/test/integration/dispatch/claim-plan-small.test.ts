// The claim over a small table (30,000 waiting tasks): where a join of the picked ids to the table
// looks cheap enough for the planner to hash-join a scan of the whole table. The claimed rows must be
// reached through the primary key at any size (claim-plan.test.ts covers a million rows).

import type { TestDatabase } from '@task-pipeline/testkit/isolation';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildClaimPlan, randomStartIds } from '../../../src/dispatch/claim-query.js';
import { createProducerDatabase, inRolledBackTransaction } from '../../support/database.js';
import { type PlanNode, planNodes } from '../../support/plans.js';

let db: TestDatabase;
let sql: postgres.Sql;

beforeAll(async () => {
  db = await createProducerDatabase('claim_plan_small');
  sql = postgres(db.url, { max: 1, onnotice: () => undefined });
  await sql`
    INSERT INTO tasks (id, text, priority)
    SELECT gen_random_uuid(), 'task ' || g, 'medium' FROM generate_series(1, 30000) g`;
  await sql`VACUUM ANALYZE tasks`;
});
afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await db?.drop();
});

async function explainClaim(generic: boolean): Promise<PlanNode> {
  const plan = buildClaimPlan({
    order: 'random',
    limit: 500,
    leaseSeconds: 30,
    startIds: randomStartIds(() => crypto.randomUUID()),
  });
  const result = await inRolledBackTransaction(sql, async (tx) => {
    if (generic) await tx.unsafe('SET LOCAL plan_cache_mode = force_generic_plan');
    // PREPARE outlives a rollback: a name per plan mode.
    const name = `small_claim_${generic ? 'generic' : 'custom'}`;
    await tx.unsafe(`PREPARE ${name} (int, float8, uuid, uuid, uuid) AS ${plan.text}`);
    const args = plan.params.map((p) => (typeof p === 'string' ? `'${p}'` : String(p))).join(', ');
    const rows = await tx.unsafe(`EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE ${name}(${args})`);
    return (rows[0]?.['QUERY PLAN'] as { Plan: PlanNode }[] | undefined)?.[0]?.Plan;
  });
  if (!result) throw new Error('no plan');
  return result;
}

describe('the claim over 30,000 waiting tasks', () => {
  for (const generic of [false, true]) {
    test(`reaches the claimed rows through the primary key, no scan of the table (${generic ? 'generic' : 'custom'} plan)`, async () => {
      const all = planNodes(await explainClaim(generic));
      expect(all.filter((n) => n['Node Type'] === 'Seq Scan')).toEqual([]);
      expect(all.some((n) => n['Index Name'] === 'tasks_pkey')).toBe(true);
    });
  }
});
