// Both services' /metrics pass `promtool check metrics` (Prometheus's own parser and lint: no gauge
// named *_total, counters ending in _total, help text, units in names). Scraped from the real
// processes after tasks went through every outcome (success, retry, dead letter), so labelled series
// are there too. scripts/test.sh installs promtool (Debian's prometheus package) when it can.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  createTestDatabase,
  createTestVhost,
  type TestDatabase,
  type TestVhost,
} from '@task-pipeline/testkit/isolation';
import { freePort } from '@task-pipeline/testkit/private-process';
import { type Service, startService, waitForHttp } from '@task-pipeline/testkit/processes';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type ApiClient, createApiClient } from '../../src/cli/api-client.js';
import { createTasks, watchTasks } from '../../src/cli/task-runner.js';

// scripts/test.sh sets this only when promtool is missing and cannot be installed on this machine.
const skipReason = spawnSync('promtool', ['--version']).error ? process.env.PROMTOOL_UNAVAILABLE : undefined;
if (skipReason) console.warn(`metrics lint: skipped: ${skipReason}`);

function promtoolCheck(text: string): { status: number | null; output: string } {
  const run = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (run.error) {
    throw new Error(
      `promtool is not installed (${run.error.message}): scripts/test.sh installs Debian's prometheus ` +
        'package when run as root with apt-get; elsewhere: apt-get install prometheus',
    );
  }
  return { status: run.status, output: `${run.stdout}${run.stderr}`.trim() };
}

describe.skipIf(skipReason)('promtool check metrics', () => {
  let database: TestDatabase;
  let vhost: TestVhost;
  let api: ApiClient;
  const urls: Record<'producer' | 'consumer', string> = { producer: '', consumer: '' };
  const services: Service[] = [];

  beforeAll(async () => {
    [database, vhost] = await Promise.all([createTestDatabase('metrics'), createTestVhost('metrics')]);
    const token = randomBytes(24).toString('hex');
    const [apiPort, healthPort] = [await freePort(), await freePort()];
    urls.producer = `http://127.0.0.1:${apiPort}`;
    urls.consumer = `http://127.0.0.1:${healthPort}`;
    const producer = startService('metrics-producer', 'producer/src/server.ts', {
      PORT: String(apiPort),
      HOST: '127.0.0.1',
      DATABASE_URL: database.url,
      AMQP_URL: vhost.url,
      STATUS_API_TOKEN: token,
      LOG_LEVEL: 'warn',
    });
    services.push(producer);
    await waitForHttp(producer, `${urls.producer}/health/ready`, 120_000);
    const consumer = startService('metrics-consumer', 'consumer/src/main.ts', {
      AMQP_URL: vhost.url,
      PRODUCER_URL: urls.producer,
      STATUS_API_TOKEN: token,
      HEALTH_PORT: String(healthPort),
      PROCESSING_TIME_MS: '0',
      // Every outcome: successes, retries and dead letters.
      FAILURE_RATE: '0.5',
      MAX_RETRIES: '1',
      RETRY_DELAYS_SECONDS: '1',
      LOG_LEVEL: 'warn',
    });
    services.push(consumer);
    await waitForHttp(consumer, `${urls.consumer}/health/ready`, 120_000);
    api = createApiClient(urls.producer);
    const tasks = await createTasks(api, 30, { label: 'metrics lint' });
    const done = await watchTasks(
      api,
      tasks.map((t) => t.taskId),
      { timeoutMs: 60_000 },
    );
    expect(done.complete, JSON.stringify(done.tally)).toBe(true);
  }, 240_000);

  afterAll(async () => {
    await api?.close();
    await Promise.all(services.map((s) => s.stop()));
    await Promise.all([database?.drop(), vhost?.drop()]);
  });

  test.each(['producer', 'consumer'] as const)(
    '%s: /metrics passes, labelled series included',
    async (name) => {
      const response = await fetch(`${urls[name]}/metrics`);
      expect(response.status).toBe(200);
      const text = await response.text();
      const counter = name === 'producer' ? 'tasks_dispatched_total{' : 'consumer_tasks_retried_total{';
      expect(text, 'a labelled series after real work').toContain(counter);
      const { status, output } = promtoolCheck(text);
      expect(output, `promtool on ${name}'s /metrics`).toBe('');
      expect(status).toBe(0);
    },
  );
});
