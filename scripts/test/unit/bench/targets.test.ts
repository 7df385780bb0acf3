import { expect, test } from 'vitest';
import { atLeast, atMost, flatness, TARGETS } from '../../../src/bench/targets.js';

test('ratios and rates reach a target at or above it', () => {
  expect(atLeast(0.65, TARGETS.drainVsPgBoss)).toBe('✅');
  expect(atLeast(0.649, TARGETS.drainVsPgBoss)).toBe('❌');
  expect(atLeast(undefined, 1)).toBe('–');
  expect(atLeast(Number.NaN, 1)).toBe('–');
});

test('costs and latencies meet a limit at or below it', () => {
  expect(atMost(120, TARGETS.cpuMicrosPerTask)).toBe('✅');
  expect(atMost(120.5, TARGETS.cpuMicrosPerTask)).toBe('❌');
  expect(atMost(30, TARGETS.latencyP99Ms)).toBe('✅');
  expect(atMost(undefined, TARGETS.latencyP99Ms)).toBe('–');
});

test('flat with the backlog: the large backlog within 10% of the small one, either way', () => {
  expect(flatness(10_000, 9_000)).toEqual({ ratio: 0.9, verdict: '✅' });
  expect(flatness(10_000, 8_300).verdict).toBe('❌');
  expect(flatness(10_000, 11_000).verdict).toBe('✅');
  expect(flatness(10_000, 11_500).verdict).toBe('❌');
  expect(flatness(undefined, 9_000)).toEqual({ ratio: undefined, verdict: '–' });
  expect(flatness(0, 9_000).verdict).toBe('–');
});
