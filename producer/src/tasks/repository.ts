// SQL for tasks. Every status change is one check-and-set UPDATE whose guard comes from
// status-transitions.ts; reads afterwards only explain why a guard did not match.
import { createHash, randomUUID } from 'node:crypto';
import { type CoalesceOptions, type CoalesceStats, coalesce } from '@task-pipeline/common';
import type { Priority } from '@task-pipeline/rabbitmq/contract';
import type { Sql } from 'postgres';
import { secondsSince } from '../db/clock.js';
import { type CancellableQuery, isDatabaseTimeout, withDeadline } from '../db/deadline.js';
import { columnList, type Fragment, literalList } from '../db/fragments.js';
import type { DispatcherHandle, InsertClaim } from '../dispatch/types.js';
import { REDRIVE_SELECTION_COLUMNS, redriveStatement } from './redrive.js';
import {
  decideRedrive,
  decideReport,
  RECOVERABLE_ERROR,
  REPORTABLE_FROM,
  type ReportDecision,
  type TaskState,
  type TaskStatus,
} from './status-transitions.js';
import type { StatusUpdate, Task } from './task.js';

export interface TaskRow {
  id: string;
  text: string;
  priority: Priority;
  status: TaskStatus;
  attempts: number;
  error: string | null;
  created_at: Date;
  updated_at: Date;
  sent_at: Date | null;
  finished_at: Date | null;
}

export const COLUMNS = [
  'id',
  'text',
  'priority',
  'status',
  'attempts',
  'error',
  'created_at',
  'updated_at',
  'sent_at',
  'finished_at',
] as const satisfies readonly (keyof TaskRow)[];

/** The guard would have matched on a re-read, so a concurrent change got in between: try again. */
const MAX_CAS_ROUNDS = 5;

/**
 * Single creates and reports are gathered into batches of up to 1,000 (the batch route's own limit);
 * four batches of each kind in flight leave room in the pool of 10 for reads and the batch route.
 * Four more batches' worth may wait: what the slots take in one more round, so a request that is let
 * in waits about two batch durations at most, and a database that stops answering turns the rest into
 * quick 503s instead of an ever longer queue in memory.
 */
const COALESCE = {
  maxBatch: 1_000,
  maxInFlight: 4,
  maxWaiting: 4_000,
} as const satisfies Partial<CoalesceOptions>;

export interface TaskRepositoryOptions {
  /**
   * How long any statement, or a coalesced batch of them, may go unanswered before the request gives
   * up with a 503 (and the statement is cancelled): a little more than the pool's statement_timeout,
   * so that the server's own timeout ends a slow statement and this one only a silent connection.
   */
  deadlineMs: number;
  /** The dispatcher's offer to claim fresh tasks in the insert that creates them (see InsertClaim). */
  claimOnInsert?: (count: number) => InsertClaim | undefined;
  /**
   * This producer's dispatcher, for tasks it had confirmed and not yet recorded: a report of one
   * writes the confirm's time as its sent_at, and then tells the dispatcher that it needs no record.
   */
  unrecorded?: Pick<DispatcherHandle, 'confirmedAt' | 'reported'>;
}

export function toTask(row: TaskRow): Task {
  return {
    taskId: row.id,
    text: row.text,
    priority: row.priority,
    status: row.status,
    attempts: row.attempts,
    error: row.error,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
    sentAt: row.sent_at?.toISOString() ?? null,
    finishedAt: row.finished_at?.toISOString() ?? null,
  };
}

export interface NewTask {
  text: string;
  priority: Priority;
  idempotencyKey?: string | undefined;
}

export type CreateResult =
  /** `claimed`: inserted already claimed by this producer's dispatcher, which is publishing it. */
  | { outcome: 'created'; task: Task; claimed: boolean }
  /** The same Idempotency-Key with the same body: the task the first request created. */
  | { outcome: 'replayed'; task: Task }
  | { outcome: 'key_reused' };

/** What a report needs to know of its task: its decision, and the detail of a refusal. */
export interface ReportedTask {
  taskId: string;
  status: TaskStatus;
  attempts: number;
  error: string | null;
}

/** `T`: the whole task (what the routes answer by default), or only what decided the report. */
export type ReportResult<T extends ReportedTask = Task> =
  | { outcome: 'applied' | 'stale' | 'duplicate'; task: T }
  | { outcome: 'conflict'; reason: 'terminal' | 'attempt_ahead'; task: T }
  | { outcome: 'not_found' };

