import { describe, expect, it } from 'vitest';
import { parseChaosArgs, UsageError } from '../../../src/chaos/options.js';
import { FAULT_KINDS } from '../../../src/chaos/plan.js';

describe('parseChaosArgs', () => {
  it('defaults to every fault and a random seed it reports', () => {
    const { options } = parseChaosArgs([], () => 77);
    expect(options.faults).toEqual(FAULT_KINDS);
    expect(options.seed).toBe(77);
    expect(options.tasks).toBe(50_000);
  });

  it('reads --tasks, --seed, --rate, --faults', () => {
    const { options } = parseChaosArgs([
      '--tasks',
      '2000',
      '--seed',
      '9',
      '--rate',
      '40',
      '--faults',
      'kill-producer, restart-rabbitmq',
    ]);
    expect(options).toMatchObject({ tasks: 2000, seed: 9, ratePerSecond: 40 });
    expect(options.faults).toEqual(['kill-producer', 'restart-rabbitmq']);
  });

  it('refuses unknown faults, bad numbers and unknown flags', () => {
    expect(() => parseChaosArgs(['--faults', 'unplug-cable'])).toThrow(UsageError);
    expect(() => parseChaosArgs(['--tasks', '0'])).toThrow(/positive integer/);
    expect(() => parseChaosArgs(['--tasks', 'many'])).toThrow(UsageError);
    expect(() => parseChaosArgs(['--seed', '1.5'])).toThrow(UsageError);
    expect(() => parseChaosArgs(['--frobnicate'])).toThrow(UsageError);
  });
});
