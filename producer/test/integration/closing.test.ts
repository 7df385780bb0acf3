// Shutdown with a client still connected: a request that arrives on a kept-alive connection after
// close began gets 503 problem+json with Connection: close, while the request already in flight
// finishes normally.
import { connect } from 'node:net';
import { eventually } from '@task-pipeline/testkit/eventually';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startTestProducer, type TestProducer } from '../support/producer.js';

let producer: TestProducer;

beforeAll(async () => {
  // The create below waits on a table lock for as long as the test needs: no lock timeout, statement
  // deadline or drain cut may answer it first.
  producer = await startTestProducer('closing', {
    env: { API_LOCK_TIMEOUT_MS: '600000', API_STATEMENT_TIMEOUT_MS: '600000', SHUTDOWN_GRACE_MS: '600000' },
  });
});
afterAll(async () => {
  await producer?.close();
});

test('a request arriving after close began: 503 problem+json; the one in flight completes', async () => {
  const { port } = new URL(producer.baseUrl);
  // The table lock keeps the first request (a create) in flight while shutdown begins.
  const holder = await producer.sql.reserve();
  await holder`begin`;
  await holder`lock table tasks in access exclusive mode`;

  const socket = connect(Number(port), '127.0.0.1');
  let received = '';
  socket.setEncoding('utf8').on('data', (chunk: string) => {
    received += chunk;
  });
  const ended = new Promise((resolve) => socket.on('close', resolve));
  const body = JSON.stringify({ text: 'in flight at shutdown' });
  socket.write(
    `POST /api/v1/create-task HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  await eventually('the create to wait on the lock', async () => {
    const [row] = await producer.sql<{ n: number }[]>`
      select count(*)::int as n from pg_stat_activity
       where datname = current_database() and wait_event_type = 'Lock'`;
    return (row?.n ?? 0) > 0;
  });

  const closed = producer.app.close();
  await eventually('the server to stop listening', () => !producer.app.server.listening);
  socket.write('GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n');
  // Responses leave in request order, so the answer to the second follows the first's.
  await holder`rollback`;
  holder.release();
  await closed;
  await ended;

  const [first, second] = received.split(/(?=HTTP\/1\.1 )/);
  expect(first).toMatch(/^HTTP\/1\.1 201 /);
  expect(second).toMatch(/^HTTP\/1\.1 503 /);
  expect(second).toMatch(/content-type: application\/problem\+json/i);
  expect(second).toMatch(/connection: close/i);
  expect(second).toMatch(/retry-after: \d+/i);
  const problem = JSON.parse(second?.slice(second.indexOf('\r\n\r\n') + 4) ?? '') as Record<string, unknown>;
  expect(problem).toMatchObject({ status: 503, detail: expect.stringMatching(/shutting down/) });
});
