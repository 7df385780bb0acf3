// The reporter's reply classes (PROTOCOL §7) against a real HTTP server playing the producer's batch
// route: the real producer will not answer 413, 401 or 503 on demand. Reporter-only consumers read
// result messages published straight into tasks.results.
import { randomUUID } from 'node:crypto';
import { HEADERS, QUEUES, type TaskResult, WORK_QUEUES } from '@task-pipeline/rabbitmq';
import { eventually } from '@task-pipeline/testkit/eventually';
import { useTestVhost } from '@task-pipeline/testkit/hooks';
import amqp, { type ChannelModel, type ConfirmChannel } from 'amqplib';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { RESULTS_PREFETCH } from '../../src/reporter.js';
import { acceptAll, type FakeProducer, startFakeProducer } from '../support/fake-producer.js';
import {
  drainQueue,
  expectCountSettles,
  metricValue,
  parkedTaskIds,
  publishLegacyResults,
  publishResults,
  publishWork,
  publishWorkBatch,
  type StartedConsumer,
  startTestConsumer,
  TEST_TOKEN,
  testConfig,
  workMessage,
} from '../support/harness.js';

const vhost = useTestVhost('consumer_reporter');
let producer: FakeProducer;
let connection: ChannelModel;
let channel: ConfirmChannel;
let consumer: StartedConsumer | undefined;

beforeAll(async () => {
  producer = await startFakeProducer();
  connection = await amqp.connect(vhost.url);
  channel = await connection.createConfirmChannel();
});
beforeEach(() => producer.reset());
afterEach(async () => {
  await consumer?.close();
  consumer = undefined;
  // Whatever a test left behind must not leak into the next one.
  await drainQueue(channel, QUEUES.results);
  await drainQueue(channel, QUEUES.parking);
});
afterAll(async () => {
  await connection?.close();
  await producer?.close();
});

async function startReporter(
  overrides: Partial<Parameters<typeof testConfig>[0]> = {},
  tuning: Parameters<typeof startTestConsumer>[1] = {},
) {
  consumer = await startTestConsumer(
    testConfig({ amqpUrl: vhost.url, producerUrl: producer.url, workerQueues: [], ...overrides }),
    tuning,
  );
  await eventually('the reporter is ready', () => consumer?.readiness().ready === true);
  return consumer;
}

function results(n: number, status: TaskResult['status'] = 'success'): TaskResult[] {
  return Array.from({ length: n }, () => ({ taskId: randomUUID(), attempt: 1, status }));
}

const acceptedIds = () => new Set(producer.accepted.map((r) => r.taskId));

const queued = async (queue: string) => (await channel.checkQueue(queue)).messageCount;

/** Closing the consumer returns whatever it has not acked: an empty queue afterwards means all were acked. */
async function closeConsumer(): Promise<void> {
  await consumer?.close();
  consumer = undefined;
}

