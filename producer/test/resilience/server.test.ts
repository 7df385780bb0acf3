// The real entry point as operators run it, from source: configuration errors stop it with exit 1 and
// the variable's name; two replicas migrate one fresh database under the advisory lock; SIGTERM and
// SIGINT close it gracefully with exit 0, also while every database connection has gone silent under a
// request and the dispatcher. It runs through the test kit's spawner (`node --import tsx`, see its notes).
import { randomUUID } from 'node:crypto';
import { eventually } from '@task-pipeline/testkit/eventually';
import {
  createTestDatabase,
  createTestVhost,
  type TestDatabase,
  type TestVhost,
} from '@task-pipeline/testkit/isolation';
import { freePort } from '@task-pipeline/testkit/private-process';
import { type Service, startService, waitForHttp } from '@task-pipeline/testkit/processes';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startFreezingProxy } from '../support/freezing-proxy.js';
import { TOKEN } from '../support/producer.js';

const GRACE_MS = 8000;

/** The producer from source, in a clean environment: only what the test passes, so the shell's variables cannot leak in. */
function startServer(env: Record<string, string>): Service {
  return startService('producer', 'producer/src/server.ts', env, { inheritEnv: false });
}

function waitUntilReady(port: number, server: Service): Promise<void> {
  return waitForHttp(server, `http://127.0.0.1:${port}/health/ready`);
}

describe('configuration errors', () => {
  test.each([
    ['STATUS_API_TOKEN missing', {}, 'STATUS_API_TOKEN'],
    ['PORT not a number', { STATUS_API_TOKEN: TOKEN, PORT: 'eighty' }, 'PORT'],
    ['DISPATCH_ORDER unknown', { STATUS_API_TOKEN: TOKEN, DISPATCH_ORDER: 'lifo' }, 'DISPATCH_ORDER'],
    [
      'a lease below 3 × confirm timeout',
      { STATUS_API_TOKEN: TOKEN, DISPATCH_LEASE_S: '10' },
      'DISPATCH_LEASE_S',
    ],
    [
      'a lease that leaves dispatcher statements under 5 s',
      { STATUS_API_TOKEN: TOKEN, DISPATCH_LEASE_S: '6', DISPATCH_CONFIRM_TIMEOUT_MS: '1000' },
      'DISPATCH_LEASE_S',
    ],
  ])('%s → exit 1 with one line naming the variable', async (_name, env, variable) => {
    const server = startServer(env);
    const { code } = await server.exited;
    expect(code).toBe(1);
    const lines = server.lines();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^producer: invalid configuration: /);
    expect(lines[0]).toContain(variable);
  });
});

describe('lifecycle', () => {
  let db: TestDatabase;
  let vhost: TestVhost;
  const running: Service[] = [];

  beforeAll(async () => {
    [db, vhost] = await Promise.all([createTestDatabase('server'), createTestVhost('server')]);
  });
  afterAll(async () => {
    for (const server of running) server.kill('SIGKILL');
    await Promise.all([db?.drop(), vhost?.drop()]);
  });

  test('two replicas start on a fresh database, serve, and stop on SIGTERM / SIGINT with exit 0', async () => {
    const ports = [await freePort(), await freePort()];
    const servers = ports.map((port) =>
      startServer({
        DATABASE_URL: db.url,
        AMQP_URL: vhost.url,
        STATUS_API_TOKEN: TOKEN,
        PORT: String(port),
        HOST: '127.0.0.1',
        SHUTDOWN_GRACE_MS: String(GRACE_MS),
        LOG_LEVEL: 'info',
      }),
    );
    running.push(...servers);
    await Promise.all(ports.map((port, i) => waitUntilReady(port, servers[i] as Service)));

    // Both migrated under the advisory lock: the migration is recorded once, the table serves both.
    const created = await request(`http://127.0.0.1:${ports[0]}/api/v1/create-task`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ text: 'served' }),
    });
    expect(created.statusCode).toBe(201);
    const { taskId } = (await created.body.json()) as { taskId: string };
    const read = await request(`http://127.0.0.1:${ports[1]}/api/v1/get-task-data?taskId=${taskId}`);
    expect(read.statusCode).toBe(200);
    await read.body.dump();
    const logs = servers.map((s) => s.output()).join('\n');
    expect(logs.match(/"msg":"database migrated"/g)).toHaveLength(1);
    expect(logs.match(/"msg":"database schema is current"/g)).toHaveLength(1);

    // close-with-grace exits 1 when closing outlasts SHUTDOWN_GRACE_MS, so exit 0 means it finished in time.
    const [first, second] = servers as [Service, Service];
    first.child.kill('SIGTERM');
    second.child.kill('SIGINT');
    for (const [server, signal] of [
      [first, 'SIGTERM'],
      [second, 'SIGINT'],
    ] as const) {
      const { code } = await server.exited;
      expect(code, server.output()).toBe(0);
      expect(server.output()).toContain(`"signal":"${signal}","msg":"shutting down"`);
      expect(server.output()).toContain('"msg":"stopped"');
    }
  });

  test('SIGTERM while every database connection has gone silent under a request: exit 0 in time', async () => {
    const proxy = await startFreezingProxy(new URL(db.url));
    try {
      const url = new URL(db.url);
      url.host = `127.0.0.1:${proxy.port}`;
      const port = await freePort();
      const server = startServer({
        DATABASE_URL: url.toString(),
        AMQP_URL: vhost.url,
        STATUS_API_TOKEN: TOKEN,
        PORT: String(port),
        HOST: '127.0.0.1',
        SHUTDOWN_GRACE_MS: String(GRACE_MS),
        LOG_LEVEL: 'info',
      });
      running.push(server);
      await waitUntilReady(port, server);
      // An idle API connection (a lookup), beside the dispatcher's and the LISTEN connection; then
      // nothing answers on any of them, and a create is sent into the silence.
      const lookup = await request(`http://127.0.0.1:${port}/api/v1/get-task-data?taskId=${randomUUID()}`);
      await lookup.body.dump();
      expect(lookup.statusCode).toBe(404);
      proxy.freeze();
      const swallowed = proxy.swallowedBytes();
      const stuck = request(`http://127.0.0.1:${port}/api/v1/create-task`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ text: 'into the silence' }),
      }).then(
        async (res) => {
          await res.body.dump();
          return res.statusCode;
        },
        (err: unknown) => err,
      );
      await eventually(
        'the create to reach the silent connection',
        () => proxy.swallowedBytes() !== swallowed,
      );

      server.child.kill('SIGTERM');
      const { code } = await server.exited;
      expect(code, server.output()).toBe(0);
      expect(server.output()).toContain('"msg":"stopped"');
      // The request was answered with a 503 or had its connection closed: never left hanging.
      const outcome = await stuck;
      if (typeof outcome === 'number') expect(outcome).toBe(503);
    } finally {
      await proxy.close();
    }
  });
});
