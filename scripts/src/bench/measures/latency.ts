// Measure 4 (and the resources of measure 5): creates at a fixed rate (open loop: a request is sent
// when it is due, whether or not earlier ones answered, so a slow server cannot slow the load down),
// producer + 2 consumers with no simulated work; create → success latency from the database's own
// timestamps (created_at, finished_at), so no client clock is involved. A warm-up at the same rate
// goes first and is not counted: the first seconds of fresh processes (JIT, pools, channels) would
// otherwise make the p99 (a run at 1,000/s counted 1.3 s for the first 3 s, 0.1 s after).
import { performance } from 'node:perf_hooks';
import { freePort } from '@task-pipeline/testkit/private-process';
import { assertRunning, type Service, stopAll } from '@task-pipeline/testkit/processes';
import { Pool } from 'undici';
import { sampleResources } from '../resources.js';
import type { LatencyResult } from '../results.js';
import { countUnfinished, withSandbox } from '../sandbox.js';
import { type RunningProducer, startConsumer, startProducer } from '../services.js';
import { formatNumber, percentile, perSecond } from '../stats.js';
import { betweenIdleSamples, type MeasureContext, MeasureError, sleep } from './common.js';
import { WORKER_PROCESSES } from './drain.js';

export interface LatencyOptions {
  ratePerS: number;
  /** Creates at the same rate before the measured ones, left out of every figure. */
  warmUpMs: number;
  durationMs: number;
  settleTimeoutMs: number;
}

const PROBE_TEXT = 'benchmark task: latency probe';
const WARM_UP_TEXT = 'benchmark task: latency warm-up';

interface LoadOutcome {
  created: number;
  failed: number;
  /** From the first request to the last answer: what the server took in, not what was offered. */
  elapsedMs: number;
  createLatenciesMs: number[];
}

async function openLoopCreates(
  url: string,
  text: string,
  { ratePerS, durationMs }: { ratePerS: number; durationMs: number },
  onTick: (sent: number) => void,
  alive: () => void,
): Promise<LoadOutcome> {
  const pool = new Pool(url, { connections: 128 });
  const latencies: number[] = [];
  let created = 0;
  let failed = 0;
  let lastAnswer = 0;
  const inFlight = new Set<Promise<void>>();
  const send = () => {
    const started = performance.now();
    const request = pool
      .request({
        path: '/api/v1/create-task',
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ text }),
      })
      .then(async (res) => {
        await res.body.dump();
        lastAnswer = performance.now();
        latencies.push(lastAnswer - started);
        if (res.statusCode === 201) created += 1;
        else failed += 1;
      })
      .catch(() => {
        failed += 1;
      })
      .finally(() => inFlight.delete(request));
    inFlight.add(request);
  };
  const total = Math.round((ratePerS * durationMs) / 1000);
  const start = performance.now();
  let sent = 0;
  try {
    while (sent < total) {
      alive();
      const due = Math.min(total, Math.floor(((performance.now() - start) * ratePerS) / 1000));
      while (sent < due) {
        send();
        sent += 1;
      }
      onTick(sent);
      await sleep(2);
    }
    await Promise.all(inFlight);
    return { created, failed, elapsedMs: lastAnswer - start, createLatenciesMs: latencies };
  } finally {
    await pool.close();
  }
}

