// The batch report statement carries the status rule as an SQL guard. Every stored state meets every
// kind of report here, all in one batch, and each answer must be the one the pure rule
// (status-transitions.ts) gives: a guard that disagreed would write what the rule refuses, or fail
// the batch.
import { randomUUID } from 'node:crypto';
import { expect, test } from 'vitest';
import {
  decideReport,
  RECOVERABLE_ERROR,
  TASK_STATUSES,
  type TaskState,
} from '../../src/tasks/status-transitions.js';
import type { StatusUpdate } from '../../src/tasks/task.js';
import { useTestProducer } from '../support/producer.js';

const producer = useTestProducer('report_guard');

const STATES: TaskState[] = TASK_STATUSES.flatMap((status) =>
  (status === 'error' ? [null, 'boom', RECOVERABLE_ERROR] : [null]).map((error) => ({
    status,
    attempts: 2,
    error,
  })),
);

const REPORTS = (['success', 'error'] as const).flatMap((taskStatus) =>
  [undefined, 1, 2, 3].map((attempt) => ({
    taskStatus,
    attempt,
    error: taskStatus === 'error' ? 'x' : undefined,
  })),
);

test('every state × every report: the statement answers and writes what the rule decides', async () => {
  const cases = STATES.flatMap((state) => REPORTS.map((report) => ({ state, report, taskId: randomUUID() })));
  await producer.sql`
    insert into tasks (id, text, status, attempts, error)
    select id, 'guard', status, attempts, error
      from jsonb_to_recordset(${producer.sql.json(
        cases.map((c) => ({ id: c.taskId, ...c.state })),
      )}) as c(id uuid, status text, attempts int, error text)`;

  const updates: StatusUpdate[] = cases.map(({ taskId, report }) => ({
    taskId,
    taskStatus: report.taskStatus,
    ...(report.attempt === undefined ? {} : { attempt: report.attempt }),
    ...(report.error === undefined ? {} : { error: report.error }),
  }));
  const results = await producer.app.tasks.reportBatch(updates);

  const rows = await producer.sql<{ id: string; status: string; error: string | null }[]>`
    select id, status, error from tasks where text = 'guard'`;
  const stored = new Map(rows.map((r) => [r.id, r]));
  for (const [i, { state, report, taskId }] of cases.entries()) {
    const decision = decideReport(state, {
      status: report.taskStatus,
      attempt: report.attempt,
      error: report.error,
    });
    const expected = decision.outcome === 'apply' ? 'applied' : decision.outcome;
    const label = `${JSON.stringify(state)} ← ${JSON.stringify(report)}`;
    expect(results[i]?.outcome, label).toBe(expected);
    const after =
      decision.outcome === 'apply'
        ? { status: report.taskStatus, error: report.error ?? null }
        : { status: state.status, error: state.error };
    expect(stored.get(taskId), label).toMatchObject(after);
  }
  expect(new Set(results.map((r) => r.outcome))).toEqual(
    new Set(['applied', 'stale', 'duplicate', 'conflict']),
  );
});

test('an unknown task answers not_found next to known ones in the same statement', async () => {
  const [known] = await producer.sql<{ id: string }[]>`
    insert into tasks (id, text, status, attempts) values (${randomUUID()}, 'known', 'sent', 1) returning id`;
  const results = await producer.app.tasks.reportBatch([
    { taskId: randomUUID(), taskStatus: 'success' },
    { taskId: known?.id as string, taskStatus: 'success', attempt: 1 },
  ]);
  expect(results.map((r) => r.outcome)).toEqual(['not_found', 'applied']);
});
