import { describe, expect, test } from 'vitest';
import { decideRetry, FailedMessages, readRetryCount } from '../../src/retry-policy.js';

describe('decideRetry', () => {
  const policy = { maxRetries: 4, retryDelaysSeconds: [1, 5, 30] };

  test('walks the delays and reuses the last one', () => {
    expect([0, 1, 2, 3].map((count) => decideRetry(policy, count))).toEqual([
      { kind: 'retry', exchange: 'tasks.retry.1', delaySeconds: 1, nextRetryCount: 1 },
      { kind: 'retry', exchange: 'tasks.retry.5', delaySeconds: 5, nextRetryCount: 2 },
      { kind: 'retry', exchange: 'tasks.retry.30', delaySeconds: 30, nextRetryCount: 3 },
      { kind: 'retry', exchange: 'tasks.retry.30', delaySeconds: 30, nextRetryCount: 4 },
    ]);
  });

  test('dead-letters once MAX_RETRIES retries are spent', () => {
    expect(decideRetry(policy, 4)).toEqual({ kind: 'dead-letter' });
    expect(decideRetry(policy, 99)).toEqual({ kind: 'dead-letter' });
    expect(decideRetry({ maxRetries: 0, retryDelaysSeconds: [1] }, 0)).toEqual({ kind: 'dead-letter' });
  });
});

describe('readRetryCount', () => {
  test.each([
    [undefined, 0],
    [{}, 0],
    [{ 'x-retry-count': 2 }, 2],
    [{ 'x-retry-count': '3' }, 3],
    [{ 'x-retry-count': -1 }, 0],
    [{ 'x-retry-count': 1.5 }, 0],
    [{ 'x-retry-count': 'many' }, 0],
  ])('%o → %i', (headers, expected) => {
    expect(readRetryCount(headers)).toBe(expected);
  });
});

describe('FailedMessages', () => {
  test('counts failures per message; a settled message starts again', () => {
    const failed = new FailedMessages();
    expect([failed.failed('a'), failed.failed('a'), failed.failed('b'), failed.failed('a')]).toEqual([
      1, 2, 1, 3,
    ]);
    failed.settled('a');
    expect(failed.failed('a')).toBe(1);
    expect(failed.failed('b')).toBe(2);
  });

  test('remembers at most its limit, forgetting the message that failed longest ago', () => {
    const failed = new FailedMessages(2);
    failed.failed('a');
    failed.failed('b');
    failed.failed('a');
    failed.failed('c');
    expect(failed.size).toBe(2);
    expect(failed.failed('b')).toBe(1);
    expect(failed.failed('c')).toBe(2);
  });
});
