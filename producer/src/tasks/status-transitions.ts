// The task status rule (PROTOCOL §3) as pure functions. The repository's SQL guards are built from
// the same constants, and a report whose guard did not hold is explained by `decideReport` from the
// row it locked, so the rule lives here once.
import { FAILURE_REASONS, type ResultStatus } from '@task-pipeline/rabbitmq/contract';

export const TASK_STATUSES = ['waiting', 'sent', 'success', 'error'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

/** A report moves a task out of these statuses when its attempt is the task's current one. */
export const REPORTABLE_FROM: readonly TaskStatus[] = ['waiting', 'sent'];

/**
 * An `error` with this reason may still become `success` for the same attempt: the message was
 * processed, its ack was lost, and the broker dead-lettered a redelivered copy.
 */
export const RECOVERABLE_ERROR = FAILURE_REASONS.deliveryLimit;

/** Only an operator's redrive moves a task back to `waiting`, and only from these. */
export const REDRIVABLE_FROM: readonly TaskStatus[] = ['error', 'sent'];

export interface TaskState {
  status: TaskStatus;
  attempts: number;
  error: string | null;
}

export interface StatusReport {
  status: ResultStatus;
  /** The dispatch number the report is about; absent means the task's current attempt. */
  attempt?: number | undefined;
  error?: string | undefined;
}

export type ReportDecision =
  /** Apply: the check-and-set moves the task to the reported status. */
  | { outcome: 'apply' }
  /** An older attempt: 200, no change, `stale: true` (a late or duplicate message of a past dispatch). */
  | { outcome: 'stale' }
  /** The same terminal status again for this attempt: 200, no change (at-least-once delivery). */
  | { outcome: 'duplicate' }
  /** Refused: 409, no change. */
  | { outcome: 'conflict'; reason: 'terminal' | 'attempt_ahead' };

export function decideReport(task: TaskState, report: StatusReport): ReportDecision {
  const attempt = report.attempt ?? task.attempts;
  if (attempt < task.attempts) return { outcome: 'stale' };
  // No dispatch has carried this attempt number yet: the reporter is confused, never obey it.
  if (attempt > task.attempts) return { outcome: 'conflict', reason: 'attempt_ahead' };
  if (REPORTABLE_FROM.includes(task.status)) return { outcome: 'apply' };
  if (task.status === report.status) return { outcome: 'duplicate' };
  if (task.status === 'error' && report.status === 'success' && task.error === RECOVERABLE_ERROR) {
    return { outcome: 'apply' };
  }
  return { outcome: 'conflict', reason: 'terminal' };
}

export type RedriveDecision = { outcome: 'apply' } | { outcome: 'conflict' };

export function decideRedrive(task: Pick<TaskState, 'status'>): RedriveDecision {
  return REDRIVABLE_FROM.includes(task.status) ? { outcome: 'apply' } : { outcome: 'conflict' };
}