export type RedriveResult = { outcome: 'applied' | 'conflict'; task: Task } | { outcome: 'not_found' };

export class ConcurrentUpdateError extends Error {
  readonly code = 'CONCURRENT_UPDATE';
}

function requestHash(task: NewTask): Buffer {
  return createHash('sha256')
    .update(JSON.stringify([task.text, task.priority]))
    .digest();
}

function sinceConfirm(confirmedAt: Date | undefined, now: number): number | null {
  return confirmedAt === undefined ? null : secondsSince(confirmedAt, now);
}

function toState(row: Pick<TaskRow, 'status' | 'attempts' | 'error'>): TaskState {
  return { status: row.status, attempts: row.attempts, error: row.error };
}

function toStatusReport(update: StatusUpdate) {
  return { status: update.taskStatus, attempt: update.attempt, error: update.error };
}

const STATE_COLUMNS = ['id', 'status', 'attempts', 'error'] as const satisfies readonly (keyof TaskRow)[];

function toReportedTask(row: Pick<TaskRow, (typeof STATE_COLUMNS)[number]>): ReportedTask {
  return { taskId: row.id, status: row.status, attempts: row.attempts, error: row.error };
}

function outcomeOf<T extends ReportedTask>(
  decision: Exclude<ReportDecision, { outcome: 'apply' }>,
  task: T,
): ReportResult<T> {
  return decision.outcome === 'conflict'
    ? { outcome: 'conflict', reason: decision.reason, task }
    : { outcome: decision.outcome, task };
}

/** A report statement's column lists, rendered once (db/fragments.ts). */
interface ReturnedColumns {
  plain: Fragment;
  updated: Fragment;
}

function returnedColumns(sql: Sql, columns: readonly (keyof TaskRow)[]): ReturnedColumns {
  return { plain: columnList(sql, columns), updated: columnList(sql, columns, 't') };
}

