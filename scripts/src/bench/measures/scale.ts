// Measure 6: dispatch rate (into the sink) and end-to-end drain rate at small and large backlogs,
// each over a fixed window, with the plan PostgreSQL picks for the claim statement at that size.
import { buildClaimPlan, randomStartIds } from '../../../../producer/src/dispatch/claim-query.js';
import type { ScaleRow } from '../results.js';
import type { Sql } from '../sandbox.js';
import { attempt, type MeasureContext } from './common.js';
import { oursDispatchRate } from './dispatch.js';
import { oursDrain } from './drain.js';

export interface ScaleOptions {
  backlogs: readonly number[];
  windowMs: number;
}

/** The producer's defaults (PROTOCOL §8): what a real claim looks like. */
const CLAIM_DEFAULTS = { order: 'random', limit: 500, leaseSeconds: 30 } as const;

class Rollback extends Error {}

/** EXPLAIN ANALYZE of one real claim, rolled back so the backlog stays as seeded. */
export async function explainClaim(sql: Sql): Promise<string> {
  const plan = buildClaimPlan({ ...CLAIM_DEFAULTS, startIds: randomStartIds(() => crypto.randomUUID()) });
  let lines: string[] = [];
  await sql
    .begin(async (tx) => {
      const rows = await tx.unsafe<{ 'QUERY PLAN': string }[]>(
        `explain (analyze, buffers, costs off, timing on) ${plan.text}`,
        plan.params,
      );
      lines = rows.map((r) => r['QUERY PLAN']);
      throw new Rollback();
    })
    .catch((err: unknown) => {
      if (!(err instanceof Rollback)) throw err;
    });
  return lines.join('\n');
}

export async function measureScale(options: ScaleOptions, ctx: MeasureContext): Promise<ScaleRow[]> {
  const rows: ScaleRow[] = [];
  for (const backlog of options.backlogs) {
    let explain: string | undefined;
    const dispatch = await attempt(ctx, `scale: dispatch @ ${backlog}`, () =>
      oursDispatchRate(backlog, options.windowMs, ctx, 'scale: dispatch', async (sandbox) => {
        explain = await explainClaim(sandbox.sql);
      }),
    );
    const drain = await attempt(ctx, `scale: drain @ ${backlog}`, () =>
      oursDrain(backlog, options.windowMs, ctx, 'scale: drain'),
    );
    rows.push({ backlog, dispatch, drain: drain?.rate, explain });
  }
  return rows;
}
