// The reporter's loop with fakes: a fake consuming channel as its delivery source, a status client
// whose replies the test decides, and a publisher that records what is parked. Batching, the 413
// split, narrowing a refused batch down to one report, the stop after 401/403 and the probe after it,
// backoff and stall readiness are checked in milliseconds; the broker's part (acks on the delivering
// channel, returns on close, a real HTTP server) stays with test/integration/reporter.test.ts.
import { EventEmitter } from 'node:events';
import type { ChannelOptions, ManagedChannel, PublishOptions } from '@task-pipeline/rabbitmq';
import { HEADERS, QUEUES, type TaskResult } from '@task-pipeline/rabbitmq/contract';
import type { ConsumeMessage } from 'amqplib';
import pino from 'pino';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { ACK_GATHER_MS } from '../../src/deliveries.js';
import { createConsumerMetrics } from '../../src/metrics.js';
import type { Publisher } from '../../src/publishing.js';
import type { StatusReport } from '../../src/report-messages.js';
import {
  createReporter,
  MAX_WAITING_PARKS,
  type Reporter,
  type ReporterOptions,
  type ReporterTiming,
} from '../../src/reporter.js';
import { type BatchReply, StatusClientError } from '../../src/status-client.js';

type Settled = 'ack' | 'requeue' | 'reject';

/** The calls the reporter makes on its consuming channel, answered in memory. */
class FakeChannel extends EventEmitter {
  readonly consumers = new Map<
    string,
    { queue: string; deliver: (message: ConsumeMessage | null) => void }
  >();
  /** Delivery tag → how it was settled (absent: outstanding). */
  readonly settled = new Map<number, Settled>();
  #tags = 0;
  #consumerTags = 0;

  async prefetch() {
    return {};
  }

  async consume(queue: string, deliver: (message: ConsumeMessage | null) => void) {
    this.#consumerTags += 1;
    const consumerTag = `ctag-${this.#consumerTags}`;
    this.consumers.set(consumerTag, { queue, deliver });
    return { consumerTag };
  }

  async cancel(consumerTag: string) {
    this.consumers.delete(consumerTag);
    return { consumerTag };
  }

  ack(message: ConsumeMessage, allUpTo?: boolean): void {
    const tag = message.fields.deliveryTag;
    if (!allUpTo) {
      this.#settle(tag, 'ack');
      return;
    }
    for (let t = 1; t <= tag; t += 1) if (!this.settled.has(t)) this.#settle(t, 'ack');
  }

  nack(message: ConsumeMessage, _allUpTo?: boolean, requeue?: boolean): void {
    this.#settle(message.fields.deliveryTag, requeue === false ? 'reject' : 'requeue');
  }

  async close(): Promise<void> {
    this.emit('close');
  }

  #settle(tag: number, how: Settled): void {
    if (this.settled.has(tag)) throw new Error(`delivery ${tag} settled twice (a 406 on a real channel)`);
    this.settled.set(tag, how);
  }

  /** Delivers a message of these results from tasks.results; returns its delivery tag. */
  deliverResults(results: readonly TaskResult[]): number {
    const consumer = [...this.consumers.values()].find((c) => c.queue === QUEUES.results);
    if (!consumer) throw new Error('nobody consumes tasks.results');
    this.#tags += 1;
    const deliveryTag = this.#tags;
    consumer.deliver({
      content: Buffer.from(JSON.stringify({ results })),
      fields: { deliveryTag, redelivered: false, exchange: '', routingKey: QUEUES.results, consumerTag: '' },
      properties: { contentType: 'application/json', headers: {}, messageId: `m-${deliveryTag}` },
    } as unknown as ConsumeMessage);
    return deliveryTag;
  }
}

/** The consuming connection: one fake channel, set up as the Broker sets up each fresh channel. */
function fakeSource(channel: FakeChannel) {
  return {
    channel(options: ChannelOptions<FakeChannel>): ManagedChannel<FakeChannel> {
      void options.setup?.(channel);
      return { name: options.name, current: () => channel, wait: async () => channel };
    },
  };
}

type Answer = (reports: readonly StatusReport[]) => BatchReply | Promise<BatchReply>;

/** Every report accepted: 200 per item. */
const acceptAll: Answer = (reports) => ({
  status: 200,
  results: reports.map((r) => ({ taskId: r.taskId, status: 200 })),
});

class FakeStatusClient {
  readonly requests: StatusReport[][] = [];
  answer: Answer = acceptAll;

  async updateStatuses(reports: readonly StatusReport[]): Promise<BatchReply> {
    this.requests.push([...reports]);
    return this.answer(reports);
  }

  async close(): Promise<void> {}
}

class FakePublisher implements Publisher {
  readonly parked: { content: Buffer; options: PublishOptions }[] = [];
  #held: Promise<void> | undefined;

