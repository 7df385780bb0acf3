// The peers of measure 2, set up from the benchmark process: each one's schema installed and its
// queue pre-filled with no-op jobs through its own bulk API, before any worker starts. The workers
// themselves run in peer-worker.ts, as separate processes like our consumers.
import { makeWorkerUtils, runMigrations } from 'graphile-worker';
import { PgBoss } from 'pg-boss';
import type { DrainProbe } from '../measures/common.js';
import { BENCH_TEXT } from '../plan.js';
import type { Sql } from '../sandbox.js';
import { quietGraphileLogger } from './graphile-logger.js';
import { PEER_QUEUE, type Peer } from './peer-settings.js';

const CHUNK = 10_000;

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
          PEER_QUEUE,
          Array.from({ length: n }, (_, i) => ({ data: { text: `${BENCH_TEXT} #${done + i}` } })),
        );
        onProgress?.(done + n);
      }
    } finally {
      await boss.stop({ graceful: false });
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
