import { expect, test } from 'vitest';
import { secondsSince } from '../../../src/db/clock.js';

test('the age of an event in seconds, and none for an event the clock puts in the future', () => {
  const at = new Date('2026-12-07T10:00:00.000Z');
  expect(secondsSince(at, at.getTime() + 1_500)).toBe(1.5);
  expect(secondsSince(at, at.getTime())).toBe(0);
  expect(secondsSince(at, at.getTime() - 2_000)).toBe(0);
});
