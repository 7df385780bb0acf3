// The worker on a real broker, reporting to a real HTTP server that plays the producer's batch
// route: success, the retry path, dead-lettering, and poison messages.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  HEADERS,
  QUEUES,
  retryExchangeName,
  retryQueueName,
  WORK_QUEUES,
  type WorkMessage,
} from '@task-pipeline/rabbitmq';
import { eventually } from '@task-pipeline/testkit/eventually';
import { useTestVhost } from '@task-pipeline/testkit/hooks';
import amqp, { type ChannelModel, type ConfirmChannel } from 'amqplib';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { simulateOutcome } from '../../src/simulate-processing.js';
import { type FakeProducer, startFakeProducer } from '../support/fake-producer.js';
import {
  drainQueue,
  metricValue,
  publishRaw,
  publishWork,
  publishWorkBatch,
  type StartedConsumer,
  startTestConsumer,
  testConfig,
  workMessage,
} from '../support/harness.js';

const vhost = useTestVhost('consumer_worker');
let producer: FakeProducer;
let connection: ChannelModel;
let channel: ConfirmChannel;
let consumer: StartedConsumer | undefined;

beforeAll(async () => {
  producer = await startFakeProducer();
  connection = await amqp.connect(vhost.url);
  channel = await connection.createConfirmChannel();
});
afterEach(async () => {
  await consumer?.close();
  consumer = undefined;
});
afterAll(async () => {
  await connection?.close();
  await producer?.close();
});

async function start(overrides: Parameters<typeof testConfig>[0]) {
  consumer = await startTestConsumer(testConfig({ producerUrl: producer.url, ...overrides }));
  await eventually('the consumer is ready', () => consumer?.readiness().ready === true);
  return consumer;
}

const acceptedFor = (taskId: string) => producer.accepted.filter((r) => r.taskId === taskId);

