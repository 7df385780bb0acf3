// The dispatch loop on the real PostgreSQL and RabbitMQ: every task out exactly once, nothing lost
// when a route or a channel fails, no duplicates between dispatchers, random and priority order.
import { EXCHANGES, HEADERS, JSON_CONTENT_TYPE, PRIORITIES, WORK_QUEUES } from '@task-pipeline/rabbitmq';
import { eventually } from '@task-pipeline/testkit/eventually';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { BatchResult } from '../../../src/dispatch/dispatcher.js';
import {
  drainQueues,
  gate,
  insertTasks,
  resetState,
  startDispatcher,
  statusCounts,
  type TestDispatcher,
  useServices,
  withChannel,
} from '../../support/dispatch.js';

const running: TestDispatcher[] = [];

const services = useServices('dispatcher');
beforeEach(async () => {
  await resetState(services);
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((d) => d.close()));
});

async function start(...args: Parameters<typeof startDispatcher> extends [unknown, ...infer R] ? R : never) {
  const d = await startDispatcher(services, ...args);
  running.push(d);
  return d;
}

function countBy<T>(items: readonly T[], key: (t: T) => string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const item of items) counts.set(key(item), (counts.get(key(item)) ?? 0) + 1);
  return counts;
}

const allSent = (n: number) => async () => (await statusCounts(services.sql)).sent === n;

