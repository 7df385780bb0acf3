// The peers of measure 2, set up from the benchmark process: each one's schema installed and its
// queue pre-filled with no-op jobs through its own bulk API, before any worker starts. The workers
// themselves run in peer-worker.ts, as separate processes like our consumers.
import { Logger, makeWorkerUtils, runMigrations } from 'graphile-worker';
import PgBoss from 'pg-boss';
import type { DrainProbe } from '../measures/common.js';
import { BENCH_TEXT } from '../plan.js';
import type { Sql } from '../sandbox.js';

export const PEERS = ['pg-boss', 'graphile-worker'] as const;
export type Peer = (typeof PEERS)[number];

export const PEER_QUEUE = 'bench';
const CHUNK = 10_000;

/**
 * pg-boss 10: each work() loop fetches a batch, hands it to the handler, completes it, and polls again
 * after pollingIntervalSeconds (0.5 s, its minimum): throughput is at most batchSize × loops / 0.5 s.
 * Its docs name batchSize and the polling interval as the throughput settings. Swept here (2 processes,
 * 20k jobs): 1 loop × 1,000 reached its 4k/s ceiling; 2 × 500 the same; 4 × 500, 8 × 500 and
 * 1 × 2,000 were slower (0.9–1.4k/s: concurrent fetches and completions contend on the job table).
 */
export const PG_BOSS_SETTINGS = {
  batchSize: 1_000,
  pollingIntervalSeconds: 0.5,
  workersPerProcess: 1,
  max: 10,
};

/** graphile-worker 0.17: the configuration of its documented performance run (worker.graphile.org/docs/performance). */
export const GRAPHILE_SETTINGS = {
  concurrentJobs: 24,
  maxPoolSize: 25,
  localQueue: { size: 500 },
  completeJobBatchDelay: 0,
  failJobBatchDelay: 0,
};

/** graphile-worker logs every start and stop at info; the benchmark shows only errors. */
export const quietGraphileLogger = new Logger((scope) => (level, message) => {
  if (level === 'error') console.error(`graphile-worker ${JSON.stringify(scope)}: ${message}`);
});

export async function prefillPeer(
  peer: Peer,
  databaseUrl: string,
  jobs: number,
  onProgress?: (done: number) => void,
): Promise<void> {
  if (peer === 'pg-boss') {
    const boss = new PgBoss({ connectionString: databaseUrl, max: 2, supervise: false, schedule: false });
    boss.on('error', (err) => console.error('pg-boss:', err));
    await boss.start();
    try {
      await boss.createQueue(PEER_QUEUE);
      for (let done = 0; done < jobs; done += CHUNK) {
        const n = Math.min(CHUNK, jobs - done);
        await boss.insert(
          Array.from({ length: n }, (_, i) => ({
            name: PEER_QUEUE,
            data: { text: `${BENCH_TEXT} #${done + i}` },
          })),
        );
        onProgress?.(done + n);
      }
    } finally {
      await boss.stop({ graceful: false, wait: true });
    }
    return;
  }
  await runMigrations({ connectionString: databaseUrl, logger: quietGraphileLogger });
  const utils = await makeWorkerUtils({ connectionString: databaseUrl, logger: quietGraphileLogger });
  try {
    for (let done = 0; done < jobs; done += CHUNK) {
      const n = Math.min(CHUNK, jobs - done);
      await utils.addJobs(
        Array.from({ length: n }, (_, i) => ({
          identifier: PEER_QUEUE,
          payload: { text: `${BENCH_TEXT} #${done + i}` },
        })),
      );
      onProgress?.(done + n);
    }
  } finally {
    await utils.release();
  }
}

/**
 * How to watch a peer drain. pg-boss keeps completed rows with completed_on, so it is timed to its
 * last completion; graphile-worker deletes finished jobs, so it is timed by a fast poll (the count
 * of its shrinking table is cheap).
 */
export function peerProbe(peer: Peer, sql: Sql): DrainProbe {
  if (peer === 'pg-boss') {
    return {
      pollMs: 500,
      remaining: async () => {
        const [row] = await sql<{ n: string }[]>`
          select count(*)::text as n from pgboss.job where name = ${PEER_QUEUE} and state < 'completed'`;
        return Number(row?.n ?? 0);
      },
      finishedAt: async () => {
        const [row] = await sql<{ at: Date | null }[]>`
          select max(completed_on) as at from pgboss.job where name = ${PEER_QUEUE}`;
        return row?.at?.getTime();
      },
    };
  }
  return {
    pollMs: 100,
    remaining: async () => {
      const [row] = await sql<{ n: string }[]>`select count(*)::text as n from graphile_worker._private_jobs`;
      return Number(row?.n ?? 0);
    },
  };
}
