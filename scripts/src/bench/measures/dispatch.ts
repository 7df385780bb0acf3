// Measure 1: the real dispatcher against the naive loop of seed 002, at the same backlogs, publishing
// into the same durable queue that the same auto-ack sink drains. Each is a rate over a fixed window.
import { assertRunning, startService } from '../processes.js';
import type { Progress } from '../progress.js';
import type { DispatchRow, Rate } from '../results.js';
import { countByStatus, type Sandbox, seedTasks, withSandbox } from '../sandbox.js';
import { startProducer } from '../services.js';
import { startSink } from '../sink.js';
import { formatNumber } from '../stats.js';
import { attempt, type MeasureContext, sinkRate } from './common.js';

export interface DispatchOptions {
  backlogs: readonly number[];
  windowMs: number;
}

/** Room for the whole backlog in flight: the sink never reports, so `sent` only grows. */
export const UNBOUNDED_IN_FLIGHT = '999999';

export async function seedWithBar(sandbox: Sandbox, backlog: number, progress: Progress, label: string) {
  const bar = progress.bar(`${label}: seed ${formatNumber(backlog)}`, backlog);
  await seedTasks(sandbox.sql, backlog, 'waiting', (done) => bar.update(done));
  bar.finish('');
}

export async function naiveDispatchRate(
  backlog: number,
  windowMs: number,
  progress: Progress,
): Promise<Rate> {
  return withSandbox('dispatch_naive', async (sandbox) => {
    await seedWithBar(sandbox, backlog, progress, 'naive loop');
    // Seed 002's schema has an index on status; the producer's has partial indexes instead.
    await sandbox.sql`create index tasks_status on tasks (status)`;
    await sandbox.sql`analyze tasks`;
    const sink = await startSink(sandbox.amqpUrl);
    const loop = startService('naive-dispatcher', 'scripts/src/bench/baselines/naive-dispatcher.ts', {
      DATABASE_URL: sandbox.databaseUrl,
      AMQP_URL: sandbox.amqpUrl,
    });
    try {
      await loop.message('ready', 60_000);
      const bar = progress.bar(`naive loop @ ${formatNumber(backlog)}`, windowMs);
      const rate = await sinkRate(sink, backlog, windowMs, bar, () => assertRunning([loop]));
      bar.finish(`${formatNumber(rate.perSecond)} tasks/s`);
      return rate;
    } finally {
      await loop.stop();
      await sink.close();
    }
  });
}

export async function oursDispatchRate(
  backlog: number,
  windowMs: number,
  progress: Progress,
  label = 'dispatcher',
  beforeStart?: (sandbox: Sandbox) => Promise<void>,
): Promise<Rate> {
  return withSandbox('dispatch_ours', async (sandbox) => {
    await seedWithBar(sandbox, backlog, progress, label);
    await beforeStart?.(sandbox);
    const sink = await startSink(sandbox.amqpUrl);
    let producer: Awaited<ReturnType<typeof startProducer>> | undefined;
    try {
      producer = await startProducer(sandbox, { env: { DISPATCH_MAX_IN_FLIGHT: UNBOUNDED_IN_FLIGHT } });
      const running = producer.service;
      const bar = progress.bar(`${label} @ ${formatNumber(backlog)}`, windowMs);
      const url = producer.url;
      const rate = await sinkRate(
        sink,
        backlog,
        windowMs,
        bar,
        () => assertRunning([running]),
        async () => {
          const health = await fetch(`${url}/health/ready`).then((r) => r.text());
          return `(tasks by status ${JSON.stringify(await countByStatus(sandbox.sql))}; /health/ready ${health})`;
        },
      );
      bar.finish(`${formatNumber(rate.perSecond)} tasks/s`);
      return rate;
    } finally {
      await producer?.service.stop();
      await sink.close();
    }
  });
}

export async function measureDispatch(options: DispatchOptions, ctx: MeasureContext): Promise<DispatchRow[]> {
  const rows: DispatchRow[] = [];
  for (const backlog of options.backlogs) {
    const naive = await attempt(ctx, `dispatch: naive loop @ ${backlog}`, () =>
      naiveDispatchRate(backlog, options.windowMs, ctx.progress),
    );
    const ours = await attempt(ctx, `dispatch: dispatcher @ ${backlog}`, () =>
      oursDispatchRate(backlog, options.windowMs, ctx.progress),
    );
    rows.push({ backlog, naive, ours });
  }
  return rows;
}