describe('dispatcher', () => {
  test('5,000 waiting tasks: each published exactly once, as the contract message, and sent', async () => {
    const tasks = await insertTasks(services.sql, 5_000, (i) => PRIORITIES[i % 3] ?? 'low');
    await start();
    await eventually('all 5,000 tasks sent', allSent(5_000), { timeoutMs: 120_000 });

    const messages = await drainQueues(services.vhost.url);
    expect(messages).toHaveLength(5_000);
    const perId = countBy(messages, (m) => m.messageId);
    expect(perId.size).toBe(5_000);
    expect([...perId.values()].every((n) => n === 1)).toBe(true);
    const byId = new Map(tasks.map((t) => [t.id, t]));
    for (const m of messages) {
      const task = byId.get(m.messageId);
      expect(task).toBeDefined();
      expect(m.body).toMatchObject({ taskId: m.messageId, priority: task?.priority, attempt: 1 });
      expect(m.contentType).toBe(JSON_CONTENT_TYPE);
      expect(m.persistent).toBe(true);
      // A first dispatch: no retries yet, so no x-retry-count (it reads as 0).
      expect(m.headers[HEADERS.retryCount]).toBeUndefined();
    }
    const rows = await services.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM tasks
      WHERE status = 'sent' AND attempts = 1 AND sent_at IS NOT NULL AND claimed_until IS NULL`;
    expect(rows[0]?.n).toBe(5_000);
  });

  test('DISPATCH_TASKS_PER_MESSAGE: tasks of a priority share messages, each task out exactly once', async () => {
    const tasks = await insertTasks(services.sql, 2_000, (i) => PRIORITIES[i % 3] ?? 'low');
    await start({ config: { tasksPerMessage: 20 } });
    await eventually('all 2,000 tasks sent', allSent(2_000), { timeoutMs: 120_000 });
    const messages = await drainQueues(services.vhost.url);
    const carried = messages.flatMap((m) => m.tasks);
    expect(carried).toHaveLength(2_000);
    expect(new Set(carried.map((t) => t.taskId))).toEqual(new Set(tasks.map((t) => t.id)));
    // 500 a claim, three priorities: at most one part-filled message per priority and claim.
    expect(messages.length).toBeLessThanOrEqual(2_000 / 20 + 3 * 4);
    expect(messages.every((m) => m.tasks.length <= 20)).toBe(true);
    for (const m of messages) {
      expect(new Set(m.tasks.map((t) => t.priority)).size).toBe(1);
      expect(m.tasks.every((t) => t.attempt === 1)).toBe(true);
    }
  });

  test('two dispatchers on one backlog: no task published twice', async () => {
    await insertTasks(services.sql, 3_000);
    const a = await start({ config: { batchSize: 100 } });
    const b = await start({ config: { batchSize: 100 } });
    await eventually('all tasks sent', allSent(3_000), { timeoutMs: 120_000 });
    const messages = await drainQueues(services.vhost.url);
    expect(messages).toHaveLength(3_000);
    expect(new Set(messages.map((m) => m.messageId)).size).toBe(3_000);
    // Both took part, or the test would not show anything about two dispatchers.
    expect(a.dispatcher.stats().dispatched).toBeGreaterThan(0);
    expect(b.dispatcher.stats().dispatched).toBeGreaterThan(0);
    expect(a.dispatcher.stats().dispatched + b.dispatcher.stats().dispatched).toBe(3_000);
  });

  test('an unroutable priority: its tasks stay waiting, the others go out, nothing is lost', async () => {
    const { vhost } = services;
    const d = await start({ config: { batchSize: 50 } });
    await withChannel(vhost.url, (ch) => ch.unbindQueue(WORK_QUEUES.high, EXCHANGES.tasks, 'high'));
    const tasks = await insertTasks(services.sql, 200, (i) => (i % 2 === 0 ? 'high' : 'medium'));
    d.dispatcher.wake();
    await eventually('medium tasks sent', allSent(100), { timeoutMs: 60_000 });
    await eventually(
      'every high task failed as unroutable at least once',
      () =>
        d.metrics.publishFailures
          .get()
          .then((m) => m.values.some((v) => v.labels.reason === 'UNROUTABLE' && v.value >= 100)),
      { timeoutMs: 60_000 },
    );
    const rows = await services.sql<{ status: string; priority: string; n: number }[]>`
      SELECT status, priority::text, count(*)::int AS n FROM tasks GROUP BY 1, 2 ORDER BY 1, 2`;
    expect(rows).toEqual([
      { status: 'sent', priority: 'medium', n: 100 },
      { status: 'waiting', priority: 'high', n: 100 },
    ]);
    const messages = await drainQueues(vhost.url);
    expect(messages.every((m) => m.body.priority === 'medium')).toBe(true);
    expect(new Set(messages.map((m) => m.messageId)).size).toBe(100);

    // The binding is back (the topology is re-asserted on reconnect; here by hand): the rest go out.
    await withChannel(vhost.url, (ch) => ch.bindQueue(WORK_QUEUES.high, EXCHANGES.tasks, 'high'));
    await eventually('high tasks sent after the binding returned', allSent(200), { timeoutMs: 90_000 });
    const late = await drainQueues(vhost.url);
    expect(new Set(late.map((m) => m.messageId))).toEqual(
      new Set(tasks.filter((t) => t.priority === 'high').map((t) => t.id)),
    );
    expect(late.every((m) => m.body.attempt > 1)).toBe(true);
  });

  test('whole batches failing to publish: the hold shows as paused publish_failures, in stats and the metric', async () => {
    const { vhost } = services;
    // After the start: connecting asserts the topology, binding included.
    const d = await start({ config: { batchSize: 20 } });
    await withChannel(vhost.url, (ch) => ch.unbindQueue(WORK_QUEUES.high, EXCHANGES.tasks, 'high'));
    await insertTasks(services.sql, 40, 'high');
    d.dispatcher.wake();
    const pausedFor = async (reason: string) =>
      (await d.metrics.dispatcherPaused.get()).values.find((v) => v.labels.reason === reason)?.value;
    await eventually(
      'the hold after failed batches, as a pause reason',
      async () =>
        d.dispatcher.stats().paused === 'publish_failures' && (await pausedFor('publish_failures')) === 1,
      { timeoutMs: 60_000 },
    );

    await withChannel(vhost.url, (ch) => ch.bindQueue(WORK_QUEUES.high, EXCHANGES.tasks, 'high'));
    await eventually('every task sent once the route is back', allSent(40), { timeoutMs: 90_000 });
    await eventually('the pause to end', () => d.dispatcher.stats().paused === undefined, {
      timeoutMs: 30_000,
    });
    expect(await pausedFor('publish_failures')).toBe(0);
  });

  test('stop: no new claims, published tasks confirmed and recorded, unpublished leases released at once', async () => {
    await insertTasks(services.sql, 300);
    const held = gate();
    let reached = false;
    const d = await start({
      config: { batchSize: 100 },
      pipelineDepth: 1,
      hooks: {
        async beforePublish(_task, index) {
          if (reached || index !== 10) return;
          reached = true;
          await held.promise;
        },
      },
    });
    await eventually('the first batch half published', () => reached, { timeoutMs: 30_000 });
    const stopped = d.dispatcher.stop(10_000);
    held.open();
    await stopped;
    expect(d.dispatcher.stats()).toMatchObject({ running: false, batchesInFlight: 0, dispatched: 10 });
    const rows = await services.sql<{ status: string; attempts: number; free: boolean; n: number }[]>`
      SELECT status, attempts, claimed_until IS NULL OR claimed_until <= now() AS free, count(*)::int AS n
      FROM tasks GROUP BY 1, 2, 3 ORDER BY 1, 2`;
    expect(rows).toEqual([
      { status: 'sent', attempts: 1, free: true, n: 10 },
      // Claimed but never published: free for any replica right away, not after the lease.
      { status: 'waiting', attempts: 0, free: true, n: 200 },
      { status: 'waiting', attempts: 1, free: true, n: 90 },
    ]);
    expect(await drainQueues(services.vhost.url)).toHaveLength(10);
  });

  test('a channel closed mid-batch: unconfirmed tasks stay waiting and go out later', async () => {
    await insertTasks(services.sql, 400);
    const results: BatchResult[] = [];
    let closed = false;
    const d = await start({
      config: { batchSize: 400 },
      hooks: {
        async beforePublish(_task, index) {
          if (index !== 200 || closed) return;
          closed = true;
          // A passive declare of a missing exchange makes the broker close the channel (404): the
          // first 200 publishes are in flight on it, the rest of the batch not yet published.
          await d.channel
            .current()
            ?.checkExchange('no-such-exchange')
            .catch(() => undefined);
        },
        afterBatch: (r) => results.push(r),
      },
    });
    await eventually('all tasks sent after the channel came back', allSent(400), { timeoutMs: 90_000 });
    const first = results[0];
    expect(first?.claimed).toBe(400);
    expect((first?.failed.length ?? 0) + (first?.unpublished.length ?? 0)).toBeGreaterThan(0);
    const messages = await drainQueues(services.vhost.url);
    const ids = new Set(messages.map((m) => m.messageId));
    expect(ids.size).toBe(400);
    const retried = await services.sql<
      { n: number }[]
    >`SELECT count(*)::int AS n FROM tasks WHERE attempts > 1`;
    expect(retried[0]?.n).toBeGreaterThan(0);
  });
});
