// Measure 1: the real dispatcher against the naive loop of seed 002 at the same backlogs, and against
// the broker's ceiling (raw confirmed publishes with nothing else to do), all publishing into the
// same durable quorum queue that the same auto-ack sink drains. Each is a rate over a fixed window,
// with the CPU of every process it counted (the publisher, and the servers it used) over that window.

import { assertRunning, type Service } from '@task-pipeline/testkit/processes';
import { rawWorkMessage } from '../baselines/raw-message.js';
import type { ServerGroup } from '../cpu.js';
import type { Progress } from '../progress.js';
import { sampleResources } from '../resources.js';
import type { DispatchRow, MeasuredRate, RawBrokerResult } from '../results.js';
import { countByStatus, type Sandbox, seedTasks, withSandbox } from '../sandbox.js';
import { type RunningProducer, startBaseline, startProducer } from '../services.js';
import { startSink } from '../sink.js';
import { formatNumber } from '../stats.js';
import { attempt, betweenIdleSamples, type MeasureContext, sinkRate } from './common.js';

export interface DispatchOptions {
  backlogs: readonly number[];
  windowMs: number;
  /** Unconfirmed messages the raw publisher keeps in flight. */
  rawWindow: number;
}

/** Room for the whole backlog in flight: the sink never reports, so `sent` only grows. */
export const UNBOUNDED_IN_FLIGHT = '999999';

export async function seedWithBar(sandbox: Sandbox, backlog: number, progress: Progress, label: string) {
  const bar = progress.bar(`${label}: seed ${formatNumber(backlog)}`, backlog);
  await seedTasks(sandbox.sql, backlog, 'waiting', (done) => bar.update(done));
  bar.finish('');
}

interface Publisher {
  service: Service;
  /** What the publisher's side looked like, for the error when nothing reaches the sink. */
  diagnose?: () => Promise<string>;
  /** Tells a publisher that waits to be told to begin (the baselines; the producer begins by itself). */
  begin?: () => void;
}

/**
 * Starts the sink and the publisher, and counts what reaches the sink over the window, with the CPU
 * of the publisher and `servers` from when the publisher was ready and told to begin (messages the
 * producer published before its readiness answered are left out of the CPU per message), between
 * idle samples of the servers.
 */
async function publishRate(
  ctx: MeasureContext,
  sandbox: Sandbox,
  label: string,
  total: number,
  windowMs: number,
  servers: readonly ServerGroup[],
  start: () => Promise<Publisher>,
): Promise<MeasuredRate> {
  const sink = await startSink(sandbox.amqpUrl);
  let publisher: Publisher | undefined;
  try {
    return await betweenIdleSamples(
      { servers, database: sandbox.database },
      ctx.idleSampleMs,
      async () => {
        publisher = await start();
        const { service, diagnose } = publisher;
        const sampler = sampleResources([service], { servers, database: sandbox.database });
        const countedBefore = sink.count;
        publisher.begin?.();
        const bar = ctx.progress.bar(label, windowMs);
        const rate = await sinkRate(sink, {
          total,
          windowMs,
          bar,
          alive: () => assertRunning([service]),
          diagnose,
        });
        const resources = sampler.stop();
        bar.finish(`${formatNumber(rate.perSecond)} tasks/s`);
        return { ...rate, resources, cpuItems: rate.count - countedBefore };
      },
      async () => {
        await publisher?.service.stop();
      },
    );
  } finally {
    await sink.close();
  }
}