  async publish(_exchange: string, routingKey: string, content: Buffer, options: PublishOptions) {
    if (routingKey !== QUEUES.parking)
      throw new Error(`the reporter publishes only to parking, not ${routingKey}`);
    await this.#held;
    this.parked.push({ content, options });
  }

  /** Parks wait for their confirm, as during a broker alarm, until the returned function is called. */
  holdConfirms(): () => void {
    let release = () => {};
    this.#held = new Promise((resolve) => {
      release = resolve;
    });
    return release;
  }

  reasons(): string[] {
    return this.parked.map((p) => String(p.options.headers?.[HEADERS.parkReason]));
  }
}

const FAST: ReporterTiming = {
  backoff: { initialMs: 1, maxMs: 2 },
  probe: { initialMs: 20, maxMs: 20 },
  stallMs: 60_000,
};

let counter = 0;
function result(status: TaskResult['status'] = 'success'): TaskResult {
  counter += 1;
  return { taskId: `00000000-0000-4000-8000-${String(counter).padStart(12, '0')}`, attempt: 1, status };
}

const started: Reporter<FakeChannel>[] = [];

function setup(options: Partial<ReporterOptions<FakeChannel>> = {}) {
  const channel = new FakeChannel();
  const client = new FakeStatusClient();
  const publisher = new FakePublisher();
  const metrics = createConsumerMetrics();
  const reporter = createReporter<FakeChannel>({
    broker: fakeSource(channel),
    publisher,
    client,
    batchSize: 1_000,
    batchMs: 0,
    metrics,
    logger: pino({ level: 'silent' }),
    ...options,
    timing: { ...FAST, ...options.timing },
  });
  started.push(reporter);
  return { reporter, channel, client, publisher, metrics };
}

const until = (check: () => boolean) =>
  vi.waitFor(
    () => {
      if (!check()) throw new Error('not yet');
    },
    // Within the test's own timeout, so that no check outlives its test.
    { timeout: 4_000, interval: 2 },
  );

const consuming = (channel: FakeChannel) => until(() => channel.consumers.size === 2);

afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(started.splice(0).map((r) => r.stop(AbortSignal.timeout(1_000))));
});

