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
  /** Documented "for improved performance when order doesn't matter"; our dispatch order is random too. */
  orderByCreatedOn: boolean;
  /** Pool size per process. */
  max: number;
}

/**
 * pg-boss 12.38 at its best here. Its throughput settings are `batchSize`, `localConcurrency` and
 * `burstWhenBatchFull` (docs/api/workers.md); priorities stay on, as ours honour them. Swept with
 * `npx tsx --conditions=source scripts/src/bench/peer-sweep.ts pg-boss` (2 processes, 50k no-op jobs,
 * Node 24, alternating, jobs/s of two rounds at load 2–3):
 *   batchSize × localConcurrency:  100×4 …   500×1 …   500×2 …   500×4 …   500×8 …   1,000×4 …
 *   orderByCreatedOn true (500×4): …
 * See the sweep in peer-sweep.ts for the exact variants.
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
 * localQueue 500, completeJobBatchDelay 0: worker.graphile.org/docs/performance). Swept as above:
 * …
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
