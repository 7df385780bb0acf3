// SQL of the operator routes: the filtered list, a task's detail, the stats and the bulk redrive.
//
// Every read is bounded at any table size. The list walks an index in (created_at, id) order and
// examines at most SCAN_BUDGET rows per status branch: `error` and `sent` have small partial indexes
// of their own (tasks_error, tasks_sent), anything else walks tasks_created. Filters that no index
// serves (text and error contains, priority, status among others) are applied to the rows examined,
// and a page stops early once it has its rows. A selective filter may thus answer a short page with a
// cursor to go on from: the caller pays for at most a budget per request, never a scan of the table.
// (A trigram index would answer "contains" without the budget, but every insert and every non-HOT
// update would add a row's trigrams to it: BENCHMARKS.md has the figures.)
import type { Sql } from 'postgres';
import type { CancellableQuery } from '../db/deadline.js';
import { withDeadline } from '../db/deadline.js';
import type { Fragment } from '../db/fragments.js';
import {
  MATCH_COUNT_BOUND,
  type RedriveTasks,
  SCAN_BUDGET,
  type TaskDetail,
  type TaskFilter,
  type TaskListQuery,
  type TaskStats,
} from './operator-types.js';
import { REDRIVE_SELECTION_COLUMNS, redriveStatement } from './redrive.js';
import { COLUMNS, type TaskRow, toTask } from './repository.js';
import { REDRIVABLE_FROM, TASK_STATUSES, type TaskStatus } from './status-transitions.js';
import type { Task } from './task.js';

/** Statuses with a partial index small enough to read whole: their own branch, no walk of the table. */
const INDEXED_STATUSES: readonly TaskStatus[] = ['error', 'sent'];
const THROUGHPUT_MINUTES = 60;

export class InvalidCursorError extends Error {
  readonly code = 'INVALID_CURSOR';
}

interface Key {
  /** created_at in microseconds since the epoch: exact, unlike a JavaScript Date. */
  micros: string;
  id: string;
}

