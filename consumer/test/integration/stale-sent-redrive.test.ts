// Tasks left `sent` (issue 12, RELIABILITY.md): the work queues are purged while tasks are sent, so
// their messages are gone and nothing will ever report them. The stats show them as stale, and one
// bulk redrive by age of sent_at brings every one of them to a terminal status through a real
// producer process and a real consumer.
import { WORK_QUEUES } from '@task-pipeline/rabbitmq';
import { eventually } from '@task-pipeline/testkit/eventually';
import {
  createTestDatabase,
  createTestVhost,
  type TestDatabase,
  type TestVhost,
} from '@task-pipeline/testkit/isolation';
import type { Service } from '@task-pipeline/testkit/processes';
import amqp, { type ChannelModel } from 'amqplib';
import postgres from 'postgres';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { type StartedConsumer, startTestConsumer, TEST_TOKEN, testConfig } from '../support/harness.js';
import { spawnProducer } from '../support/processes.js';

const TASKS = 60;
const STALE_AFTER_S = 1;

let db: TestDatabase;
let vhost: TestVhost;
let producer: (Service & { url: string }) | undefined;
let consumer: StartedConsumer | undefined;
let connection: ChannelModel | undefined;
let sql: postgres.Sql;

beforeAll(async () => {
  [db, vhost] = await Promise.all([createTestDatabase('stale_sent'), createTestVhost('stale_sent')]);
  sql = postgres(db.url, { max: 2, onnotice: () => undefined });
});
afterAll(async () => {
  await consumer?.close();
  await producer?.stop();
  await connection?.close().catch(() => undefined);
  await sql?.end({ timeout: 1 });
  await Promise.all([db?.drop(), vhost?.drop()]);
});

const statuses = async () =>
  Object.fromEntries(
    (
      await sql<{ status: string; n: number }[]>`select status, count(*)::int as n from tasks group by status`
    ).map((r) => [r.status, r.n]),
  );

async function api<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${producer?.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${TEST_TOKEN}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: (await res.json()) as T };
}

test('purged work queues leave tasks sent; one bulk redrive by sent age finishes every one', async () => {
  producer = await spawnProducer({
    DATABASE_URL: db.url,
    AMQP_URL: vhost.url,
    STATUS_API_TOKEN: TEST_TOKEN,
    STALE_SENT_AFTER_S: String(STALE_AFTER_S),
    TASK_RETENTION: '0',
  });
  for (let i = 0; i < TASKS; i += 1) {
    const created = await api('POST', '/api/v1/create-task', { text: `lost ${i}`, priority: 'medium' });
    expect(created.status).toBe(201);
  }
  // No consumer yet: every task is published and recorded sent, its message waiting in a queue.
  await eventually('every task is sent', async () => (await statuses()).sent === TASKS);

  // The broker loses the messages (a purge, a lost quorum, a parked message nobody reads).
  connection = await amqp.connect(vhost.url);
  const channel = await connection.createChannel();
  for (const queue of Object.values(WORK_QUEUES)) await channel.purgeQueue(queue);

  // A consumer now has nothing to process: the tasks would stay sent for good.
  consumer = await startTestConsumer(
    testConfig({ amqpUrl: vhost.url, producerUrl: producer.url, processingTimeMs: 0 }),
  );
  const [newest] = await sql<{ sent_at: Date }[]>`select max(sent_at) as sent_at from tasks`;
  if (!newest) throw new Error('no sent task');
  const sentBefore = new Date(newest.sent_at.getTime() + 1).toISOString();
  await eventually('the stats call them stale', async () => {
    const stats = await api<{ staleSent: { count: number } }>('GET', '/api/v1/task-stats');
    return stats.body.staleSent.count === TASKS;
  });

  const dryRun = await api<{ matched: number; redriven: number }>('POST', '/api/v1/redrive-tasks', {
    sentBefore,
    dryRun: true,
    limit: 1000,
  });
  expect(dryRun.body).toMatchObject({ matched: TASKS, redriven: 0 });
  expect((await statuses()).sent).toBe(TASKS);

  const redrive = await api<{ matched: number; redriven: number }>('POST', '/api/v1/redrive-tasks', {
    sentBefore,
    limit: 1000,
  });
  expect(redrive.status).toBe(200);
  expect(redrive.body).toMatchObject({ matched: TASKS, redriven: TASKS });

  await eventually('every task is terminal', async () => (await statuses()).success === TASKS, {
    timeoutMs: 60_000,
  });
  // The claim (1), the redrive (2), the claim after it (3): the lost attempt's reports would be stale.
  const attempts = await sql<{ attempts: number }[]>`select distinct attempts from tasks`;
  expect(attempts.map((r) => r.attempts)).toEqual([3]);
  const redrives = await sql<{ n: number }[]>`
    select count(*)::int as n from task_redrives where from_status = 'sent' and attempt = 1`;
  expect(redrives[0]?.n).toBe(TASKS);
});
