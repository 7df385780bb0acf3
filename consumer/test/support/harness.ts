// Shared plumbing for consumer integration tests: a config for a test vhost, a consumer with its
// logs captured, raw publishing of work messages, and polling until a condition holds.
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import {
  EXCHANGES,
  JSON_CONTENT_TYPE,
  type Priority,
  QUEUES,
  type ResultMessage,
  type TaskResult,
  type WorkMessage,
} from '@task-pipeline/rabbitmq';
import { eventually } from '@task-pipeline/testkit/eventually';
import type { Channel, ConfirmChannel } from 'amqplib';
import pino from 'pino';
import { expect } from 'vitest';
import type { ConsumerConfig } from '../../src/config.js';
import { type Consumer, type ConsumerTuning, startConsumer } from '../../src/consumer.js';

export const TEST_TOKEN = 'consumer-integration-token';

export function testConfig(
  overrides: Partial<ConsumerConfig> & Pick<ConsumerConfig, 'amqpUrl'>,
): ConsumerConfig {
  return {
    quorumInitialGroupSize: undefined,
    producerUrl: 'http://127.0.0.1:9',
    statusApiToken: TEST_TOKEN,
    workerQueues: ['tasks.high', 'tasks.medium', 'tasks.low'],
    workerPrefetch: 16,
    processingTimeMs: 5,
    failureRate: 0,
    failureSeed: 'test',
    maxRetries: 1,
    retryDelaysSeconds: [1],
    reporterEnabled: true,
    reportBatchSize: 50,
    reportBatchMs: 10,
    healthPort: 0,
    shutdownGraceMs: 5_000,
    logLevel: 'info',
    ...overrides,
  };
}

export const FAST_TUNING: Partial<ConsumerTuning> = {
  reconnectInitialDelayMs: 50,
  reconnectMaxDelayMs: 500,
  // A stopped reporter probes again only when a test asks for it.
  reporter: { backoff: { initialMs: 50, maxMs: 500 }, probe: { initialMs: 600_000, maxMs: 600_000 } },
  publishConfirmTimeoutMs: 5_000,
};

export interface StartedConsumer extends Consumer {
  /** Every log line, parsed: tests look for warnings such as a 406. */
  readonly logs: Record<string, unknown>[];
  /** Its AMQP connections' name, `<name> (consume)` and `<name> (publish)` in `rabbitmqctl list_connections`. */
  readonly connectionName: string;
  /** Readiness after every broker event (connection or channel lost or regained), in order. */
  readonly readinessLog: boolean[];
}

export async function startTestConsumer(
  config: ConsumerConfig,
  tuning: Partial<ConsumerTuning> = {},
): Promise<StartedConsumer> {
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line));
      done();
    },
  });
  const logger = pino({ level: 'debug' }, sink);
  const connectionName = `test-consumer-${randomUUID()}`;
  const consumer = await startConsumer(config, {
    logger,
    tuning: { connectionName, ...FAST_TUNING, ...tuning },
  });
  const readinessLog: boolean[] = [];
  for (const connection of Object.values(consumer.connections)) {
    for (const event of ['connected', 'disconnected', 'channel-open', 'channel-closed'] as const) {
      connection.on(event, () => readinessLog.push(consumer.readiness().ready));
    }
  }
  return Object.assign(consumer, { logs, connectionName, readinessLog });
}

/** Log lines that would show an ack on the wrong channel: the broker's 406 for an unknown tag. */
export function preconditionFailures(logs: Record<string, unknown>[]): Record<string, unknown>[] {
  return logs.filter((line) => /PRECONDITION_FAILED|unknown delivery tag/i.test(JSON.stringify(line)));
}

export function workMessage(overrides: Partial<WorkMessage> = {}): WorkMessage {
  return {
    taskId: randomUUID(),
    text: 'hello',
    priority: 'medium',
    createdAt: new Date().toISOString(),
    attempt: 1,
    ...overrides,
  };
}