export async function naiveDispatchRate(
  backlog: number,
  windowMs: number,
  ctx: MeasureContext,
): Promise<MeasuredRate> {
  return withSandbox('dispatch_naive', async (sandbox) => {
    await seedWithBar(sandbox, backlog, ctx.progress, 'naive loop');
    // Seed 002's schema has an index on status; the producer's has partial indexes instead.
    await sandbox.sql`create index tasks_status on tasks (status)`;
    await sandbox.sql`analyze tasks`;
    return publishRate(
      ctx,
      sandbox,
      `naive loop @ ${formatNumber(backlog)}`,
      backlog,
      windowMs,
      ['postgresql', 'rabbitmq'],
      async () => {
        const service = startBaseline(
          'naive-dispatcher',
          'naive-dispatcher',
          { DATABASE_URL: sandbox.databaseUrl, AMQP_URL: sandbox.amqpUrl },
          ctx.runtime,
        );
        await service.message('ready', 60_000);
        return { service, begin: () => service.send('start') };
      },
    );
  });
}

export async function oursDispatchRate(
  backlog: number,
  windowMs: number,
  ctx: MeasureContext,
  label = 'dispatcher',
  beforeStart?: (sandbox: Sandbox) => Promise<void>,
  /** Reads what it needs from the database once the window is over, before the sandbox goes. */
  after?: (sandbox: Sandbox) => Promise<void>,
): Promise<MeasuredRate> {
  return withSandbox('dispatch_ours', async (sandbox) => {
    await seedWithBar(sandbox, backlog, ctx.progress, label);
    await beforeStart?.(sandbox);
    const rate = await publishRate(
      ctx,
      sandbox,
      `${label} @ ${formatNumber(backlog)}`,
      backlog,
      windowMs,
      ['postgresql', 'rabbitmq'],
      async () => {
        const producer: RunningProducer = await startProducer(sandbox, ctx.runtime, {
          env: { DISPATCH_MAX_IN_FLIGHT: UNBOUNDED_IN_FLIGHT },
        });
        return {
          service: producer.service,
          diagnose: async () => {
            const health = await fetch(`${producer.url}/health/ready`).then((r) => r.text());
            return `(tasks by status ${JSON.stringify(await countByStatus(sandbox.sql))}; /health/ready ${health})`;
          },
        };
      },
    );
    await after?.(sandbox);
    return rate;
  });
}

/** The broker's ceiling: `count` raw confirmed publishes, `window` unconfirmed at most. */
export async function rawBrokerRate(
  count: number,
  windowMs: number,
  window: number,
  ctx: MeasureContext,
): Promise<RawBrokerResult> {
  return withSandbox('dispatch_raw', async (sandbox) => {
    const rate = await publishRate(
      ctx,
      sandbox,
      `raw confirmed publish, window ${formatNumber(window)}`,
      count,
      windowMs,
      ['rabbitmq'],
      async () => {
        const service = startBaseline(
          'raw-publisher',
          'raw-publisher',
          { AMQP_URL: sandbox.amqpUrl, RAW_COUNT: String(count), RAW_WINDOW: String(window) },
          ctx.runtime,
        );
        await service.message('ready', 60_000);
        return { service, begin: () => service.send('start') };
      },
    );
    return { window, messageBytes: rawWorkMessage(count).body.length, rate };
  });
}

export interface DispatchResults {
  rows: DispatchRow[];
  raw: RawBrokerResult | undefined;
}

export async function measureDispatch(
  options: DispatchOptions,
  ctx: MeasureContext,
): Promise<DispatchResults> {
  const rows: DispatchRow[] = [];
  for (const backlog of options.backlogs) {
    const naive = await attempt(ctx, `dispatch: naive loop @ ${backlog}`, () =>
      naiveDispatchRate(backlog, options.windowMs, ctx),
    );
    const ours = await attempt(ctx, `dispatch: dispatcher @ ${backlog}`, () =>
      oursDispatchRate(backlog, options.windowMs, ctx),
    );
    rows.push({ backlog, naive, ours });
  }
  // As many messages as the largest backlog, over the same window: the same shape as the dispatcher's.
  const raw = await attempt(ctx, 'dispatch: raw confirmed publish', () =>
    rawBrokerRate(Math.max(...options.backlogs), options.windowMs, options.rawWindow, ctx),
  );
  return { rows, raw };
}
