// Shutdown while the broker is cut off by a partition (a TCP proxy that holds every byte): the broker
// never answers the consumer cancels, and the shutdown must still end within SHUTDOWN_GRACE_MS instead
// of waiting for it. Unacked deliveries go back to their queues once the connection dies, as always.

import { eventually } from '@task-pipeline/testkit/eventually';
import { useTestVhost } from '@task-pipeline/testkit/hooks';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type PausableProxy, startPausableProxy } from '../../../scripts/src/chaos/proxy.js';
import { type FakeProducer, startFakeProducer } from '../support/fake-producer.js';
import { startTestConsumer, testConfig } from '../support/harness.js';

const vhost = useTestVhost('consumer_shutdown_partition');
let proxy: PausableProxy;
let producer: FakeProducer;

beforeAll(async () => {
  producer = await startFakeProducer();
  proxy = await startPausableProxy('127.0.0.1', 5672);
});
afterAll(async () => {
  await proxy?.close();
  await producer?.close();
});

describe('shutdown under a partition', () => {
  test('ends within SHUTDOWN_GRACE_MS although the broker answers nothing', async () => {
    const url = new URL(vhost.url);
    url.port = String(proxy.port);
    const graceMs = 3_000;
    const c = await startTestConsumer(
      testConfig({ amqpUrl: url.toString(), producerUrl: producer.url, shutdownGraceMs: graceMs }),
    );
    await eventually('ready', () => c.readiness().ready === true);
    proxy.pause();
    const started = performance.now();
    await c.close();
    const tookMs = performance.now() - started;
    // The grace period is the bound the operator set; dropping the sockets may take a moment after it.
    expect(tookMs).toBeLessThan(graceMs + 1_000);
    expect(c.logs.some((l) => l.msg === 'RabbitMQ did not answer the close; dropping the connection')).toBe(
      true,
    );
    proxy.resume();
  }, 60_000);
});
