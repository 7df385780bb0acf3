import { describe, expect, it } from 'vitest';
import { parseChaosArgs, UsageError } from '../../../src/chaos/options.js';
import { CLUSTER_FAULTS, SINGLE_NODE_FAULTS } from '../../../src/chaos/plan.js';

describe('parseChaosArgs', () => {
  it('--cluster: the cluster faults, node downtime; node kills need it, a single-node restart does not fit it', () => {
    const { options } = parseChaosArgs(['--cluster', '--node-down-ms', '5000']);
    expect(options).toMatchObject({ cluster: true, nodeDownMs: 5000 });
    expect(options.faults).toEqual(CLUSTER_FAULTS);
    expect(parseChaosArgs(['--cluster', '--faults', 'kill-rabbitmq-leader']).options.faults).toEqual([
      'kill-rabbitmq-leader',
    ]);
    expect(() => parseChaosArgs(['--faults', 'kill-rabbitmq-node'])).toThrow(/needs --cluster/);
    expect(() => parseChaosArgs(['--cluster', '--faults', 'restart-rabbitmq'])).toThrow(/single broker node/);
  });

  it('defaults to every single-node fault and a random seed it reports', () => {
    const { options } = parseChaosArgs([], () => 77);
    expect(options.cluster).toBe(false);
    expect(options.faults).toEqual(SINGLE_NODE_FAULTS);
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
