import { describe, expect, test } from 'vitest';
import { accountOf, attributableCpuSeconds, cpuAccount, idleEstimate } from '../../../src/bench/cpu.js';
import { postgresProcessCounts } from '../../../src/bench/resources.js';

describe('CPU per task', () => {
  test('a process of the system counts whole; a shared server less its idle rate over the window', () => {
    expect(attributableCpuSeconds({ name: 'producer', cpuSeconds: 3, windowS: 10 })).toBe(3);
    // rabbitmq used 25% of a core idle: 2.5 s of the 10 s window were other tenants'.
    expect(
      attributableCpuSeconds({
        name: 'rabbitmq (beam.smp)',
        server: 'rabbitmq',
        cpuSeconds: 7.5,
        idleCpuPercent: 25,
        windowS: 10,
      }),
    ).toBeCloseTo(5);
    // Other tenants calmed down during the run: never below zero.
    expect(
      attributableCpuSeconds({
        name: 'pg',
        server: 'postgresql',
        cpuSeconds: 1,
        idleCpuPercent: 50,
        windowS: 10,
      }),
    ).toBe(0);
  });

  test("other tenants' load: the lower idle sample, so a burst in one of them does not erase the run", () => {
    expect(idleEstimate(80, 5)).toBe(5);
    expect(idleEstimate(3, 40)).toBe(3);
    expect(idleEstimate(undefined, 7)).toBe(7);
    expect(idleEstimate(undefined, undefined)).toBe(0);
  });

  test('per 1,000 items and per item, by process and in total', () => {
    const account = cpuAccount(
      [
        { name: 'producer', cpuSeconds: 2, windowS: 10 },
        { name: 'consumer-1', cpuSeconds: 1, windowS: 10 },
        { name: 'postgresql', server: 'postgresql', cpuSeconds: 2, idleCpuPercent: 5, windowS: 10 },
      ],
      20_000,
    );
    expect(account?.shares.map((s) => [s.name, s.perThousand, s.microsPerItem])).toEqual([
      ['producer', 0.1, 100],
      ['consumer-1', 0.05, 50],
      ['postgresql', 0.075, 75],
    ]);
    expect(account?.totalMicrosPerItem).toBeCloseTo(225);
  });

  test('nothing counted, no account', () => {
    expect(cpuAccount([{ name: 'producer', cpuSeconds: 2, windowS: 1 }], 0)).toBeUndefined();
    expect(cpuAccount([], 100)).toBeUndefined();
    expect(accountOf(undefined)).toBeUndefined();
    expect(
      accountOf({ resources: [{ name: 'p', cpuSeconds: 1, windowS: 1 }], cpuItems: 1_000 })
        ?.totalMicrosPerItem,
    ).toBe(1_000);
  });
});

describe('which PostgreSQL processes a measure counts', () => {
  const db = 'bench_drain_ours_ab12';
  test("its own database's backends, not other tenants'", () => {
    expect(postgresProcessCounts(`postgres: 15/main: postgres ${db} 127.0.0.1(44832) idle`, db)).toBe(true);
    expect(postgresProcessCounts(`postgres: 15/main: postgres ${db} [local] UPDATE`, db)).toBe(true);
    expect(postgresProcessCounts(`postgres: postgres ${db} ::1(5001) idle in transaction`, db)).toBe(true);
    expect(postgresProcessCounts('postgres: 15/main: postgres other_db 127.0.0.1(44833) UPDATE', db)).toBe(
      false,
    );
    expect(postgresProcessCounts(`postgres: 15/main: ${db} other_db 127.0.0.1(44833) idle`, db)).toBe(false);
  });

  test('the background processes every database shares', () => {
    for (const title of [
      '/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main -c config_file=/x.conf',
      'postgres: 15/main: checkpointer',
      'postgres: 15/main: background writer',
      'postgres: 15/main: walwriter',
      'postgres: 15/main: logical replication launcher',
    ]) {
      expect(postgresProcessCounts(title, db)).toBe(true);
    }
  });
});
