import { describe, expect, test } from 'vitest';
import { buildClaimPlan, claimOrderComparator, nextStartIds } from '../../../src/dispatch/claim-query.js';

const starts = {
  high: '7d444840-9dc0-11d1-b245-5ffdce74fad2',
  medium: '11111111-9dc0-41d1-b245-5ffdce74fad2',
  low: 'eeeeeeee-9dc0-41d1-b245-5ffdce74fad2',
};

describe('buildClaimPlan', () => {
  test('random: two wrap branches per priority, high first, each an id range in index order', () => {
    const plan = buildClaimPlan({ order: 'random', limit: 500, leaseSeconds: 30, startIds: starts });
    expect(plan.params).toEqual([500, 30, starts.high, starts.medium, starts.low]);
    const branches = [...plan.text.matchAll(/priority = '(\w+)' (AND id [<>]=? \$\d::uuid)/g)].map((m) => [
      m[1],
      m[2],
    ]);
    expect(branches).toEqual([
      ['high', 'AND id >= $3::uuid'],
      ['high', 'AND id < $3::uuid'],
      ['medium', 'AND id >= $4::uuid'],
      ['medium', 'AND id < $4::uuid'],
      ['low', 'AND id >= $5::uuid'],
      ['low', 'AND id < $5::uuid'],
    ]);
    expect(plan.text.match(/ORDER BY id\n/g)).toHaveLength(6);
    expect(plan.text).not.toContain('created_at\n    LIMIT');
  });

  test('every branch skips locked rows, honours leases and stops at the limit', () => {
    const plan = buildClaimPlan({ order: 'random', limit: 10, leaseSeconds: 5, startIds: starts });
    expect(plan.text.match(/FOR UPDATE SKIP LOCKED/g)).toHaveLength(6);
    expect(plan.text.match(/claimed_until IS NULL OR claimed_until < now\(\)/g)).toHaveLength(6);
    expect(plan.text.match(/LIMIT \$1/g)).toHaveLength(7);
    expect(plan.text).toContain("status = 'waiting'");
    expect(plan.text).toContain('attempts = t.attempts + 1');
    expect(plan.text).toContain('claimed_until = now() + make_interval(secs => $2)');
  });

  test('fifo: one branch per priority, oldest first, no start id', () => {
    const plan = buildClaimPlan({ order: 'fifo', limit: 100, leaseSeconds: 30, startIds: starts });
    expect(plan.params).toEqual([100, 30]);
    expect([...plan.text.matchAll(/priority = '(\w+)'/g)].map((m) => m[1])).toEqual([
      'high',
      'medium',
      'low',
    ]);
    expect(plan.text.match(/ORDER BY created_at/g)).toHaveLength(3);
    expect(plan.text).not.toContain('$3');
  });

  test('rejects values that would make a broken statement', () => {
    expect(() => buildClaimPlan({ order: 'random', limit: 0, leaseSeconds: 30, startIds: starts })).toThrow(
      RangeError,
    );
    expect(() => buildClaimPlan({ order: 'random', limit: 1.5, leaseSeconds: 30, startIds: starts })).toThrow(
      RangeError,
    );
    expect(() => buildClaimPlan({ order: 'random', limit: 1, leaseSeconds: 0, startIds: starts })).toThrow(
      RangeError,
    );
    expect(() =>
      buildClaimPlan({
        order: 'random',
        limit: 1,
        leaseSeconds: 30,
        startIds: { ...starts, low: "x'; drop" },
      }),
    ).toThrow(RangeError);
  });
});

describe('claimOrderComparator', () => {
  const at = (ms: number) => new Date(ms);
  const rows = [
    { priority: 'low' as const, id: '00000000-0000-4000-8000-000000000001', createdAt: at(1) },
    { priority: 'high' as const, id: '90000000-0000-4000-8000-000000000000', createdAt: at(5) },
    { priority: 'high' as const, id: '10000000-0000-4000-8000-000000000000', createdAt: at(2) },
    { priority: 'high' as const, id: 'a0000000-0000-4000-8000-000000000000', createdAt: at(9) },
    { priority: 'medium' as const, id: 'f0000000-0000-4000-8000-000000000000', createdAt: at(3) },
  ];

  test('random: priority, then upward from the start id, then the wrapped part', () => {
    const start = '80000000-0000-4000-8000-000000000000';
    const sorted = [...rows].sort(claimOrderComparator('random', { high: start, medium: start, low: start }));
    expect(sorted.map((r) => r.id.slice(0, 2))).toEqual(['90', 'a0', '10', 'f0', '00']);
  });

  test('random: each priority wraps at its own start', () => {
    const sorted = [...rows].sort(
      claimOrderComparator('random', {
        high: '95000000-0000-4000-8000-000000000000',
        medium: '00000000-0000-4000-8000-000000000000',
        low: '00000000-0000-4000-8000-000000000000',
      }),
    );
    expect(sorted.map((r) => r.id.slice(0, 2))).toEqual(['a0', '10', '90', 'f0', '00']);
  });

  test('fifo: priority, then oldest first', () => {
    const sorted = [...rows].sort(claimOrderComparator('fifo', starts));
    expect(sorted.map((r) => r.createdAt.getTime())).toEqual([2, 5, 9, 3, 1]);
  });
});

describe('nextStartIds', () => {
  test('each priority continues after the last task the claim took in it; the others stay put', () => {
    const claimed = [
      { priority: 'high' as const, id: 'a1' },
      { priority: 'high' as const, id: '05' },
      { priority: 'medium' as const, id: '7f' },
    ];
    expect(nextStartIds(starts, claimed)).toEqual({ high: '05', medium: '7f', low: starts.low });
  });
});