describe('worker', () => {
  test('processes work: success is reported for the message’s attempt and every queue drains', async () => {
    const c = await start({ amqpUrl: vhost.url });
    const messages = [
      workMessage({ priority: 'high', attempt: 1 }),
      workMessage({ priority: 'medium', attempt: 2 }),
      workMessage({ priority: 'low', attempt: 3 }),
    ];
    for (const m of messages) await publishWork(channel, m);
    await eventually('all three reported', () => messages.every((m) => acceptedFor(m.taskId).length > 0));
    for (const m of messages) {
      expect(acceptedFor(m.taskId)).toEqual([
        { taskId: m.taskId, attempt: m.attempt, taskStatus: 'success' },
      ]);
    }
    expect(await metricValue(c, 'consumer_tasks_processed_total')).toBe(3);
    await eventually(
      'results acked',
      async () => (await channel.checkQueue(QUEUES.results)).messageCount === 0,
    );
    for (const queue of Object.values(WORK_QUEUES))
      expect((await channel.checkQueue(queue)).messageCount).toBe(0);
  });

  test('retry path: a task that fails once then succeeds ends success, its retry counted', async () => {
    const policy = { failureSeed: `retry-${randomUUID()}`, failureRate: 0.5 };
    // The outcome is a hash: pick a task whose first try fails and whose retry succeeds.
    let message = workMessage({ priority: 'high' });
    while (
      simulateOutcome(policy, { taskId: message.taskId, attempt: 1, retryCount: 0 }).ok ||
      !simulateOutcome(policy, { taskId: message.taskId, attempt: 1, retryCount: 1 }).ok
    ) {
      message = workMessage({ priority: 'high' });
    }
    const c = await start({ amqpUrl: vhost.url, ...policy, maxRetries: 3, retryDelaysSeconds: [1] });
    await publishWork(channel, message);
    await eventually('the retried task is reported', () => acceptedFor(message.taskId).length > 0);
    expect(acceptedFor(message.taskId)).toEqual([
      { taskId: message.taskId, attempt: 1, taskStatus: 'success' },
    ]);
    expect(await metricValue(c, 'consumer_tasks_failed_total')).toBe(1);
    expect(
      await metricValue(c, 'consumer_tasks_retried_total', { delay_seconds: '1', queue: 'tasks.high' }),
    ).toBe(1);
    expect(await metricValue(c, 'consumer_tasks_processed_total')).toBe(1);
    expect(await metricValue(c, 'consumer_tasks_dead_lettered_total')).toBe(0);
  });

  test('exhausted retries dead-letter through tasks.dlq, reported error with the worker’s reason', async () => {
    const c = await start({ amqpUrl: vhost.url, failureRate: 1, maxRetries: 1, retryDelaysSeconds: [1] });
    const message = workMessage({ priority: 'low', attempt: 4 });
    await publishWork(channel, message);
    await eventually('the dead-lettered task is reported', () => acceptedFor(message.taskId).length > 0);
    expect(acceptedFor(message.taskId)).toEqual([
      { taskId: message.taskId, attempt: 4, taskStatus: 'error', error: 'simulated processing failure' },
    ]);
    expect(await metricValue(c, 'consumer_tasks_retried_total')).toBe(1);
    expect(await metricValue(c, 'consumer_tasks_dead_lettered_total', { queue: 'tasks.low' })).toBe(1);
    await eventually(
      'dlq acked',
      async () => (await channel.checkQueue(QUEUES.deadLetter)).messageCount === 0,
    );
  });

  test('a message of several tasks: each reported for its own attempt, one retried on its own', async () => {
    const policy = { failureSeed: `batch-${randomUUID()}`, failureRate: 0.5 };
    const outcome = (m: { taskId: string; attempt: number }, retryCount: number) =>
      simulateOutcome(policy, { taskId: m.taskId, attempt: m.attempt, retryCount }).ok;
    // Tasks that succeed at once, and one whose first try fails and whose retry succeeds.
    const tasks: WorkMessage[] = [];
    while (tasks.length < 5) {
      const m = workMessage({ priority: 'medium', attempt: tasks.length + 1 });
      if (outcome(m, 0)) tasks.push(m);
    }
    let retried = workMessage({ priority: 'medium', attempt: 7 });
    while (outcome(retried, 0) || !outcome(retried, 1))
      retried = workMessage({ priority: 'medium', attempt: 7 });
    tasks.push(retried);
    const c = await start({ amqpUrl: vhost.url, ...policy, maxRetries: 3, retryDelaysSeconds: [1] });
    await publishWorkBatch(channel, tasks);
    await eventually('all six reported', () => tasks.every((m) => acceptedFor(m.taskId).length > 0));
    for (const m of tasks) {
      expect(acceptedFor(m.taskId)).toEqual([
        { taskId: m.taskId, attempt: m.attempt, taskStatus: 'success' },
      ]);
    }
    expect(await metricValue(c, 'consumer_tasks_processed_total')).toBe(6);
    expect(await metricValue(c, 'consumer_tasks_retried_total')).toBe(1);
    await eventually(
      'the work message acked',
      async () => (await channel.checkQueue(WORK_QUEUES.medium)).messageCount === 0,
    );
  });

  test('a message of several tasks with no retries: the failures go to tasks.dlq on their own, reported with the worker’s error', async () => {
    const policy = { failureSeed: `batch-dlq-${randomUUID()}`, failureRate: 0.5 };
    const fails = (tasks: WorkMessage[]) =>
      tasks.filter((m) => !simulateOutcome(policy, { ...m, retryCount: 0 }).ok);
    // The outcome is a hash: draw until the message holds failures and successes both.
    let tasks: WorkMessage[] = [];
    while (fails(tasks).length === 0 || fails(tasks).length === tasks.length) {
      tasks = Array.from({ length: 12 }, (_, i) => workMessage({ priority: 'low', attempt: i + 1 }));
    }
    const failed = fails(tasks);
    const c = await start({ amqpUrl: vhost.url, ...policy, maxRetries: 0 });
    await publishWorkBatch(channel, tasks);
    await eventually('all twelve reported', () => tasks.every((m) => acceptedFor(m.taskId).length > 0));
    for (const m of tasks) {
      const dead = failed.includes(m);
      expect(acceptedFor(m.taskId)).toEqual([
        {
          taskId: m.taskId,
          attempt: m.attempt,
          taskStatus: dead ? 'error' : 'success',
          ...(dead && { error: 'simulated processing failure' }),
        },
      ]);
    }
    expect(await metricValue(c, 'consumer_tasks_dead_lettered_total')).toBe(failed.length);
    expect(await metricValue(c, 'consumer_tasks_processed_total')).toBe(tasks.length - failed.length);
    await eventually(
      'work and dead letters acked',
      async () =>
        (await channel.checkQueue(WORK_QUEUES.low)).messageCount === 0 &&
        (await channel.checkQueue(QUEUES.deadLetter)).messageCount === 0,
    );
  });

  test('a retry copy the broker cannot route: the whole message comes back after a hold, and is not dead-lettered', async () => {
    const policy = { failureSeed: `unroutable-${randomUUID()}`, failureRate: 0.5 };
    const outcome = (m: WorkMessage, retryCount: number) =>
      simulateOutcome(policy, { taskId: m.taskId, attempt: m.attempt, retryCount }).ok;
    const siblings: WorkMessage[] = [];
    while (siblings.length < 3) {
      const m = workMessage({ priority: 'high', attempt: 2 });
      if (outcome(m, 0)) siblings.push(m);
    }
    let retried = workMessage({ priority: 'high', attempt: 2 });
    while (outcome(retried, 0) || !outcome(retried, 1))
      retried = workMessage({ priority: 'high', attempt: 2 });
    const c = await start({ amqpUrl: vhost.url, ...policy, maxRetries: 3, retryDelaysSeconds: [1] });
    // The retry copy's mandatory publish comes back unroutable: its outcome cannot be made durable.
    const retryQueue = retryQueueName(1);
    await channel.unbindQueue(retryQueue, retryExchangeName(1), '');
    await publishWorkBatch(channel, [...siblings, retried]);
    const first = siblings[0] as WorkMessage;
    await eventually(
      'the whole message came back and was worked again',
      () => acceptedFor(first.taskId).length >= 2,
    );
    expect(acceptedFor(retried.taskId)).toEqual([]);
    // The route stays broken a while, and other work goes through meanwhile. Returned at once, the
    // message came back every 0.3-0.5 s here and reached the delivery limit (20) within these 10 s:
    // dead-lettered, every task reported `error`. (So did a hold that any success cut short.)
    const others: WorkMessage[] = [];
    while (others.length < 40) {
      const m = workMessage({ priority: 'high' });
      if (!outcome(m, 0)) continue;
      others.push(m);
      await publishWork(channel, m);
      await sleep(250);
    }
    await channel.bindQueue(retryQueue, retryExchangeName(1), '');
    await eventually('the retried task is reported', () => acceptedFor(retried.taskId).length > 0);
    for (const m of [...siblings, retried, ...others]) {
      // Every report, the duplicates of the siblings included, is the success of the attempt sent.
      expect(new Set(acceptedFor(m.taskId).map((r) => JSON.stringify(r)))).toEqual(
        new Set([JSON.stringify({ taskId: m.taskId, attempt: m.attempt, taskStatus: 'success' })]),
      );
    }
    expect(await metricValue(c, 'consumer_tasks_dead_lettered_total')).toBe(0);
    // Held before each return (0.125-0.25 s, then twice as long each time): a few deliveries.
    expect(acceptedFor(first.taskId).length).toBeLessThan(10);
    await eventually(
      'the work message acked',
      async () =>
        (await channel.checkQueue(WORK_QUEUES.high)).messageCount === 0 &&
        (await channel.checkQueue(QUEUES.deadLetter)).messageCount === 0,
    );
  });

  test('poison messages are parked with a reason and consumption goes on', async () => {
    const c = await start({ amqpUrl: vhost.url });
    const readable = workMessage();
    const huge = workMessage({ text: 'x'.repeat(1024 * 1024) });
    await publishRaw(channel, 'high', Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x00]), {
      contentType: 'application/json',
    });
    await publishRaw(channel, 'medium', Buffer.from(JSON.stringify({ text: 'no id', attempt: 1 })), {
      contentType: 'application/json',
    });
    await publishRaw(channel, 'low', Buffer.from(JSON.stringify(readable)), {
      contentType: 'text/plain',
      messageId: readable.taskId,
    });
    await publishWork(channel, huge);
    const good = workMessage({ priority: 'high' });
    await publishWork(channel, good);

    await eventually('the good message is reported', () => acceptedFor(good.taskId).length > 0);
    await eventually(
      'four messages parked',
      async () => (await metricValue(c, 'consumer_messages_parked_total')) === 4,
    );
    const parked = await drainQueue(channel, QUEUES.parking);
    expect(parked).toHaveLength(4);
    const reasons = parked.map((m) => String(m.properties.headers?.[HEADERS.parkReason])).sort();
    expect(reasons).toEqual([
      'body is not valid JSON',
      expect.stringMatching(/^body of \d+ bytes exceeds/),
      'content type text/plain is not application/json',
      expect.stringMatching(/^invalid taskId/),
    ]);
    expect(parked.map((m) => m.properties.headers?.[HEADERS.parkedFrom]).sort()).toEqual([
      'tasks.high',
      'tasks.low',
      'tasks.medium',
      'tasks.medium',
    ]);
    // The two with a readable taskId and attempt are also reported, so their tasks do not stay `sent`.
    await eventually('invalid_message reported', () => acceptedFor(huge.taskId).length > 0);
    for (const m of [readable, huge]) {
      expect(acceptedFor(m.taskId)).toEqual([
        { taskId: m.taskId, attempt: 1, taskStatus: 'error', error: 'invalid_message' },
      ]);
    }
    expect(acceptedFor(good.taskId)).toEqual([{ taskId: good.taskId, attempt: 1, taskStatus: 'success' }]);
    expect(c.readiness().ready).toBe(true);
  });
});
