import { describe, expect, it } from 'vitest';
import { growth, longestStall, type ProgressSample } from '../../../src/chaos/gaps.js';

// Work pending throughout unless a test says otherwise.
const series = (values: number[], startMs = 0, stepMs = 1_000): ProgressSample[] =>
  values.map((v, i) => ({ atMs: startMs + i * stepMs, dispatched: v, finished: v, waiting: 5, sent: 5 }));

describe('longestStall', () => {
  it('is one sample interval when the count grows at every sample', () => {
    expect(longestStall(series([0, 10, 20, 30, 40]), 'dispatched', 0, 4_000)).toBe(1_000);
  });

  it('measures the longest flat stretch inside the window, from the last growth to the next', () => {
    // Grows until 2 s, flat until 6 s, grows again.
    const samples = series([0, 10, 20, 20, 20, 20, 20, 30, 40]);
    expect(longestStall(samples, 'dispatched', 0, 8_000)).toBe(5_000);
    // Only the part inside the window counts: from 4 s the flat stretch lasts until 7 s.
    expect(longestStall(samples, 'dispatched', 4_000, 8_000)).toBe(3_000);
  });

  it('counts a stall still running at the end of the window up to its last sample', () => {
    expect(longestStall(series([0, 10, 10, 10, 10]), 'finished', 0, 4_000)).toBe(3_000);
  });

  it('is no stall while there is nothing to do: all created tasks dispatched, or all finished', () => {
    const samples = series([0, 10, 10, 10, 10]).map((s, i) => (i >= 2 ? { ...s, waiting: 0 } : s));
    expect(longestStall(samples, 'dispatched', 0, 4_000)).toBe(1_000);
    // Processing still had sent tasks: that stall counts.
    expect(longestStall(samples, 'finished', 0, 4_000)).toBe(3_000);
    const done = samples.map((s) => ({ ...s, waiting: 0, sent: 0 }));
    expect(longestStall(done, 'finished', 0, 4_000)).toBe(1_000);
  });

  it('is 0 without samples in the window, and ignores samples outside it', () => {
    expect(longestStall(series([0, 1, 2]), 'finished', 10_000, 20_000)).toBe(0);
    const samples = [...series([0, 0, 0, 0]), ...series([5, 6, 7], 10_000)];
    expect(longestStall(samples, 'finished', 9_500, 12_000)).toBe(1_000);
  });
});

describe('growth', () => {
  it('is what the count gained between the last samples at or before each end of the window', () => {
    const samples = series([0, 10, 20, 20, 35, 50]);
    expect(growth(samples, 'finished', 1_000, 4_000)).toBe(25);
    expect(growth(samples, 'finished', 2_500, 3_500)).toBe(0);
    expect(growth(samples, 'dispatched', -5_000, 9_000)).toBe(50);
  });
});
