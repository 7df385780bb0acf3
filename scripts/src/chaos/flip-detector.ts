// "No result flips" as a pure check over status samples: once a task is seen terminal at some
// attempt it must stay exactly so, except the two moves PROTOCOL §3 allows — error → success for the
// same attempt when the error was `delivery_limit`, and an operator redrive (a newer attempt).

import { FAILURE_REASONS } from '@task-pipeline/rabbitmq';

export const TERMINAL_STATUSES: ReadonlySet<string> = new Set(['success', 'error']);

export interface Observation {
  taskId: string;
  status: string;
  attempts: number;
  error: string | null;
}

export interface Flip {
  taskId: string;
  from: Observation;
  to: Observation;
}

export interface FlipDetector {
  observe(observation: Observation): void;
  /** Called before a redrive request: the task may legitimately leave its terminal state once more. */
  allowRedrive(taskId: string): void;
  flips(): readonly Flip[];
  /** Tasks seen terminal at least once. */
  settledCount(): number;
}

export function createFlipDetector(): FlipDetector {
  const settled = new Map<string, Observation>();
  const redrivesAllowed = new Map<string, number>();
  const found: Flip[] = [];

  return {
    observe(o) {
      const before = settled.get(o.taskId);
      if (!before) {
        if (TERMINAL_STATUSES.has(o.status)) settled.set(o.taskId, o);
        return;
      }
      if (o.attempts === before.attempts) {
        if (o.status === before.status) return;
        const lateSuccess =
          before.status === 'error' &&
          before.error === FAILURE_REASONS.deliveryLimit &&
          o.status === 'success';
        if (lateSuccess) settled.set(o.taskId, o);
        else found.push({ taskId: o.taskId, from: before, to: o });
        return;
      }
      // A redrive adds one to attempts and the next claim another (more after an expired lease), so
      // one allowed redrive accepts any newer attempt, once.
      const allowed = redrivesAllowed.get(o.taskId) ?? 0;
      if (o.attempts > before.attempts && allowed > 0) {
        redrivesAllowed.set(o.taskId, allowed - 1);
        if (TERMINAL_STATUSES.has(o.status)) settled.set(o.taskId, o);
        else settled.delete(o.taskId);
        return;
      }
      found.push({ taskId: o.taskId, from: before, to: o });
    },
    allowRedrive(taskId) {
      redrivesAllowed.set(taskId, (redrivesAllowed.get(taskId) ?? 0) + 1);
    },
    flips: () => found,
    settledCount: () => settled.size,
  };
}
