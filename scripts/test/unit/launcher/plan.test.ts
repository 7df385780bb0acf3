import { describe, expect, test } from 'vitest';
import { ConfigValueError, mergeEnv, parseDotEnv, planLocalRun } from '../../../src/launcher/plan.js';

describe('parseDotEnv', () => {
  test('reads NAME=value lines, skips comments and blanks, later lines win', () => {
    const text = [
      '# comment',
      '',
      'PORT=4000',
      'export LOG_LEVEL=debug',
      "FAILURE_SEED='with # hash'",
      'TEXT="quoted value"',
      'PLAIN=value # trailing comment',
      'URL=postgres://u:p@h:5432/db?sslmode=disable',
      'PORT=4001',
      'not a line',
    ].join('\n');
    expect(parseDotEnv(text)).toEqual({
      PORT: '4001',
      LOG_LEVEL: 'debug',
      FAILURE_SEED: 'with # hash',
      TEXT: 'quoted value',
      PLAIN: 'value',
      URL: 'postgres://u:p@h:5432/db?sslmode=disable',
    });
  });

  test('keeps an empty value empty', () => {
    expect(parseDotEnv('STATUS_API_TOKEN=\r\n')).toEqual({ STATUS_API_TOKEN: '' });
  });
});

describe('mergeEnv', () => {
  test('the shell wins over .env, and empty values count as unset', () => {
    expect(
      mergeEnv({ PORT: '5000', LOG_LEVEL: '', HOME: '/root' }, { PORT: '4000', LOG_LEVEL: 'debug', X: '' }),
    ).toEqual({
      PORT: '5000',
      LOG_LEVEL: 'debug',
      HOME: '/root',
    });
  });
});

describe('planLocalRun', () => {
  const token = { STATUS_API_TOKEN: 'a'.repeat(32) };

  test('defaults come from the service schemas: API on 3000, consumers on 3001 and 3002', () => {
    const plan = planLocalRun({ ...token });
    expect(plan.services.map((s) => [s.name, s.role, s.entry, s.readyUrl])).toEqual([
      ['producer', 'producer', 'producer/dist/server.js', 'http://127.0.0.1:3000/health/ready'],
      ['consumer-1', 'consumer', 'consumer/dist/main.js', 'http://127.0.0.1:3001/health/ready'],
      ['consumer-2', 'consumer', 'consumer/dist/main.js', 'http://127.0.0.1:3002/health/ready'],
    ]);
    expect(plan.ports).toEqual([3000, 3001, 3002]);
    expect(plan.urls).toEqual({
      api: 'http://127.0.0.1:3000/api/v1',
      docs: 'http://127.0.0.1:3000/docs',
      metrics: 'http://127.0.0.1:3000/metrics',
    });
    expect(plan.databaseUrl).toBe('postgres://postgres:postgres@127.0.0.1:5432/tasks');
    expect(plan.amqpUrl).toBe('amqp://guest:guest@127.0.0.1:5672');
    expect(plan.stopTimeoutMs).toBe(10_000);
  });

  test('consumers report to the producer of this run and get distinct health ports', () => {
    const plan = planLocalRun({ ...token, PORT: '4100', HEALTH_PORT: '4200', HOST: '127.0.0.2' }, 3);
    const consumers = plan.services.filter((s) => s.role === 'consumer');
    expect(consumers.map((s) => s.env.HEALTH_PORT)).toEqual(['4200', '4201', '4202']);
    expect(consumers.every((s) => s.env.PRODUCER_URL === 'http://127.0.0.2:4100')).toBe(true);
    expect(plan.services[0]?.env.PORT).toBe('4100');
    expect(plan.ports).toEqual([4100, 4200, 4201, 4202]);
  });

  test('an explicit PRODUCER_URL is kept, and every service gets the whole environment', () => {
    const plan = planLocalRun({ ...token, PRODUCER_URL: 'http://elsewhere:9000', FAILURE_RATE: '0' });
    for (const service of plan.services) {
      expect(service.env.STATUS_API_TOKEN).toBe(token.STATUS_API_TOKEN);
      expect(service.env.FAILURE_RATE).toBe('0');
    }
    expect(plan.services[1]?.env.PRODUCER_URL).toBe('http://elsewhere:9000');
  });

  test('a bad value names the variable', () => {
    expect(() => planLocalRun({ ...token, PORT: 'eighty' })).toThrow(ConfigValueError);
    expect(() => planLocalRun({ ...token, PORT: 'eighty' })).toThrow(/^invalid configuration: PORT: /);
    expect(() => planLocalRun({ ...token, HEALTH_PORT: '70000' })).toThrow(/HEALTH_PORT/);
    expect(() => planLocalRun({ ...token, DATABASE_URL: 'mysql://x/y' })).toThrow(/DATABASE_URL/);
  });
});
