// Wake-up across replicas (PROTOCOL §6.5) through two real producers on one database and one vhost:
// with a 60 s poll, only the NOTIFY sent by the creating replica can make the other one dispatch fast.

import { eventually } from '@task-pipeline/testkit/eventually';
import type { FastifyBaseLogger } from 'fastify';
import { afterAll, describe, expect, test } from 'vitest';
import { buildApp, type ProducerApp } from '../../../src/app.js';
import { loadConfig } from '../../../src/config.js';
import { NOTIFY_MIN_INTERVAL_MS, TASKS_CREATED_CHANNEL } from '../../../src/dispatch/wakeup.js';
import { drainQueues, logger, statusCounts, useServices } from '../../support/dispatch.js';

const apps: ProducerApp[] = [];

const services = useServices('dispatch_wakeup');
afterAll(async () => {
  for (const app of apps.splice(0)) await app.close();
});

async function startProducer(env: Record<string, string>): Promise<{ app: ProducerApp; url: string }> {
  const config = loadConfig({
    DATABASE_URL: services.db.url,
    AMQP_URL: services.vhost.url,
    STATUS_API_TOKEN: 'wakeup-test-token-0123456789',
    DISPATCH_POLL_INTERVAL_MS: '60000',
    ...env,
  });
  const app = await buildApp(config, { logger: logger as FastifyBaseLogger });
  apps.push(app);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  return { app, url: `http://127.0.0.1:${address.port}` };
}

async function createTask(url: string, text: string): Promise<string> {
  const response = await fetch(`${url}/api/v1/create-task`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ text }),
  });
  expect(response.status).toBe(201);
  return ((await response.json()) as { taskId: string }).taskId;
}

async function statusOf(id: string): Promise<string | undefined> {
  const [row] = await services.sql<{ status: string }[]>`SELECT status FROM tasks WHERE id = ${id}`;
  return row?.status;
}

describe('cross-replica wake-up', () => {
  test('a task created on A (dispatcher off) is published by B within 10 s although B polls every 60 s', async () => {
    const a = await startProducer({ DISPATCHER_ENABLED: 'false' });
    const b = await startProducer({ DISPATCHER_ENABLED: 'true' });
    await b.app.broker.waitForConnect();
    // B has found the backlog empty and now sleeps until a wake-up or its 60 s poll.
    await eventually('B dispatching', () => b.app.dispatcher.stats().running, { timeoutMs: 10_000 });
    expect(a.app.dispatcher.stats()).toMatchObject({ enabled: false, running: false });

    for (const round of [1, 2]) {
      const id = await createTask(a.url, `wake up ${round}`);
      await eventually(`task ${round} sent by B`, async () => (await statusOf(id)) === 'sent', {
        timeoutMs: 10_000,
      });
      const messages = await drainQueues(services.vhost.url);
      expect(messages.map((m) => m.messageId)).toEqual([id]);
    }
    expect(b.app.dispatcher.stats().dispatched).toBe(2);
  });

  test('a burst of creates sends a handful of NOTIFYs, not one per task, and every task goes out', async () => {
    const a = apps[0];
    if (!a) throw new Error('the first test starts the producers');
    const address = a.server.address();
    if (address === null || typeof address === 'string') throw new Error('no TCP address');
    const url = `http://127.0.0.1:${address.port}`;
    const notifications: string[] = [];
    const listener = await services.sql.listen(TASKS_CREATED_CHANNEL, (payload) => {
      if (payload.startsWith('created:')) notifications.push(payload);
    });
    try {
      const started = performance.now();
      const ids = await Promise.all(Array.from({ length: 200 }, (_, i) => createTask(url, `burst ${i}`)));
      const burstMs = performance.now() - started;
      await eventually(
        'the burst sent',
        async () => (await statusCounts(services.sql)).sent === ids.length + 2,
        { timeoutMs: 30_000 },
      );
      // Rate limit: one NOTIFY per NOTIFY_MIN_INTERVAL_MS per replica at most, plus the trailing one.
      await eventually('a notification', () => notifications.length > 0, { timeoutMs: 5_000 });
      expect(notifications.length).toBeLessThanOrEqual(Math.ceil(burstMs / NOTIFY_MIN_INTERVAL_MS) + 2);
      expect(notifications.length).toBeLessThan(ids.length);
    } finally {
      await listener.unlisten();
    }
  });
});