export async function measureLatency(options: LatencyOptions, ctx: MeasureContext): Promise<LatencyResult> {
  const { progress } = ctx;
  return withSandbox('latency', async (sandbox) => {
    const scope = { servers: ['postgresql', 'rabbitmq'] as const, database: sandbox.database };
    const consumers: Service[] = [];
    let producer: RunningProducer | undefined;
    const run = async (): Promise<LatencyResult> => {
      const port = await freePort();
      for (let i = 1; i <= WORKER_PROCESSES; i++) {
        consumers.push(await startConsumer(sandbox, ctx.runtime, `http://127.0.0.1:${port}`, i));
      }
      producer = await startProducer(sandbox, ctx.runtime, { port });
      const { url } = producer;
      const all = [producer.service, ...consumers];
      const alive = () => assertRunning(all);
      const settle = async (label: string, created: number): Promise<void> => {
        const bar = progress.bar(label, created);
        const deadline = Date.now() + options.settleTimeoutMs;
        let left = await countUnfinished(sandbox.sql);
        while (left > 0 && Date.now() < deadline) {
          alive();
          bar.update(created - left);
          await sleep(250);
          left = await countUnfinished(sandbox.sql);
        }
        bar.finish(left === 0 ? 'all succeeded' : `${left} still unfinished`);
      };

      const rate = formatNumber(options.ratePerS);
      const warmUpLoad = { ratePerS: options.ratePerS, durationMs: options.warmUpMs };
      const warmUpBar = progress.bar(`latency: warm-up at ${rate} creates/s`, 1);
      const warmUp = await openLoopCreates(url, WARM_UP_TEXT, warmUpLoad, () => undefined, alive);
      warmUpBar.finish(`${formatNumber(warmUp.created)} created, not counted`);
      await settle('latency: warm-up settles', warmUp.created);

      const sampler = sampleResources(all, scope);
      const total = Math.round((options.ratePerS * options.durationMs) / 1000);
      const loadBar = progress.bar(`latency: ${rate} creates/s`, total);
      const load = await openLoopCreates(url, PROBE_TEXT, options, (sent) => loadBar.update(sent), alive);
      loadBar.finish(`${formatNumber(load.created)} created, ${load.failed} failed`);
      await settle('latency: until all succeeded', load.created);
      const resources = sampler.stop();

      const [row] = await sandbox.sql<
        { n: string; p50: number | null; p95: number | null; p99: number | null; max: number | null }[]
      >`
        select count(*)::text as n,
               percentile_cont(0.50) within group (order by ms) as p50,
               percentile_cont(0.95) within group (order by ms) as p95,
               percentile_cont(0.99) within group (order by ms) as p99,
               max(ms) as max
        from (select extract(epoch from finished_at - created_at)::float8 * 1000 as ms
              from tasks where status = 'success' and text = ${PROBE_TEXT}) as t`;
      if (!row || Number(row.n) === 0) throw new MeasureError('NO_PROGRESS', 'no task reached success');
      // A task reported by another producer before its record has no sent_at: left out here.
      const [stages] = await sandbox.sql<
        { n: string; sent_p50: number; sent_p99: number; done_p50: number; done_p99: number }[]
      >`
        select count(*)::text as n,
               percentile_cont(0.50) within group (order by to_sent) as sent_p50,
               percentile_cont(0.99) within group (order by to_sent) as sent_p99,
               percentile_cont(0.50) within group (order by to_done) as done_p50,
               percentile_cont(0.99) within group (order by to_done) as done_p99
        from (select extract(epoch from sent_at - created_at)::float8 * 1000 as to_sent,
                     extract(epoch from finished_at - sent_at)::float8 * 1000 as to_done
              from tasks where status = 'success' and text = ${PROBE_TEXT} and sent_at is not null) as t`;
      return {
        targetPerSec: options.ratePerS,
        warmUpMs: options.warmUpMs,
        created: load.created,
        achievedPerSec: perSecond(load.created, load.elapsedMs),
        succeeded: Number(row.n),
        p50Ms: row.p50 ?? Number.NaN,
        p95Ms: row.p95 ?? Number.NaN,
        p99Ms: row.p99 ?? Number.NaN,
        maxMs: row.max ?? Number.NaN,
        createP50Ms: percentile(load.createLatenciesMs, 50),
        createP99Ms: percentile(load.createLatenciesMs, 99),
        stages:
          stages && Number(stages.n) > 0
            ? {
                createdToSent: { p50Ms: stages.sent_p50, p99Ms: stages.sent_p99 },
                sentToSuccess: { p50Ms: stages.done_p50, p99Ms: stages.done_p99 },
              }
            : undefined,
        resources,
        cpuItems: load.created,
      };
    };
    return betweenIdleSamples(scope, ctx.idleSampleMs, run, async () => {
      await producer?.service.stop();
      await stopAll(consumers);
    });
  });
}
