// Any bytes on any listening port: the real producer (its API port) and the real consumer (its
// HEALTH_PORT), each a process of its own, get odd request targets (absolute-form with a bad
// authority, `*`, bad percent-escapes), huge and binary request lines and odd headers as raw bytes
// over a socket. Each must answer 4xx problem+json and keep running.
import { randomBytes } from 'node:crypto';
import {
  createTestDatabase,
  createTestVhost,
  type TestDatabase,
  type TestVhost,
} from '@task-pipeline/testkit/isolation';
import { freePort } from '@task-pipeline/testkit/private-process';
import { type Service, startService, waitForHttp } from '@task-pipeline/testkit/processes';
import { sendRaw } from '@task-pipeline/testkit/raw-http';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ODD_REQUESTS, type RawService } from '../../src/fuzz/raw-arbitraries.js';

const HOST = '127.0.0.1';
let database: TestDatabase;
let vhost: TestVhost;
const services: Partial<Record<RawService, { service: Service; port: number }>> = {};

beforeAll(async () => {
  [database, vhost] = await Promise.all([createTestDatabase('ports'), createTestVhost('ports')]);
  const token = randomBytes(24).toString('hex');
  const [apiPort, healthPort] = [await freePort(), await freePort()];
  const producer = startService('ports-producer', 'producer/src/server.ts', {
    PORT: String(apiPort),
    HOST,
    DATABASE_URL: database.url,
    AMQP_URL: vhost.url,
    STATUS_API_TOKEN: token,
    DISPATCHER_ENABLED: 'false',
    LOG_LEVEL: 'warn',
  });
  const consumer = startService('ports-consumer', 'consumer/src/main.ts', {
    AMQP_URL: vhost.url,
    PRODUCER_URL: `http://${HOST}:${apiPort}`,
    STATUS_API_TOKEN: token,
    HEALTH_PORT: String(healthPort),
    LOG_LEVEL: 'warn',
  });
  services.producer = { service: producer, port: apiPort };
  services.consumer = { service: consumer, port: healthPort };
  await Promise.all([
    waitForHttp(producer, `http://${HOST}:${apiPort}/health/ready`, 120_000),
    waitForHttp(consumer, `http://${HOST}:${healthPort}/health/ready`, 120_000),
  ]);
}, 180_000);

afterAll(async () => {
  await Promise.all(Object.values(services).map((s) => s?.service.stop()));
  await Promise.all([database?.drop(), vhost?.drop()]);
});

describe.each(['producer', 'consumer'] as const)('%s port', (name) => {
  test.each(ODD_REQUESTS.map((r) => [r.label, r] as const))(
    '%s: 4xx problem+json, and the process keeps serving',
    async (_label, { bytes, whole }) => {
      const { service, port } = services[name] as { service: Service; port: number };
      const reply = await sendRaw(HOST, port, bytes, { endAfterWrite: whole === false });
      const context = `${name} answered ${reply.status ?? `nothing (${reply.ending})`}: ${reply.body
        .toString()
        .slice(0, 300)}\n${service.tail()}`;
      expect(reply.status, context).toBeGreaterThanOrEqual(400);
      expect(reply.status, context).toBeLessThan(500);
      expect(reply.headers['content-type'], context).toMatch(/^application\/problem\+json/);
      const problem = JSON.parse(reply.body.toString()) as { status: number; title: string };
      expect(problem.status, context).toBe(reply.status);
      // The same port still answers, and the process behind it never exited.
      const live = await sendRaw(HOST, port, `GET /health/live HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
      expect(live.status, context).toBe(200);
      expect(service.exitCode(), context).toBeUndefined();
    },
  );
});
