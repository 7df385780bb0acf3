// End to end (issue 4): the producer and two consumer processes, 2,000 tasks created over HTTP,
// FAILURE_RATE=0.3, MAX_RETRIES=1, short delays, fixed seed. Every task ends success or error; the
// error set is exactly the set whose message reached the DLQ (seen through a tap queue bound to
// tasks.dlx) and exactly what the seeded hash predicts; the counts add up; PostgreSQL saw no deadlock.
import { EXCHANGES } from '@task-pipeline/rabbitmq';
import { eventually } from '@task-pipeline/testkit/eventually';
import {
  createTestDatabase,
  createTestVhost,
  TEST_POSTGRES_URL,
  type TestDatabase,
  type TestVhost,
} from '@task-pipeline/testkit/isolation';
import type { Service } from '@task-pipeline/testkit/processes';
import amqp, { type ChannelModel } from 'amqplib';
import postgres from 'postgres';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { simulateOutcome } from '../../src/simulate-processing.js';
import { drainQueue, TEST_TOKEN } from '../support/harness.js';
import {
  type ConsumerProcess,
  counterFromText,
  scrape,
  spawnConsumer,
  spawnProducer,
} from '../support/processes.js';

const TASKS = 2_000;
const policy = { failureSeed: 'end-to-end-fixed-seed', failureRate: 0.3 };
const TAP = 'test.dlq-tap';
const PRIORITIES = ['high', 'medium', 'low'] as const;

let db: TestDatabase;
let vhost: TestVhost;
let producer: (Service & { url: string }) | undefined;
let consumers: ConsumerProcess[] = [];
let connection: ChannelModel | undefined;
let sql: postgres.Sql;
let admin: postgres.Sql;

beforeAll(async () => {
  [db, vhost] = await Promise.all([createTestDatabase('consumer_e2e'), createTestVhost('consumer_e2e')]);
  sql = postgres(db.url, { max: 2, onnotice: () => undefined });
  admin = postgres(TEST_POSTGRES_URL, { max: 1, onnotice: () => undefined });
});
afterAll(async () => {
  await Promise.all(consumers.map((c) => c.stop()));
  await producer?.stop();
  await connection?.close().catch(() => undefined);
  await sql?.end({ timeout: 1 });
  await admin?.end({ timeout: 1 });
  await Promise.all([db?.drop(), vhost?.drop()]);
});

async function deadlocks(): Promise<number> {
  const [row] = await admin<{ deadlocks: number }[]>`
    select deadlocks::int from pg_stat_database where datname = ${db.name}`;
  return row?.deadlocks ?? 0;
}

describe('end to end', () => {
  test('2,000 tasks through the producer and two consumers: all terminal, errors = DLQ = prediction', async () => {
    producer = await spawnProducer({
      DATABASE_URL: db.url,
      AMQP_URL: vhost.url,
      STATUS_API_TOKEN: TEST_TOKEN,
      DISPATCH_POLL_INTERVAL_MS: '200',
    });
    // The tap: every dead-lettered message is copied here too (tasks.dlx is a fanout).
    connection = await amqp.connect(vhost.url);
    const channel = await connection.createChannel();
    await eventually('the producer asserted its topology', async () => {
      const probe = await connection?.createChannel();
      probe?.on('error', () => undefined);
      const found = await probe?.checkExchange(EXCHANGES.deadLetter).then(
        () => true,
        () => false,
      );
      await probe?.close().catch(() => undefined);
      return found === true;
    });
    await channel.assertQueue(TAP, { durable: true });
    await channel.bindQueue(TAP, EXCHANGES.deadLetter, '');
    const deadlocksBefore = await deadlocks();

    const consumerEnv = {
      AMQP_URL: vhost.url,
      PRODUCER_URL: producer.url,
      STATUS_API_TOKEN: TEST_TOKEN,
      FAILURE_SEED: policy.failureSeed,
      FAILURE_RATE: String(policy.failureRate),
      MAX_RETRIES: '1',
      RETRY_DELAYS_SECONDS: '1',
      PROCESSING_TIME_MS: '5',
      LOG_LEVEL: 'warn',
    };
    consumers = await Promise.all([spawnConsumer(consumerEnv), spawnConsumer(consumerEnv)]);

    const http = new Pool(producer.url, { connections: 16 });
    const created: string[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < TASKS) {
          const i = next++;
          const res = await http.request({
            method: 'POST',
            path: '/api/v1/create-task',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ text: `task ${i}`, priority: PRIORITIES[i % 3] }),
          });
          const body = (await res.body.json()) as { taskId: string };
          expect(res.statusCode).toBe(201);
          created.push(body.taskId);
        }
      }),
    );
    await http.close();
    expect(created).toHaveLength(TASKS);

    const counts = async () => {
      const rows = await sql<{ status: string; n: number }[]>`
          select status, count(*)::int as n from tasks group by status`;
      return Object.fromEntries(rows.map((r) => [r.status, r.n])) as Record<string, number>;
    };
    await eventually(
      'every task terminal',
      async () => {
        const c = await counts();
        return (c.success ?? 0) + (c.error ?? 0) === TASKS;
      },
      { timeoutMs: 150_000 },
    );

    const tasks = await sql<{ taskId: string; status: string; attempts: number; error: string | null }[]>`
        select id::text as "taskId", status, attempts, error from tasks`;
    const errorSet = new Set(tasks.filter((t) => t.status === 'error').map((t) => t.taskId));
    const tapped = await drainQueue(channel, TAP);
    const dlqSet = new Set(
      tapped.map((m) => (JSON.parse(m.content.toString('utf8')) as { taskId: string }).taskId),
    );
    const fails = (t: { taskId: string; attempts: number }, retryCount: number) =>
      !simulateOutcome(policy, { taskId: t.taskId, attempt: t.attempts, retryCount }).ok;
    const predicted = new Set(tasks.filter((t) => fails(t, 0) && fails(t, 1)).map((t) => t.taskId));

    expect(errorSet.size).toBeGreaterThan(0);
    expect([...errorSet].sort()).toEqual([...dlqSet].sort());
    expect([...errorSet].sort()).toEqual([...predicted].sort());
    expect(new Set(tasks.filter((t) => t.status === 'error').map((t) => t.error))).toEqual(
      new Set(['simulated processing failure']),
    );

    // The consumers' own counts add up to the same story.
    const texts = await Promise.all(consumers.map((c) => scrape(c.healthUrl)));
    const sum = (name: string, labels?: Record<string, string>) =>
      texts.reduce((total, text) => total + counterFromText(text, name, labels), 0);
    expect(sum('consumer_tasks_dead_lettered_total')).toBe(dlqSet.size);
    expect(sum('consumer_tasks_processed_total')).toBe(TASKS - errorSet.size);
    expect(sum('consumer_tasks_retried_total')).toBe(tasks.filter((t) => fails(t, 0)).length);
    expect(sum('consumer_messages_parked_total')).toBe(0);
    expect(sum('consumer_reports_total', { outcome: 'applied' })).toBe(TASKS);

    const stopped = await Promise.all(consumers.map((c) => c.stop()));
    expect(stopped.map((s) => s.code)).toEqual([0, 0]);
    await producer.stop();
    producer = undefined;
    // Backends report their statistics when they exit: read deadlocks after the producer is gone.
    expect(await deadlocks()).toBe(deadlocksBefore);
  }, 240_000);
});
