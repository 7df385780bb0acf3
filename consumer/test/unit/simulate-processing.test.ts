import { describe, expect, test } from 'vitest';
import { SIMULATED_FAILURE, simulateOutcome, simulationDraw } from '../../src/simulate-processing.js';

const input = { taskId: '5b0c3c1e-9d5c-4c1a-8f0e-2c8a4b7d9e10', attempt: 1, retryCount: 0 };

describe('simulateOutcome', () => {
  test('is the same for duplicate deliveries of one message', () => {
    const policy = { failureSeed: 'seed', failureRate: 0.5 };
    const first = simulateOutcome(policy, input);
    for (let i = 0; i < 5; i++) expect(simulateOutcome(policy, { ...input })).toEqual(first);
  });

  test('depends on seed, attempt and retry count', () => {
    const draws = new Set([
      simulationDraw('seed', input),
      simulationDraw('other', input),
      simulationDraw('seed', { ...input, attempt: 2 }),
      simulationDraw('seed', { ...input, retryCount: 1 }),
    ]);
    expect(draws.size).toBe(4);
  });

  test('rate 0 never fails, rate 1 always fails', () => {
    for (let retryCount = 0; retryCount < 50; retryCount++) {
      expect(simulateOutcome({ failureSeed: 's', failureRate: 0 }, { ...input, retryCount })).toEqual({
        ok: true,
      });
      expect(simulateOutcome({ failureSeed: 's', failureRate: 1 }, { ...input, retryCount })).toEqual({
        ok: false,
        error: SIMULATED_FAILURE,
      });
    }
  });

  test('fails at about FAILURE_RATE over many tasks', () => {
    const policy = { failureSeed: 'rate', failureRate: 0.3 };
    let failures = 0;
    const n = 20_000;
    for (let i = 0; i < n; i++) {
      if (!simulateOutcome(policy, { taskId: `task-${i}`, attempt: 1, retryCount: 0 }).ok) failures += 1;
    }
    expect(failures / n).toBeGreaterThan(0.28);
    expect(failures / n).toBeLessThan(0.32);
  });
});
