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
import { withDeadline } from '../db/deadline.js';
import type { Sql } from '../plugins/db.js';

/** pg_try_advisory_xact_lock key of retention ('task-retention' as a number; any fixed value works). */
export const RETENTION_LOCK_KEY = 7_310_450_142_893_001n;
export const RETENTION_BATCH_SIZE = 1_000;
const MIN_PAUSE_MS = 50;
const DUTY_PAUSE = 3;
export const RETENTION_IDLE_MS = 30_000;
/** task_throughput keeps the last hour for the stats; a second hour of margin, then it goes. */
const THROUGHPUT_KEEP = '2 hours';
/** Without a deadline of the caller's: the API's default statement timeout and its margin. */
const DEFAULT_DEADLINE_MS = 6_000;

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
  /** How long a batch may go unanswered before it is cancelled (a silent connection). */
  deadlineMs?: number;
}

export type RetentionBatch = { locked: false } | { locked: true; deleted: number };

/**
 * One batch: deletes up to batchSize finished tasks past retention, unless another replica is at it.
 * One statement, so one transaction, that holds the advisory lock until it commits: the lock is
 * taken first (an init plan the deletes are gated on), and a replica that does not get it deletes
 * nothing. One statement can also be given a client-side deadline, like every API statement.
 */
export async function retentionBatch(
  sql: Sql,
  retentionSeconds: number,
  options: { batchSize?: number; deadlineMs?: number } = {},
): Promise<RetentionBatch> {
  const batchSize = options.batchSize ?? RETENTION_BATCH_SIZE;
  const cutoff = sql`now() - make_interval(secs => ${retentionSeconds})`;
  const query = sql<{ locked: boolean; deleted: number }[]>`
    with lock as materialized (
      select pg_try_advisory_xact_lock(${RETENTION_LOCK_KEY.toString()}::int8) as locked
    ),
    pruned as (
      delete from task_throughput
       where (select locked from lock) and minute < now() - ${THROUGHPUT_KEEP}::interval
    ),
    deleted as (
      delete from tasks
       where (select locked from lock) and ${retentionSeconds}::int8 > 0
         and id in (
           -- SKIP LOCKED: a row a reporter or a redrive holds right now is left to a later batch.
           select id from tasks
            where created_at < ${cutoff} and status in ('success', 'error') and finished_at < ${cutoff}
            order by created_at
            limit ${batchSize}
            for update skip locked)
      returning 1
    )
    select (select locked from lock) as locked, (select count(*) from deleted)::int as deleted`;
  const [row] = await withDeadline('retention batch', options.deadlineMs ?? DEFAULT_DEADLINE_MS, query);
  return row?.locked ? { locked: true, deleted: row.deleted } : { locked: false };
}

/** Runs batches until stopped; a failed batch is logged and tried again after the idle time. */
export function startRetention(options: RetentionOptions): { stop(): void; idle(): Promise<void> } {
  const { sql, retentionSeconds, onDeleted, logger } = options;
  const batchSize = options.batchSize ?? RETENTION_BATCH_SIZE;
  const idleMs = options.idleMs ?? RETENTION_IDLE_MS;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();

  const tick = async () => {
    let waitMs = idleMs;
    const started = performance.now();
    try {
      const batch = await retentionBatch(sql, retentionSeconds, {
        batchSize,
        deadlineMs: options.deadlineMs,
      });
      if (batch.locked && batch.deleted > 0) {
        onDeleted(batch.deleted);
        if (batch.deleted === batchSize) {
          waitMs = Math.max(MIN_PAUSE_MS, DUTY_PAUSE * (performance.now() - started));
        }
      }
    } catch (err) {
      // At shutdown the pool is closing under the batch: nothing to report.
      if (!stopped) logger.warn({ err, retentionSeconds }, 'retention batch failed; trying again later');
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
    /**
     * Stops the loop. A batch in flight is not waited for: it is one statement, which the pool's end
     * cancels or lets commit, and a silent connection must not hold up the shutdown.
     */
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
    /** Resolves once the batch in flight, if any, is over (tests). */
    idle: () => running,
  };
}
