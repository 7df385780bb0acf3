// The crash points of PROTOCOL §6, made deterministic with hooks: a report between confirm and record,
// a confirm that comes back after another dispatcher re-claimed the task, a dispatcher SIGKILLed with
// leases held, and reports for the very tasks being dispatched (no deadlock).
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ALL_WORK_QUEUES } from '@task-pipeline/rabbitmq';
import { eventually } from '@task-pipeline/testkit/eventually';
import amqp, { type ConsumeMessage } from 'amqplib';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { BatchResult } from '../../../src/dispatch/dispatcher.js';
import { createTaskRepository } from '../../../src/tasks/repository.js';
import {
  dispatchRepository,
  drainQueues,
  gate,
  insertTasks,
  report,
  resetState,
  startDispatcher,
  statusCounts,
  type TestDispatcher,
  useServices,
} from '../../support/dispatch.js';

const running: TestDispatcher[] = [];
const children: ChildProcess[] = [];

const services = useServices('dispatch_crash');
beforeEach(async () => {
  await resetState(services);
});
afterEach(async () => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  await Promise.all(running.splice(0).map((d) => d.close()));
});

async function start(options: Parameters<typeof startDispatcher>[1] = {}) {
  const d = await startDispatcher(services, { start: false, ...options });
  running.push(d);
  return d;
}

async function taskRow(id: string) {
  const [row] = await services.sql<{ status: string; attempts: number; claimed_until: Date | null }[]>`
    SELECT status, attempts, claimed_until FROM tasks WHERE id = ${id}`;
  return row;
}

/** Moves a lease into the past: what DISPATCH_LEASE_S of waiting would do, without the wait. */
async function expireLeases(ids: readonly string[]) {
  await services.sql`UPDATE tasks SET claimed_until = now() - interval '1 ms' WHERE id = ANY(${ids}::uuid[])`;
}

