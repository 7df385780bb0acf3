// API statements that never get an answer must not stall requests: a coalesced batch gives up its slot
// at its deadline and its requests answer 503 with Retry-After, readiness says requests are not getting
// through, and once the database answers again requests flow. The two real hangs of the dispatcher's
// deadline test: a pool connection that goes silent (what a query left pending by a restarting
// PostgreSQL looks like to the driver), and statements waiting on a table lock.
import { randomUUID } from 'node:crypto';
import { eventually } from '@task-pipeline/testkit/eventually';
import { afterEach, describe, expect, test } from 'vitest';
import { type FreezingProxy, startFreezingProxy } from '../support/freezing-proxy.js';
import { expectExchangesDescribed } from '../support/openapi-contract.js';
import {
  AUTH,
  markSent,
  type ProblemJson,
  type Reply,
  startTestProducer,
  type TaskJson,
  type TestProducer,
} from '../support/producer.js';

const cleanups: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function expectTimedOut(reply: Reply): void {
  expect(reply.status, reply.text).toBe(503);
  expect(reply.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(reply.headers['retry-after']).toMatch(/^\d+$/);
  expect((reply.body as ProblemJson).detail).toMatch(/did not answer in time/);
}

async function readiness(producer: TestProducer) {
  return producer.http<{ status?: string; detail?: string; checks: { requests: Record<string, unknown> } }>(
    'GET',
    '/health/ready',
  );
}

describe('a pool connection that stops answering', () => {
  test('its batch answers 503 at the deadline and frees its slot; readiness fails until a create succeeds', async () => {
    let proxy: FreezingProxy | undefined;
    const producer = await startTestProducer('api_deadline_frozen', {
      env: { API_STATEMENT_TIMEOUT_MS: '500' },
      async connectVia(databaseUrl) {
        const url = new URL(databaseUrl);
        proxy = await startFreezingProxy(url);
        url.host = `127.0.0.1:${proxy.port}`;
        return url.toString();
      },
    });
    cleanups.push(
      () => producer.close(),
      async () => proxy?.close(),
    );
    if (!proxy) throw new Error('no proxy');
    const { http } = producer;

    // One open, idle API connection (a lookup: a create would also NOTIFY, on a second connection),
    // then silence on it: the next batch takes it.
    const first = await http('GET', `/api/v1/get-task-data?taskId=${randomUUID()}`);
    expect(first.status, first.text).toBe(404);
    proxy.freeze();
    const swallowed = proxy.swallowedBytes();

    const stuck = await http('POST', '/api/v1/create-task', { json: { text: 'into the silence' } });
    expect(proxy.swallowedBytes()).toBeGreaterThan(swallowed);
    expectTimedOut(stuck);
    const notReady = await readiness(producer);
    expect(notReady.status, notReady.text).toBe(503);
    expect(notReady.body.detail).toMatch(/creates are not getting through/);
    expect(notReady.body.checks.requests.creates).toMatchObject({ timedOut: 1, stalled: true });

    // The slot is free: the next batch takes another connection and goes through.
    const next = await http<TaskJson>('POST', '/api/v1/create-task', { json: { text: 'after' } });
    expect(next.status, next.text).toBe(201);
    const ready = await readiness(producer);
    expect(ready.status, ready.text).toBe(200);
    expect(ready.body.checks.requests.creates).toMatchObject({ timedOut: 1, stalled: false });
    // The 503s and the readiness answers are what the served document says they are.
    await expectExchangesDescribed(producer, producer.exchanges);
  });
});

describe('a table held locked', () => {
  test.each([
    ['LOCK TABLE', 'lock table tasks in access exclusive mode'],
    ['ALTER TABLE', 'alter table tasks add column held_by_a_migration int'],
  ])(
    '%s: every request answers 503 at the lock timeout, changes nothing, and flows once it is gone',
    async (_name, statement) => {
      const producer = await startTestProducer('api_deadline_lock', {
        env: { API_LOCK_TIMEOUT_MS: '300', API_STATEMENT_TIMEOUT_MS: '2000' },
      });
      cleanups.push(() => producer.close());
      const { http, sql } = producer;
      const reported = await http<TaskJson>('POST', '/api/v1/create-task', { json: { text: 'to report' } });
      await markSent(sql, [reported.body.taskId]);
      const [before] = await sql<{ n: number }[]>`select count(*)::int as n from tasks`;

      const holder = await sql.reserve();
      await holder`begin`;
      await holder.unsafe(statement);
      try {
        // More single creates and reports than the coalescers have slots, and the other kinds of statement.
        const replies = await Promise.all([
          ...Array.from({ length: 12 }, (_, i) =>
            http('POST', '/api/v1/create-task', { json: { text: `locked out ${i}` } }),
          ),
          ...Array.from({ length: 6 }, () =>
            http('PUT', `/api/v1/update-task-status?taskId=${reported.body.taskId}&taskStatus=success`, {
              headers: AUTH,
            }),
          ),
          http('POST', '/api/v1/create-task', {
            json: { text: 'keyed' },
            headers: { 'idempotency-key': randomUUID() },
          }),
          http('GET', `/api/v1/get-task-data?taskId=${reported.body.taskId}`),
          http('PUT', '/api/v1/update-task-statuses', {
            json: { reports: [{ taskId: reported.body.taskId, taskStatus: 'error', attempt: 1 }] },
            headers: AUTH,
          }),
          http('POST', `/api/v1/redrive-task?taskId=${reported.body.taskId}`, { headers: AUTH }),
        ]);
        for (const reply of replies) expectTimedOut(reply);
        expect((await readiness(producer)).status).toBe(503);
        // The server cancelled each statement at its lock timeout: none is left waiting on the lock.
        const [waiting] = await sql<{ n: number }[]>`
        select count(*)::int as n from pg_stat_activity
         where datname = current_database() and application_name = 'task-pipeline-producer'
           and wait_event_type = 'Lock'`;
        expect(waiting?.n).toBe(0);
      } finally {
        await holder`rollback`;
        holder.release();
      }

      const [after] = await sql<{ n: number }[]>`select count(*)::int as n from tasks`;
      expect(after?.n).toBe(before?.n);
      expect((await http('POST', '/api/v1/create-task', { json: { text: 'unlocked' } })).status).toBe(201);
      const done = await http<TaskJson>(
        'PUT',
        `/api/v1/update-task-status?taskId=${reported.body.taskId}&taskStatus=success`,
        { headers: AUTH },
      );
      expect(done.body).toMatchObject({ status: 'success' });
      await eventually('readiness to recover', async () => (await readiness(producer)).status === 200, {
        timeoutMs: 60_000,
      });
      await expectExchangesDescribed(producer, producer.exchanges);
    },
  );
});