describe('reporter', () => {
  test('batches reports with the Bearer token and acks each one the producer answered', async () => {
    const seen: (string | undefined)[] = [];
    producer.setHandler((reports, request) => {
      seen.push(request.authorization);
      return acceptAll(reports, request);
    });
    const c = await startReporter({ reportBatchSize: 20, reportBatchMs: 50 });
    const sent = results(45);
    await publishResults(channel, sent);
    await eventually('all reported', () => sent.every((r) => acceptedIds().has(r.taskId)));
    expect(new Set(seen)).toEqual(new Set([`Bearer ${TEST_TOKEN}`]));
    expect(Math.max(...producer.requests.map((r) => r.length))).toBeLessThanOrEqual(20);
    await eventually('all acked', async () => (await metricValue(c, 'consumer_reports_total')) === 45);
    expect(await metricValue(c, 'consumer_reports_total', { outcome: 'applied' })).toBe(45);
    await closeConsumer();
    await expectCountSettles(() => queued(QUEUES.results), 0);
  });

  test('413 splits the batch until it fits; a single report still too large is parked', async () => {
    const tooLarge = randomUUID();
    producer.setHandler((reports, request) =>
      reports.length > 4 || reports.some((r) => r.taskId === tooLarge)
        ? { status: 413 }
        : acceptAll(reports, request),
    );
    const c = await startReporter({ reportBatchSize: 16, reportBatchMs: 200 });
    const sent = results(16);
    await publishResults(channel, [...sent, { taskId: tooLarge, attempt: 1, status: 'success' }]);
    await eventually('all but one reported', () => sent.every((r) => acceptedIds().has(r.taskId)));
    await eventually(
      'one parked',
      async () => (await metricValue(c, 'consumer_messages_parked_total')) === 1,
    );
    const parked = await drainQueue(channel, QUEUES.parking);
    expect(parked.map(parkedTaskIds)).toEqual([[tooLarge]]);
    expect(String(parked[0]?.properties.headers?.[HEADERS.parkReason])).toMatch(/413/);
    expect(await metricValue(c, 'consumer_report_requests_total', { result: 'split' })).toBeGreaterThan(0);
    await eventually('all acked', async () => (await metricValue(c, 'consumer_reports_total')) === 16);
    await closeConsumer();
    await expectCountSettles(() => queued(QUEUES.results), 0);
  });

  test('per item: 404 and 400 are parked with the reason, 409 and stale 200 are acked', async () => {
    const sent = results(4, 'error');
    const [notFound, invalid, conflict, stale] = sent.map((r) => r.taskId);
    producer.setHandler((reports) => ({
      status: 200,
      items: reports.map((r) => {
        if (r.taskId === notFound)
          return {
            status: 404,
            problem: { type: 'about:blank', title: 'Not Found', status: 404, detail: 'no such task' },
          };
        if (r.taskId === invalid)
          return {
            status: 400,
            problem: { type: 'about:blank', title: 'Bad Request', status: 400, detail: 'bad attempt' },
          };
        if (r.taskId === conflict) return { status: 409 };
        if (r.taskId === stale) return { status: 200, stale: true };
        return { status: 200 };
      }),
    }));
    const c = await startReporter();
    await publishResults(channel, sent);
    await eventually(
      'two parked',
      async () => (await metricValue(c, 'consumer_messages_parked_total')) === 2,
    );
    await eventually('all answered', async () => (await metricValue(c, 'consumer_reports_total')) === 4);
    expect(c.readiness().ready).toBe(true);
    await closeConsumer();
    await expectCountSettles(() => queued(QUEUES.results), 0);
    const parked = await drainQueue(channel, QUEUES.parking);
    const reasonOf = (id: string | undefined) =>
      String(
        parked.find((m) => id && parkedTaskIds(m).includes(id))?.properties.headers?.[HEADERS.parkReason],
      );
    expect(reasonOf(notFound)).toBe('producer answered 404: no such task');
    expect(reasonOf(invalid)).toBe('producer answered 400: bad attempt');
    expect(await metricValue(c, 'consumer_reports_total', { outcome: 'conflict' })).toBe(1);
    expect(await metricValue(c, 'consumer_reports_total', { outcome: 'stale' })).toBe(1);
  });

  test('a work message dead-lettered by the delivery limit is reported error `delivery_limit`', async () => {
    const c = await startReporter();
    const message = workMessage({ priority: 'high', attempt: 2 });
    await publishWork(channel, message);
    // A worker that keeps returning it (crashes, closed channels) until the broker gives up on it.
    const worker = await connection.createChannel();
    await new Promise<void>((resolve) => {
      void worker.consume(WORK_QUEUES.high, (delivery) => {
        if (delivery) worker.nack(delivery, false, true);
      });
      const timer = setInterval(() => {
        if (producer.accepted.some((r) => r.taskId === message.taskId)) {
          clearInterval(timer);
          resolve();
        }
      }, 25);
    });
    await worker.close();
    expect(producer.accepted.filter((r) => r.taskId === message.taskId)).toEqual([
      { taskId: message.taskId, attempt: 2, taskStatus: 'error', error: 'delivery_limit' },
    ]);
    await eventually('acked', async () => (await metricValue(c, 'consumer_reports_total')) === 1);
  });

  test('a message of several tasks dead-lettered by the delivery limit: each task reported `delivery_limit`', async () => {
    const c = await startReporter();
    const tasks = [
      workMessage({ priority: 'high', attempt: 2 }),
      workMessage({ priority: 'high', attempt: 5 }),
    ];
    await publishWorkBatch(channel, tasks);
    const worker = await connection.createChannel();
    await worker.consume(WORK_QUEUES.high, (delivery) => {
      if (delivery) worker.nack(delivery, false, true);
    });
    await eventually('both reported', () =>
      tasks.every((m) => producer.accepted.some((r) => r.taskId === m.taskId)),
    );
    await worker.close();
    for (const m of tasks) {
      expect(producer.accepted.filter((r) => r.taskId === m.taskId)).toEqual([
        { taskId: m.taskId, attempt: m.attempt, taskStatus: 'error', error: 'delivery_limit' },
      ]);
    }
    await eventually('acked', async () => (await metricValue(c, 'consumer_reports_total')) === 2);
  });

  test('503: retries with backoff and acks nothing early; all are reported once it recovers', async () => {
    let healthy = false;
    producer.setHandler((reports, request) => (healthy ? acceptAll(reports, request) : { status: 503 }));
    const c = await startReporter({ reportBatchSize: 50 });
    const sent = results(30);
    await publishResults(channel, sent);
    await eventually(
      'three refused requests',
      async () => (await metricValue(c, 'consumer_report_requests_total', { result: 'unavailable' })) >= 3,
    );
    expect(c.readiness().ready).toBe(true);
    // Held, not acked: closing returns every one of them to the queue.
    await closeConsumer();
    await expectCountSettles(() => queued(QUEUES.results), 30);

    const again = await startReporter({ reportBatchSize: 50 });
    await eventually('more refused requests', () => producer.requests.length >= 5);
    healthy = true;
    await eventually('all reported', () => sent.every((r) => acceptedIds().has(r.taskId)));
    await eventually('all acked', async () => (await metricValue(again, 'consumer_reports_total')) === 30);
    await closeConsumer();
    await expectCountSettles(() => queued(QUEUES.results), 0);
  });

  test('401/403/other 4xx: stops consuming, not ready, returns the messages to the queue, parks nothing', async () => {
    for (const status of [401, 403, 422]) {
      producer.setHandler(() => ({ status }));
      const c = await startReporter();
      const sent = results(10);
      await publishResults(channel, sent);
      await eventually(`stopped on ${status}`, () => c.readiness().ready === false);
      expect(c.readiness().reporter).toMatchObject({ stopped: expect.stringContaining(String(status)) });
      // Returned while the consumer still runs: nothing is held, nothing consumed any more.
      await eventually('messages back in the queue', async () => (await queued(QUEUES.results)) === 10);
      expect((await channel.checkQueue(QUEUES.results)).consumerCount).toBe(0);
      expect((await channel.checkQueue(QUEUES.parking)).messageCount).toBe(0);
      const health = await fetch(`${c.healthUrl}/health/ready`);
      expect(health.status).toBe(503);
      await closeConsumer();
      await drainQueue(channel, QUEUES.results);
    }
  });

  test('a message of many results: each is answered on its own, one parked alone, the message acked once', async () => {
    const sent = results(30);
    const missing = sent[7]?.taskId;
    producer.setHandler((reports) => ({
      status: 200,
      items: reports.map((r) =>
        r.taskId === missing
          ? { status: 404, problem: { type: 'about:blank', title: 'Not Found', status: 404, detail: 'gone' } }
          : { status: 200 },
      ),
    }));
    const c = await startReporter({ reportBatchSize: 8 });
    await publishResults(channel, sent, 30);
    await eventually('all answered', async () => (await metricValue(c, 'consumer_reports_total')) === 30);
    expect(new Set(producer.accepted.map((r) => r.taskId))).toEqual(
      new Set(sent.filter((r) => r.taskId !== missing).map((r) => r.taskId)),
    );
    // Requests never exceed the batch size, whatever the messages carry.
    expect(Math.max(...producer.requests.map((r) => r.length))).toBeLessThanOrEqual(8);
    await closeConsumer();
    await expectCountSettles(() => queued(QUEUES.results), 0);
    const parked = await drainQueue(channel, QUEUES.parking);
    expect(parked.map(parkedTaskIds)).toEqual([[missing]]);
    expect(String(parked[0]?.properties.headers?.[HEADERS.parkReason])).toBe('producer answered 404: gone');
  });

  test('results in the earlier one-result form, still queued during an upgrade, are reported', async () => {
    const c = await startReporter();
    const sent = results(5, 'error');
    await publishLegacyResults(channel, sent);
    await eventually('all reported', () => sent.every((r) => acceptedIds().has(r.taskId)));
    await eventually('all acked', async () => (await metricValue(c, 'consumer_reports_total')) === 5);
    expect(await metricValue(c, 'consumer_messages_parked_total')).toBe(0);
  });

  test('ids in upper case are reported in lower case', async () => {
    const c = await startReporter();
    const sent = results(3).map((r) => ({ ...r, taskId: r.taskId.toUpperCase() }));
    await publishResults(channel, sent, 3);
    await eventually('all acked', async () => (await metricValue(c, 'consumer_reports_total')) === 3);
    expect([...acceptedIds()].sort()).toEqual(sent.map((r) => r.taskId.toLowerCase()).sort());
  });

  test('a report the producer keeps failing on is narrowed down and parked; its neighbours go through', async () => {
    const sent = results(40);
    const poison = sent[29]?.taskId;
    producer.setHandler((reports, request) =>
      reports.some((r) => r.taskId === poison) ? { status: 500 } : acceptAll(reports, request),
    );
    const c = await startReporter({ reportBatchSize: 40, reportBatchMs: 50 });
    await publishResults(channel, sent, 40);
    await eventually(
      'the others reported',
      () => sent.filter((r) => r.taskId !== poison).every((r) => acceptedIds().has(r.taskId)),
      { timeoutMs: 60_000 },
    );
    await eventually(
      'poison parked',
      async () => (await metricValue(c, 'consumer_messages_parked_total')) === 1,
      { timeoutMs: 60_000 },
    );
    await closeConsumer();
    await expectCountSettles(() => queued(QUEUES.results), 0);
    const parked = await drainQueue(channel, QUEUES.parking);
    expect(parked.map(parkedTaskIds)).toEqual([[poison]]);
    expect(String(parked[0]?.properties.headers?.[HEADERS.parkReason])).toMatch(
      /refused this report 3 times/,
    );
    // Narrowed down: smaller and smaller requests, never one per report from the start.
    expect(producer.requests.length).toBeLessThan(40);
  });

  test('no progress shows: not ready and a metric while reports wait unanswered, ready again after', async () => {
    let healthy = false;
    producer.setHandler((reports, request) => (healthy ? acceptAll(reports, request) : { status: 503 }));
    const c = await startReporter({}, { reporter: { backoff: { initialMs: 50, maxMs: 100 }, stallMs: 500 } });
    await publishResults(channel, results(5));
    await eventually('not ready', () => c.readiness().ready === false);
    expect(c.readiness().reporter).toMatchObject({ ready: false, stalledForMs: expect.any(Number) });
    await eventually(
      'the metric shows it',
      async () => (await metricValue(c, 'consumer_report_stalled_seconds')) > 0,
    );
    expect((await fetch(`${c.healthUrl}/health/ready`)).status).toBe(503);
    healthy = true;
    await eventually('ready again', () => c.readiness().ready === true);
    await eventually('all acked', async () => (await metricValue(c, 'consumer_reports_total')) === 5);
    expect(await metricValue(c, 'consumer_report_stalled_seconds')).toBe(0);
  });

  test('a request left unanswered is no progress either: not ready while it is out', async () => {
    // Readiness once forgot the batch whose request was out, so every retry read as progress.
    let answer: (() => void) | undefined;
    const answered = new Promise<void>((resolve) => {
      answer = resolve;
    });
    producer.setHandler(async (reports, request) => {
      await answered;
      return acceptAll(reports, request);
    });
    const c = await startReporter({}, { reporter: { stallMs: 500 } });
    await publishResults(channel, results(3));
    await eventually('a request out', () => producer.requests.length > 0);
    await eventually('not ready while it is out', () => c.readiness().ready === false, { timeoutMs: 5_000 });
    expect((await fetch(`${c.healthUrl}/health/ready`)).status).toBe(503);
    answer?.();
    await eventually('ready again', () => c.readiness().ready === true);
    await eventually('all acked', async () => (await metricValue(c, 'consumer_reports_total')) === 3);
  });

  test('holds at most RESULTS_PREFETCH result messages while the producer does not answer', async () => {
    // A result message may carry 1,000 results: the limit on what the reporter takes is in messages
    // of that size, not in batches of reports (it once took 2,000 messages).
    let answer: (() => void) | undefined;
    const answered = new Promise<void>((resolve) => {
      answer = resolve;
    });
    producer.setHandler(async (reports, request) => {
      await answered;
      return acceptAll(reports, request);
    });
    const total = RESULTS_PREFETCH + 36;
    const c = await startReporter();
    await publishResults(channel, results(total));
    await eventually('a request out', () => producer.requests.length > 0);
    await eventually('the reporter holds its fill', async () => (await queued(QUEUES.results)) === 36);
    // Nothing more arrives while they are held: the count stays.
    await new Promise((r) => setTimeout(r, 500));
    expect(await queued(QUEUES.results)).toBe(36);
    answer?.();
    await eventually(
      'all reported and acked',
      async () => (await metricValue(c, 'consumer_reports_total')) === total,
    );
    expect(await queued(QUEUES.results)).toBe(0);
  });

  test('a reporter stopped by a 4xx probes again later and resumes once the producer accepts', async () => {
    let status = 403;
    producer.setHandler((reports, request) => (status === 200 ? acceptAll(reports, request) : { status }));
    const c = await startReporter({}, { reporter: { probe: { initialMs: 400, maxMs: 400 } } });
    const sent = results(10);
    await publishResults(channel, sent);
    await eventually('stopped', () => c.readiness().ready === false);
    const refusals = producer.requests.length;
    await eventually('probed again', () => producer.requests.length > refusals, { timeoutMs: 10_000 });
    // The probe resumed reporting (ready) until its 403 is answered: stopped again after it.
    await eventually('stopped again by the refused probe', () => c.readiness().ready === false);
    status = 200;
    await eventually('all reported', () => sent.every((r) => acceptedIds().has(r.taskId)), {
      timeoutMs: 15_000,
    });
    await eventually('ready again', () => c.readiness().ready === true);
    await closeConsumer();
    await expectCountSettles(() => queued(QUEUES.results), 0);
  });
});