describe('crash points', () => {
  test('a report landing between confirm and record wins and is not flipped back to sent', async () => {
    const tasks = await insertTasks(services.sql, 20);
    const reported = tasks.slice(0, 10).map((t) => t.id);
    const d = await start({
      hooks: {
        async beforeRecord(confirmed) {
          // The consumer was fast: its results arrive before the dispatcher records the batch.
          for (const task of confirmed.filter((t) => reported.includes(t.id))) {
            expect(await report(services.sql, task.id, task.attempt, 'success')).toBe(true);
          }
        },
      },
    });
    const result = (await d.dispatcher.dispatchOnce()) as BatchResult;
    expect(result.claimed).toBe(20);
    expect(new Set(result.notRecorded)).toEqual(new Set(reported));
    expect(result.sent).toHaveLength(10);
    const rows = await services.sql<{ id: string; status: string }[]>`SELECT id, status FROM tasks`;
    for (const row of rows) expect(row.status).toBe(reported.includes(row.id) ? 'success' : 'sent');
    expect(await drainQueues(services.vhost.url)).toHaveLength(20);
  });

  test('a confirm arriving after another dispatcher re-claimed the task leaves the newer attempt in charge', async () => {
    const [task] = await insertTasks(services.sql, 1);
    const id = task?.id as string;
    const newer = await start();
    let newerResult: BatchResult | undefined;
    const older = await start({
      hooks: {
        async beforeRecord(confirmed) {
          expect(confirmed.map((t) => t.attempt)).toEqual([1]);
          // The older dispatcher stalled past its lease; the newer one claims, publishes and records.
          await expireLeases([id]);
          newerResult = await newer.dispatcher.dispatchOnce();
        },
      },
    });
    const olderResult = (await older.dispatcher.dispatchOnce()) as BatchResult;
    expect(newerResult?.sent).toEqual([id]);
    expect(olderResult.notRecorded).toEqual([id]);
    expect(await taskRow(id)).toMatchObject({ status: 'sent', attempts: 2 });
    const messages = await drainQueues(services.vhost.url);
    expect(messages.map((m) => m.body.attempt).sort()).toEqual([1, 2]);
    // The older attempt's report is stale now.
    expect(await report(services.sql, id, 1, 'success')).toBe(false);
    expect(await report(services.sql, id, 2, 'success')).toBe(true);
  });

  test('a stale dispatcher cannot record or release over a newer claim that is still publishing', async () => {
    const [task] = await insertTasks(services.sql, 1);
    const id = task?.id as string;
    const held = gate();
    const newer = await start({ hooks: { afterClaim: () => held.promise } });
    let newerRun: Promise<BatchResult | undefined> | undefined;
    let newerLease: Date | null | undefined;
    const older = await start({
      hooks: {
        async afterClaim() {
          await expireLeases([id]);
          newerRun = newer.dispatcher.dispatchOnce();
          await eventually('the newer claim', async () => (await taskRow(id))?.attempts === 2, {
            timeoutMs: 10_000,
          });
          newerLease = (await taskRow(id))?.claimed_until;
        },
      },
    });
    const olderResult = (await older.dispatcher.dispatchOnce()) as BatchResult;
    expect(olderResult.notRecorded).toEqual([id]);
    // The older attempt's failure path is fenced too: its release leaves the newer lease alone.
    const repository = dispatchRepository(services.sql);
    const stale = { id, text: '', priority: 'medium' as const, createdAt: new Date(), attempt: 1 };
    expect(await repository.release([stale], 60_000)).toEqual({ done: [], locked: [] });
    expect(await taskRow(id)).toMatchObject({ status: 'waiting', attempts: 2, claimed_until: newerLease });
    held.open();
    expect((await newerRun)?.sent).toEqual([id]);
    expect(await taskRow(id)).toMatchObject({ status: 'sent', attempts: 2 });
  });

  for (const point of ['after-claim', 'before-record'] as const) {
    test(`a dispatcher SIGKILLed ${point}: its leases expire and the tasks go out with the next attempt`, async () => {
      const tasks = await insertTasks(services.sql, 50);
      const child = fork(fileURLToPath(new URL('./fixtures/doomed-dispatcher.ts', import.meta.url)), {
        execArgv: ['--import', 'tsx', '--conditions=source'],
        env: {
          ...process.env,
          DATABASE_URL: services.db.url,
          AMQP_URL: services.vhost.url,
          DOOMED_AT: point,
        },
        stdio: 'ignore',
      });
      children.push(child);
      const held = await new Promise<{ tasks: { id: string; attempt: number }[] }>((resolve, reject) => {
        child.once('message', (m) => resolve(m as { tasks: { id: string; attempt: number }[] }));
        child.once('exit', (code) => reject(new Error(`dispatcher process exited early (${code})`)));
      });
      expect(held.tasks).toHaveLength(50);
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
      expect((await statusCounts(services.sql)).waiting).toBe(50);

      const survivor = await start();
      survivor.dispatcher.start();
      await eventually(
        'tasks sent after expiry',
        async () => (await statusCounts(services.sql)).sent === 50,
        { timeoutMs: 60_000 },
      );
      const rows = await services.sql<
        { n: number }[]
      >`SELECT count(*)::int AS n FROM tasks WHERE attempts = 2`;
      expect(rows[0]?.n).toBe(50);
      const messages = await drainQueues(services.vhost.url);
      const attempts = messages.map((m) => m.body.attempt);
      // Killed before publishing: one message each, attempt 2. Killed after the confirm: the first
      // message is already queued (at-least-once) and the second one carries attempt 2.
      expect(attempts.filter((a) => a === 2)).toHaveLength(50);
      expect(attempts.filter((a) => a === 1)).toHaveLength(point === 'after-claim' ? 0 : 50);
      expect(new Set(messages.map((m) => m.messageId))).toEqual(new Set(tasks.map((t) => t.id)));
      // A report of the dead dispatcher's attempt is stale.
      expect(await report(services.sql, tasks[0]?.id as string, 1, 'success')).toBe(false);
    });
  }

  test('no deadlock while reports for the same tasks arrive during dispatch', async () => {
    const { sql, vhost, db } = services;
    const deadlocks = async () => {
      const [row] = await sql<{ n: number }[]>`
        SELECT deadlocks::int AS n FROM pg_stat_database WHERE datname = ${db.name}`;
      return row?.n ?? 0;
    };
    const before = await deadlocks();
    await insertTasks(sql, 3_000);
    const tasks = createTaskRepository(sql, { deadlineMs: 60_000 });
    // A reporter answering every message as soon as it is queued, through the API's batch update
    // (rows locked in id order), many batches at once as several reporter replicas would: its
    // transactions overlap the dispatcher's records of the same rows. (A record that locked rows in
    // another order without SKIP LOCKED deadlocks here within seconds; checked by mutating it.)
    const connection = await amqp.connect(vhost.url);
    const channel = await connection.createChannel();
    await channel.prefetch(1_000);
    let pending: ConsumeMessage[] = [];
    const reporterErrors: unknown[] = [];
    const inFlight = new Set<Promise<void>>();
    const flush = () => {
      const batch = pending;
      pending = [];
      if (batch.length === 0) return;
      const done = tasks
        .reportBatch(
          batch.map((msg) => {
            const body = JSON.parse(msg.content.toString('utf8')) as { taskId: string; attempt: number };
            return { taskId: body.taskId, taskStatus: 'success' as const, attempt: body.attempt };
          }),
        )
        .then(
          () => {
            for (const msg of batch) channel.ack(msg);
          },
          (err: unknown) => void reporterErrors.push(err),
        );
      inFlight.add(done);
      void done.finally(() => inFlight.delete(done));
    };
    const timer = setInterval(flush, 2);
    for (const queue of ALL_WORK_QUEUES) {
      await channel.consume(queue, (msg) => {
        if (!msg) return;
        pending.push(msg);
        if (pending.length >= 100) flush();
      });
    }
    try {
      const d = await start({
        config: { batchSize: 250 },
      });
      d.dispatcher.start();
      await eventually(
        'every task reported',
        async () => reporterErrors.length > 0 || (await statusCounts(sql)).success === 3_000,
        { timeoutMs: 120_000 },
      );
      await Promise.all(inFlight);
    } finally {
      clearInterval(timer);
      await connection.close();
    }
    expect(reporterErrors).toEqual([]);
    expect(await statusCounts(sql)).toEqual({ success: 3_000 });
    expect(await deadlocks()).toBe(before);
  });
});
