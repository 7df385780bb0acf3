// Measure 2 (and the resources of measure 5): a pre-filled backlog drained end to end. Ours: producer
// + 2 consumers, no simulated work or failures, until every task is `success`. Peers: pg-boss and
// graphile-worker, two worker processes each, draining the same number of no-op jobs on the same
// database server. Each clock starts when every process of its system is ready, and stops when the
// database shows nothing left; the CPU of every process of the system (the servers it uses included)
// is counted from the same moment.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '@task-pipeline/testkit/private-process';
import { assertRunning, REPO_ROOT, type Service, stopAll } from '@task-pipeline/testkit/processes';
import {
  defaultSettings,
  describeSettings,
  PEERS,
  type Peer,
  type PeerSettings,
} from '../baselines/peer-settings.js';
import { peerProbe, prefillPeer } from '../baselines/peers.js';
import type { ServerGroup } from '../cpu.js';
import { OUR_BEST_SETTINGS, settingsText } from '../plan.js';
import { type SampledProcess, sampleResources } from '../resources.js';
import type { DrainRow } from '../results.js';
import { countUnfinished, lastFinishedAt, type Sandbox, type Sql, withSandbox } from '../sandbox.js';
import { startBaseline, startConsumer, startProducer } from '../services.js';
import { formatNumber } from '../stats.js';
import { attempt, betweenIdleSamples, type DrainProbe, drainRate, type MeasureContext } from './common.js';
import { seedWithBar } from './dispatch.js';

export interface DrainOptions {
  tasks: number;
  timeoutMs: number;
  /** Drain the peers too (the default); `--no-peers` leaves them out. */
  peers?: boolean;
}

export const WORKER_PROCESSES = 2;

function oursProbe(sql: Sql): DrainProbe {
  return { pollMs: 500, remaining: () => countUnfinished(sql), finishedAt: () => lastFinishedAt(sql) };
}

type DrainRun = Pick<DrainRow, 'completed' | 'rate' | 'resources' | 'cpuItems'>;

/**
 * Times a drain of `total` items, with the CPU of `processes` and `servers` sampled from just before
 * `begin` (which starts the system if it waits to be told, and returns when the clock started), and
 * the items finished meanwhile, for the CPU per item.
 */
async function timedDrain(
  ctx: MeasureContext,
  sandbox: Sandbox,
  label: string,
  total: number,
  begin: () => number,
  timeoutMs: number,
  probeOn: (sql: Sql) => DrainProbe,
  processes: readonly Service[],
  servers: readonly ServerGroup[],
  /** Sampled beside `processes` but not watched for exits (private broker nodes). */
  others: readonly SampledProcess[] = [],
): Promise<DrainRun> {
  // The probe counts what is left on a connection of its own whose backend is not charged to the
  // system: a count over a churning 100k-row table every 500 ms cost ~15 µs per task (issue 16).
  const connection = await sandbox.sql.reserve();
  try {
    const [backend] = await connection<{ pid: number }[]>`select pg_backend_pid() as pid`;
    const probe = probeOn(connection);
    const sampler = sampleResources([...processes, ...others], {
      servers,
      database: sandbox.database,
      harnessPids: backend ? [backend.pid] : [],
    });
    const leftAtStart = await probe.remaining();
    const startedAt = begin();
    const bar = ctx.progress.bar(`${label} ${formatNumber(total)}`, total);
    const { completed, ...rate } = await drainRate(total, startedAt, timeoutMs, probe, bar, () =>
      assertRunning(processes),
    );
    const resources = sampler.stop();
    bar.finish(`${formatNumber(rate.perSecond)}/s${completed ? '' : ' (window ended first)'}`);
    return { completed, rate, resources, cpuItems: rate.count - (total - leftAtStart) };
  } finally {
    connection.release();
  }
}

/**
 * A broker of the measure's own instead of the shared node: its AMQP_URL (one node or a cluster's
 * list) and its nodes' processes, whose CPU and memory are counted as rows of their own.
 */
export interface PrivateBroker {
  amqpUrl: string;
  nodes: readonly SampledProcess[];
}

export interface OursDrainOptions {
  /** The producer's environment on top of the defaults (TASK_RETENTION, say). */
  producerEnv?: Record<string, string>;
  /** Rows to put in the table before the backlog is seeded (finished history, say). */
  prepare?: (sandbox: Sandbox) => Promise<void>;
  /** Reads what it needs from the database once the drain is over, before the sandbox goes. */
  after?: (sandbox: Sandbox) => Promise<void>;
  /** A broker of the measure's own (a private node or cluster) instead of the shared node. */
  broker?: PrivateBroker;
}

