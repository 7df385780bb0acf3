// Pieces several measures share: a rate over a fixed window, counted by the sink or by the database,
// and the frame every measured window runs in (a checkpoint, then idle samples around it).
import { idleEstimate } from '../cpu.js';
import type { Progress, ProgressBar } from '../progress.js';
import { type ProcessUsage, type ServerScope, sampleIdle } from '../resources.js';
import type { MeasureFailure, Rate } from '../results.js';
import type { BenchRuntime } from '../runtime.js';
import { checkpoint } from '../sandbox.js';
import type { Sink } from '../sink.js';
import { formatNumber, perSecond } from '../stats.js';

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class MeasureError extends Error {
  constructor(
    readonly code: 'NO_PROGRESS' | 'TIMEOUT',
    message: string,
  ) {
    super(message);
    this.name = 'MeasureError';
  }
}

export interface MeasureContext {
  progress: Progress;
  /** Failed parts of a run: recorded and shown in the report, while the other parts still run. */
  failures: MeasureFailure[];
  /** The built entry points and the node they run on. */
  runtime: BenchRuntime;
  /** How long the shared servers are sampled idle before each run whose CPU is counted. */
  idleSampleMs: number;
}

/** Runs one part of a measure; a failure is recorded (with the service log tail) instead of thrown. */
export async function attempt<T>(
  ctx: MeasureContext,
  part: string,
  fn: () => Promise<T>,
): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    const error = err instanceof Error ? err.message : String(err);
    ctx.failures.push({ measure: part, error });
    ctx.progress.log(`✗ ${part} failed: ${error.split('\n')[0]}`);
    return undefined;
  }
}

export interface SinkRateOptions {
  /** Stop counting once this many arrived. */
  total: number;
  windowMs: number;
  bar: ProgressBar;
  /** Throws when a process under test died. */
  alive?: () => void;
  /** What the publisher's side looked like, for the error when nothing arrives. */
  diagnose?: () => Promise<string>;
}

/**
 * Messages per second into the sink, from its first delivery until `windowMs` later or until all
 * `total` arrived, whichever comes first: start-up time is not counted, and a fast publisher that
 * empties the backlog is timed to its last message, not to the end of the window.
 */
export async function sinkRate(sink: Sink, options: SinkRateOptions): Promise<Rate> {
  const { total, windowMs, bar, alive = () => undefined, diagnose = async () => '' } = options;
  const startDeadline = Date.now() + 60_000;
  while (sink.firstAt === undefined) {
    alive();
    if (Date.now() > startDeadline) {
      const state = await diagnose().catch((err: unknown) => `(diagnosis failed: ${String(err)})`);
      throw new MeasureError('NO_PROGRESS', `no message reached the sink in 60 s ${state}`);
    }
    await sleep(10);
  }
  const start = sink.firstAt;
  for (;;) {
    alive();
    const elapsed = Date.now() - start;
    bar.update(Math.min(elapsed, windowMs), `${formatNumber(perSecond(sink.count, elapsed))} tasks/s`);
    if (sink.count >= total) {
      const span = Math.max(1, (sink.lastAt ?? start) - start);
      return {
        count: sink.count,
        elapsedMs: span,
        perSecond: perSecond(sink.count, span),
        duplicates: sink.count - sink.unique,
      };
    }
    if (elapsed >= windowMs) {
      const count = sink.count;
      return {
        count,
        elapsedMs: elapsed,
        perSecond: perSecond(count, elapsed),
        duplicates: count - sink.unique,
      };
    }
    await sleep(Math.min(20, windowMs - elapsed));
  }
}

/** How a drain is watched: what is left, how often to ask, and (if the system keeps it) when it ended. */
export interface DrainProbe {
  remaining: () => Promise<number>;
  /**
   * Counting what is left costs the database real work (~30 ms a count on a busy 100k-row table),
   * so systems that record completion times are polled slowly and timed by those instead.
   */
  pollMs: number;
  /** ms timestamp of the last completion, when the system records it. */
  finishedAt?: () => Promise<number | undefined>;
}

/**
 * Items finished per second, polled from the database: from `startedAt` until nothing is left (timed
 * to the last completion where the system records it, else to the poll that saw it) or `windowMs`
 * passed (then the rate is what finished within the window).
 */
export async function drainRate(
  total: number,
  startedAt: number,
  windowMs: number,
  probe: DrainProbe,
  bar: ProgressBar,
  alive: () => void = () => undefined,
): Promise<Rate & { completed: boolean }> {
  for (;;) {
    alive();
    const left = await probe.remaining();
    const now = Date.now();
    const done = total - left;
    const elapsed = now - startedAt;
    bar.update(done, `${formatNumber(perSecond(done, elapsed))}/s`);
    if (left === 0) {
      const end = Math.min(now, (await probe.finishedAt?.()) ?? now);
      const span = Math.max(1, end - startedAt);
      return { count: done, elapsedMs: span, perSecond: perSecond(done, span), completed: true };
    }
    if (elapsed >= windowMs) {
      return { count: done, elapsedMs: elapsed, perSecond: perSecond(done, elapsed), completed: false };
    }
    await sleep(Math.min(probe.pollMs, windowMs - elapsed));
  }
}

/**
 * Runs a measure between two idle samples of its servers: before it starts its processes, and after
 * `stop` ended them. Its server rows get both samples and the estimate of other tenants' load.
 * PostgreSQL checkpoints first, so that the run does not pay for the writes made before it.
 */
export async function betweenIdleSamples<T extends { resources: ProcessUsage[] }>(
  scope: ServerScope,
  ms: number,
  run: () => Promise<T>,
  stop: () => Promise<void>,
): Promise<T> {
  if (scope.servers.includes('postgresql')) await checkpoint();
  const before = await sampleIdle(scope, ms);
  let result: T;
  try {
    result = await run();
  } finally {
    await stop();
  }
  const after = await sampleIdle(scope, ms);
  const resources = result.resources.map((u): ProcessUsage => {
    if (!u.server) return u;
    const samples: [number, number] = [before[u.server] ?? 0, after[u.server] ?? 0];
    return { ...u, idleSamples: samples, idleCpuPercent: idleEstimate(...samples) };
  });
  return { ...result, resources };
}
