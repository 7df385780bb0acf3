import { describe, expect, it } from 'vitest';
import type { FaultRecord } from '../../../src/chaos/faults.js';
import type { PlannedFault } from '../../../src/chaos/plan.js';
import { type FinalRow, formatTable, judge, type VerdictInput } from '../../../src/chaos/verdict.js';

const uuid = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
const row = (n: number, status = 'success', attempts = 1): FinalRow => ({
  id: uuid(n),
  status,
  attempts,
  error: null,
  idempotencyKey: `k${n}`,
});
const planned: PlannedFault = { kind: 'kill-producer', atMs: 1000, downMs: 500 };
const record: FaultRecord = {
  kind: 'kill-producer',
  plannedAtMs: 1000,
  startedAtMs: 1010,
  durationMs: 3000,
  happened: true,
  evidence: 'pid 1 → 2',
};

const base = (): VerdictInput => ({
  accepted: new Map([
    ['k1', uuid(1)],
    ['k2', uuid(2)],
  ]),
  unresolvedKeys: [],
  rejectedKeys: new Map(),
  finalRows: [row(1), row(2, 'error')],
  flips: [],
  planned: [planned],
  faults: [record],
  crashes: [],
  parked: 0,
  queuedLeft: 0,
});

describe('judge', () => {
  it('passes a clean run', () => {
    const v = judge(base());
    expect(v.ok).toBe(true);
    expect(v.lostTaskIds).toEqual([]);
    expect(formatTable(v.rows)).not.toContain('FAIL');
  });

  it('names a task that is missing or not terminal as lost', () => {
    const v = judge({ ...base(), finalRows: [row(1, 'sent')] });
    expect(v.ok).toBe(false);
    expect(v.lostTaskIds.sort()).toEqual([uuid(1), uuid(2)].sort());
    expect(formatTable(v.rows)).toContain(uuid(1));
  });

  it('flags a second task for one key and a row no create explains', () => {
    const v = judge({ ...base(), finalRows: [row(1), row(2), { ...row(3), idempotencyKey: 'k1' }] });
    expect(v.ok).toBe(false);
    expect(v.unexpectedTaskIds).toEqual([uuid(3)]);
  });

  it('counts a create with unknown outcome that was stored, and requires it to finish too', () => {
    const v = judge({ ...base(), unresolvedKeys: ['k3'], finalRows: [row(1), row(2), row(3, 'waiting', 0)] });
    expect(v.ok).toBe(false);
    expect(v.unexpectedTaskIds).toEqual([]);
    expect(v.lostTaskIds).toEqual([uuid(3)]);
  });

  it('fails on a flip, a fault that did not happen, a fault never injected, parked or leftover messages', () => {
    const flip = {
      taskId: uuid(1),
      from: { taskId: uuid(1), status: 'success', attempts: 1, error: null },
      to: { taskId: uuid(1), status: 'error', attempts: 1, error: 'x' },
    };
    expect(judge({ ...base(), flips: [flip] }).flippedTaskIds).toEqual([uuid(1)]);
    expect(judge({ ...base(), faults: [{ ...record, happened: false }] }).ok).toBe(false);
    expect(judge({ ...base(), faults: [] }).rows.some((r) => r.value === 'planned but never injected')).toBe(
      true,
    );
    expect(judge({ ...base(), parked: 1 }).ok).toBe(false);
    expect(judge({ ...base(), crashes: ['producer pid 9 (exit 1)'] }).ok).toBe(false);
    expect(judge({ ...base(), queuedLeft: 3 }).ok).toBe(false);
  });

  it('fails a SIGTERM that was not graceful', () => {
    const term: FaultRecord = { ...record, kind: 'term-consumer', graceful: false };
    const v = judge({ ...base(), planned: [{ ...planned, kind: 'term-consumer' }], faults: [term] });
    expect(v.ok).toBe(false);
  });

  it('requires redriven tasks to finish on a newer attempt', () => {
    const redrive: FaultRecord = {
      ...record,
      kind: 'redrive-errors',
      redriven: new Map([
        [uuid(1), 1],
        [uuid(2), 1],
      ]),
    };
    const v = judge({
      ...base(),
      planned: [{ ...planned, kind: 'redrive-errors' }],
      faults: [redrive],
      finalRows: [row(1, 'success', 3), row(2, 'error', 1)],
    });
    expect(v.ok).toBe(false);
    expect(v.redriveFailures).toEqual([uuid(2)]);
  });
});
