// Retention: finished tasks (success, error) whose finished_at is older than TASK_RETENTION are
// deleted, in small batches, by one producer replica at a time. Waiting and sent tasks are never
// deleted, whatever their age: they are work not yet done. Idempotency keys go with their tasks.
//
// Each batch is one transaction that first takes a transaction-scoped advisory lock: a replica that
// cannot take it skips its turn, so two replicas never delete at once, and a replica that dies frees
// the lock with its connection. The batch walks tasks_created from its oldest end: a task finishes
// after it is created, so nothing created after the cut-off can be old enough, and the walk stops
// there. Pacing: a batch that took d ms is followed by a pause of DUTY_PAUSE × d (at least
// MIN_PAUSE_MS), so retention holds a connection and the table's write path at most a quarter of the
// time, and a batch that found less than a full batch means it caught up: it rests IDLE_MS.
import type { Sql } from '../plugins/db.js';

/** pg_try_advisory_xact_lock key of retention ('task-retention' as a number; any fixed value works). */
export const RETENTION_LOCK_KEY = 7_310_450_142_893_001n;
export const RETENTION_BATCH_SIZE = 1_000;
const MIN_PAUSE_MS = 50;
const DUTY_PAUSE = 3;
export const RETENTION_IDLE_MS = 30_000;
/** task_throughput keeps the last hour for the stats; a second hour of margin, then it goes. */
const THROUGHPUT_KEEP = '2 hours';

export interface RetentionLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface RetentionOptions {
  sql: Sql;
  /** TASK_RETENTION in seconds; 0 keeps every task (the throughput minutes are still pruned). */
  retentionSeconds: number;
  onDeleted: (count: number) => void;
  logger: RetentionLogger;
  batchSize?: number;
  idleMs?: number;
}

export type RetentionBatch = { locked: false } | { locked: true; deleted: number };

/** One batch: deletes up to batchSize finished tasks past retention, unless another replica is at it. */
export async function retentionBatch(
  sql: Sql,
  retentionSeconds: number,
  batchSize = RETENTION_BATCH_SIZE,
): Promise<RetentionBatch> {
  return sql.begin(async (tx) => {
    const [lock] = await tx<{ locked: boolean }[]>`
      select pg_try_advisory_xact_lock(${RETENTION_LOCK_KEY.toString()}::int8) as locked`;
    if (!lock?.locked) return { locked: false } as const;
    await tx`delete from task_throughput where minute < now() - ${THROUGHPUT_KEEP}::interval`;
    if (retentionSeconds === 0) return { locked: true, deleted: 0 } as const;
    // SKIP LOCKED: a row a reporter or a redrive holds right now is taken by a later batch.
    const deleted = await tx`
      delete from tasks where id in (
        select id from tasks
         where created_at < now() - make_interval(secs => ${retentionSeconds})
           and status in ('success', 'error')
           and finished_at < now() - make_interval(secs => ${retentionSeconds})
         order by created_at
         limit ${batchSize}
         for update skip locked)`;
    return { locked: true, deleted: deleted.count } as const;
  });
}

/** Runs batches until stopped; a failed batch is logged and tried again after the idle time. */
export function startRetention(options: RetentionOptions): { stop(): Promise<void> } {
  const { sql, retentionSeconds, onDeleted, logger } = options;
  const batchSize = options.batchSize ?? RETENTION_BATCH_SIZE;
  const idleMs = options.idleMs ?? RETENTION_IDLE_MS;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;

  const tick = async () => {
    let waitMs = idleMs;
    const started = performance.now();
    try {
      const batch = await retentionBatch(sql, retentionSeconds, batchSize);
      if (batch.locked && batch.deleted > 0) {
        onDeleted(batch.deleted);
        if (batch.deleted === batchSize) {
          waitMs = Math.max(MIN_PAUSE_MS, DUTY_PAUSE * (performance.now() - started));
        }
      }
    } catch (err) {
      logger.warn({ err, retentionSeconds }, 'retention batch failed; trying again later');
    }
    if (!stopped) {
      timer = setTimeout(() => {
        running = tick();
      }, waitMs);
      timer.unref();
    }
  };
  running = tick();
  logger.info({ retentionSeconds, batchSize }, 'retention started');

  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