/** Publishes one task as the dispatcher does a task alone: persistent, JSON, messageId = taskId, confirmed. */
export async function publishWork(channel: ConfirmChannel, message: WorkMessage): Promise<void> {
  channel.publish(EXCHANGES.tasks, message.priority, Buffer.from(JSON.stringify(message)), {
    persistent: true,
    contentType: JSON_CONTENT_TYPE,
    messageId: message.taskId,
    mandatory: true,
  });
  await channel.waitForConfirms();
}

/** Publishes several tasks of one priority as one work message, as the dispatcher may. */
export async function publishWorkBatch(channel: ConfirmChannel, tasks: WorkMessage[]): Promise<void> {
  const priority = tasks[0]?.priority ?? 'medium';
  channel.publish(EXCHANGES.tasks, priority, Buffer.from(JSON.stringify({ tasks })), {
    persistent: true,
    contentType: JSON_CONTENT_TYPE,
    messageId: randomUUID(),
    mandatory: true,
  });
  await channel.waitForConfirms();
}

/** Publishes result messages as a worker does, straight into tasks.results, `perMessage` to a message. */
export async function publishResults(
  channel: ConfirmChannel,
  results: TaskResult[],
  perMessage = 1,
): Promise<void> {
  for (let i = 0; i < results.length; i += perMessage) {
    const message: ResultMessage = { results: results.slice(i, i + perMessage) };
    channel.sendToQueue(QUEUES.results, Buffer.from(JSON.stringify(message)), {
      persistent: true,
      contentType: JSON_CONTENT_TYPE,
      messageId: randomUUID(),
    });
  }
  await channel.waitForConfirms();
}

/** Result messages of the earlier one-result form, as queued by replicas before an upgrade. */
export async function publishLegacyResults(channel: ConfirmChannel, results: TaskResult[]): Promise<void> {
  for (const result of results) {
    channel.sendToQueue(QUEUES.results, Buffer.from(JSON.stringify(result)), {
      persistent: true,
      contentType: JSON_CONTENT_TYPE,
      messageId: result.taskId,
    });
  }
  await channel.waitForConfirms();
}

/** The task ids a parked message carries (a result message, or a dead-lettered work message). */
export function parkedTaskIds(message: { content: Buffer }): string[] {
  const body = JSON.parse(message.content.toString('utf8')) as { results?: TaskResult[]; taskId?: string };
  return body.results ? body.results.map((r) => r.taskId) : body.taskId ? [body.taskId] : [];
}

/** Publishes arbitrary bytes to a work queue (poison tests). */
export async function publishRaw(
  channel: ConfirmChannel,
  priority: Priority,
  content: Buffer,
  options: { contentType?: string; messageId?: string } = {},
): Promise<void> {
  channel.publish(EXCHANGES.tasks, priority, content, { persistent: true, mandatory: true, ...options });
  await channel.waitForConfirms();
}

/** Takes every message now in `queue` (basic.get, acked). */
export async function drainQueue(channel: Channel, queue: string) {
  const messages = [];
  for (;;) {
    const message = await channel.get(queue, { noAck: true });
    if (message === false) return messages;
    messages.push(message);
  }
}

/**
 * Waits for a queue count to reach `expected` and checks it still holds a second later: a quorum
 * queue takes back the messages of a closed channel asynchronously, so a single read right after a
 * consumer closed could see 0 before they return.
 */
export async function expectCountSettles(count: () => Promise<number>, expected: number): Promise<void> {
  await eventually(`the count reaches ${expected}`, async () => (await count()) === expected, {
    timeoutMs: 15_000,
  });
  await new Promise((r) => setTimeout(r, 1_000));
  expect(await count()).toBe(expected);
}

/** A counter's value from the consumer's registry, summed over the labels given. */
export async function metricValue(
  consumer: Consumer,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const metric = consumer.metrics.registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want))
    .reduce((sum, v) => sum + v.value, 0);
}
