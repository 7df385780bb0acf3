import { describe, expect, test } from 'vitest';
import { backoffMs } from '../../src/backoff.js';

const policy = { initialMs: 100, maxMs: 1_000 };

describe('backoffMs', () => {
  test('no failure, no delay', () => {
    expect(backoffMs(0, policy)).toBe(0);
  });

  test('doubles per failure between half and all of the ceiling, capped', () => {
    expect(backoffMs(1, policy, () => 0)).toBe(50);
    expect(backoffMs(1, policy, () => 1)).toBe(100);
    expect(backoffMs(2, policy, () => 1)).toBe(200);
    expect(backoffMs(4, policy, () => 1)).toBe(800);
    expect(backoffMs(5, policy, () => 1)).toBe(1_000);
    expect(backoffMs(5, policy, () => 0)).toBe(500);
    expect(backoffMs(10_000, policy, () => 0.5)).toBe(750);
  });

  test('never retries instantly after a failure', () => {
    for (let n = 1; n < 50; n += 1)
      expect(backoffMs(n, { initialMs: 1, maxMs: 30_000 }, () => 0)).toBeGreaterThan(0);
  });
});
