// The redrive statement (PROTOCOL §3): error | sent → waiting with attempts + 1, so every older
// message and report of the task becomes stale. The single redrive and the bulk redrive both run it,
// each with its own selection of candidate rows; the rule is here once.
import type postgres from 'postgres';
import type { Sql } from 'postgres';
import { REDRIVABLE_FROM, type TaskStatus } from './status-transitions.js';

/** The columns a redrive selection must return: the redrive record keeps them. */
export const REDRIVE_SELECTION_COLUMNS = [
  'id',
  'status',
  'attempts',
  'error',
  'sent_at',
  'finished_at',
] as const;

/**
 * One statement for a whole batch. The candidates' rows are reached by `id = any(…)` (a lookup per
 * id in any cached plan, as in the report batch) and locked in id order (as the report batch locks
 * them, so the two queue instead of deadlocking); only those still error or sent when locked are
 * changed: a report or another redrive that got in first wins. What each redrive reset goes to
 * task_redrives in the same statement, as the selection saw it (a report landing between selection
 * and lock can only have turned sent into error, which the record then shows as sent).
 * `returning`: the columns of the redriven rows to return.
 */
export function redriveStatement<T extends readonly string[]>(
  sql: Sql,
  selection: postgres.PendingQuery<postgres.Row[]>,
  returning: T,
) {
  const redrivable = sql(REDRIVABLE_FROM as TaskStatus[]);
  return sql<Record<T[number], unknown>[]>`
    with candidates as materialized (${selection}),
    locked as materialized (
      select id from tasks
       where id = any(array(select id from candidates)) and status in ${redrivable}
       order by id for update
    ),
    redriven as (
      update tasks t
         set status = 'waiting', attempts = t.attempts + 1, error = null, claimed_until = null,
             sent_at = null, finished_at = null, updated_at = now()
        from locked l
       where t.id = l.id
      returning ${sql(returning.map((c) => `t.${c}`))}
    ),
    recorded as (
      insert into task_redrives (task_id, from_status, attempt, error, sent_at, finished_at)
      select c.id, c.status, c.attempts, c.error, c.sent_at, c.finished_at
        from candidates c where c.id in (select id from redriven)
    )
    select * from redriven`;
}
