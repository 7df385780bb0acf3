// One worker process of a peer job queue for measure 2, with the settings its documentation gives
// for throughput; the handler does nothing, as our consumers do with PROCESSING_TIME_MS=0.
//   env: PEER (pg-boss | graphile-worker), DATABASE_URL
import { run } from 'graphile-worker';
import PgBoss from 'pg-boss';
import { GRAPHILE_SETTINGS, PEER_QUEUE, PG_BOSS_SETTINGS, quietGraphileLogger } from './peers.js';

async function main(): Promise<void> {
  const { PEER, DATABASE_URL } = process.env;
  if (!DATABASE_URL) throw new Error('DATABASE_URL is required');
  let stop: () => Promise<void>;
  if (PEER === 'pg-boss') {
    const boss = new PgBoss({
      connectionString: DATABASE_URL,
      max: PG_BOSS_SETTINGS.max,
      supervise: false,
      schedule: false,
      migrate: false,
    });
    boss.on('error', (err) => console.error('pg-boss:', err));
    await boss.start();
    for (let i = 0; i < PG_BOSS_SETTINGS.workersPerProcess; i++) {
      await boss.work(
        PEER_QUEUE,
        {
          batchSize: PG_BOSS_SETTINGS.batchSize,
          pollingIntervalSeconds: PG_BOSS_SETTINGS.pollingIntervalSeconds,
        },
        async () => undefined,
      );
    }
    stop = () => boss.stop({ graceful: true, wait: true, timeout: 5_000 });
  } else if (PEER === 'graphile-worker') {
    const runner = await run({
      connectionString: DATABASE_URL,
      concurrency: GRAPHILE_SETTINGS.concurrentJobs,
      maxPoolSize: GRAPHILE_SETTINGS.maxPoolSize,
      noHandleSignals: true,
      logger: quietGraphileLogger,
      taskList: { [PEER_QUEUE]: async () => undefined },
      preset: {
        worker: {
          localQueue: GRAPHILE_SETTINGS.localQueue,
          completeJobBatchDelay: GRAPHILE_SETTINGS.completeJobBatchDelay,
          failJobBatchDelay: GRAPHILE_SETTINGS.failJobBatchDelay,
        },
      },
    });
    stop = () => runner.stop();
  } else {
    throw new Error(`PEER must be pg-boss or graphile-worker, not ${PEER}`);
  }
  const shutdown = () => {
    stop().then(
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
