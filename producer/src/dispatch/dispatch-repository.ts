// The dispatcher's SQL. Every write is fenced by (status = 'waiting', attempts = the claimed attempt),
// so a report that landed first, or a newer claim by another dispatcher, always wins; and every write
// selects its rows FOR UPDATE SKIP LOCKED, so it never waits on (or deadlocks with) the reporters'
// batch updates of the same tasks, which arrive while confirms are still pending.
import type { Priority } from '@task-pipeline/rabbitmq/contract';
import type { PendingQuery, Row, Sql } from 'postgres';
import { secondsSince } from '../db/clock.js';
import { type CancellableQuery, withDeadline } from '../db/deadline.js';
import { buildClaimPlan, type ClaimPlanInput, claimOrderComparator } from './claim-query.js';

export interface ClaimedTask {
  id: string;
  text: string;
  priority: Priority;
  createdAt: Date;
  /** The attempt this claim owns: the message carries it and every later write is fenced by it. */
  attempt: number;
}

/**
 * What the dispatcher keeps of a claimed task once its message is built: what the record and the
 * release are fenced by, and its priority for the metrics. Not its text, which can be large and may
 * wait out the record delay.
 */
export type TaskRef = Pick<ClaimedTask, 'id' | 'priority' | 'attempt'>;

export interface FencedOutcome {
  /** Rows this call changed. */
  done: string[];
  /** Rows still waiting with the same attempt but locked by another transaction right now. */
  locked: string[];
}

/** The figure DISPATCH_MAX_IN_FLIGHT caps, as one dispatcher sees it (its own part apart). */
export interface InFlight {
  /** `sent` tasks, counted up to the cap. */
  sent: number;
  /** What the other live dispatchers have claimed, or reserved to claim, and not recorded. */
  claimedElsewhere: number;
  /** Live dispatchers, this one included. */
  dispatchers: number;
}

export interface TaskCounts {
  waiting: number;
  sent: number;
  oldestSentAt: Date | undefined;
  /** Sent tasks sent longer ago than the threshold counts() was given. */
  staleSent: number;
}

export type ClaimOptions = ClaimPlanInput;

interface ClaimRow {
  id: string;
  text: string;
  priority: Priority;
  created_at: Date;
  attempts: number;
}

/** A row the fenced update did not change. */
interface UnchangedRow {
  id: string;
  /** True: still waiting with the same attempt, but locked; false: reported or re-claimed. */
  locked: boolean;
}

/**
 * A list as a PostgreSQL array literal, sent as one text parameter and cast in the statement
 * (`${arrayLiteral(ids)}::uuid[]`). Array parameters proper need the driver's array-type lookup
 * (fetch_types), whose failure during a database restart surfaces as an unhandled rejection
 * (porsager/postgres#1192, #1223); the pool runs without it. The elements are UUIDs and integers,
 * which need no quoting.
 */
function arrayLiteral(values: readonly (string | number)[]): string {
  return `{${values.join(',')}}`;
}

/**
 * The shortest statement deadline the configuration may leave (checked at start). A claim may have to
 * open its connection first, as every statement does after a database restart, and postgres.js gives
 * that up to its connect timeout (5 s, db.ts); on top come a claim's own seconds under load, a queue
 * behind the records of the batches in flight, and the gauges' full counts over a large backlog. A
 * deadline below that cuts statements that would have answered, and a dispatcher whose claims keep
 * being cut never dispatches.
 */
export const MIN_STATEMENT_DEADLINE_MS = 5_000;

/**
 * The client-side deadline of every dispatcher statement: the lease minus twice the confirm timeout,
 * the time a claim may take before the dispatcher's publish deadline (claim start + lease − 2 ×
 * confirm timeout) has passed. A claim answered later could not publish a single task, so cancelling
 * it there loses nothing; a record, release or count cancelled there is retried, and the fence and
 * the lease make a lost or late record safe (the task goes out again, at-least-once). The config
 * checks keep it above the confirm timeout and at least MIN_STATEMENT_DEADLINE_MS; with the defaults
 * it is 20 s, two orders of magnitude above the slowest claims measured (20–90 ms for 500 rows at 1M
 * waiting rows, a few seconds under load), so only a statement that is stuck reaches it.
 */
