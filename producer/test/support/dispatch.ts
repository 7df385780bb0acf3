// Shared pieces of the dispatcher's integration tests: a migrated database and a vhost per file, real
// brokers and dispatchers wired by hand (no Fastify), and the queue/report helpers the checks use.
import { randomUUID } from 'node:crypto';
import {
  ALL_WORK_QUEUES,
  assertTopology,
  Broker,
  buildTopology,
  type ManagedChannel,
  type Priority,
  parseWorkMessage,
  type WorkMessage,
} from '@task-pipeline/rabbitmq';
import { eventually } from '@task-pipeline/testkit/eventually';
import { perSuite } from '@task-pipeline/testkit/hooks';
import {
  createTestVhost,
  type TestDatabase,
  type TestVhost,
  withIsolation,
} from '@task-pipeline/testkit/isolation';
import amqp, { type Channel, type ConfirmChannel } from 'amqplib';
import pino from 'pino';
import postgres, { type Sql } from 'postgres';
import type { ProducerConfig } from '../../src/config.js';
import {
  createDispatchRepository,
  type DispatchRepository,
  statementDeadlineMs,
} from '../../src/dispatch/dispatch-repository.js';
import {
  channelPublisher,
  createDispatcher,
  type Dispatcher,
  type DispatcherOptions,
} from '../../src/dispatch/dispatcher.js';
import { createProducerMetrics } from '../../src/metrics.js';
import { createProducerDatabase } from './database.js';

export const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

/** A logger that keeps every message it is given, for tests that wait on what a component reported. */
export function capturingLogger(): { logger: pino.Logger; messages: string[] } {
  const messages: string[] = [];
  const destination = {
    write(line: string) {
      messages.push((JSON.parse(line) as { msg: string }).msg);
    },
  };
  return { logger: pino({ level: 'debug' }, destination), messages };
}

export const baseDispatchConfig: ProducerConfig['dispatch'] = {
  enabled: true,
  batchSize: 500,
  tasksPerMessage: 1,
  pollIntervalMs: 50,
  order: 'random',
  // Long enough that a batch slowed down by a loaded machine never outlives its lease (and goes out
  // twice, legitimately, failing an exactly-once check); tests of expiry set their own or expire by hand.
  leaseSeconds: 300,
  confirmTimeoutMs: 5_000,
  maxInFlight: 100_000,
  // The default: the crash-point tests walk the same steps the producer takes.
  recordDelayMs: 50,
};

/** The dispatcher's repository with the statement deadline the plugin derives from `config`. */
export function dispatchRepository(
  sql: Sql,
  config: ProducerConfig['dispatch'] = baseDispatchConfig,
): DispatchRepository {
  return createDispatchRepository(sql, { statementDeadlineMs: statementDeadlineMs(config) });
}

export interface Services {
  db: TestDatabase;
  vhost: TestVhost;
  sql: Sql;
  cleanup(): Promise<void>;
}

/** createServices for the current suite (its beforeAll), cleaned up in its afterAll. */
export function useServices(prefix: string): Services {
  return perSuite(
    () => createServices(prefix),
    (services) => services.cleanup(),
  );
}

/** A fresh migrated database and an empty vhost for one test file. */
export function createServices(prefix: string): Promise<Services> {
  return withIsolation(createProducerDatabase(prefix), createTestVhost(prefix), async (db, vhost) => {
    const sql = postgres(db.url, { max: 10, onnotice: () => undefined });
    return {
      db,
      vhost,
      sql,
      async cleanup() {
        await sql.end({ timeout: 1 });
        await Promise.all([db.drop(), vhost.drop()]);
      },
    };
  });
}

export async function startBroker(url: string, name = 'test-dispatcher'): Promise<Broker> {
  const broker = new Broker({
    url,
    connectionName: `${name}-${randomUUID().slice(0, 8)}`,
    topology: buildTopology({ role: 'producer' }),
    logger,
    reconnectInitialDelayMs: 50,
    reconnectMaxDelayMs: 500,
  });
  await broker.start();
  await broker.waitForConnect();
  return broker;
}

export interface TestDispatcher {
  dispatcher: Dispatcher;
  broker: Broker;
  /** The dispatcher's own publishing channel. */
  channel: ManagedChannel<ConfirmChannel>;
  metrics: ReturnType<typeof createProducerMetrics>;
  close(): Promise<void>;
}

/** A real dispatcher on its own broker connection; `broker` may be shared by passing one in. */
export async function startDispatcher(
  services: { sql: Sql; vhost: { url: string } },
  options: {
    config?: Partial<ProducerConfig['dispatch']>;
    broker?: Broker;
    /** Instead of one on `services.sql` with the config's statement deadline. */
    repository?: DispatchRepository;
    start?: boolean;
  } & Partial<Pick<DispatcherOptions, 'hooks' | 'pipelineDepth' | 'randomId' | 'logger'>> = {},
): Promise<TestDispatcher> {
  const broker = options.broker ?? (await startBroker(services.vhost.url));
  const channel = broker.confirmChannel({ name: `dispatch-${randomUUID().slice(0, 8)}` });
  await channel.wait();
  const metrics = createProducerMetrics();
  const config = { ...baseDispatchConfig, ...options.config };
  const dispatcher = createDispatcher({
    config,
    repository: options.repository ?? dispatchRepository(services.sql, config),
    broker,
    publisher: channelPublisher(channel, config.confirmTimeoutMs),
    metrics,
    logger: options.logger ?? logger,
    hooks: options.hooks,
    pipelineDepth: options.pipelineDepth,
    randomId: options.randomId,
  });
  if (options.start !== false) dispatcher.start();
  return {
    dispatcher,
    broker,
    channel,
    metrics,
    async close() {
      await dispatcher.stop(10_000);
      if (!options.broker) await broker.close();
    },
  };
}

