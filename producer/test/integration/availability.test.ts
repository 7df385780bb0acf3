// Readiness follows PostgreSQL only: with the broker away tasks are still accepted (they wait in the
// outbox) and the producer is ready; with the database away requests get 503 problem+json, not 500.
import { randomUUID } from 'node:crypto';
import { freePort } from '@task-pipeline/testkit/private-process';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildApp, type ProducerApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import {
  AUTH,
  type Http,
  httpClient,
  logger,
  startTestProducer,
  type TestProducer,
  TOKEN,
} from '../support/producer.js';

describe('broker unreachable', () => {
  let producer: TestProducer;
  beforeAll(async () => {
    producer = await startTestProducer('availability', { broker: 'unreachable' });
  });
  afterAll(async () => {
    await producer?.close();
  });

  test('tasks are accepted and the producer is ready; the body shows the broker down', async () => {
    const created = await producer.http('POST', '/api/v1/create-task', {
      json: { text: 'queued in the outbox' },
    });
    expect(created.status).toBe(201);
    const ready = await producer.http('GET', '/health/ready');
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({
      status: 'ready',
      checks: { database: 'up', broker: { connected: false, ready: false } },
    });
  });
});

describe('database unreachable', () => {
  let app: ProducerApp;
  let http: Http;
  beforeAll(async () => {
    // A port nothing listens on: every connection attempt is refused, as while PostgreSQL restarts.
    const port = await freePort();
    const config = loadConfig({
      DATABASE_URL: `postgres://postgres:postgres@127.0.0.1:${port}/nothing`,
      AMQP_URL: 'amqp://guest:guest@127.0.0.1:1',
      STATUS_API_TOKEN: TOKEN,
      DISPATCHER_ENABLED: 'false',
    });
    app = await buildApp(config, { logger });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address();
    if (address === null || typeof address === 'string') throw new Error('no TCP address');
    http = httpClient(`http://127.0.0.1:${address.port}`);
  });
  afterAll(async () => {
    await app?.close();
  });

  test('routes answer 503 problem+json with Retry-After; liveness stays 200', async () => {
    const replies = [
      await http('POST', '/api/v1/create-task', { json: { text: 'x' } }),
      await http('GET', `/api/v1/get-task-data?taskId=${randomUUID()}`),
      await http('PUT', `/api/v1/update-task-status?taskId=${randomUUID()}&taskStatus=success`, {
        headers: AUTH,
      }),
      await http('PUT', '/api/v1/update-task-statuses', {
        json: { reports: [{ taskId: randomUUID(), taskStatus: 'success' }] },
        headers: AUTH,
      }),
    ];
    for (const reply of replies) {
      expect(reply.status, reply.text).toBe(503);
      expect(reply.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(reply.headers['retry-after']).toBe('2');
      expect(reply.body).toMatchObject({
        status: 503,
        detail: expect.stringMatching(/database is unavailable/),
      });
      expect(reply.text).not.toMatch(/ECONNREFUSED|127\.0\.0\.1/);
    }
    expect((await http('GET', '/health/live')).status).toBe(200);
  });

  test('/health/ready is 503 with the checks in the problem body', async () => {
    const ready = await http('GET', '/health/ready');
    expect(ready.status).toBe(503);
    expect(ready.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(ready.body).toMatchObject({
      status: 503,
      checks: { database: 'down', broker: { connected: false } },
    });
  });
});
