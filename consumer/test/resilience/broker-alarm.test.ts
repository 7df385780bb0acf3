// A memory alarm on a private RabbitMQ node (the shared node's watermark is never touched): the broker
// blocks the connection that publishes and stops reading from it. The consumer publishes and consumes
// on separate connections, so acks keep flowing; the worker takes no new work while blocked and lets
// its held deliveries wait for their publishes instead of timing out and returning them, so nothing is
// processed twice and everything drains once the alarm clears.
import { QUEUES } from '@task-pipeline/rabbitmq';
import { eventually } from '@task-pipeline/testkit/eventually';
import { type PrivateRabbit, startPrivateRabbit } from '@task-pipeline/testkit/private-rabbitmq';
import amqp, { type ChannelModel } from 'amqplib';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type FakeProducer, startFakeProducer } from '../support/fake-producer.js';
import {
  metricValue,
  publishWork,
  type StartedConsumer,
  startTestConsumer,
  testConfig,
  workMessage,
} from '../support/harness.js';

let rabbit: PrivateRabbit;
let producer: FakeProducer;
let connection: ChannelModel | undefined;
let consumer: StartedConsumer | undefined;

beforeAll(async () => {
  [rabbit, producer] = await Promise.all([startPrivateRabbit(), startFakeProducer()]);
}, 120_000);
afterAll(async () => {
  await consumer?.close();
  await connection?.close().catch(() => undefined);
  await producer?.close();
  await rabbit?.destroy();
});

describe('a broker memory alarm', () => {
  test('blocks publishing only: no work is done twice, acks flow, everything drains after', async () => {
    connection = await amqp.connect(rabbit.url);
    const channel = await connection.createConfirmChannel();
    const c = await startTestConsumer(
      testConfig({
        amqpUrl: rabbit.url,
        producerUrl: producer.url,
        processingTimeMs: 100,
        workerPrefetch: 4,
        reportBatchMs: 0,
      }),
      // A confirm clock that kept running would give up on the blocked publishes within the alarm.
      { publishConfirmTimeoutMs: 1_000 },
    );
    consumer = c;
    await eventually('ready', () => c.readiness().ready === true, { timeoutMs: 60_000 });
    const messages = Array.from({ length: 300 }, () => workMessage());
    for (const m of messages) await publishWork(channel, m);
    await eventually(
      'work under way',
      async () => (await metricValue(c, 'consumer_tasks_processed_total')) >= 5,
    );

    await rabbit.ctl('set_vm_memory_high_watermark', 'absolute', '1');
    try {
      // The broker tells a connection it is blocked when it next publishes (checked on 3.10).
      await eventually('publishing blocked', () => c.connections.publish.blocked, { timeoutMs: 30_000 });
      expect(c.connections.consume.blocked).toBe(false);
      const processedWhenBlocked = await metricValue(c, 'consumer_tasks_processed_total');
      // Several confirm timeouts pass: nothing is given up, nothing is taken.
      await new Promise((r) => setTimeout(r, 4_000));
      expect(await metricValue(c, 'consumer_tasks_processed_total')).toBe(processedWhenBlocked);
      // The worker's consumers are cancelled (a quorum queue's own consumer count lags during an alarm,
      // so ask the node for the channel's).
      const channels = (
        await rabbit.ctl('list_channels', 'name', 'consumer_count', 'messages_unacknowledged')
      ).stdout;
      expect(channels).toMatch(/\t0\t4$/m);
      // What reached tasks.results before the alarm was reported and acked meanwhile: acks flow.
      expect((await channel.checkQueue(QUEUES.results)).messageCount).toBe(0);
    } finally {
      await rabbit.ctl('set_vm_memory_high_watermark', '0.4');
    }

    const ids = messages.map((m) => m.taskId);
    await eventually(
      'every task reported',
      () => ids.every((id) => producer.accepted.some((r) => r.taskId === id)),
      { timeoutMs: 60_000 },
    );
    await eventually(
      'consuming again',
      async () => (await channel.checkQueue('tasks.medium')).consumerCount === 1,
    );
    // Each task processed and reported once: no delivery was returned while its publish was pending.
    const reports = new Map<string, number>();
    for (const r of producer.accepted) reports.set(r.taskId, (reports.get(r.taskId) ?? 0) + 1);
    expect([...reports.values()].filter((n) => n > 1)).toEqual([]);
    expect(await metricValue(c, 'consumer_tasks_processed_total')).toBe(messages.length);
    expect(await metricValue(c, 'consumer_dropped_settlements_total')).toBe(0);
  }, 180_000);
});