export interface NewTask {
  id: string;
  priority: Priority;
}

/**
 * Inserts waiting tasks as the API would (v4 ids), with strictly increasing created_at in the order
 * returned, in one statement per 10k rows (a JSON parameter: it works on pools without fetch_types).
 */
export async function insertTasks(
  sql: Sql,
  count: number,
  priority: Priority | ((i: number) => Priority) = 'medium',
): Promise<NewTask[]> {
  const tasks = Array.from({ length: count }, (_, i) => ({
    id: randomUUID(),
    priority: typeof priority === 'function' ? priority(i) : priority,
  }));
  const base = new Date(Date.now() - 86_400_000);
  for (let from = 0; from < tasks.length; from += 10_000) {
    const chunk = tasks.slice(from, from + 10_000);
    await sql`
      INSERT INTO tasks (id, text, priority, created_at)
      SELECT (e->>'id')::uuid, 'task ' || (${from}::int + n), (e->>'priority')::task_priority,
             ${base}::timestamptz + (${from}::int + n) * interval '1 ms'
      FROM jsonb_array_elements(${sql.json(chunk)}) WITH ORDINALITY AS u(e, n)`;
  }
  return tasks;
}

export interface QueuedMessage {
  messageId: string;
  /** The task of a one-task message (the first of a message that carries several). */
  body: WorkMessage;
  /** Every task it carries. */
  tasks: WorkMessage[];
  headers: Record<string, unknown>;
  contentType: string | undefined;
  persistent: boolean;
}

/** Takes every message now in `queues` (in queue order), acking them: the queues end empty. */
export async function drainQueues(
  url: string,
  queues: readonly string[] = ALL_WORK_QUEUES,
): Promise<QueuedMessage[]> {
  const connection = await amqp.connect(url);
  try {
    const channel = await connection.createChannel();
    const out: QueuedMessage[] = [];
    for (const queue of queues) {
      const { messageCount } = await channel.checkQueue(queue);
      if (messageCount === 0) continue;
      await channel.prefetch(1_000);
      let received = 0;
      let done!: () => void;
      const all = new Promise<void>((resolve) => {
        done = resolve;
      });
      const { consumerTag } = await channel.consume(queue, (msg) => {
        if (!msg) return;
        const parsed = parseWorkMessage(msg.content, msg.properties.contentType);
        if (!parsed.ok) throw new Error(`an invalid work message in ${queue}: ${parsed.reason}`);
        out.push({
          messageId: String(msg.properties.messageId),
          body: parsed.value[0] as WorkMessage,
          tasks: parsed.value,
          headers: msg.properties.headers ?? {},
          contentType: msg.properties.contentType,
          persistent: msg.properties.deliveryMode === 2,
        });
        channel.ack(msg);
        received += 1;
        if (received === messageCount) done();
      });
      await all;
      await channel.cancel(consumerTag);
    }
    await channel.close();
    return out;
  } finally {
    await connection.close();
  }
}

/** The work messages published, taken from the queues once `n` of them are queued. */
export async function takeQueued(url: string, n: number): Promise<QueuedMessage[]> {
  const total = async () => Object.values(await queueDepths(url)).reduce((a, b) => a + b, 0);
  await eventually(`${n} messages queued`, async () => (await total()) === n, { timeoutMs: 30_000 });
  return drainQueues(url);
}

/** Runs `fn` on a throwaway channel of the vhost (topology changes, inspection). */
export async function withChannel<T>(url: string, fn: (channel: Channel) => Promise<T>): Promise<T> {
  const connection = await amqp.connect(url);
  try {
    return await fn(await connection.createChannel());
  } finally {
    await connection.close();
  }
}

export async function queueDepths(url: string): Promise<Record<string, number>> {
  const connection = await amqp.connect(url);
  try {
    const channel = await connection.createChannel();
    const depths: Record<string, number> = {};
    for (const queue of ALL_WORK_QUEUES) depths[queue] = (await channel.checkQueue(queue)).messageCount;
    return depths;
  } finally {
    await connection.close();
  }
}

/** The API's atomic report (PROTOCOL §3): applies only to a waiting/sent task of that attempt. */
export async function report(
  sql: Sql,
  id: string,
  attempt: number,
  status: 'success' | 'error',
): Promise<boolean> {
  const rows = await sql`
    UPDATE tasks SET status = ${status}, finished_at = now(), updated_at = now()
    WHERE id = ${id} AND status = ANY('{waiting,sent}') AND attempts = ${attempt}
    RETURNING id`;
  return rows.length === 1;
}

export async function statusCounts(sql: Sql): Promise<Record<string, number>> {
  const rows = await sql<
    { status: string; n: number }[]
  >`SELECT status, count(*)::int AS n FROM tasks GROUP BY status`;
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}

export async function resetState(services: { sql: Sql; vhost: { url: string } }): Promise<void> {
  await services.sql`TRUNCATE tasks`;
  const connection = await amqp.connect(services.vhost.url);
  try {
    const channel = await connection.createChannel();
    // The producer topology exists from here on, whether or not a dispatcher connected before.
    await assertTopology(channel, buildTopology({ role: 'producer' }));
    for (const queue of ALL_WORK_QUEUES) await channel.purgeQueue(queue);
  } finally {
    await connection.close();
  }
}

/** A deferred promise: hooks await it to freeze a batch at a crash point until the test releases it. */
export function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}