export function createTaskRepository(sql: Sql, options: TaskRepositoryOptions) {
  const columns = columnList(sql, COLUMNS);
  const wholeTask = returnedColumns(sql, COLUMNS);
  const reportState = returnedColumns(sql, STATE_COLUMNS);
  const reportableFrom = literalList(sql, REPORTABLE_FROM);
  const { deadlineMs } = options;
  const deadline = <T>(statement: string, query: CancellableQuery<T>, signal?: AbortSignal) =>
    withDeadline(statement, deadlineMs, query, signal);
  const coalesceOptions = { ...COALESCE, deadlineMs, isTimeout: isDatabaseTimeout };

  async function get(taskId: string): Promise<Task | undefined> {
    const [row] = await deadline(
      'task lookup',
      sql<TaskRow[]>`select ${columns} from tasks where id = ${taskId}`,
    );
    return row && toTask(row);
  }

  /**
   * Tasks without an Idempotency-Key: one multi-row INSERT, results in input order. When the
   * dispatcher lets it (options.claimOnInsert), the insert also takes their claim (lease, first
   * attempt) and hands them to the dispatcher once committed.
   */
  async function insertMany(
    inputs: readonly NewTask[],
    signal?: AbortSignal,
  ): Promise<{ task: Task; claimed: boolean }[]> {
    const values = inputs.map((input) => ({ id: randomUUID(), text: input.text, priority: input.priority }));
    const claim = options.claimOnInsert?.(values.length);
    let rows: TaskRow[];
    try {
      rows = await deadline(
        'task insert',
        sql<TaskRow[]>`
        insert into tasks (id, text, priority, attempts, claimed_until)
        select id, text, priority, ${claim ? 1 : 0},
               ${claim ? sql`now() + make_interval(secs => ${claim.leaseSeconds})` : null}
          from jsonb_to_recordset(${sql.json(values)}) as v(id uuid, text text, priority task_priority)
        returning ${columns}`,
        signal,
      );
    } catch (err) {
      // Whether it committed is unknown (a deadline): a claimed row left behind expires like any lease.
      claim?.abandoned();
      throw err;
    }
    const byId = new Map(rows.map((row) => [row.id, row]));
    const created = values.map(({ id }) => {
      const row = byId.get(id);
      if (!row) throw new Error(`task ${id} was not returned by its insert`);
      return row;
    });
    claim?.claimed(
      created.map((row) => ({
        id: row.id,
        text: row.text,
        priority: row.priority,
        createdAt: row.created_at,
        attempt: row.attempts,
      })),
    );
    return created.map((row) => ({ task: toTask(row), claimed: claim !== undefined }));
  }

  const insertCoalesced = coalesce(insertMany, coalesceOptions);

  async function create(input: NewTask): Promise<CreateResult> {
    if (input.idempotencyKey === undefined) return { outcome: 'created', ...(await insertCoalesced(input)) };
    const hash = requestHash(input);
    // A concurrent insert under the same key makes this wait for it, then do nothing: the lookup
    // below sees the committed winner. Retention may delete that winner (a finished task past
    // TASK_RETENTION) between the two statements: the key is free again, so insert once more.
    for (let round = 0; round < MAX_CAS_ROUNDS; round += 1) {
      const [inserted] = await deadline(
        'keyed task insert',
        sql<TaskRow[]>`
        insert into tasks (id, text, priority, idempotency_key, request_hash)
        values (${randomUUID()}, ${input.text}, ${input.priority}, ${input.idempotencyKey}, ${hash})
        on conflict (idempotency_key) where idempotency_key is not null do nothing
        returning ${columns}`,
      );
      if (inserted) return { outcome: 'created', task: toTask(inserted), claimed: false };
      const [existing] = await deadline(
        'idempotency key lookup',
        sql<(TaskRow & { request_hash: Buffer })[]>`
        select ${columns}, request_hash from tasks where idempotency_key = ${input.idempotencyKey}`,
      );
      if (!existing) continue;
      return existing.request_hash.equals(hash)
        ? { outcome: 'replayed', task: toTask(existing) }
        : { outcome: 'key_reused' };
    }
    throw new ConcurrentUpdateError('idempotency key kept vanishing between insert and lookup');
  }

  /**
   * One statement for reports of distinct tasks: their rows are locked in taskId order (two batches
   * sharing tasks queue up instead of deadlocking), each report whose guard holds on its locked row
   * is written, and the locked rows, current as of the lock, tell every other report why not. The
   * statement returns `returned` columns of each row (the whole task, or only what decides a report).
   * Rows are locked as `id = any(array(…))`, a lookup per id in any plan: with `id in (select …)`,
   * the generic plan made while the table held a thousand rows (the recordset is always estimated at
   * a hundred) merge-joined the reports with the whole primary key, and kept doing so as it grew.
   * (The update then joins the locked rows one by one: the same array there would be searched once
   * per row.)
   * sent_at: the record's, else the confirm's time this producer's dispatcher holds (as its age:
   * db/clock.ts), else (the task
   * was published through another producer, which has not recorded it yet) the claim's: a waiting
   * row's updated_at is the claim of the attempt the report names, milliseconds before the publish.
   */
  async function reportRound<T extends ReportedTask>(
    updates: readonly StatusUpdate[],
    returned: ReturnedColumns,
    toResult: (row: TaskRow) => T,
    signal?: AbortSignal,
  ): Promise<ReportResult<T>[]> {
    // A report without an attempt cannot say which publish it answers: it gets no confirm time.
    const confirmedAt = options.unrecorded?.confirmedAt(
      updates.flatMap((u) => (u.attempt === undefined ? [] : [{ id: u.taskId, attempt: u.attempt }])),
    );
    const now = Date.now();
    const reports = updates.map((u) => ({
      id: u.taskId,
      status: u.taskStatus,
      attempt: u.attempt ?? null,
      error: u.taskStatus === 'error' ? (u.error ?? null) : null,
      sent_age_s: sinceConfirm(confirmedAt?.get(u.taskId), now),
    }));
    const rows = await deadline(
      'report batch',
      sql<(TaskRow & { applied: boolean })[]>`
      with r as (
        select * from jsonb_to_recordset(${sql.json(reports)})
          as r(id uuid, status text, attempt int, error text, sent_age_s float8)
      ),
      locked as materialized (
        select ${returned.plain} from tasks where id = any(array(select id from r)) order by id for update
      ),
      applied as (
        update tasks t
           set status = r.status, error = r.error, claimed_until = null,
               sent_at = coalesce(t.sent_at, now() - make_interval(secs => r.sent_age_s),
                                  case when t.status = 'waiting' and r.attempt is not null then t.updated_at end),
               finished_at = now(), updated_at = now()
          from r join locked l on l.id = r.id
         where t.id = r.id
           and l.attempts = coalesce(r.attempt, l.attempts)
           and (l.status in ${reportableFrom}
                or (r.status = 'success' and l.status = 'error' and l.error = ${RECOVERABLE_ERROR}))
        returning ${returned.updated}
      )
      select ${returned.plain}, true as applied from applied
      union all
      select ${returned.plain}, false from locked where id not in (select id from applied)`,
      signal,
    );
    if (confirmedAt && confirmedAt.size > 0) {
      options.unrecorded?.reported(
        rows.filter((row) => row.applied).map((row) => ({ id: row.id, attempt: row.attempts })),
      );
    }
    const byId = new Map(rows.map((row) => [row.id, row]));
    return updates.map((update): ReportResult<T> => {
      const row = byId.get(update.taskId);
      if (!row) return { outcome: 'not_found' };
      if (row.applied) return { outcome: 'applied', task: toResult(row) };
      const decision = decideReport(toState(row), toStatusReport(update));
      // The row was locked when the guard missed, so the rule must agree that it does not apply.
      if (decision.outcome === 'apply') {
        throw new ConcurrentUpdateError(`the report guard and the status rule disagree on task ${row.id}`);
      }
      return outcomeOf(decision, toResult(row));
    });
  }

  /**
   * Reports in request order. Reports of distinct tasks go out together (one statement, one commit);
   * a task reported several times in one batch gets one report per round, so each is judged against
   * the outcome of the one before.
   */
  async function reportRounds<T extends ReportedTask>(
    updates: readonly StatusUpdate[],
    round: (updates: readonly StatusUpdate[]) => Promise<ReportResult<T>[]>,
  ): Promise<ReportResult<T>[]> {
    const results: ReportResult<T>[] = new Array(updates.length);
    let open = updates.map((_, i) => i);
    while (open.length > 0) {
      const taskIds = new Set<string>();
      const now: number[] = [];
      const later: number[] = [];
      for (const i of open) {
        const { taskId } = updates[i] as StatusUpdate;
        if (taskIds.has(taskId)) later.push(i);
        else {
          taskIds.add(taskId);
          now.push(i);
        }
      }
      const outcomes = await round(now.map((i) => updates[i] as StatusUpdate));
      for (const [k, i] of now.entries()) results[i] = outcomes[k] as ReportResult<T>;
      open = later;
    }
    return results;
  }

  /** Reports in request order, each answered with its whole task. */
  function reportBatch(updates: readonly StatusUpdate[], signal?: AbortSignal): Promise<ReportResult[]> {
    return reportRounds(updates, (round) => reportRound(round, wholeTask, toTask, signal));
  }

  /**
   * The same, answered with only what decided each report: the reporter never reads the tasks, and
   * returning a thousand of them (texts of up to 10,000 characters) costs the database, the producer
   * and the wire more than the reports themselves.
   */
  function reportBatchMinimal(
    updates: readonly StatusUpdate[],
    signal?: AbortSignal,
  ): Promise<ReportResult<ReportedTask>[]> {
    return reportRounds(updates, (round) => reportRound(round, reportState, toReportedTask, signal));
  }

  /** A single report, batched with the reports that arrive with it (one statement for all). */
  const report = coalesce(reportBatch, coalesceOptions);

  /** error | sent → waiting with the next attempt, so every older message and report is stale. */
  async function redrive(taskId: string): Promise<RedriveResult> {
    for (let round = 0; round < MAX_CAS_ROUNDS; round += 1) {
      const [applied] = await deadline(
        'redrive',
        redriveStatement(
          sql,
          sql`select ${sql(REDRIVE_SELECTION_COLUMNS)} from tasks where id = ${taskId}`,
          COLUMNS,
        ) as unknown as CancellableQuery<TaskRow[]>,
      );
      if (applied) return { outcome: 'applied', task: toTask(applied) };
      const [current] = await deadline(
        'task lookup',
        sql<TaskRow[]>`select ${columns} from tasks where id = ${taskId}`,
      );
      if (!current) return { outcome: 'not_found' };
      if (decideRedrive(current).outcome !== 'apply') return { outcome: 'conflict', task: toTask(current) };
    }
    throw new ConcurrentUpdateError(`task ${taskId} kept changing under a redrive`);
  }

  /** Whether single creates and reports are getting through (readiness). */
  function flow(): { creates: CoalesceStats; reports: CoalesceStats } {
    return { creates: insertCoalesced.stats(), reports: report.stats() };
  }

  return { get, create, report, reportBatch, reportBatchMinimal, redrive, flow };
}

export type TaskRepository = ReturnType<typeof createTaskRepository>;
