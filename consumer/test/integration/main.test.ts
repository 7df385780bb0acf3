// consumer/src/main.ts as a process: a bad variable stops the boot with one line naming it; SIGTERM
// stops it gracefully, returning unfinished work to the queue; the health port answers meanwhile.
import { type ResultMessage, WORK_QUEUES } from '@task-pipeline/rabbitmq';
import { eventually } from '@task-pipeline/testkit/eventually';
import { useTestVhost } from '@task-pipeline/testkit/hooks';
import { startService } from '@task-pipeline/testkit/processes';
import amqp from 'amqplib';
import { describe, expect, test } from 'vitest';
import { drainQueue, expectCountSettles, publishWork, TEST_TOKEN, workMessage } from '../support/harness.js';
import { counterFromText, scrape, spawnConsumer } from '../support/processes.js';

const vhost = useTestVhost('consumer_main');

describe('consumer process', () => {
  test.each([
    [{ STATUS_API_TOKEN: '' }, 'STATUS_API_TOKEN'],
    [{ STATUS_API_TOKEN: TEST_TOKEN, FAILURE_RATE: '2' }, 'FAILURE_RATE'],
    [{ STATUS_API_TOKEN: TEST_TOKEN, WORKER_QUEUES: 'tasks.urgent' }, 'WORKER_QUEUES'],
  ])('exits 1 with one line naming the bad variable (%o)', async (env, variable) => {
    const service = startService('consumer', 'consumer/src/main.ts', env);
    const { code } = await service.exited;
    expect(code).toBe(1);
    expect(service.lines()).toHaveLength(1);
    expect(service.lines()[0]).toMatch(new RegExp(`^consumer: invalid configuration: .*${variable}:`));
  });

  test('SIGTERM: stops consuming, finishes or returns in-flight work, exits 0 within the grace period', async () => {
    const consumer = await spawnConsumer({
      AMQP_URL: vhost.url,
      STATUS_API_TOKEN: TEST_TOKEN,
      // Nobody listens there: results stay in tasks.results, which is what this test counts.
      PRODUCER_URL: 'http://127.0.0.1:9',
      REPORTER_ENABLED: 'false',
      WORKER_QUEUES: 'tasks.low',
      WORKER_PREFETCH: '4',
      PROCESSING_TIME_MS: '300',
      FAILURE_RATE: '0',
      SHUTDOWN_GRACE_MS: '4000',
    });
    await eventually('ready', async () => (await fetch(`${consumer.healthUrl}/health/ready`)).status === 200);
    expect((await fetch(`${consumer.healthUrl}/health/live`)).status).toBe(200);
    const ready = await fetch(`${consumer.healthUrl}/health/ready`);
    expect(await ready.json()).toMatchObject({
      ready: true,
      broker: {
        consume: { connected: true, channels: { worker: true } },
        publish: { connected: true, blocked: false, channels: { publish: true } },
      },
      worker: { queues: ['tasks.low'] },
      reporter: 'disabled',
    });
    const missing = await fetch(`${consumer.healthUrl}/nope`);
    expect(missing.status).toBe(404);
    expect(missing.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const metrics = await scrape(consumer.healthUrl);
    for (const name of [
      'consumer_tasks_processed_total',
      'consumer_tasks_failed_total',
      'consumer_tasks_retried_total',
      'consumer_tasks_dead_lettered_total',
      'consumer_messages_parked_total',
      'consumer_reports_total',
      'consumer_processing_duration_seconds',
      'consumer_report_duration_seconds',
      'consumer_ready 1',
    ]) {
      expect(metrics).toContain(name);
    }
    const connection = await amqp.connect(vhost.url);
    try {
      const channel = await connection.createConfirmChannel();
      const messages = Array.from({ length: 40 }, () => workMessage({ priority: 'low' }));
      for (const m of messages) await publishWork(channel, m);
      await eventually('work under way', async () => {
        return counterFromText(await scrape(consumer.healthUrl), 'consumer_tasks_processed_total') >= 4;
      });
      const { code, signal } = await consumer.stop();
      expect({ code, signal }).toEqual({ code: 0, signal: null });
      expect(consumer.lines().some((l) => l.includes('consumer stopped'))).toBe(true);
      // Every message is either processed (its result in tasks.results, many to a message) or back
      // in its queue.
      const results = (await drainQueue(channel, 'tasks.results')).flatMap(
        (m) => (JSON.parse(m.content.toString('utf8')) as ResultMessage).results,
      );
      expect(results.length).toBeGreaterThan(0);
      const left = async () => (await channel.checkQueue(WORK_QUEUES.low)).messageCount;
      await expectCountSettles(left, 40 - results.length);
    } finally {
      await connection.close();
    }
  });
});
