import { describe, expect, test } from 'vitest';
import {
  classifyItem,
  classifyRequest,
  nextBatchSize,
  type SplitPolicy,
  shouldPark,
} from '../../src/report-policy.js';

describe('classifyRequest', () => {
  test.each([
    [200, 'ok'],
    [413, 'split'],
    [301, 'stop'],
    [307, 'stop'],
    [308, 'stop'],
    [400, 'stop'],
    [401, 'stop'],
    [403, 'stop'],
    [404, 'stop'],
    [415, 'stop'],
    [408, 'unavailable'],
    [429, 'unavailable'],
    [502, 'unavailable'],
    [503, 'unavailable'],
    [504, 'unavailable'],
    [500, 'refused'],
    [501, 'refused'],
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
    [500, 'refused'],
  ])('%i → %s', (status, expected) => {
    expect(classifyItem(status)).toBe(expected);
  });
});

describe('narrowing down a refused batch', () => {
  const policy: SplitPolicy = { refusalsBeforeSplit: 3 };

  test('full batches until the refusals reach the threshold, then halves per further refusal', () => {
    expect([0, 1, 2, 3, 4, 5, 12, 100].map((r) => nextBatchSize(1000, r, policy))).toEqual([
      1000, 1000, 1000, 500, 250, 125, 1, 1,
    ]);
  });

  test('one report in a batch of 1,000 is found within threshold + log2(1,000) + threshold refusals', () => {
    // Simulates the reporter: the poison report is always at the front of what is pending.
    let refusals = 0;
    let refusalsAlone = 0;
    let requests = 0;
    while (!shouldPark(refusalsAlone, policy)) {
      const size = nextBatchSize(1000, refusals, policy);
      requests += 1;
      refusals += 1;
      if (size === 1) refusalsAlone += 1;
    }
    expect(requests).toBeLessThanOrEqual(3 + 10 + 3);
  });
});
