// Priorities (PROTOCOL §7, seed 001): with a backlog in all three work queues, one worker on
// tasks.high only and one on all queues finish every high task before the medium/low backlog.

import { eventually } from '@task-pipeline/testkit/eventually';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type StartedConsumer, startTestConsumer, testConfig } from '../support/harness.js';
import { type RealProducer, startRealProducer } from '../support/real-producer.js';

const PER_PRIORITY = 60;

let producer: RealProducer;
const consumers: StartedConsumer[] = [];

beforeAll(async () => {
  producer = await startRealProducer('consumer_priorities');
});
afterAll(async () => {
  await Promise.all(consumers.map((c) => c.close()));
  await producer?.close();
});

describe('priorities', () => {
  test('a high-only worker next to an all-queues worker: all high tasks finish first', async () => {
    for (const priority of ['low', 'medium', 'high'] as const) {
      await Promise.all(
        Array.from({ length: PER_PRIORITY }, (_, i) => producer.createTask(`${priority} ${i}`, priority)),
      );
    }
    // The whole backlog is queued before any worker starts.
    await eventually('all dispatched', async () => (await producer.counts()).sent === 3 * PER_PRIORITY);

    const common = {
      amqpUrl: producer.vhost.url,
      producerUrl: producer.url,
      processingTimeMs: 100,
      workerPrefetch: 2,
      failureRate: 0,
    };
    consumers.push(await startTestConsumer(testConfig({ ...common, workerQueues: ['tasks.high'] })));
    consumers.push(await startTestConsumer(testConfig(common)));

    await eventually('all terminal', async () => (await producer.counts()).success === 3 * PER_PRIORITY, {
      timeoutMs: 60_000,
    });
    const tasks = await producer.tasks();
    const lastFinished = (priority: string) =>
      Math.max(
        ...tasks.filter((t) => t.priority === priority).map((t) => t.finishedAt?.getTime() ?? Infinity),
      );
    expect(lastFinished('high')).toBeLessThan(lastFinished('medium'));
    expect(lastFinished('high')).toBeLessThan(lastFinished('low'));
    // And not by a hair: when the last high task finished, part of each other backlog was still queued.
    const stillOpenAt = (priority: string, at: number) =>
      tasks.filter((t) => t.priority === priority && (t.finishedAt?.getTime() ?? Infinity) > at).length;
    expect(stillOpenAt('medium', lastFinished('high'))).toBeGreaterThan(PER_PRIORITY / 4);
    expect(stillOpenAt('low', lastFinished('high'))).toBeGreaterThan(PER_PRIORITY / 4);
  });
});
