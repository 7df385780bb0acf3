// Back-pressure (CONTRACT §6.4): with no consumer, `sent` stays within DISPATCH_MAX_IN_FLIGHT plus one
// batch and the backlog waits in PostgreSQL; as messages are consumed and reported, it flows again.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  createServices,
  drainQueues,
  eventually,
  insertTasks,
  queueDepths,
  report,
  type Services,
  startDispatcher,
  statusCounts,
} from './support.js';

let services: Services;

beforeAll(async () => {
  services = await createServices('dispatch_backpressure');
});
afterAll(async () => {
  await services?.cleanup();
});

const MAX_IN_FLIGHT = 100;
const BATCH = 40;

describe('back-pressure', () => {
  test('sent never exceeds DISPATCH_MAX_IN_FLIGHT + one batch; the rest wait until messages are consumed', async () => {
    const { sql, vhost } = services;
    await insertTasks(sql, 500);
    const sentAfterBatch: number[] = [];
    const d = await startDispatcher(services, {
      config: { maxInFlight: MAX_IN_FLIGHT, batchSize: BATCH },
      hooks: {
        // `sent` only grows when a batch is recorded: checking right after each record sees every peak.
        afterBatch: () =>
          void statusCounts(sql).then((c) => {
            sentAfterBatch.push(c.sent ?? 0);
          }),
      },
    });
    try {
      await eventually(
        () => d.dispatcher.stats().paused === 'in_flight' && d.dispatcher.stats().batchesInFlight === 0,
        30_000,
        'the in-flight pause with every claimed batch recorded',
      );
      const held = await statusCounts(sql);
      expect(held.sent).toBeGreaterThanOrEqual(MAX_IN_FLIGHT);
      expect(held.sent).toBeLessThanOrEqual(MAX_IN_FLIGHT + BATCH);
      expect(held.waiting).toBe(500 - (held.sent ?? 0));
      const queued = await queueDepths(vhost.url);
      expect(Object.values(queued).reduce((a, b) => a + b, 0)).toBe(held.sent);
      const metric = await d.metrics.dispatcherPaused.get();
      expect(metric.values.find((v) => v.labels.reason === 'in_flight')?.value).toBe(1);

      // A consumer appears: every message taken is reported, and the dispatcher refills the queue.
      let reported = 0;
      while (reported < 500) {
        const messages = await drainQueues(vhost.url);
        for (const m of messages) {
          if (await report(sql, m.messageId, m.body.attempt, 'success')) reported += 1;
        }
        if (messages.length === 0) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(await statusCounts(sql)).toEqual({ success: 500 });
      expect(sentAfterBatch.length).toBeGreaterThanOrEqual(500 / BATCH);
      expect(Math.max(...sentAfterBatch)).toBeLessThanOrEqual(MAX_IN_FLIGHT + BATCH);
    } finally {
      await d.close();
    }
  });
});
