// Measure 2 (and the resources of measure 5): a pre-filled backlog drained end to end. Ours: producer
// + 2 consumers, no simulated work or failures, until every task is `success`. Peers: pg-boss and
// graphile-worker, two worker processes each, draining the same number of no-op jobs on the same
// database server. Each clock starts when every process of its system is ready, and stops when the
// database shows nothing left.
import { freePort } from '../../testing/private-process.js';
import {
  GRAPHILE_SETTINGS,
  PEERS,
  type Peer,
  PG_BOSS_SETTINGS,
  peerProbe,
  prefillPeer,
} from '../baselines/peers.js';
import { assertRunning, type Service, startService, stopAll } from '../processes.js';
import type { Progress } from '../progress.js';
import { sampleResources } from '../resources.js';
import type { DrainRow } from '../results.js';
import { countUnfinished, lastFinishedAt, type Sql, withSandbox } from '../sandbox.js';
import { type RunningProducer, startConsumer, startProducer } from '../services.js';
import { formatNumber } from '../stats.js';
import { attempt, type DrainProbe, drainRate, type MeasureContext } from './common.js';
import { seedWithBar } from './dispatch.js';

export interface DrainOptions {
  tasks: number;
  timeoutMs: number;
}

export const WORKER_PROCESSES = 2;

function oursProbe(sql: Sql): DrainProbe {
  return { pollMs: 500, remaining: () => countUnfinished(sql), finishedAt: () => lastFinishedAt(sql) };
}

/** Producer + 2 consumers draining `tasks` waiting rows; `windowMs` bounds the run. */
export async function oursDrain(
  tasks: number,
  windowMs: number,
  progress: Progress,
  label = 'task-pipeline drain',
): Promise<DrainRow> {
  return withSandbox('drain_ours', async (sandbox) => {
    await seedWithBar(sandbox, tasks, progress, label);
    const services: Service[] = [];
    let producer: RunningProducer | undefined;
    try {
      // Consumers first, so the clock starts with the whole system up; they retry the producer
      // until it answers.
      const port = await freePort();
      for (let i = 1; i <= WORKER_PROCESSES; i++) {
        services.push(await startConsumer(sandbox, `http://127.0.0.1:${port}`, i));
      }
      producer = await startProducer(sandbox, { port });
      const readyAt = Date.now();
      // The dispatcher may start before /health/ready answers: count from its first claim if so.
      const [first] = await sandbox.sql<{ at: Date | null }[]>`
        select min(sent_at) as at from tasks where sent_at is not null`;
      const startedAt = Math.min(readyAt, first?.at?.getTime() ?? readyAt);
      const all = [producer.service, ...services];
      const sampler = sampleResources(all);
      const bar = progress.bar(`${label} ${formatNumber(tasks)}`, tasks);
      const rate = await drainRate(tasks, startedAt, windowMs, oursProbe(sandbox.sql), bar, () =>
        assertRunning(all),
      );
      const resources = sampler.stop();
      bar.finish(`${formatNumber(rate.perSecond)} tasks/s${rate.completed ? '' : ' (window ended first)'}`);
      const { completed, ...measured } = rate;
      return {
        system: 'task-pipeline' as const,
        tasks,
        completed,
        rate: measured,
        settings: `${WORKER_PROCESSES} consumers, WORKER_PREFETCH and DISPATCH_* at their defaults`,
        resources,
      };
    } finally {
      await producer?.service.stop();
      await stopAll(services);
    }
  });
}

function peerSettings(peer: Peer): string {
  if (peer === 'pg-boss') {
    const s = PG_BOSS_SETTINGS;
    return `${WORKER_PROCESSES} processes × ${s.workersPerProcess} work() loops, batchSize ${s.batchSize}, pollingIntervalSeconds ${s.pollingIntervalSeconds}, pool ${s.max}`;
  }
  const s = GRAPHILE_SETTINGS;
  return `${WORKER_PROCESSES} processes, concurrency ${s.concurrentJobs}, maxPoolSize ${s.maxPoolSize}, localQueue.size ${s.localQueue.size}, completeJobBatchDelay ${s.completeJobBatchDelay}`;
}

export async function peerDrain(
  peer: Peer,
  jobs: number,
  timeoutMs: number,
  progress: Progress,
): Promise<DrainRow> {
  return withSandbox(`drain_${peer}`, async (sandbox) => {
    const seedBar = progress.bar(`${peer}: prefill ${formatNumber(jobs)}`, jobs);
    await prefillPeer(peer, sandbox.databaseUrl, jobs, (done) => seedBar.update(done));
    seedBar.finish('');
    const workers: Service[] = [];
    try {
      for (let i = 1; i <= WORKER_PROCESSES; i++) {
        workers.push(
          startService(`${peer}-${i}`, 'scripts/src/bench/baselines/peer-worker.ts', {
            PEER: peer,
            DATABASE_URL: sandbox.databaseUrl,
          }),
        );
      }
      await Promise.all(workers.map((w) => w.message('ready', 60_000)));
      const startedAt = Date.now();
      const sampler = sampleResources(workers);
      const bar = progress.bar(`${peer} drain ${formatNumber(jobs)}`, jobs);
      const rate = await drainRate(jobs, startedAt, timeoutMs, peerProbe(peer, sandbox.sql), bar, () =>
        assertRunning(workers),
      );
      const resources = sampler.stop();
      bar.finish(`${formatNumber(rate.perSecond)} jobs/s${rate.completed ? '' : ' (timed out)'}`);
      const { completed, ...measured } = rate;
      return {
        system: peer,
        tasks: jobs,
        completed,
        rate: measured,
        settings: peerSettings(peer),
        resources,
      };
    } finally {
      await stopAll(workers);
    }
  });
}

export async function measureDrain(options: DrainOptions, ctx: MeasureContext): Promise<DrainRow[]> {
  const rows = [
    await attempt(ctx, 'drain: task-pipeline', () =>
      oursDrain(options.tasks, options.timeoutMs, ctx.progress),
    ),
  ];
  for (const peer of PEERS) {
    rows.push(
      await attempt(ctx, `drain: ${peer}`, () =>
        peerDrain(peer, options.tasks, options.timeoutMs, ctx.progress),
      ),
    );
  }
  return rows.filter((row) => row !== undefined);
}
