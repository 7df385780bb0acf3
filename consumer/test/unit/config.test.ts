import { ConfigError } from '@task-pipeline/common';
import { ALL_WORK_QUEUES } from '@task-pipeline/rabbitmq/contract';
import { describe, expect, test } from 'vitest';
import { loadConfig, MAX_PREFETCHED_BYTES, MAX_PROCESSING_TIME_MS } from '../../src/config.js';

const token = { STATUS_API_TOKEN: 'a-long-enough-test-token' };

function errorOf(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  test('applies the contract defaults (PROTOCOL §8)', () => {
    const config = loadConfig(token);
    expect(config).toMatchObject({
      amqpUrl: 'amqp://guest:guest@127.0.0.1:5672',
      producerUrl: 'http://127.0.0.1:3000',
      workerQueues: ALL_WORK_QUEUES,
      workerPrefetch: 256,
      processingTimeMs: 100,
      failureRate: 0.1,
      failureSeed: 'task-pipeline',
      maxRetries: 3,
      retryDelaysSeconds: [1, 5, 30],
      reporterEnabled: true,
      reportBatchSize: 1000,
      reportBatchMs: 0,
      healthPort: 3001,
      shutdownGraceMs: 8000,
      logLevel: 'info',
    });
  });

  test('parses lists, numbers and booleans', () => {
    const config = loadConfig({
      ...token,
      WORKER_QUEUES: ' tasks.high ',
      RETRY_DELAYS_SECONDS: '2, 10',
      FAILURE_RATE: '0.3',
      REPORTER_ENABLED: 'false',
      HEALTH_PORT: '0',
    });
    expect(config.workerQueues).toEqual(['tasks.high']);
    expect(config.retryDelaysSeconds).toEqual([2, 10]);
    expect(config.failureRate).toBe(0.3);
    expect(config.reporterEnabled).toBe(false);
    expect(config.healthPort).toBe(0);
  });

  test('treats empty strings as unset, as compose passes `VAR=` through', () => {
    expect(loadConfig({ ...token, WORKER_QUEUES: '', MAX_RETRIES: '' }).maxRetries).toBe(3);
  });

  test.each([
    [{}, 'STATUS_API_TOKEN'],
    [{ ...token, WORKER_QUEUES: 'tasks.urgent' }, 'WORKER_QUEUES'],
    [{ ...token, WORKER_QUEUES: 'tasks.high,tasks.high' }, 'WORKER_QUEUES'],
    [{ ...token, FAILURE_RATE: '1.5' }, 'FAILURE_RATE'],
    [{ ...token, FAILURE_RATE: 'often' }, 'FAILURE_RATE'],
    [{ ...token, RETRY_DELAYS_SECONDS: '1,0' }, 'RETRY_DELAYS_SECONDS'],
    [{ ...token, RETRY_DELAYS_SECONDS: '1.5' }, 'RETRY_DELAYS_SECONDS'],
    [{ ...token, REPORT_BATCH_SIZE: '1001' }, 'REPORT_BATCH_SIZE'],
    [{ ...token, REPORTER_ENABLED: 'maybe' }, 'REPORTER_ENABLED'],
    [{ ...token, AMQP_URL: 'http://broker' }, 'AMQP_URL'],
    [{ ...token, PRODUCER_URL: 'not a url' }, 'PRODUCER_URL'],
    [{ ...token, LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
    [{ ...token, PROCESSING_TIME_MS: String(MAX_PROCESSING_TIME_MS + 1) }, 'PROCESSING_TIME_MS'],
    [{ ...token, PROCESSING_TIME_MS: '3600000' }, 'PROCESSING_TIME_MS'],
    [{ ...token, WORKER_PREFETCH: '1366' }, 'WORKER_PREFETCH'],
    [{ ...token, WORKER_PREFETCH: '4097', WORKER_QUEUES: 'tasks.high' }, 'WORKER_PREFETCH'],
  ])('rejects %o naming %s in one line', (env, variable) => {
    const message = errorOf(env as Record<string, string>);
    expect(message).toContain(`${variable}:`);
    expect(message).not.toContain('\n');
  });

  test('refuses a processing time that would outlast the broker consumer timeout, and says why', () => {
    expect(
      loadConfig({ ...token, PROCESSING_TIME_MS: String(MAX_PROCESSING_TIME_MS) }).processingTimeMs,
    ).toBe(MAX_PROCESSING_TIME_MS);
    const message = errorOf({ ...token, PROCESSING_TIME_MS: '1800000' });
    expect(message).toMatch(/PROCESSING_TIME_MS: must be at most 900000 .*consumer timeout/);
  });

  test('bounds WORKER_PREFETCH × queues × the largest work message, naming the largest that fits', () => {
    // 256 MiB / (3 queues × 64 KiB) = 1,365; with one queue 4,096.
    expect(MAX_PREFETCHED_BYTES).toBe(256 * 2 ** 20);
    expect(loadConfig({ ...token, WORKER_PREFETCH: '1365' }).workerPrefetch).toBe(1365);
    expect(loadConfig({ ...token, WORKER_PREFETCH: '4096', WORKER_QUEUES: 'tasks.low' }).workerPrefetch).toBe(
      4096,
    );
    const message = errorOf({ ...token, WORKER_PREFETCH: '65535' });
    expect(message).toContain('WORKER_PREFETCH: 65535 deliveries × 3 queue(s) × 64 KiB can hold 12288 MiB');
    expect(message).toContain('at most 1365 with 3 queue(s)');
  });
});
