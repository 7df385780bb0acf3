// Producer outage (PROTOCOL §7, §9): the producer is gone for 10 s mid-run. Workers keep processing
// (tasks.results grows), reporters retry with backoff and ack nothing early, and every task is
// terminal once the producer is back.
import { QUEUES } from '@task-pipeline/rabbitmq';
import { eventually } from '@task-pipeline/testkit/eventually';
import amqp from 'amqplib';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { metricValue, type StartedConsumer, startTestConsumer, testConfig } from '../support/harness.js';
import { type RealProducer, startRealProducer } from '../support/real-producer.js';

const TASKS = 300;
const OUTAGE_MS = 10_000;

let producer: RealProducer;
let consumer: StartedConsumer | undefined;

beforeAll(async () => {
  producer = await startRealProducer('consumer_outage');
});
afterAll(async () => {
  await consumer?.close();
  await producer?.close();
});

describe('producer outage', () => {
  test('10 s without the producer: results pile up unacked-or-queued, all terminal after it returns', async () => {
    await Promise.all(Array.from({ length: TASKS }, (_, i) => producer.createTask(`outage ${i}`)));
    await eventually('all dispatched', async () => (await producer.counts()).sent === TASKS);
    // ~30 tasks/s: the work outlasts the outage.
    consumer = await startTestConsumer(
      testConfig({
        amqpUrl: producer.vhost.url,
        producerUrl: producer.url,
        workerQueues: ['tasks.medium'],
        workerPrefetch: 3,
        processingTimeMs: 100,
        failureRate: 0.2,
        maxRetries: 1,
        retryDelaysSeconds: [1],
      }),
    );
    const c = consumer;
    await eventually('some reported', async () => ((await producer.counts()).success ?? 0) >= 20);

    await producer.stop();
    const connection = await amqp.connect(producer.vhost.url);
    const channel = await connection.createChannel();
    const processedAtStop = await metricValue(c, 'consumer_tasks_processed_total');
    await new Promise((r) => setTimeout(r, OUTAGE_MS / 2));
    const queuedMid = (await channel.checkQueue(QUEUES.results)).messageCount;
    await new Promise((r) => setTimeout(r, OUTAGE_MS / 2));
    const queuedLate = (await channel.checkQueue(QUEUES.results)).messageCount;
    const processedLate = await metricValue(c, 'consumer_tasks_processed_total');
    const countsDuringOutage = await producer.counts();
    await connection.close();

    // Workers went on; their results waited in tasks.results; the reporter kept retrying.
    expect(processedLate).toBeGreaterThan(processedAtStop);
    expect(queuedLate).toBeGreaterThan(queuedMid);
    expect(await metricValue(c, 'consumer_report_requests_total', { result: 'unavailable' })).toBeGreaterThan(
      0,
    );
    expect(c.readiness().ready).toBe(true);

    await producer.start();
    await eventually(
      'every task terminal',
      async () => {
        const counts = await producer.counts();
        return (counts.success ?? 0) + (counts.error ?? 0) === TASKS;
      },
      { timeoutMs: 60_000 },
    );
    // Nothing acked early: a result acked without the producer's answer would leave its task `sent`.
    expect((await producer.counts()).sent ?? 0).toBe(0);
    expect((countsDuringOutage.sent ?? 0) > 0).toBe(true);
    expect(await metricValue(c, 'consumer_messages_parked_total')).toBe(0);
  }, 120_000);
});
