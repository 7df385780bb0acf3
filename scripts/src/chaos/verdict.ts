// The run's verdict from what was collected: pure, so every rule is unit-tested without a cluster.
import type { FaultRecord } from './faults.js';
import { type Flip, TERMINAL_STATUSES } from './flip-detector.js';
import type { PlannedFault } from './plan.js';

export interface FinalRow {
  id: string;
  status: string;
  attempts: number;
  error: string | null;
  idempotencyKey: string | null;
}

export interface VerdictInput {
  /** Idempotency-Key → taskId of every create the producer accepted. */
  accepted: ReadonlyMap<string, string>;
  unresolvedKeys: readonly string[];
  rejectedKeys: ReadonlyMap<string, number>;
  finalRows: readonly FinalRow[];
  flips: readonly Flip[];
  planned: readonly PlannedFault[];
  faults: readonly FaultRecord[];
  /** Services that died on their own during the run. */
  crashes: readonly string[];
  /** Messages in tasks.parking at the end. */
  parked: number;
  /** Messages left in every other queue at the end. */
  queuedLeft: number;
}

export interface CheckRow {
  check: string;
  value: string;
  ok: boolean;
}

export interface Verdict {
  ok: boolean;
  rows: CheckRow[];
  /** Accepted tasks that are missing or not terminal. */
  lostTaskIds: string[];
  /** Rows that no accepted create explains, or a key mapped to another task. */
  unexpectedTaskIds: string[];
  flippedTaskIds: string[];
  redriveFailures: string[];
}

const sample = (ids: readonly string[], n = 10) =>
  ids.length === 0 ? '' : ` (${ids.slice(0, n).join(', ')}${ids.length > n ? ', …' : ''})`;

export function judge(input: VerdictInput): Verdict {
  const rows: CheckRow[] = [];
  const byId = new Map(input.finalRows.map((r) => [r.id, r]));

  const lostTaskIds = [...input.accepted.values()].filter((id) => {
    const row = byId.get(id);
    return !row || !TERMINAL_STATUSES.has(row.status);
  });
  const acceptedCount = input.accepted.size;
  rows.push({
    check: 'every accepted task terminal (lost)',
    value: `${acceptedCount - lostTaskIds.length}/${acceptedCount} terminal, lost ${lostTaskIds.length}${sample(lostTaskIds)}`,
    ok: lostTaskIds.length === 0,
  });

  const unresolved = new Set(input.unresolvedKeys);
  const unexpectedTaskIds = input.finalRows
    .filter((r) => {
      if (r.idempotencyKey === null) return true;
      const expected = input.accepted.get(r.idempotencyKey);
      return expected === undefined ? !unresolved.has(r.idempotencyKey) : expected !== r.id;
    })
    .map((r) => r.id);
  const unresolvedButStored = input.finalRows.filter(
    (r) => r.idempotencyKey !== null && unresolved.has(r.idempotencyKey),
  );
  const unresolvedLost = unresolvedButStored.filter((r) => !TERMINAL_STATUSES.has(r.status)).map((r) => r.id);
  lostTaskIds.push(...unresolvedLost);
  rows.push({
    check: 'one task per Idempotency-Key',
    value: `${input.finalRows.length} rows for ${acceptedCount + unresolvedButStored.length} keys, unexpected ${unexpectedTaskIds.length}${sample(unexpectedTaskIds)}`,
    ok: unexpectedTaskIds.length === 0,
  });
  rows.push({
    check: 'creates answered (none refused, none unknown)',
    value: `refused ${input.rejectedKeys.size}, unknown at the end ${unresolved.size}${unresolvedLost.length > 0 ? `, ${unresolvedLost.length} of them stored and not terminal` : ''}`,
    ok: input.rejectedKeys.size === 0 && unresolved.size === 0,
  });

  const flippedTaskIds = [...new Set(input.flips.map((f) => f.taskId))];
  rows.push({
    check: 'no result flipped after it was seen terminal',
    value: `${input.flips.length} flips${sample(
      input.flips.map(
        (f) => `${f.taskId} ${f.from.status}@${f.from.attempts} → ${f.to.status}@${f.to.attempts}`,
      ),
      5,
    )}`,
    ok: input.flips.length === 0,
  });

  const unmatched = [...input.planned];
  for (const fault of input.faults) {
    const i = unmatched.findIndex((p) => p.kind === fault.kind && p.atMs === fault.plannedAtMs);
    if (i >= 0) unmatched.splice(i, 1);
    rows.push({
      check: `fault ${fault.kind} @${(fault.startedAtMs / 1000).toFixed(1)}s`,
      value: fault.evidence,
      ok: fault.happened,
    });
    if (fault.graceful !== undefined) {
      rows.push({
        check: `  graceful exit on SIGTERM`,
        value: fault.graceful ? 'exit code 0' : 'did not exit 0 within its grace period',
        ok: fault.graceful,
      });
    }
  }
  for (const missing of unmatched) {
    rows.push({ check: `fault ${missing.kind}`, value: 'planned but never injected', ok: false });
  }

  const redriveFailures: string[] = [];
  for (const fault of input.faults) {
    for (const [taskId, oldAttempt] of fault.redriven ?? []) {
      const row = byId.get(taskId);
      if (!row || !TERMINAL_STATUSES.has(row.status) || row.attempts <= oldAttempt)
        redriveFailures.push(taskId);
    }
  }
  const redrivenCount = input.faults.reduce((n, f) => n + (f.redriven?.size ?? 0), 0);
  if (redrivenCount > 0) {
    rows.push({
      check: 'redriven tasks finished on a newer attempt',
      value: `${redrivenCount - redriveFailures.length}/${redrivenCount}${sample(redriveFailures)}`,
      ok: redriveFailures.length === 0,
    });
  }

  rows.push({
    check: 'no service crashed on its own',
    value: input.crashes.length === 0 ? '0 crashes' : `${input.crashes.length}: ${input.crashes.join(', ')}`,
    ok: input.crashes.length === 0,
  });
  rows.push({ check: 'messages parked', value: String(input.parked), ok: input.parked === 0 });
  rows.push({
    check: 'queues drained',
    value: `${input.queuedLeft} messages left`,
    ok: input.queuedLeft === 0,
  });

  return {
    ok: rows.every((r) => r.ok),
    rows,
    lostTaskIds,
    unexpectedTaskIds,
    flippedTaskIds,
    redriveFailures,
  };
}

/** A plain-text table: check | result | value. */
export function formatTable(rows: readonly CheckRow[]): string {
  const width = Math.max(...rows.map((r) => r.check.length), 5);
  return rows.map((r) => `${r.ok ? ' ok ' : 'FAIL'}  ${r.check.padEnd(width)}  ${r.value}`).join('\n');
}
