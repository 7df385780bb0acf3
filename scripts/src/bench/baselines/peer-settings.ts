// The peers of measure 2 and the settings they run with: pure data, shared by the harness (which
// passes them to each worker process in PEER_SETTINGS) and by peer-worker.ts.

export const PEERS = ['pg-boss', 'graphile-worker'] as const;
export type Peer = (typeof PEERS)[number];

export const PEER_QUEUE = 'bench';

/** pg-boss 12 `work()` options that decide throughput, and the pool of each process. */
export interface PgBossSettings {
  batchSize: number;
  /** Workers per process, each fetching and completing its own batches. */
  localConcurrency: number;
  /** Fetch again at once while fetches come back full, instead of waiting for the poll. */
  burstWhenBatchFull: boolean;
  /** The poll when a fetch came back short (0.5 s is its minimum). */
  pollingIntervalSeconds: number;
  /** Fetch in creation order. */
  orderByCreatedOn: boolean;
  /** Pool size per process. */
  max: number;
}

/**
 * pg-boss 12.38 at its best here. Its throughput settings are `batchSize`, `localConcurrency` and
 * `burstWhenBatchFull` (docs/api/workers.md); `orderByCreatedOn: false` is documented "for improved
 * performance when order doesn't matter" (our dispatch order is random, so it does not matter here
 * either); priorities stay on, as ours honour them. Swept with `peer-sweep.ts pg-boss` (2 processes,
 * 50k no-op jobs, Node 24, two rounds in alternating order, load average 11–15 on 2 cores), jobs/s
 * and CPU µs per job (workers + PostgreSQL):
 *   batchSize 100 × localConcurrency 4   2,968 / 4,051   329 / 298 µs
 *   500 × 1                              3,440 / 4,649   155 / 155 µs
 *   500 × 2                              7,510 / 5,178   151 / 144 µs
 *   500 × 4                              5,983 / 8,026   153 / 167 µs   ← kept (mean 7.0k)
 *   500 × 8 (pool 12)                    6,478 / 4,079   192 / 197 µs
 *   1,000 × 4                            6,512 / 6,886   138 / 145 µs   (level with 500 × 4)
 *   500 × 4, orderByCreatedOn true       4,512 / 3,914   152 / 171 µs
 * Issue 16 measured 23.2k jobs/s with 500 × 4 and burstWhenBatchFull on a quiet machine.
 */
export const PG_BOSS_SETTINGS: PgBossSettings = {
  batchSize: 500,
  localConcurrency: 4,
  burstWhenBatchFull: true,
  pollingIntervalSeconds: 0.5,
  orderByCreatedOn: false,
  max: 10,
};

/** graphile-worker 0.18's options: concurrency, its pool, and the batching of fetches and completions. */
export interface GraphileSettings {
  concurrentJobs: number;
  maxPoolSize: number;
  /** Jobs each process fetches (and locks) ahead in one query; -1 turns the local queue off. */
  localQueueSize: number;
  /** ms to gather completions into one statement; -1 completes each job on its own. */
  completeJobBatchDelay: number;
}

/**
 * graphile-worker 0.18 with batching on, as its performance page runs it (concurrency 24, pool 25,
 * localQueue 500, completeJobBatchDelay 0: worker.graphile.org/docs/performance). Swept with
 * `peer-sweep.ts graphile-worker` as above (load 10–21), jobs/s and CPU µs per job:
 *   concurrency 8, pool 10              10,627 / 5,276   88 / 117 µs
 *   concurrency 24, pool 25             7,896 / 4,789    94 / 94 µs    ← kept (the documented run)
 *   … localQueue 100                    3,377 / 2,157    223 / 217 µs
 *   … localQueue 1,000                  10,301 / 7,203   74 / 83 µs
 *   concurrency 48, pool 50             13,242 / 6,314   92 / 113 µs
 *   … completeJobBatchDelay 250         7,851 / 8,399    70 / 84 µs
 * Only a local queue far below 500 was clearly worse; the rest moved with the load more than with
 * the settings, so the documented configuration stays.
 */
export const GRAPHILE_SETTINGS: GraphileSettings = {
  concurrentJobs: 24,
  maxPoolSize: 25,
  localQueueSize: 500,
  completeJobBatchDelay: 0,
};

export type PeerSettings = PgBossSettings | GraphileSettings;

export function defaultSettings(peer: Peer): PeerSettings {
  return peer === 'pg-boss' ? PG_BOSS_SETTINGS : GRAPHILE_SETTINGS;
}

/** One line for the report: the options as their library spells them. */
export function describeSettings(peer: Peer, settings: PeerSettings, processes: number): string {
  if (peer === 'pg-boss') {
    const s = settings as PgBossSettings;
    return `${processes} processes, batchSize ${s.batchSize}, localConcurrency ${s.localConcurrency}, burstWhenBatchFull ${s.burstWhenBatchFull}, orderByCreatedOn ${s.orderByCreatedOn}, pollingIntervalSeconds ${s.pollingIntervalSeconds}, pool ${s.max}`;
  }
  const s = settings as GraphileSettings;
  return `${processes} processes, concurrency ${s.concurrentJobs}, maxPoolSize ${s.maxPoolSize}, localQueue.size ${s.localQueueSize}, completeJobBatchDelay ${s.completeJobBatchDelay}`;
}