/** Producer + 2 consumers draining `tasks` waiting rows; `windowMs` bounds the run. */
export async function oursDrain(
  tasks: number,
  windowMs: number,
  ctx: MeasureContext,
  label = 'task-pipeline drain',
  options: OursDrainOptions = {},
): Promise<DrainRow> {
  const { broker } = options;
  return withSandbox('drain_ours', async (shared) => {
    const sandbox = broker ? { ...shared, amqpUrl: broker.amqpUrl } : shared;
    await options.prepare?.(sandbox);
    await seedWithBar(sandbox, tasks, ctx.progress, label);
    const servers: readonly ServerGroup[] = broker ? ['postgresql'] : ['postgresql', 'rabbitmq'];
    const services: Service[] = [];
    const run = await betweenIdleSamples(
      { servers, database: sandbox.database },
      ctx.idleSampleMs,
      async () => {
        // Consumers first, so the clock starts with the whole system up; they retry the producer
        // until it answers.
        const port = await freePort();
        for (let i = 1; i <= WORKER_PROCESSES; i++) {
          services.push(await startConsumer(sandbox, ctx.runtime, `http://127.0.0.1:${port}`, i));
        }
        const producer = await startProducer(sandbox, ctx.runtime, {
          port,
          ...(options.producerEnv ? { env: options.producerEnv } : {}),
        });
        services.unshift(producer.service);
        const readyAt = Date.now();
        // The dispatcher may start before /health/ready answers: count from its first claim if so.
        const [first] = await sandbox.sql<{ at: Date | null }[]>`
          select min(sent_at) as at from tasks where sent_at is not null`;
        const startedAt = Math.min(readyAt, first?.at?.getTime() ?? readyAt);
        return timedDrain(
          ctx,
          sandbox,
          label,
          tasks,
          () => startedAt,
          windowMs,
          oursProbe,
          services,
          servers,
          broker?.nodes,
        );
      },
      async () => {
        await services[0]?.stop();
        await stopAll(services.slice(1));
      },
    );
    await options.after?.(sandbox);
    return {
      system: 'task-pipeline' as const,
      tasks,
      settings: `${WORKER_PROCESSES} consumers, ${settingsText(OUR_BEST_SETTINGS)}, the rest at their defaults`,
      ...run,
    };
  });
}

/** The installed version of a peer library, as npm recorded it. */
export function peerVersion(peer: Peer): string {
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules', peer, 'package.json'), 'utf8'));
  return String(pkg.version);
}

export async function peerDrain(
  peer: Peer,
  jobs: number,
  timeoutMs: number,
  ctx: MeasureContext,
  settings: PeerSettings = defaultSettings(peer),
): Promise<DrainRow> {
  return withSandbox(`drain_${peer.replace('-', '_')}`, async (sandbox) => {
    const seedBar = ctx.progress.bar(`${peer}: prefill ${formatNumber(jobs)}`, jobs);
    await prefillPeer(peer, sandbox.databaseUrl, jobs, (done) => seedBar.update(done));
    seedBar.finish('');
    const servers = ['postgresql'] as const;
    const workers: Service[] = [];
    const run = await betweenIdleSamples(
      { servers, database: sandbox.database },
      ctx.idleSampleMs,
      async () => {
        for (let i = 1; i <= WORKER_PROCESSES; i++) {
          workers.push(
            startBaseline(
              `${peer}-${i}`,
              'peer-worker',
              { PEER: peer, DATABASE_URL: sandbox.databaseUrl, PEER_SETTINGS: JSON.stringify(settings) },
              ctx.runtime,
            ),
          );
        }
        await Promise.all(workers.map((w) => w.message('ready', 60_000)));
        return timedDrain(
          ctx,
          sandbox,
          `${peer} drain`,
          jobs,
          () => {
            const now = Date.now();
            for (const worker of workers) worker.send('start');
            return now;
          },
          timeoutMs,
          (sql) => peerProbe(peer, sql),
          workers,
          servers,
        );
      },
      () => stopAll(workers),
    );
    return {
      system: peer,
      version: peerVersion(peer),
      tasks: jobs,
      settings: describeSettings(peer, settings, WORKER_PROCESSES),
      ...run,
    };
  });
}

export async function measureDrain(options: DrainOptions, ctx: MeasureContext): Promise<DrainRow[]> {
  const rows = [
    await attempt(ctx, 'drain: task-pipeline', () => oursDrain(options.tasks, options.timeoutMs, ctx)),
  ];
  for (const peer of options.peers === false ? [] : PEERS) {
    rows.push(
      await attempt(ctx, `drain: ${peer}`, () => peerDrain(peer, options.tasks, options.timeoutMs, ctx)),
    );
  }
  return rows.filter((row) => row !== undefined);
}
