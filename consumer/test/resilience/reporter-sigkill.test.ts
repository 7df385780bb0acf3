// A reporter SIGKILLed after the producer accepted its batch but before it could ack (PROTOCOL §9):
// the broker redelivers those results, another replica reports them again, and the producer treats
// them as same-status no-ops. No task changes its result.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { eventually } from '@task-pipeline/testkit/eventually';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { StatusReport } from '../../src/report-messages.js';
import { simulateOutcome } from '../../src/simulate-processing.js';
import { type StartedConsumer, startTestConsumer, TEST_TOKEN, testConfig } from '../support/harness.js';
import { type ConsumerProcess, spawnConsumer } from '../support/processes.js';
import { type RealProducer, startRealProducer, type TaskRow } from '../support/real-producer.js';

const TASKS = 80;
const policy = { failureSeed: 'sigkill', failureRate: 0.3 };

interface Exchange {
  reports: StatusReport[];
  results: { taskId: string; status: number; stale?: boolean }[];
}

let producer: RealProducer;
let proxy: Server;
let proxyUrl: string;
const exchanges: Exchange[] = [];
let killTarget: ConsumerProcess | undefined;
let killedBatch: StatusReport[] | undefined;
let survivor: StartedConsumer | undefined;

beforeAll(async () => {
  producer = await startRealProducer('consumer_sigkill');
  // Between reporters and the producer: forwards each batch, and the first time it is armed, kills
  // the reporter once the producer has answered (the batch is applied) instead of replying.
  proxy = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks);
      const upstream = await fetch(`${producer.url}${req.url}`, {
        method: req.method,
        headers: { 'content-type': 'application/json', authorization: req.headers.authorization ?? '' },
        body,
      });
      const text = await upstream.text();
      const reports = (JSON.parse(body.toString('utf8')) as { reports: StatusReport[] }).reports;
      if (upstream.status === 200) exchanges.push({ reports, results: JSON.parse(text).results });
      if (killTarget && !killedBatch && upstream.status === 200) {
        killedBatch = reports;
        process.kill(killTarget.pid, 'SIGKILL');
        res.destroy();
        return;
      }
      res
        .writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? '' })
        .end(text);
    });
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await survivor?.close();
  if (killTarget?.child.exitCode === null && killTarget.child.signalCode === null) await killTarget.stop();
  await new Promise((r) => proxy?.close(r));
  await producer?.close();
});

describe('reporter SIGKILLed between the producer’s answer and its acks', () => {
  test('redelivered reports are no-ops: no task changes its result', async () => {
    await Promise.all(Array.from({ length: TASKS }, (_, i) => producer.createTask(`kill ${i}`)));
    await eventually('all dispatched', async () => (await producer.counts()).sent === TASKS);

    killTarget = await spawnConsumer({
      AMQP_URL: producer.vhost.url,
      PRODUCER_URL: proxyUrl,
      STATUS_API_TOKEN: TEST_TOKEN,
      FAILURE_SEED: policy.failureSeed,
      FAILURE_RATE: String(policy.failureRate),
      MAX_RETRIES: '1',
      RETRY_DELAYS_SECONDS: '1',
      PROCESSING_TIME_MS: '5',
      REPORT_BATCH_SIZE: '50',
      REPORT_BATCH_MS: '200',
    });
    const { signal } = await killTarget.exited;
    expect(signal).toBe('SIGKILL');
    const killed = killedBatch ?? [];
    expect(killed.length).toBeGreaterThan(0);
    const killedIds = new Set(killed.map((r) => r.taskId));
    const snapshot = new Map<string, TaskRow>(
      (await producer.tasks()).filter((t) => killedIds.has(t.taskId)).map((t) => [t.taskId, t]),
    );
    // The producer applied the batch: those tasks are terminal already.
    for (const report of killed) expect(snapshot.get(report.taskId)?.status).toBe(report.taskStatus);

    const before = exchanges.length;
    survivor = await startTestConsumer(
      testConfig({
        amqpUrl: producer.vhost.url,
        producerUrl: proxyUrl,
        ...policy,
        maxRetries: 1,
        retryDelaysSeconds: [1],
      }),
    );
    await eventually('every task terminal', async () => {
      const counts = await producer.counts();
      return (counts.success ?? 0) + (counts.error ?? 0) === TASKS;
    });
    await eventually('the killed batch reported again', () => {
      const again = new Set(exchanges.slice(before).flatMap((e) => e.reports.map((r) => r.taskId)));
      return [...killedIds].every((id) => again.has(id));
    });

    // Reported again, answered 200 (a same-status no-op or stale), never 409...
    for (const exchange of exchanges.slice(before)) {
      exchange.results.forEach((result) => {
        if (killedIds.has(result.taskId)) expect(result.status).toBe(200);
      });
    }
    // ...and the rows did not change at all.
    const after = new Map((await producer.tasks()).map((t) => [t.taskId, t]));
    for (const [taskId, row] of snapshot) expect(after.get(taskId)).toEqual(row);
    // Every result is the one the hash decides, whichever replica reported it.
    for (const task of after.values()) {
      const fails = (retryCount: number) =>
        !simulateOutcome(policy, { taskId: task.taskId, attempt: task.attempts, retryCount }).ok;
      expect(task.status).toBe(fails(0) && fails(1) ? 'error' : 'success');
    }
  });
});