const CURSOR = /^(\d{1,17})\.([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;

export function encodeCursor(key: Key): string {
  return Buffer.from(`${key.micros}.${key.id}`, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): Key {
  const match = CURSOR.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!match) throw new InvalidCursorError('cursor is not one this API gave out');
  return { micros: match[1] as string, id: match[2] as string };
}

/** `value` as a LIKE pattern that matches it anywhere, its own wildcards taken literally. */
export function containsPattern(value: string): string {
  return `%${value.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

interface ListRow extends TaskRow {
  micros: string;
  n: string;
  hit: boolean;
}

export interface OperatorRepositoryOptions {
  deadlineMs: number;
  staleSentAfterS: number;
}

export function createOperatorRepository(sql: Sql, options: OperatorRepositoryOptions) {
  const { deadlineMs, staleSentAfterS } = options;
  const deadline = <T>(statement: string, query: CancellableQuery<T>) =>
    withDeadline(statement, deadlineMs, query);
  const and = (conditions: Fragment[]): Fragment =>
    conditions.length === 0 ? sql`true` : conditions.reduce((a, c) => sql`${a} and ${c}`);

  /** The statuses a filter can select, in a fixed order; `sentBefore` selects sent tasks only. */
  function statusesOf(filter: TaskFilter, allowed: readonly TaskStatus[]): TaskStatus[] {
    const wanted = new Set<TaskStatus>(filter.status ?? TASK_STATUSES);
    return allowed.filter((s) => wanted.has(s) && (filter.sentBefore === undefined || s === 'sent'));
  }

  /**
   * The rows a request examines, in key order, each numbered (n) within its branch and flagged (hit)
   * when it passes every filter; `after` is the previous page's last key.
   */
  function scan(filter: TaskFilter, statuses: TaskStatus[], order: 'newest' | 'oldest', after?: Key) {
    const desc = order === 'newest';
    const dir = desc ? sql`desc` : sql`asc`;
    const range: Fragment[] = [];
    if (after) {
      const key = sql`('epoch'::timestamptz + ${after.micros}::int8 * interval '1 microsecond', ${after.id}::uuid)`;
      range.push(desc ? sql`(created_at, id) < ${key}` : sql`(created_at, id) > ${key}`);
    }
    if (filter.createdAfter) range.push(sql`created_at >= ${filter.createdAfter}::timestamptz`);
    if (filter.createdBefore) range.push(sql`created_at < ${filter.createdBefore}::timestamptz`);
    const own = statuses.every((s) => INDEXED_STATUSES.includes(s));
    const branch = (status: TaskStatus | undefined) => {
      const where = [...range];
      if (status) where.push(sql`status = ${status}`);
      if (status === 'sent' && filter.sentBefore)
        where.push(sql`sent_at < ${filter.sentBefore}::timestamptz`);
      return sql`(
        select ${sql(COLUMNS)},
               (extract(epoch from created_at) * 1000000)::int8::text as micros,
               row_number() over (order by created_at ${dir}, id ${dir}) as n
          from tasks where ${and(where)}
         order by created_at ${dir}, id ${dir}
         limit ${SCAN_BUDGET})`;
    };
    const branches = own ? statuses.map(branch) : [branch(undefined)];
    const union = branches.reduce((a, b) => sql`${a} union all ${b}`);
    const hit: Fragment[] = [];
    if (!own && statuses.length < TASK_STATUSES.length) hit.push(sql`status in ${sql(statuses)}`);
    if (filter.priority) hit.push(sql`priority in ${sql(filter.priority)}`);
    if (filter.text) hit.push(sql`text ilike ${containsPattern(filter.text)}`);
    if (filter.error) hit.push(sql`error ilike ${containsPattern(filter.error)}`);
    return { rows: sql`select *, ${and(hit)} as hit from (${union}) u`, dir };
  }

  /**
   * One page: rows in key order up to `limit` hits. The page ends early at the first row that used up
   * its branch's budget: rows past it may be missing from that branch, so the next page starts there.
   */
  async function list(query: TaskListQuery): Promise<{ items: Task[]; nextCursor: string | null }> {
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
    const statuses = statusesOf(query, TASK_STATUSES);
    if (statuses.length === 0) return { items: [], nextCursor: null };
    const { rows, dir } = scan(query, statuses, query.order, after);
    const found = await deadline(
      'task list',
      sql<ListRow[]>`
        select * from (${rows}) r where hit or n = ${SCAN_BUDGET}
         order by created_at ${dir}, id ${dir}
         limit ${query.limit + 1}`,
    );
    const items: ListRow[] = [];
    for (const row of found) {
      if (row.hit) {
        if (items.length === query.limit) return page(items, items[items.length - 1]);
        items.push(row);
      }
      if (Number(row.n) === SCAN_BUDGET) return page(items, row);
    }
    return page(items, undefined);
  }

  function page(items: ListRow[], last: ListRow | undefined) {
    return {
      items: items.map(toTask),
      nextCursor: last ? encodeCursor({ micros: last.micros, id: last.id }) : null,
    };
  }

  async function detail(taskId: string): Promise<TaskDetail | undefined> {
    const [row] = await deadline(
      'task lookup',
      sql<TaskRow[]>`select ${sql(COLUMNS)} from tasks where id = ${taskId}`,
    );
    if (!row) return undefined;
    const redrives = await deadline(
      'task redrives',
      sql<
        {
          redriven_at: Date;
          from_status: TaskStatus;
          attempt: number;
          error: string | null;
          sent_at: Date | null;
          finished_at: Date | null;
        }[]
      >`
        select redriven_at, from_status, attempt, error, sent_at, finished_at
          from task_redrives where task_id = ${taskId} order by redriven_at`,
    );
    const task = toTask(row);
    return {
      ...task,
      history: {
        createdAt: task.createdAt,
        sentAt: task.sentAt,
        finishedAt: task.finishedAt,
        updatedAt: task.updatedAt,
        redrives: redrives.map((r) => ({
          at: r.redriven_at.toISOString(),
          fromStatus: r.from_status,
          attempt: r.attempt,
          error: r.error,
          sentAt: r.sent_at?.toISOString() ?? null,
          finishedAt: r.finished_at?.toISOString() ?? null,
        })),
      },
    };
  }

  /**
   * Counts from task_counts (kept by the write path), ages from the first entry of small partial
   * indexes, the stale-sent count from the range of tasks_sent older than the threshold (sent tasks are
   * capped by DISPATCH_MAX_IN_FLIGHT), throughput from task_throughput's last hour.
   */
  async function stats(): Promise<TaskStats> {
    const [figures] = await deadline(
      'task stats',
      sql<
        {
          counts: { status: TaskStatus; priority: Task['priority']; count: number }[] | null;
          oldest_waiting_age_s: number | null;
          oldest_sent_age_s: number | null;
          stale_sent: number;
          throughput: { minute: string; created: number; finished: number }[] | null;
          at: Date;
        }[]
      >`
        select
          (select json_agg(c order by c.status, c.priority) from (
             select status, priority, sum(count)::int8 as count from task_counts
              group by status, priority having sum(count) <> 0) c) as counts,
          extract(epoch from now() - least(
            (select min(created_at) from tasks where status = 'waiting' and priority = 'high'),
            (select min(created_at) from tasks where status = 'waiting' and priority = 'medium'),
            (select min(created_at) from tasks where status = 'waiting' and priority = 'low')
          ))::float8 as oldest_waiting_age_s,
          extract(epoch from now() - (select min(sent_at) from tasks where status = 'sent'))::float8
            as oldest_sent_age_s,
          (select count(*) from tasks
            where status = 'sent' and sent_at < now() - make_interval(secs => ${staleSentAfterS}))::int8
            as stale_sent,
          (select json_agg(m order by m.minute) from (
             select to_char(minute at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:00.000"Z"') as minute,
                    sum(created)::int8 as created, sum(finished)::int8 as finished
               from task_throughput
              where minute > date_trunc('minute', now()) - make_interval(mins => ${THROUGHPUT_MINUTES})
              group by minute) m) as throughput,
          now() as at`,
    );
    if (!figures) throw new Error('the stats statement returned no row');
    const byMinute = new Map((figures.throughput ?? []).map((m) => [m.minute, m]));
    const lastMinute = Math.floor(figures.at.getTime() / 60_000) * 60_000;
    const throughput = Array.from({ length: THROUGHPUT_MINUTES }, (_, i) => {
      const minute = new Date(lastMinute - (THROUGHPUT_MINUTES - 1 - i) * 60_000).toISOString();
      const m = byMinute.get(minute);
      return { minute, created: Number(m?.created ?? 0), finished: Number(m?.finished ?? 0) };
    });
    return {
      counts: (figures.counts ?? []).map((c) => ({ ...c, count: Number(c.count) })),
      oldestWaitingAgeS:
        figures.oldest_waiting_age_s === null ? null : Math.max(0, figures.oldest_waiting_age_s),
      oldestSentAgeS: figures.oldest_sent_age_s === null ? null : Math.max(0, figures.oldest_sent_age_s),
      staleSent: { olderThanS: staleSentAfterS, count: Number(figures.stale_sent) },
      throughput,
      at: figures.at.toISOString(),
    };
  }

  /**
   * The bulk redrive: the list's selection restricted to redrivable statuses, newest first, `limit`
   * of them redriven by the single redrive's statement. `matched` counts matches up to
   * MATCH_COUNT_BOUND within the same budget.
   */
  async function redriveMany(
    request: RedriveTasks,
  ): Promise<{ dryRun: boolean; matched: number; redriven: number; taskIds: string[] }> {
    const statuses = statusesOf(request, REDRIVABLE_FROM);
    if (statuses.length === 0) return { dryRun: request.dryRun, matched: 0, redriven: 0, taskIds: [] };
    const { rows } = scan(request, statuses, 'newest');
    const hits = sql`select * from (${rows}) r where hit`;
    const [counted] = await deadline(
      'redrive count',
      sql<{ matched: number }[]>`
        select count(*)::int as matched from (select 1 from (${hits}) h limit ${MATCH_COUNT_BOUND}) m`,
    );
    const matched = counted?.matched ?? 0;
    const selection = sql`
      select ${sql(REDRIVE_SELECTION_COLUMNS)} from (${hits}) h
       order by created_at desc, id desc limit ${request.limit}`;
    if (request.dryRun) {
      const picked = await deadline('redrive selection', sql<{ id: string }[]>`${selection}`);
      return { dryRun: true, matched, redriven: 0, taskIds: picked.map((r) => r.id) };
    }
    const redriven = await deadline(
      'bulk redrive',
      redriveStatement(sql, selection, ['id'] as const) as unknown as CancellableQuery<{ id: string }[]>,
    );
    return { dryRun: false, matched, redriven: redriven.length, taskIds: redriven.map((r) => r.id) };
  }

  return { list, detail, stats, redriveMany };
}

export type OperatorRepository = ReturnType<typeof createOperatorRepository>;
