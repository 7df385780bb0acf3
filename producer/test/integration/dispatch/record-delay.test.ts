// The record delay (PROTOCOL §6, step 3): confirmed tasks wait DISPATCH_RECORD_DELAY_MS before their
// record, and a report this producer applies meanwhile writes the confirm's time as sent_at and spares
// the record. Real PostgreSQL and RabbitMQ; the reports go through the repository the batch route uses.

import { eventually } from '@task-pipeline/testkit/eventually';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { BatchResult } from '../../../src/dispatch/dispatcher.js';
import { createTaskRepository } from '../../../src/tasks/repository.js';
import {
  baseDispatchConfig,
  dispatchRepository,
  insertTasks,
  resetState,
  startDispatcher,
  type TestDispatcher,
  takeQueued,
  useServices,
} from '../../support/dispatch.js';

const running: TestDispatcher[] = [];

const services = useServices('dispatch_record_delay');
beforeEach(async () => {
  await resetState(services);
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((d) => d.close()));
});

/** Long enough for the test to report between the confirms and the record, however loaded the machine. */
const DELAY_MS = 5_000;

async function start() {
  const batches: BatchResult[] = [];
  /** The ids each record statement was given. */
  const records: string[][] = [];
  const config = { ...baseDispatchConfig, recordDelayMs: DELAY_MS };
  const statements = dispatchRepository(services.sql, config);
  const d = await startDispatcher(services, {
    config,
    repository: {
      ...statements,
      recordSent: (claimed, confirmedAt) => {
        records.push(claimed.map((t) => t.id));
        return statements.recordSent(claimed, confirmedAt);
      },
    },
    hooks: { afterBatch: (result) => batches.push(result) },
  });
  running.push(d);
  const tasks = createTaskRepository(services.sql, { deadlineMs: 10_000, unrecorded: d.dispatcher });
  return { d, batches, records, tasks };
}

interface Row {
  id: string;
  status: string;
  sent_at: Date | null;
  finished_at: Date | null;
}

const rows = (ids: readonly string[]) =>
  services.sql<
    Row[]
  >`select id, status, sent_at, finished_at from tasks where id = any(${`{${ids.join(',')}}`}::uuid[])`;

describe('the record delay', () => {
  test('a report applied while the record waits writes the confirm time as sent_at, and spares the record', async () => {
    const { d, batches, records, tasks } = await start();
    const [reported, left] = await insertTasks(services.sql, 2);
    if (!reported || !left) throw new Error('two tasks inserted');
    const messages = await takeQueued(services.vhost.url, 2);
    // Confirmed, not recorded: both rows still waiting, and the dispatcher knows when they were confirmed.
    expect((await rows([reported.id, left.id])).map((r) => r.status)).toEqual(['waiting', 'waiting']);
    const attempt = messages.find((m) => m.messageId === reported.id)?.body.attempt as number;
    const confirmedAt = d.dispatcher.confirmedAt([{ id: reported.id, attempt }]).get(reported.id);
    expect(confirmedAt).toBeInstanceOf(Date);
    // Another attempt of the same task is another claim, which this dispatcher does not hold.
    expect(d.dispatcher.confirmedAt([{ id: reported.id, attempt: attempt + 1 }]).size).toBe(0);

    const [result] = await tasks.reportBatch([{ taskId: reported.id, taskStatus: 'success', attempt }]);
    expect(result).toMatchObject({ outcome: 'applied' });

    await eventually('the batch recorded', () => batches.length === 1, { timeoutMs: DELAY_MS + 20_000 });
    expect(batches[0]).toMatchObject({ sent: [left.id], notRecorded: [reported.id] });
    // The reported task was never handed to a record statement.
    expect(records).toEqual([[left.id]]);
    const after = new Map((await rows([reported.id, left.id])).map((r) => [r.id, r]));
    expect(after.get(reported.id)).toMatchObject({ status: 'success' });
    // The confirm's time, up to the report statement's own wait (db/clock.ts), and before the finish.
    const { sent_at: sentAt, finished_at: finished } = after.get(reported.id) ?? {};
    const offset = (sentAt?.getTime() ?? 0) - (confirmedAt?.getTime() ?? 0);
    expect(offset).toBeGreaterThanOrEqual(-1);
    expect(offset).toBeLessThan(1_000);
    expect(finished && sentAt && finished.getTime() >= sentAt.getTime()).toBe(true);
    expect(after.get(left.id)).toMatchObject({ status: 'sent' });
    expect(after.get(left.id)?.sent_at).toBeInstanceOf(Date);
    expect(d.dispatcher.stats().dispatched).toBe(2);
  });

  test('a report another producer applies before the record writes the claim time as sent_at', async () => {
    const { d, batches } = await start();
    // A second producer's repository: its dispatcher never saw this task confirmed.
    const elsewhere = createTaskRepository(services.sql, { deadlineMs: 10_000 });
    const [task] = await insertTasks(services.sql, 1);
    if (!task) throw new Error('one task inserted');
    const [message] = await takeQueued(services.vhost.url, 1);
    const [claimed] = await services.sql<
      { status: string; updated_at: Date }[]
    >`select status, updated_at from tasks where id = ${task.id}`;
    expect(claimed?.status).toBe('waiting');
    const attempt = message?.body.attempt as number;
    const confirmedAt = d.dispatcher.confirmedAt([{ id: task.id, attempt }]).get(task.id);

    await elsewhere.reportBatch([{ taskId: task.id, taskStatus: 'success', attempt }]);
    const [done] = await rows([task.id]);
    expect(done).toMatchObject({ status: 'success', sent_at: claimed?.updated_at });
    expect(done?.sent_at && confirmedAt && done.sent_at.getTime() <= confirmedAt.getTime()).toBe(true);

    // The record then finds the report there first and leaves the row alone.
    await eventually('the batch recorded', () => batches.length === 1, { timeoutMs: DELAY_MS + 20_000 });
    expect((await rows([task.id]))[0]).toMatchObject({ status: 'success', sent_at: claimed?.updated_at });
  });

  test('a report of a task the dispatcher already recorded keeps the recorded sent_at', async () => {
    const { d, batches, tasks } = await start();
    const [task] = await insertTasks(services.sql, 1);
    if (!task) throw new Error('one task inserted');
    const [message] = await takeQueued(services.vhost.url, 1);
    await eventually('the batch recorded', () => batches.length === 1, { timeoutMs: DELAY_MS + 20_000 });
    const [sent] = await rows([task.id]);
    expect(sent).toMatchObject({ status: 'sent' });
    const attempt = message?.body.attempt as number;
    expect(d.dispatcher.confirmedAt([{ id: task.id, attempt }]).size).toBe(0);
    await tasks.reportBatch([{ taskId: task.id, taskStatus: 'success', attempt }]);
    const [done] = await rows([task.id]);
    expect(done).toMatchObject({ status: 'success', sent_at: sent?.sent_at });
  });
});