export function statementDeadlineMs(config: { leaseSeconds: number; confirmTimeoutMs: number }): number {
  return config.leaseSeconds * 1000 - 2 * config.confirmTimeoutMs;
}

export interface DispatchRepositoryOptions {
  /** See statementDeadlineMs. */
  statementDeadlineMs: number;
}

export function createDispatchRepository(sql: Sql, options: DispatchRepositoryOptions) {
  const { statementDeadlineMs: deadlineMs } = options;

  /** See statementDeadlineMs: past it a claim, record or count fails like any database error. */
  const deadline = <T>(statement: string, query: CancellableQuery<T>) =>
    withDeadline(`dispatcher ${statement}`, deadlineMs, query);

  /**
   * Applies `set` to the tasks still waiting with their claimed attempt, reaching each row through
   * the primary key (the cost grows with the batch, not the table). Returns the rows it changed and
   * the rows it skipped because another transaction held them locked; a row that no longer matches
   * (reported, re-claimed) is in neither. Only the rows not changed come back (none, as a rule: a
   * record of 500 rows answered 500 ids the dispatcher already holds), read again from the
   * statement's snapshot, which still shows them as they were before any concurrent change.
   */
  async function fencedUpdate(
    statement: string,
    tasks: readonly TaskRef[],
    set: PendingQuery<Row[]>,
  ): Promise<FencedOutcome> {
    if (tasks.length === 0) return { done: [], locked: [] };
    const ids = arrayLiteral(tasks.map((t) => t.id));
    const attempts = arrayLiteral(tasks.map((t) => t.attempt));
    const unchanged = await deadline(
      statement,
      sql<UnchangedRow[]>`
      WITH claimed AS (
        SELECT * FROM unnest(${ids}::uuid[], ${attempts}::int[]) AS c(id, attempt)
      ),
      updated AS (
        UPDATE tasks t SET ${set}
        FROM claimed c
        CROSS JOIN LATERAL (
          SELECT l.id FROM tasks l
          WHERE l.id = c.id AND l.attempts = c.attempt AND l.status = 'waiting'
          FOR UPDATE SKIP LOCKED
        ) l
        WHERE t.id = l.id
        RETURNING t.id
      )
      SELECT c.id,
             coalesce((SELECT t.status = 'waiting' AND t.attempts = c.attempt FROM tasks t WHERE t.id = c.id),
                      false) AS locked
        FROM claimed c
       WHERE c.id NOT IN (SELECT id FROM updated)`,
    );
    const notDone = new Set(unchanged.map((r) => r.id));
    return {
      done: tasks.filter((t) => !notDone.has(t.id)).map((t) => t.id),
      locked: unchanged.filter((r) => r.locked).map((r) => r.id),
    };
  }

  return {
    /**
     * One short transaction (a single statement): lease + attempt + 1 on up to `limit` rows, returned
     * in claim order (priority, then random or oldest first).
     */
    async claim(options: ClaimOptions): Promise<ClaimedTask[]> {
      const plan = buildClaimPlan(options);
      const rows = await deadline('claim', sql.unsafe<ClaimRow[]>(plan.text, plan.params, { prepare: true }));
      return rows
        .map((r) => ({
          id: r.id,
          text: r.text,
          priority: r.priority,
          createdAt: r.created_at,
          attempt: r.attempts,
        }))
        .sort(claimOrderComparator(options.order, options.startIds));
    },

    /**
     * Confirmed messages → `sent`, with the time the broker confirmed them (PROTOCOL §3), not the
     * record's: the record delay would shift it. The confirm's age goes over, not its time (db/clock.ts).
     * A row whose report landed first (status no longer waiting) or that another dispatcher re-claimed
     * (attempts moved on) is left alone.
     */
    recordSent(tasks: readonly TaskRef[], confirmedAt: Date): Promise<FencedOutcome> {
      return fencedUpdate(
        'record',
        tasks,
        sql`status = 'sent', sent_at = now() - make_interval(secs => ${secondsSince(confirmedAt)}),
            updated_at = now(), claimed_until = NULL`,
      );
    },

    /**
     * Tasks that were not published (failed, or never sent out) keep their claim for `delayMs` more:
     * the next claim cannot pick them before, which spaces out retries of a broken route.
     */
    release(tasks: readonly TaskRef[], delayMs: number): Promise<FencedOutcome> {
      return fencedUpdate(
        'release',
        tasks,
        sql`claimed_until = now() + make_interval(secs => ${delayMs / 1000})`,
      );
    },

    /**
     * The in-flight figure apart from this dispatcher: `sent` tasks from task_counts (kept by the
     * statements that change a status, in their transactions) and what the other live dispatchers
     * hold in dispatcher_claims; rows of dispatchers gone for good are dropped on the way. Counting
     * the rows instead (up to the cap, through tasks_sent) read a heap page per sent task: 277 ms a
     * count once a 1M-row table outgrew shared_buffers, every second (BENCHMARKS.md, issue 16).
     */
    async countInFlight(options: { cap: number; dispatcherId: string }): Promise<InFlight> {
      const { cap, dispatcherId } = options;
      const [row] = await deadline(
        'in-flight count',
        sql<{ sent: number; claimed_elsewhere: number; others: number }[]>`
          WITH gone AS (
            DELETE FROM dispatcher_claims WHERE expires_at < now() AND dispatcher_id <> ${dispatcherId}
          )
          SELECT (SELECT least(coalesce(sum(count), 0), ${cap}) FROM task_counts WHERE status = 'sent')::int AS sent,
                 coalesce(sum(claimed), 0)::int AS claimed_elsewhere,
                 count(*)::int AS others
            FROM dispatcher_claims
           WHERE dispatcher_id <> ${dispatcherId} AND expires_at > now()`,
      );
      return {
        sent: row?.sent ?? 0,
        claimedElsewhere: row?.claimed_elsewhere ?? 0,
        dispatchers: (row?.others ?? 0) + 1,
      };
    },

    /**
     * This dispatcher's row: what it has claimed and not recorded plus what it may still claim before
     * it counts again, counting for the others until `lifetimeSeconds` from now.
     */
    async reserveClaims(options: { dispatcherId: string; claimed: number; lifetimeSeconds: number }) {
      const { dispatcherId, claimed, lifetimeSeconds } = options;
      await deadline(
        'claims reservation',
        sql`
          INSERT INTO dispatcher_claims (dispatcher_id, claimed, expires_at)
          VALUES (${dispatcherId}, ${claimed}, now() + make_interval(secs => ${lifetimeSeconds}))
          ON CONFLICT (dispatcher_id)
          DO UPDATE SET claimed = excluded.claimed, expires_at = excluded.expires_at`,
      );
    },

    /** A dispatcher that stopped with nothing claimed takes its row out of the figure at once. */
    async forgetClaims(dispatcherId: string): Promise<void> {
      await deadline(
        'claims row removal',
        sql`DELETE FROM dispatcher_claims WHERE dispatcher_id = ${dispatcherId}`,
      );
    },

    /**
     * The gauges' numbers: counts from task_counts, the oldest and the stale sent tasks from the
     * small tasks_sent index (`staleSentAfterS`: how long ago a sent task was sent to count as stale).
     */
    async counts(staleSentAfterS: number): Promise<TaskCounts> {
      const [row] = await deadline(
        'gauge counts',
        sql<{ waiting: number; sent: number; oldest_sent_at: Date | null; stale_sent: number }[]>`
          SELECT (SELECT coalesce(sum(count), 0) FROM task_counts WHERE status = 'waiting')::int AS waiting,
                 (SELECT coalesce(sum(count), 0) FROM task_counts WHERE status = 'sent')::int AS sent,
                 (SELECT min(sent_at) FROM tasks WHERE status = 'sent') AS oldest_sent_at,
                 (SELECT count(*) FROM tasks
                   WHERE status = 'sent' AND sent_at < now() - make_interval(secs => ${staleSentAfterS}))::int
                   AS stale_sent`,
      );
      return {
        waiting: row?.waiting ?? 0,
        sent: row?.sent ?? 0,
        oldestSentAt: row?.oldest_sent_at ?? undefined,
        staleSent: row?.stale_sent ?? 0,
      };
    },
  };
}

export type DispatchRepository = ReturnType<typeof createDispatchRepository>;
