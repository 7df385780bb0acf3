// Recovery (PROTOCOL §7): a channel closed by the broker while the connection lives, a connection
// closed mid-report, and a full restart of a private RabbitMQ node. After each: consumers resume,
// readiness dips and returns, nothing is lost, and no ack goes to a dead channel (no 406).
import { randomUUID } from 'node:crypto';
import { QUEUES } from '@task-pipeline/rabbitmq';
import { eventually } from '@task-pipeline/testkit/eventually';
import { createTestVhost, rabbitmqctl, type TestVhost } from '@task-pipeline/testkit/isolation';
import { type PrivateRabbit, startPrivateRabbit } from '@task-pipeline/testkit/private-rabbitmq';
import amqp, { type ChannelModel, type ConfirmChannel } from 'amqplib';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { type FakeProducer, startFakeProducer } from '../support/fake-producer.js';
import {
  expectCountSettles,
  metricValue,
  preconditionFailures,
  publishResults,
  publishWork,
  type StartedConsumer,
  startTestConsumer,
  testConfig,
  workMessage,
} from '../support/harness.js';

let vhost: TestVhost;
let producer: FakeProducer;
let connection: ChannelModel;
let channel: ConfirmChannel;
let consumer: StartedConsumer | undefined;

beforeAll(async () => {
  vhost = await createTestVhost('consumer_reconnect');
  producer = await startFakeProducer();
});
afterEach(async () => {
  await consumer?.close();
  consumer = undefined;
  await connection?.close().catch(() => undefined);
  producer.reset();
});
afterAll(async () => {
  await producer?.close();
  await vhost?.drop();
});

async function startOn(url: string, overrides: Partial<Parameters<typeof testConfig>[0]> = {}) {
  consumer = await startTestConsumer(testConfig({ amqpUrl: url, producerUrl: producer.url, ...overrides }));
  await eventually('the consumer is ready', () => consumer?.readiness().ready === true);
  connection = await amqp.connect(url);
  channel = await connection.createConfirmChannel();
  return consumer;
}

const acceptedIds = () => new Set(producer.accepted.map((r) => r.taskId));

/**
 * Closing a channel from the broker's side: a passive declare of a missing queue is a 404.
 * RabbitMQ may still send deliveries on a channel after its Channel.Close (rabbitmq-server#13384),
 * and amqplib 2.3.1 answers a frame on a released channel by closing the whole connection; the
 * tests therefore close channels that have nothing more to receive. The connection case is
 * covered below by closing the connection itself.
 */
async function forceChannelError(ch: ManagedChannelLike): Promise<void> {
  const live = ch.current();
  if (!live) throw new Error('channel not open');
  await live.checkQueue('no-such-queue').catch(() => undefined);
}
type ManagedChannelLike = { current(): { checkQueue(q: string): Promise<unknown> } | undefined };

async function connectionPid(name: string): Promise<string> {
  const out = await rabbitmqctl('list_connections', '-p', vhost.name, 'pid', 'client_properties');
  const pid = out
    .split('\n')
    .find((line) => line.includes(name))
    ?.split('\t')[0];
  if (!pid) throw new Error(`no connection ${name}`);
  return pid;
}

