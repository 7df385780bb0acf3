import { describe, expect, test } from 'vitest';
import { claimShare } from '../../../src/dispatch/in-flight.js';

const base = { maxInFlight: 10_000, sent: 0, claimedElsewhere: 0, own: 0, dispatchers: 1 };

describe('claimShare', () => {
  test('alone: half the room (another may have started and not be counted yet)', () => {
    expect(claimShare(base)).toBe(5_000);
    expect(claimShare({ ...base, sent: 4_000, own: 1_000 })).toBe(2_500);
  });

  test('n dispatchers: 1/n of the room, which is what the others left', () => {
    expect(claimShare({ ...base, dispatchers: 2, sent: 2_000, claimedElsewhere: 3_000 })).toBe(2_500);
    expect(claimShare({ ...base, dispatchers: 4, sent: 6_000 })).toBe(1_000);
  });

  test('n dispatchers counting the same room at once take no more than it together', () => {
    for (const n of [2, 3, 5, 8]) {
      const room = 1_000;
      const share = claimShare({ ...base, sent: base.maxInFlight - room, dispatchers: n });
      expect(share * n).toBeGreaterThanOrEqual(room);
      expect(share * n).toBeLessThan(room + n);
    }
  });

  test('no room: nothing; a last free place is not left unused', () => {
    expect(claimShare({ ...base, sent: 10_000 })).toBe(0);
    expect(claimShare({ ...base, sent: 9_000, claimedElsewhere: 1_500 })).toBe(0);
    expect(claimShare({ ...base, sent: 9_999, dispatchers: 3 })).toBe(1);
  });
});
