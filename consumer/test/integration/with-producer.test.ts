// The consumer against the real producer (producer/src/app.ts on PostgreSQL, dispatcher on): tasks
// created over HTTP end as the hash says, the retry path ends success, and a report for a task the
// producer does not know (404) is parked while consumption goes on.
import { randomUUID } from 'node:crypto';
import { HEADERS, QUEUES } from '@task-pipeline/rabbitmq';
import { eventually } from '@task-pipeline/testkit/eventually';
import amqp, { type ChannelModel, type ConfirmChannel } from 'amqplib';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { simulateOutcome } from '../../src/simulate-processing.js';
import {
  drainQueue,
  metricValue,
  publishWork,
  type StartedConsumer,
  startTestConsumer,
  testConfig,
  workMessage,
} from '../support/harness.js';
import { type RealProducer, startRealProducer } from '../support/real-producer.js';

let producer: RealProducer;
let connection: ChannelModel;
let channel: ConfirmChannel;
let consumer: StartedConsumer | undefined;

beforeAll(async () => {
  producer = await startRealProducer('consumer_with_producer');
  connection = await amqp.connect(producer.vhost.url);
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

async function start(overrides: Partial<Parameters<typeof testConfig>[0]>) {
  consumer = await startTestConsumer(
    testConfig({ amqpUrl: producer.vhost.url, producerUrl: producer.url, ...overrides }),
  );
  await eventually('the consumer is ready', () => consumer?.readiness().ready === true);
  return consumer;
}

async function taskOf(taskId: string) {
  const rows = await producer.tasks();
  return rows.find((t) => t.taskId === taskId);
}

describe('consumer with the real producer', () => {
  test('retry path: a task that fails once then succeeds ends success, its retry counted', async () => {
    const taskId = await producer.createTask('fails once');
    // The outcome is a hash of seed, task, attempt and retry count: pick a seed that fails the first
    // try of dispatch 1 and lets the retry succeed.
    const rate = 0.5;
    let seed = 0;
    const ok = (retryCount: number) =>
      simulateOutcome({ failureSeed: `seed-${seed}`, failureRate: rate }, { taskId, attempt: 1, retryCount })
        .ok;
    while (ok(0) || !ok(1)) seed += 1;

    const c = await start({ failureSeed: `seed-${seed}`, failureRate: rate, maxRetries: 2 });
    await eventually('the task is terminal', async () => (await taskOf(taskId))?.status === 'success');
    expect(await taskOf(taskId)).toMatchObject({ status: 'success', attempts: 1, error: null });
    expect(await metricValue(c, 'consumer_tasks_failed_total')).toBe(1);
    expect(await metricValue(c, 'consumer_tasks_retried_total')).toBe(1);
    expect(await metricValue(c, 'consumer_tasks_processed_total')).toBe(1);
    // The row commits before the producer's answer reaches the reporter, which counts it then.
    const applied = () => metricValue(c, 'consumer_reports_total', { status: 'success', outcome: 'applied' });
    await eventually('the applied report is counted', async () => (await applied()) >= 1);
    expect(await applied()).toBe(1);
  });

  test('tasks created over HTTP end success or error exactly as the hash decides', async () => {
    const policy = { failureSeed: 'http-batch', failureRate: 0.4 };
    const ids = await Promise.all(Array.from({ length: 60 }, (_, i) => producer.createTask(`task ${i}`)));
    const c = await start({ ...policy, maxRetries: 1, retryDelaysSeconds: [1] });
    const terminal = async () => {
      const rows = (await producer.tasks()).filter((t) => ids.includes(t.taskId));
      return rows.every((t) => t.status === 'success' || t.status === 'error');
    };
    await eventually('all terminal', terminal);
    for (const task of (await producer.tasks()).filter((t) => ids.includes(t.taskId))) {
      const fails = (retryCount: number) =>
        !simulateOutcome(policy, { taskId: task.taskId, attempt: task.attempts, retryCount }).ok;
      const expected = fails(0) && fails(1) ? 'error' : 'success';
      expect({ taskId: task.taskId, status: task.status }).toEqual({ taskId: task.taskId, status: expected });
      if (expected === 'error') expect(task.error).toBe('simulated processing failure');
    }
    expect(await metricValue(c, 'consumer_messages_parked_total')).toBe(0);
  });

  test('a report for an unknown task (404 from the producer) is parked, and consumption goes on', async () => {
    const c = await start({});
    const unknown = workMessage({ taskId: randomUUID(), priority: 'high' });
    await publishWork(channel, unknown);
    const known = await producer.createTask('after the unknown one', 'high');
    await eventually('the known task is terminal', async () => (await taskOf(known))?.status === 'success');
    await eventually(
      'one parked',
      async () => (await metricValue(c, 'consumer_messages_parked_total')) === 1,
    );
    const parked = await drainQueue(channel, QUEUES.parking);
    expect(parked).toHaveLength(1);
    expect(JSON.parse(parked[0]?.content.toString() ?? '{}')).toMatchObject({
      results: [{ taskId: unknown.taskId, status: 'success' }],
    });
    expect(String(parked[0]?.properties.headers?.[HEADERS.parkReason])).toMatch(/^producer answered 404/);
    expect(parked[0]?.properties.headers?.[HEADERS.parkedFrom]).toBe(QUEUES.results);
    expect(await metricValue(c, 'consumer_reports_total', { outcome: 'parked' })).toBe(1);
    expect(c.readiness().ready).toBe(true);
  });
});
