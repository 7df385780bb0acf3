// The dispatcher through broker and database outages: a connection closed by the broker, a real
// RabbitMQ restart (private node) and PostgreSQL going away between confirm and record (private
// cluster). Nothing is marked sent without its message in a queue; everything goes out afterwards.

import { eventually } from '@task-pipeline/testkit/eventually';
import { rabbitmqctl } from '@task-pipeline/testkit/isolation';
import { type PrivatePostgres, startPrivatePostgres } from '@task-pipeline/testkit/private-postgres';
import { type PrivateRabbit, startPrivateRabbit } from '@task-pipeline/testkit/private-rabbitmq';
import type { Sql } from 'postgres';
import postgres from 'postgres';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { migrate } from '../../../src/db/migrate.js';
import {
  capturingLogger,
  createServices,
  drainQueues,
  insertTasks,
  logger,
  resetState,
  type Services,
  startDispatcher,
  statusCounts,
  type TestDispatcher,
} from '../../support/dispatch.js';

const running: TestDispatcher[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((d) => d.close()));
});

/**
 * Every task is sent, and for each one a message of its current attempt is queued: the dispatcher
 * never recorded `sent` for a publish the broker did not confirm.
 */
async function expectAllSentWithTheirMessages(sql: Sql, amqpUrl: string, count: number) {
  await eventually(`${count} tasks sent`, async () => (await statusCounts(sql)).sent === count, {
    timeoutMs: 120_000,
  });
  const rows = await sql<{ id: string; attempts: number }[]>`SELECT id, attempts FROM tasks`;
  const messages = await drainQueues(amqpUrl);
  const queued = new Set(messages.map((m) => `${m.messageId}/${m.body.attempt}`));
  const missing = rows.filter((r) => !queued.has(`${r.id}/${r.attempts}`));
  expect(missing).toEqual([]);
  return { rows, messages };
}

describe('RabbitMQ on the shared node', () => {
  let services: Services;
  beforeAll(async () => {
    services = await createServices('dispatch_outage');
    await resetState(services);
  });
  afterAll(async () => {
    await services?.cleanup();
  });

  test('the broker closes the connection mid-batch: unconfirmed tasks stay waiting and go out after the reconnect', async () => {
    await insertTasks(services.sql, 1_000);
    let closed = false;
    const d = await startDispatcher(services, {
      config: { batchSize: 200 },
      hooks: {
        async beforePublish(_task, index) {
          if (closed || index !== 100) return;
          closed = true;
          const out = await rabbitmqctl('list_connections', '-p', services.vhost.name, 'pid');
          for (const pid of out.split('\n').filter((l) => l.startsWith('<'))) {
            await rabbitmqctl('close_connection', pid.trim(), 'test: connection closed mid-batch');
          }
        },
      },
    });
    running.push(d);
    const { rows } = await expectAllSentWithTheirMessages(services.sql, services.vhost.url, 1_000);
    expect(closed).toBe(true);
    // The interrupted tasks went out again with their next attempt.
    expect(rows.filter((r) => r.attempts > 1).length).toBeGreaterThan(0);
  });
});

describe('a private RabbitMQ node restarted mid-batch', () => {
  let rabbit: PrivateRabbit;
  let services: Services;
  beforeAll(async () => {
    [rabbit, services] = await Promise.all([startPrivateRabbit(), createServices('dispatch_restart')]);
  }, 180_000);
  afterAll(async () => {
    await rabbit?.destroy();
    await services?.cleanup();
  }, 120_000);

  test('nothing is marked sent without a confirm, and every task goes out after the restart', async () => {
    await insertTasks(services.sql, 1_000);
    let restarted = false;
    const d = await startDispatcher(
      { sql: services.sql, vhost: { url: rabbit.url } },
      {
        config: { batchSize: 200 },
        hooks: {
          async beforePublish(_task, index) {
            if (restarted || index !== 100) return;
            restarted = true;
            await rabbit.restart();
          },
        },
      },
    );
    running.push(d);
    const { rows } = await expectAllSentWithTheirMessages(services.sql, rabbit.url, 1_000);
    expect(restarted).toBe(true);
    expect(rows.filter((r) => r.attempts > 1).length).toBeGreaterThan(0);
  }, 180_000);

  test('a memory alarm (connection.blocked) pauses claiming; tasks wait unclaimed and go out when it clears', async () => {
    const privateServices = { sql: services.sql, vhost: { url: rabbit.url } };
    await resetState(privateServices);
    const d = await startDispatcher(privateServices, { config: { batchSize: 50, confirmTimeoutMs: 1_000 } });
    running.push(d);
    await rabbit.ctl('set_vm_memory_high_watermark', 'absolute', '1');
    try {
      // The broker tells a connection it is blocked when it publishes during the alarm (checked on
      // 3.10.8), so the first batch meets it: its confirms time out and its tasks are released.
      await insertTasks(services.sql, 50);
      d.dispatcher.wake();
      await eventually('connection.blocked', () => d.broker.blocked, { timeoutMs: 30_000 });
      await eventually('the blocked pause', () => d.dispatcher.stats().paused === 'broker_blocked', {
        timeoutMs: 30_000,
      });
      await insertTasks(services.sql, 200);
      d.dispatcher.wake();
      await eventually('the first batch settled', () => d.dispatcher.stats().batchesInFlight === 0, {
        timeoutMs: 30_000,
      });
      // From then on nothing is claimed: no lease taken, no attempt spent, nothing half-published.
      const [held] = await services.sql<{ n: number }[]>`
        SELECT count(*)::int AS n FROM tasks WHERE status = 'waiting' AND attempts = 0 AND claimed_until IS NULL`;
      expect(held?.n).toBe(200);
      expect((await statusCounts(services.sql)).sent).toBeUndefined();
    } finally {
      await rabbit.ctl('set_vm_memory_high_watermark', '0.4');
    }
    await expectAllSentWithTheirMessages(services.sql, rabbit.url, 250);
  }, 180_000);
});

