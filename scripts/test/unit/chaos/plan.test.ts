import { describe, expect, it } from 'vitest';
import { CLUSTER_FAULTS, SINGLE_NODE_FAULTS as FAULT_KINDS, planFaults } from '../../../src/chaos/plan.js';

const input = { kinds: FAULT_KINDS, seed: 42, windowMs: 100_000, partitionMs: 10_000 };

describe('planFaults', () => {
  it('plans every requested fault once, inside the creation window, in time order', () => {
    const plan = planFaults(input);
    expect(plan.map((f) => f.kind).sort()).toEqual([...FAULT_KINDS].sort());
    for (const f of plan) {
      expect(f.atMs).toBeGreaterThanOrEqual(10_000);
      expect(f.atMs).toBeLessThanOrEqual(85_000);
    }
    const times = plan.map((f) => f.atMs);
    expect(times).toEqual([...times].sort((a, b) => a - b));
  });

  it('repeats exactly for the same seed and differs for another', () => {
    expect(planFaults(input)).toEqual(planFaults(input));
    const others = [1, 2, 3, 4, 5].map((seed) => JSON.stringify(planFaults({ ...input, seed })));
    expect(new Set(others).size).toBeGreaterThan(1);
  });

  it('never redrives in the first half, when few tasks can have failed yet', () => {
    for (let seed = 0; seed < 200; seed++) {
      const plan = planFaults({ ...input, seed });
      const index = plan.findIndex((f) => f.kind === 'redrive-errors');
      expect(index).toBeGreaterThanOrEqual(Math.ceil(plan.length / 2));
    }
  });

  it('keeps the partition for partitionMs and the other downtimes short', () => {
    for (const f of planFaults(input)) {
      if (f.kind === 'partition-producer') expect(f.downMs).toBe(10_000);
      else expect(f.downMs).toBeLessThanOrEqual(3_000);
    }
  });

  it('cluster faults: the leader node before another node, both down for nodeDownMs', () => {
    for (let seed = 0; seed < 50; seed++) {
      const plan = planFaults({ ...input, kinds: CLUSTER_FAULTS, seed, nodeDownMs: 12_000 });
      const kinds = plan.map((f) => f.kind);
      expect(kinds.indexOf('kill-rabbitmq-leader')).toBeLessThan(kinds.indexOf('kill-rabbitmq-node'));
      for (const f of plan) if (f.kind.startsWith('kill-rabbitmq')) expect(f.downMs).toBe(12_000);
    }
  });

  it('plans only the faults asked for', () => {
    const plan = planFaults({ ...input, kinds: ['kill-producer', 'restart-rabbitmq'] });
    expect(plan.map((f) => f.kind).sort()).toEqual(['kill-producer', 'restart-rabbitmq']);
  });
});