describe('reporter loop', () => {
  test('the results of one turn leave as one request; each message is acked once answered', async () => {
    const { channel, client } = setup();
    await consuming(channel);
    const first = [result(), result('error')];
    const second = [result()];
    const tags = [channel.deliverResults(first), channel.deliverResults(second)];
    await until(() => tags.every((tag) => channel.settled.get(tag) === 'ack'));
    expect(client.requests).toHaveLength(1);
    expect(client.requests[0]?.map((r) => [r.taskId, r.taskStatus, r.attempt])).toEqual(
      [...first, ...second].map((r) => [r.taskId, r.status, r.attempt]),
    );
  });

  test('REPORT_BATCH_SIZE caps a request; the rest follow in the next', async () => {
    const { channel, client } = setup({ batchSize: 2 });
    await consuming(channel);
    const tags = [1, 2, 3, 4, 5].map(() => channel.deliverResults([result()]));
    await until(() => tags.every((tag) => channel.settled.get(tag) === 'ack'));
    expect(client.requests.map((r) => r.length)).toEqual([2, 2, 1]);
  });

  test('413: halves the batch until it fits; a single report still too large is parked, its message acked', async () => {
    const { channel, client, publisher } = setup();
    await consuming(channel);
    const huge = result();
    client.answer = (reports) =>
      reports.length > 2 || reports.some((r) => r.taskId === huge.taskId)
        ? { status: 413 }
        : acceptAll(reports);
    const tags = [result(), result(), huge, result(), result()].map((r) => channel.deliverResults([r]));
    await until(() => tags.every((tag) => channel.settled.get(tag) === 'ack'));
    expect(client.requests.map((r) => r.length)).toEqual([5, 3, 2, 1, 2]);
    expect(publisher.parked).toHaveLength(1);
    expect(JSON.parse(publisher.parked[0]?.content.toString() ?? '')).toEqual({ results: [huge] });
    expect(publisher.reasons()[0]).toMatch(/too large \(413\)/);
  });

  test('per item: 404 and 400 are parked with the reason, 409 and a stale 200 acked, a 500 sent again', async () => {
    const { channel, client, publisher } = setup();
    await consuming(channel);
    const [missing, invalid, conflict, stale, failing] = [result(), result(), result(), result(), result()];
    const codes = new Map([
      [missing.taskId, 404],
      [invalid.taskId, 400],
      [conflict.taskId, 409],
      [stale.taskId, 200],
      [failing.taskId, 500],
    ]);
    // The retry of the 500 waits for the test's word (its backoff is a millisecond): the request count
    // stays put while the test looks, however slowly the machine runs it.
    let letRetryThrough = () => {};
    const retryMayGo = new Promise<void>((resolve) => {
      letRetryThrough = resolve;
    });
    client.answer = async (reports) => {
      if (client.requests.length > 1) await retryMayGo;
      return {
        status: 200,
        results: reports.map((r) => {
          const status = codes.get(r.taskId) ?? 200;
          return {
            taskId: r.taskId,
            status,
            ...(r.taskId === stale.taskId ? { stale: true } : {}),
            ...(status >= 400 ? { problem: { title: 'no', detail: `detail ${r.taskId}` } } : {}),
          };
        }),
      };
    };
    const tag = channel.deliverResults([missing, invalid, conflict, stale, failing]);
    await until(() => client.requests.length === 2);
    expect(client.requests[1]?.map((r) => r.taskId)).toEqual([failing.taskId]);
    // The message waits for its last report's answer.
    expect(channel.settled.has(tag)).toBe(false);
    codes.delete(failing.taskId);
    letRetryThrough();
    await until(() => channel.settled.get(tag) === 'ack');
    expect(client.requests).toHaveLength(2);
    const parkedIds = publisher.parked.map((p) => JSON.parse(p.content.toString()).results[0].taskId);
    expect(parkedIds.sort()).toEqual([missing.taskId, invalid.taskId].sort());
    expect(publisher.reasons()).toEqual(
      expect.arrayContaining([
        `producer answered 404: detail ${missing.taskId}`,
        `producer answered 400: detail ${invalid.taskId}`,
      ]),
    );
  });

  test('a park waiting for its confirm (a broker alarm) holds up no other report', async () => {
    const { channel, client, publisher } = setup();
    const release = publisher.holdConfirms();
    await consuming(channel);
    const refused = result();
    client.answer = (reports) => ({
      status: 200,
      results: reports.map((r) => ({ taskId: r.taskId, status: r.taskId === refused.taskId ? 404 : 200 })),
    });
    const parkedTag = channel.deliverResults([refused]);
    await until(() => client.requests.length === 1);
    const next = channel.deliverResults([result()]);
    await until(() => channel.settled.get(next) === 'ack');
    expect(channel.settled.has(parkedTag)).toBe(false);
    release();
    await until(() => channel.settled.get(parkedTag) === 'ack');
    expect(publisher.parked).toHaveLength(1);
  });

  test('parks waiting for their confirms count for the stall', async () => {
    const { reporter, channel, client, publisher } = setup({ timing: { stallMs: 50 } });
    const release = publisher.holdConfirms();
    await consuming(channel);
    client.answer = (reports) => ({
      status: 200,
      results: reports.map((r) => ({ taskId: r.taskId, status: 404 })),
    });
    const tag = channel.deliverResults([result()]);
    await until(() => !reporter.state().ready);
    release();
    await until(() => channel.settled.get(tag) === 'ack');
    expect(reporter.state()).toEqual({ ready: true });
  });

  test('MAX_WAITING_PARKS parks waiting for their confirms hold the next request back', async () => {
    const { channel, client, publisher } = setup();
    const release = publisher.holdConfirms();
    await consuming(channel);
    client.answer = (reports) => ({
      status: 200,
      results: reports.map((r) => ({ taskId: r.taskId, status: 404 })),
    });
    channel.deliverResults(Array.from({ length: MAX_WAITING_PARKS }, () => result()));
    await until(() => client.requests.length === 1);
    const next = channel.deliverResults([result()]);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(client.requests).toHaveLength(1);
    release();
    await until(() => channel.settled.get(next) === 'ack');
    expect(client.requests).toHaveLength(2);
    expect(publisher.parked).toHaveLength(MAX_WAITING_PARKS + 1);
  });

  test('shutdown waits for a park that the last answer starts', async () => {
    const { reporter, channel, client, publisher } = setup();
    await consuming(channel);
    let answer: (reply: BatchReply) => void = () => undefined;
    client.answer = () =>
      new Promise<BatchReply>((resolve) => {
        answer = resolve;
      });
    const refused = result();
    const tag = channel.deliverResults([refused]);
    await until(() => client.requests.length === 1);
    const release = publisher.holdConfirms();
    let stopped = false;
    const stopping = reporter.stop(AbortSignal.timeout(3_000)).then(() => {
      stopped = true;
    });
    // The answer comes once shutdown is under way (its consumers cancelled).
    await new Promise((resolve) => setTimeout(resolve, 20));
    answer({ status: 200, results: [{ taskId: refused.taskId, status: 404 }] });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(stopped).toBe(false);
    release();
    await stopping;
    expect(publisher.parked).toHaveLength(1);
    expect(channel.settled.get(tag)).toBe('ack');
  });

  test('a report the producer keeps refusing (500) is narrowed down and parked alone; its neighbours go through', async () => {
    const { channel, client, publisher } = setup({ batchSize: 8 });
    await consuming(channel);
    const bad = result();
    client.answer = (reports) =>
      reports.some((r) => r.taskId === bad.taskId) ? { status: 500 } : acceptAll(reports);
    const batch = [result(), result(), result(), bad, result(), result(), result(), result()];
    const tags = batch.map((r) => channel.deliverResults([r]));
    await until(() => tags.every((tag) => channel.settled.get(tag) === 'ack'));
    // Three refusals at full size, then halves: 4, 2, 1, and three refusals alone park it.
    expect(client.requests.slice(0, 3).map((r) => r.length)).toEqual([8, 8, 8]);
    expect(publisher.parked).toHaveLength(1);
    expect(JSON.parse(publisher.parked[0]?.content.toString() ?? '').results[0].taskId).toBe(bad.taskId);
    expect(publisher.reasons()[0]).toMatch(/refused this report 3 times on its own/);
    const accepted = client.requests.filter((r) => !r.some((x) => x.taskId === bad.taskId)).flat();
    expect(new Set(accepted.map((r) => r.taskId))).toEqual(
      new Set(batch.filter((r) => r !== bad).map((r) => r.taskId)),
    );
  });

  test.each([401, 403, 422])(
    '%i: stops consuming, not ready, returns the messages, parks nothing; probes later and resumes',
    async (status) => {
      const { reporter, channel, client, publisher } = setup();
      await consuming(channel);
      client.answer = () => ({ status, problem: { title: 'refused' } });
      const tags = [channel.deliverResults([result()]), channel.deliverResults([result()])];
      await until(() => reporter.state().stopped !== undefined);
      expect(reporter.state()).toMatchObject({
        ready: false,
        stopped: expect.stringContaining(String(status)),
      });
      await until(() => tags.every((tag) => channel.settled.get(tag) === 'requeue'));
      expect(channel.consumers.size).toBe(0);
      expect(publisher.parked).toEqual([]);
      // The producer takes reports again: the probe (after timing.probe) consumes again.
      client.answer = acceptAll;
      await consuming(channel);
      const again = channel.deliverResults([result()]);
      await until(() => channel.settled.get(again) === 'ack');
      expect(reporter.state()).toEqual({ ready: true });
    },
  );

  test('unavailable (503, network): backs off, acks nothing early, and sends the same reports again', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { channel, client } = setup({ timing: { backoff: { initialMs: 1_000, maxMs: 1_000 } } });
    await vi.advanceTimersByTimeAsync(0);
    expect(channel.consumers.size).toBe(2);
    let failures = 2;
    client.answer = (reports) => {
      if (failures === 0) return acceptAll(reports);
      failures -= 1;
      if (failures === 1) return { status: 503 };
      throw new StatusClientError('NETWORK', 'connection refused');
    };
    const sent = [result(), result()];
    const tag = channel.deliverResults(sent);
    await vi.advanceTimersByTimeAsync(0);
    await new Promise((resolve) => setImmediate(resolve));
    expect(client.requests).toHaveLength(1);
    // backoffMs: the first wait is between half the initial delay and all of it.
    await vi.advanceTimersByTimeAsync(499);
    expect(client.requests).toHaveLength(1);
    expect(channel.settled.has(tag)).toBe(false);
    await vi.advanceTimersByTimeAsync(501);
    await new Promise((resolve) => setImmediate(resolve));
    expect(client.requests).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1_000);
    await new Promise((resolve) => setImmediate(resolve));
    expect(client.requests).toHaveLength(3);
    expect(client.requests.map((r) => r.map((x) => x.taskId))).toEqual(
      Array.from({ length: 3 }, () => sent.map((r) => r.taskId)),
    );
    // The ack is gathered with others for ACK_GATHER_MS.
    await vi.advanceTimersByTimeAsync(ACK_GATHER_MS);
    expect(channel.settled.get(tag)).toBe('ack');
  });

  test('stall: reports unanswered past stallMs make it not ready; an answer makes it ready again', async () => {
    // A backoff long next to the check's interval: the reports wait in the reporter most of the time.
    const { reporter, channel, client } = setup({
      timing: { stallMs: 50, backoff: { initialMs: 40, maxMs: 40 } },
    });
    await consuming(channel);
    client.answer = () => ({ status: 503 });
    const tag = channel.deliverResults([result()]);
    await until(() => reporter.state().stalledForMs !== undefined);
    expect(reporter.state().ready).toBe(false);
    expect(channel.settled.has(tag)).toBe(false);
    client.answer = acceptAll;
    await until(() => channel.settled.get(tag) === 'ack');
    expect(reporter.state()).toEqual({ ready: true });
  });
});