describe('a private PostgreSQL stopped between confirm and record', () => {
  let pg: PrivatePostgres;
  let services: Services;
  let sql: Sql;
  beforeAll(async () => {
    [pg, services] = await Promise.all([startPrivatePostgres(), createServices('dispatch_pg_outage')]);
    await migrate(pg.url, logger);
    // No array-type lookup on connect: stopping the server while a connection starts would otherwise
    // raise an unhandled rejection inside the driver (porsager/postgres#1192, #1223).
    sql = postgres(pg.url, { max: 10, onnotice: () => undefined, fetch_types: false });
    await resetState(services);
  }, 120_000);
  afterAll(async () => {
    await sql?.end({ timeout: 1 });
    await pg?.destroy();
    await services?.cleanup();
  }, 120_000);

  test('claims pause with backoff, the confirmed batch is recorded once the database is back, no crash', async () => {
    await insertTasks(sql, 600);
    const captured = capturingLogger();
    // Two flags: the first batch to reach the hook stops the server, and the test waits until that
    // stop has finished before it starts the server again (a start racing the stop made the hook
    // throw, failing the batch and leaving its confirmed tasks to their 600 s leases).
    let stopRequested = false;
    let stopped = false;
    const d = await startDispatcher(
      { sql, vhost: services.vhost },
      {
        // Leases outlast the outage even on a loaded machine: the batch confirmed before it must be
        // recorded, not re-claimed (past its lease it would go out again, at-least-once).
        config: { batchSize: 200, leaseSeconds: 600 },
        logger: captured.logger,
        hooks: {
          async beforeRecord() {
            if (stopRequested) return;
            stopRequested = true;
            await pg.stop();
            stopped = true;
          },
        },
      },
    );
    running.push(d);
    await eventually('the database stopped', () => stopped, { timeoutMs: 30_000 });
    // Both paths meet the outage: the record of the confirmed batch retries, claims pause.
    await eventually(
      'a failed record',
      () => captured.messages.includes('could not record confirmed tasks; retrying'),
      { timeoutMs: 30_000 },
    );
    await eventually('claims paused', () => d.dispatcher.stats().paused === 'database', {
      timeoutMs: 30_000,
    });
    await pg.start();
    // The check reads through a pool opened after the restart: the shared pool may still hold a
    // connection the restart terminated, whose first query fails (57P01) however healthy the server is.
    const check = postgres(pg.url, { max: 2, onnotice: () => undefined, fetch_types: false });
    const { rows, messages } = await expectAllSentWithTheirMessages(check, services.vhost.url, 600)
      .finally(() => check.end({ timeout: 1 }))
      .catch((err) => {
        throw new Error(
          `${err}; dispatcher ${JSON.stringify(d.dispatcher.stats())}; log: ${captured.messages.slice(-40).join(' | ')}`,
        );
      });
    // The batch confirmed before the outage was recorded afterwards, not re-sent: one message each.
    expect(messages).toHaveLength(600);
    expect(rows.every((r) => r.attempts === 1)).toBe(true);
    expect(d.dispatcher.stats()).toMatchObject({ running: true, paused: undefined });
  }, 180_000);
});
