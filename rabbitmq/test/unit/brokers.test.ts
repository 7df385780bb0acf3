// The broker list of AMQP_URL and the rotation over its nodes, as pure functions.
import { describe, expect, test } from 'vitest';
import {
  BrokerUrlError,
  brokerLabel,
  brokerUrlListSchema,
  firstBrokerIndex,
  nextBroker,
  parseBrokerUrls,
} from '../../src/brokers.js';

describe('parseBrokerUrls', () => {
  test('one URL is a list of one, kept as written', () => {
    expect(parseBrokerUrls('amqp://guest:guest@127.0.0.1:5672')).toEqual([
      'amqp://guest:guest@127.0.0.1:5672',
    ]);
  });

  test('whole URLs separated by commas, blanks around them ignored', () => {
    expect(parseBrokerUrls('amqp://a:b@h1:5672/v , amqps://c:d@h2:5671/w')).toEqual([
      'amqp://a:b@h1:5672/v',
      'amqps://c:d@h2:5671/w',
    ]);
  });

  test('a bare host takes credentials, port, vhost and query from the first URL; a bare host:port its own port', () => {
    expect(
      parseBrokerUrls('amqp://user:pa%40ss@rabbit-1:5672/prod%2Feu?heartbeat=5,rabbit-2,rabbit-3:5673'),
    ).toEqual([
      'amqp://user:pa%40ss@rabbit-1:5672/prod%2Feu?heartbeat=5',
      'amqp://user:pa%40ss@rabbit-2:5672/prod%2Feu?heartbeat=5',
      'amqp://user:pa%40ss@rabbit-3:5673/prod%2Feu?heartbeat=5',
    ]);
    expect(parseBrokerUrls('amqp://127.0.0.1:5672,127.0.0.1:5673,[::1]:5674')).toEqual([
      'amqp://127.0.0.1:5672',
      'amqp://127.0.0.1:5673',
      'amqp://[::1]:5674',
    ]);
  });

  test.each([
    ['', 'empty item'],
    ['amqp://h1,,amqp://h2', 'empty item'],
    ['amqp://h1,', 'empty item'],
    ['http://broker', 'item 1 is not an amqp'],
    ['rabbit-1,rabbit-2', 'item 1 is not a URL'],
    ['amqp://h1,http://h2', 'item 2 is not an amqp'],
    ['amqp://h1,h2:99999', 'item 2 is neither'],
    ['amqp://h1,h 2', 'item 2 is neither'],
    ['amqp://h1,user@h2', 'item 2 is neither'],
    ['amqp://h1:5672,h1', 'twice'],
  ])('refuses %j (%s)', (value, message) => {
    expect(() => parseBrokerUrls(value)).toThrow(BrokerUrlError);
    expect(() => parseBrokerUrls(value)).toThrow(message);
  });

  test('the config schemas use it: a bad list fails validation with its reason', () => {
    expect(brokerUrlListSchema.safeParse('amqp://h1,amqp://h2').success).toBe(true);
    const result = brokerUrlListSchema.safeParse('amqp://h1,ftp://h2');
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]?.message).toBe('item 2 is not an amqp:// or amqps:// URL');
  });
});

describe('brokerLabel', () => {
  test('host and port, never the credentials', () => {
    expect(brokerLabel('amqp://user:secret@rabbit-2:5673/v')).toBe('rabbit-2:5673');
    expect(brokerLabel('amqp://user:secret@rabbit-2')).toBe('rabbit-2:5672');
    expect(brokerLabel('amqps://rabbit-2')).toBe('rabbit-2:5671');
  });
});

describe('rotation', () => {
  const policy = { initialMs: 200, maxMs: 5_000 };
  // The largest jitter draw: the delay is the ceiling of its round.
  const top = () => 1;

  test('the first node is picked at random, so replicas spread over the cluster', () => {
    expect(firstBrokerIndex(3, () => 0)).toBe(0);
    expect(firstBrokerIndex(3, () => 0.5)).toBe(1);
    expect(firstBrokerIndex(3, () => 0.9999)).toBe(2);
    expect(firstBrokerIndex(1, () => 0.9999)).toBe(0);
  });

  test('after a loss and each failed attempt the next node, wrapping round, so a node that came back gets its turn', () => {
    const visited: number[] = [];
    let index = 1;
    for (let failures = 1; failures <= 7; failures += 1) {
      index = nextBroker(index, failures, 3, policy, top).index;
      visited.push(index);
    }
    expect(visited).toEqual([2, 0, 1, 2, 0, 1, 2]);
  });

  test('the wait doubles per failed round of the list, not per node: a dead node costs one base delay', () => {
    const delays = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map(
      (failures) => nextBroker(0, failures, 3, policy, top).delayMs,
    );
    expect(delays).toEqual([200, 200, 200, 400, 400, 400, 800, 800, 800, 1_600]);
    // Capped, and jittered on the upper half like every other retry loop.
    expect(nextBroker(0, 100, 3, policy, top).delayMs).toBe(5_000);
    expect(nextBroker(0, 100, 3, policy, () => 0).delayMs).toBe(2_500);
  });

  test('one node: the same node again, with the usual exponential backoff', () => {
    const steps = [1, 2, 3, 4].map((failures) => nextBroker(0, failures, 1, policy, top));
    expect(steps.map((s) => s.index)).toEqual([0, 0, 0, 0]);
    expect(steps.map((s) => s.delayMs)).toEqual([200, 400, 800, 1_600]);
  });
});
