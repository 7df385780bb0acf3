import { describe, expect, test } from 'vitest';
import { backoffDelay, classifyItem, classifyRequest } from '../../src/report-policy.js';

describe('classifyRequest', () => {
  test.each([
    [200, 'ok'],
    [413, 'split'],
    [400, 'stop'],
    [401, 'stop'],
    [403, 'stop'],
    [404, 'stop'],
    [415, 'stop'],
    [408, 'retry'],
    [429, 'retry'],
    [500, 'retry'],
    [502, 'retry'],
    [503, 'retry'],
  ])('%i → %s', (status, expected) => {
    expect(classifyRequest(status)).toBe(expected);
  });
});

describe('classifyItem', () => {
  test.each([
    [200, 'ack'],
    [409, 'ack'],
    [400, 'park'],
    [404, 'park'],
    [500, 'retry'],
  ])('%i → %s', (status, expected) => {
    expect(classifyItem(status)).toBe(expected);
  });
});

describe('backoffDelay', () => {
  const policy = { initialMs: 100, maxMs: 1_000 };
  test('doubles per failure up to the cap, jittered within the upper half', () => {
    expect(backoffDelay(policy, 1, () => 0)).toBe(50);
    expect(backoffDelay(policy, 1, () => 1)).toBe(100);
    expect(backoffDelay(policy, 3, () => 1)).toBe(400);
    expect(backoffDelay(policy, 10, () => 1)).toBe(1_000);
    expect(backoffDelay(policy, 10_000, () => 0.5)).toBe(750);
  });
});
