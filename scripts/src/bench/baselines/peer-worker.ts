// One worker process of a peer job queue for measure 2; the handler does nothing, as our consumers do
// with PROCESSING_TIME_MS=0. Built and run like our services (plain node on dist/). It says 'ready'
// when connected and starts working when the parent says 'start', so every worker of the drain
// starts on the same clock.
//   env: PEER (pg-boss | graphile-worker), DATABASE_URL, PEER_SETTINGS (JSON, see peer-settings.ts)
import { type Runner, type RunnerOptions, run } from 'graphile-worker';
import { PgBoss } from 'pg-boss';
import { quietGraphileLogger } from './graphile-logger.js';
import {
  defaultSettings,
  type GraphileSettings,
  PEER_QUEUE,
  PEERS,
  type Peer,
  type PgBossSettings,
} from './peer-settings.js';

interface Worker {
  start(): Promise<void>;
  stop(): Promise<void>;
}

async function pgBossWorker(databaseUrl: string, s: PgBossSettings): Promise<Worker> {
  const boss = new PgBoss({
    connectionString: databaseUrl,
    max: s.max,
    // Maintenance and cron run elsewhere in a deployment; here they would only add noise.
    supervise: false,
    schedule: false,
    migrate: false,
  });
  boss.on('error', (err) => console.error('pg-boss:', err));
  await boss.start();
  return {
    async start() {
      await boss.work(
        PEER_QUEUE,
        {
          batchSize: s.batchSize,
          localConcurrency: s.localConcurrency,
          burstWhenBatchFull: s.burstWhenBatchFull,
          pollingIntervalSeconds: s.pollingIntervalSeconds,
          orderByCreatedOn: s.orderByCreatedOn,
        },
        async () => undefined,
      );
    },
    stop: () => boss.stop({ graceful: true, timeout: 5_000 }),
  };
}

/** graphile-worker connects and starts working in one call: `run()` waits for the start. */
function graphileWorker(databaseUrl: string, s: GraphileSettings): Worker {
  let runner: Runner | undefined;
  const options: RunnerOptions = {
    connectionString: databaseUrl,
    concurrency: s.concurrentJobs,
    maxPoolSize: s.maxPoolSize,
    noHandleSignals: true,
    logger: quietGraphileLogger,
    taskList: { [PEER_QUEUE]: async () => undefined },
    preset: {
      worker: {
        localQueue: { size: s.localQueueSize },
        completeJobBatchDelay: s.completeJobBatchDelay,
        failJobBatchDelay: s.completeJobBatchDelay,
      },
    },
  };
  return {
    async start() {
      runner = await run(options);
    },
    stop: async () => runner?.stop(),
  };
}

async function main(): Promise<void> {
  const { PEER, DATABASE_URL, PEER_SETTINGS } = process.env;
  if (!DATABASE_URL) throw new Error('DATABASE_URL is required');
  if (!(PEERS as readonly string[]).includes(PEER ?? '')) {
    throw new Error(`PEER must be one of ${PEERS.join(', ')}, not ${PEER}`);
  }
  const peer = PEER as Peer;
  const settings = PEER_SETTINGS ? JSON.parse(PEER_SETTINGS) : defaultSettings(peer);
  const worker =
    peer === 'pg-boss'
      ? await pgBossWorker(DATABASE_URL, settings as PgBossSettings)
      : graphileWorker(DATABASE_URL, settings as GraphileSettings);
  process.on('message', (message) => {
    if (message !== 'start') return;
    worker.start().catch((err: unknown) => {
      console.error(err);
      process.exit(1);
    });
  });
  const shutdown = () => {
    worker.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
  process.send?.('ready');
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
