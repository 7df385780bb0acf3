import { describe, expect, test } from 'vitest';
import { isTerminal, renderProgress, tally } from '../../../src/cli/progress.js';

describe('tally', () => {
  test('counts statuses; unread tasks are unknown', () => {
    expect(tally(['waiting', 'sent', 'sent', 'success', 'error', undefined], 8)).toEqual({
      total: 8,
      waiting: 1,
      sent: 2,
      success: 1,
      error: 1,
      unknown: 3,
    });
  });
});

describe('isTerminal', () => {
  test('only success and error end a task', () => {
    expect(['waiting', 'sent', 'success', 'error', undefined].map((s) => isTerminal(s as never))).toEqual([
      false,
      false,
      true,
      true,
      false,
    ]);
  });
});

describe('renderProgress', () => {
  test('fills the bar with finished tasks and lists every count', () => {
    const line = renderProgress(
      { total: 200, waiting: 20, sent: 80, success: 90, error: 10, unknown: 0 },
      12_345,
      10,
    );
    expect(line).toBe('[#####-----]  50%  100/200 done  success 90  error 10  sent 80  waiting 20  12.3 s');
  });

  test('shows unknown only when some task could not be read', () => {
    expect(renderProgress({ total: 2, waiting: 0, sent: 0, success: 0, error: 0, unknown: 2 }, 0, 4)).toBe(
      '[----]   0%  0/2 done  success 0  error 0  sent 0  waiting 0  unknown 2  0.0 s',
    );
  });

  test('an empty run is complete', () => {
    expect(renderProgress({ total: 0, waiting: 0, sent: 0, success: 0, error: 0, unknown: 0 }, 0, 4)).toMatch(
      /^\[####\] 100% {2}0\/0 done/,
    );
  });
});