describe('reconnect', () => {
  test('a channel error on a live connection: each channel reopens with its consumers, nothing lost', async () => {
    // Deliveries are held (long processing, a blocked report) when each channel is closed, so the
    // broker has nothing more to send on it: see the note on forceChannelError.
    const c = await startOn(vhost.url, { processingTimeMs: 1_500, workerPrefetch: 32, reportBatchSize: 100 });
    let disconnects = 0;
    for (const connection of Object.values(c.connections)) {
      connection.on('disconnected', () => {
        disconnects += 1;
      });
    }

    // Worker channel: the 20 messages it holds are redelivered on the new channel; the first
    // handlers' acks, due on the dead channel, are dropped rather than sent on the new one.
    const work = Array.from({ length: 20 }, () => workMessage());
    for (const m of work) await publishWork(channel, m);
    await eventually(
      'all 20 delivered',
      async () => (await channel.checkQueue('tasks.medium')).messageCount === 0,
    );
    await forceChannelError(c.channels.worker as ManagedChannelLike);
    await eventually('every task reported', () => work.every((m) => acceptedIds().has(m.taskId)));
    await eventually(
      'old acks dropped',
      async () => (await metricValue(c, 'consumer_dropped_settlements_total')) === 20,
    );
    expect(await metricValue(c, 'consumer_dropped_settlements_total', { queue: 'tasks.medium' })).toBe(20);

    // Publish channel: reopened, and the next results go through it.
    await forceChannelError(c.channels.publish as ManagedChannelLike);
    await eventually('publish channel back', () => c.readiness().ready === true);
    const more = Array.from({ length: 5 }, () => workMessage());
    for (const m of more) await publishWork(channel, m);
    await eventually('the next tasks reported', () => more.every((m) => acceptedIds().has(m.taskId)));

    // Reporter channel: a batch the producer answers after the channel died is reported again.
    let release: () => void = () => undefined;
    const released = new Promise<void>((r) => {
      release = r;
    });
    producer.setHandler(async (reports) => {
      await released;
      return { status: 200, items: reports.map(() => ({ status: 200 })) };
    });
    const acceptedBefore = producer.accepted.length;
    const sent = Array.from({ length: 10 }, () => ({
      taskId: randomUUID(),
      attempt: 1,
      status: 'success' as const,
    }));
    await publishResults(channel, sent);
    await eventually('the batch is held', () =>
      producer.requests.some((r) => r.some((x) => x.taskId === sent[0]?.taskId)),
    );
    await eventually(
      'all 10 delivered',
      async () => (await channel.checkQueue(QUEUES.results)).messageCount === 0,
    );
    await forceChannelError(c.channels.reporter as ManagedChannelLike);
    release();
    await eventually('reported twice', () => producer.accepted.length - acceptedBefore >= 20);

    await eventually('ready again', () => c.readiness().ready === true);
    expect(disconnects).toBe(0);
    expect(c.readinessLog).toContain(false);
    expect(await metricValue(c, 'consumer_dropped_settlements_total', { queue: QUEUES.results })).toBe(10);
    expect(preconditionFailures(c.logs)).toEqual([]);
    const closed = c.logs.filter((l) => l.msg === 'RabbitMQ channel closed').map((l) => l.channel);
    expect(closed.sort()).toEqual(['publish', 'reporter', 'worker']);

    await consumer?.close();
    consumer = undefined;
    // Every work message and every result was acked, each on the channel that delivered it.
    for (const queue of ['tasks.medium', QUEUES.results]) {
      await expectCountSettles(async () => (await channel.checkQueue(queue)).messageCount, 0);
    }
  });

  test('`rabbitmqctl close_connection` mid-report: the answered batch is reported again, then acked', async () => {
    let release: () => void = () => undefined;
    const released = new Promise<void>((r) => {
      release = r;
    });
    let first = true;
    producer.setHandler(async (reports) => {
      if (first) {
        first = false;
        // Hold the first batch until the connection is gone: its acks then have nowhere to go.
        await released;
      }
      return { status: 200, items: reports.map(() => ({ status: 200 })) };
    });
    const c = await startOn(vhost.url, { workerQueues: [], reportBatchSize: 100, reportBatchMs: 50 });
    const sent = Array.from({ length: 40 }, () => ({
      taskId: randomUUID(),
      attempt: 1,
      status: 'success' as const,
    }));
    await publishResults(channel, sent);
    await eventually('a batch in flight', () => producer.requests.length === 1);
    const inFlight = producer.requests[0]?.length ?? 0;
    expect(inFlight).toBeGreaterThan(0);

    const disconnected = new Promise((r) => c.connections.consume.once('disconnected', r));
    await rabbitmqctl(
      'close_connection',
      await connectionPid(`${c.connectionName} (consume)`),
      'test: mid-report',
    );
    await disconnected;
    release();
    await eventually('every result reported', () => sent.every((r) => acceptedIds().has(r.taskId)));
    await eventually('ready again', () => c.readiness().ready === true);
    // The held batch was answered after its channel died: its acks were dropped and the broker
    // redelivered it, so those reports went out twice (the producer treats the second as a no-op).
    await eventually(
      'redelivered reports answered',
      () => producer.accepted.length >= sent.length + inFlight,
    );
    expect(await metricValue(c, 'consumer_dropped_settlements_total')).toBeGreaterThanOrEqual(inFlight);
    expect(c.readinessLog).toContain(false);
    expect(preconditionFailures(c.logs)).toEqual([]);

    await consumer?.close();
    consumer = undefined;
    await expectCountSettles(async () => (await channel.checkQueue(QUEUES.results)).messageCount, 0);
  });
});

describe('reconnect after a full broker restart (private RabbitMQ node)', () => {
  let rabbit: PrivateRabbit | undefined;
  afterAll(async () => {
    await rabbit?.destroy();
  });

  // A node restart takes tens of seconds on a busy machine.
  test('consumers resume after the node restarts; every task is reported', async () => {
    rabbit = await startPrivateRabbit();
    const c = await startOn(rabbit.url, { processingTimeMs: 50, workerPrefetch: 4 });
    const messages = Array.from({ length: 150 }, () => workMessage());
    for (const m of messages) await publishWork(channel, m);
    await connection.close();
    await eventually(
      'work under way',
      async () => (await metricValue(c, 'consumer_tasks_processed_total')) >= 10,
    );

    await rabbit.restart();
    await eventually('every task reported', () => messages.every((m) => acceptedIds().has(m.taskId)), {
      timeoutMs: 120_000,
    });
    await eventually('ready again', () => c.readiness().ready === true, { timeoutMs: 60_000 });
    expect(c.readinessLog).toContain(false);
    expect(preconditionFailures(c.logs)).toEqual([]);

    await consumer?.close();
    consumer = undefined;
    connection = await amqp.connect(rabbit.url);
    const check = await connection.createChannel();
    for (const queue of ['tasks.medium', QUEUES.results, QUEUES.deadLetter, QUEUES.parking]) {
      await expectCountSettles(async () => (await check.checkQueue(queue)).messageCount, 0);
    }
  }, 180_000);
});
