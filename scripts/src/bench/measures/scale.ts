// Measure 6: dispatch rate (into the sink) and end-to-end drain rate at small and large backlogs,
// each over a fixed window, with the plan PostgreSQL picks for the claim statement at that size.
import { buildClaimPlan, randomStartIds } from '../../../../producer/src/dispatch/claim-query.js';
import type { BenchPlan } from '../plan.js';
import type { Rate, ScaleRow } from '../results.js';
import type { Sql } from '../sandbox.js';
import { medianRun, rateAfterWarmUp } from '../stats.js';
import { attempt, type MeasureContext } from './common.js';
import { oursDispatchRate } from './dispatch.js';
import { oursDrain } from './drain.js';

export type ScaleOptions = BenchPlan['scale'];

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

/**
 * The share of the smallest backlog every backlog's rates past the warm-up leave out. A 10k backlog
 * is dispatched in about a second, so its start weighs on its whole-window rate.
 */
const WARM_UP_SHARE = 0.2;

/**
 * The rate past the warm-up of the tasks that reached `column` (sent_at: dispatched, finished_at:
 * done). A drain counts only while tasks were still being dispatched: a small backlog is all sent
 * well before it is all done, and its last stretch (workers and reporter without the dispatcher
 * beside them on two cores) would flatter it against a large backlog, which never gets there.
 */
async function rateByColumn(
  sql: Sql,
  column: 'sent_at' | 'finished_at',
  warmUp: number,
  windowMs: number,
): Promise<Rate | undefined> {
  const rows = await sql<{ at: number }[]>`
    select (extract(epoch from ${sql(column)}) * 1000)::float8 as at from tasks where ${sql(column)} is not null`;
  const endAt = column === 'finished_at' ? await lastSentAt(sql) : undefined;
  return rateAfterWarmUp(
    rows.map((r) => r.at),
    warmUp,
    windowMs,
    endAt,
  );
}

async function lastSentAt(sql: Sql): Promise<number | undefined> {
  const [row] = await sql<{ at: number | null }[]>`
    select (extract(epoch from max(sent_at)) * 1000)::float8 as at from tasks`;
  return row?.at ?? undefined;
}

interface DispatchRun {
  dispatch: ScaleRow['dispatch'];
  pastWarmUp: Rate | undefined;
  explain: string | undefined;
}

interface DrainRun {
  drain: Rate | undefined;
  pastWarmUp: Rate | undefined;
}

export async function measureScale(options: ScaleOptions, ctx: MeasureContext): Promise<ScaleRow[]> {
  const rows: ScaleRow[] = [];
  const smallest = Math.min(...options.backlogs);
  const warmUp = Math.max(1, Math.floor(smallest * WARM_UP_SHARE));
  for (const backlog of options.backlogs) {
    const runs = backlog === smallest && options.backlogs.length > 1 ? options.smallRuns : 1;
    const of = (run: number) => (runs > 1 ? ` (run ${run} of ${runs})` : '');
    const dispatchRuns: DispatchRun[] = [];
    const drainRuns: DrainRun[] = [];
    for (let run = 1; run <= runs; run += 1) {
      let explain: string | undefined;
      let pastWarmUp: Rate | undefined;
      const dispatch = await attempt(ctx, `scale: dispatch @ ${backlog}${of(run)}`, () =>
        oursDispatchRate(
          backlog,
          options.windowMs,
          ctx,
          `scale: dispatch${of(run)}`,
          async (sandbox) => {
            explain = await explainClaim(sandbox.sql);
          },
          async (sandbox) => {
            pastWarmUp = await rateByColumn(sandbox.sql, 'sent_at', warmUp, options.windowMs);
          },
        ),
      );
      dispatchRuns.push({ dispatch, pastWarmUp, explain });
    }
    for (let run = 1; run <= runs; run += 1) {
      let pastWarmUp: Rate | undefined;
      const drain = await attempt(ctx, `scale: drain @ ${backlog}${of(run)}`, () =>
        oursDrain(backlog, options.windowMs, ctx, `scale: drain${of(run)}`, {
          after: async (sandbox) => {
            pastWarmUp = await rateByColumn(sandbox.sql, 'finished_at', warmUp, options.windowMs);
          },
        }),
      );
      drainRuns.push({ drain: drain?.rate, pastWarmUp });
    }
    // A failed run ranks with the runs that left nothing past the warm-up, below every real figure.
    const dispatch = medianRun(dispatchRuns, (r) => (r.dispatch ? r.pastWarmUp?.perSecond : undefined));
    const drain = medianRun(drainRuns, (r) => (r.drain ? r.pastWarmUp?.perSecond : undefined));
    rows.push({
      backlog,
      dispatch: dispatch?.dispatch,
      drain: drain?.drain,
      warmUp,
      dispatchPastWarmUp: dispatch?.pastWarmUp,
      drainPastWarmUp: drain?.pastWarmUp,
      runs,
      dispatchRunsPastWarmUp: dispatchRuns.map((r) => r.pastWarmUp?.perSecond),
      drainRunsPastWarmUp: drainRuns.map((r) => r.pastWarmUp?.perSecond),
      explain: dispatch?.explain,
    });
  }
  return rows;
}
