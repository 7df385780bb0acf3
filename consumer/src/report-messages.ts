// What the reporter sends for a message from tasks.results or tasks.dlq (PROTOCOL §7). Pure: the
// caller decides what an unreadable message means (it parks it).
import {
  FAILURE_REASONS,
  HEADERS,
  MAX_ERROR_LENGTH,
  type ParseResult,
  parseResultMessage,
  type ResultStatus,
  readTaskReferences,
} from '@task-pipeline/rabbitmq/contract';

/** One item of the producer's batch route `PUT /api/v1/update-task-statuses`. */
export interface StatusReport {
  taskId: string;
  taskStatus: ResultStatus;
  attempt: number;
  error?: string;
}

type Headers = Record<string, unknown> | undefined;

/** The reports of one message from tasks.results (one per result it carries). */
export function reportsFromResults(
  body: Buffer,
  contentType: string | undefined,
): ParseResult<StatusReport[]> {
  const parsed = parseResultMessage(body, contentType);
  if (!parsed.ok) return parsed;
  return {
    ok: true,
    value: parsed.value.map(({ taskId, attempt, status, error }) => ({
      taskId,
      attempt,
      taskStatus: status,
      ...(error === undefined ? {} : { error }),
    })),
  };
}

/**
 * A dead-lettered work message becomes an `error` report for each task it carries. Only taskId and
 * attempt must be readable: a message the worker could not even parse may reach the DLQ through the
 * delivery limit. One with a task that cannot be read is parked whole (its reason says how many), so
 * nothing in it goes unseen; its readable tasks then wait, `sent`, for a redrive.
 */
export function reportsFromDeadLetter(body: Buffer, headers: Headers): ParseResult<StatusReport[]> {
  const { references, unreadable } = readTaskReferences(body);
  if (references.length === 0) {
    return { ok: false, reason: 'dead-lettered message without a readable taskId and attempt' };
  }
  if (unreadable > 0) {
    return {
      ok: false,
      reason: `dead-lettered message with ${unreadable} task(s) without a readable taskId and attempt`,
    };
  }
  const error = deadLetterReason(headers);
  return { ok: true, value: references.map((ref) => ({ ...ref, taskStatus: 'error', error })) };
}

/**
 * The newest `x-death` entry's reason (`delivery_limit`, `expired`, ...), or the worker's own
 * `x-error` when the reason is merely `rejected` (the worker gave up after its retries).
 */
export function deadLetterReason(headers: Headers): string {
  const deaths = headers?.[HEADERS.death];
  const newest = Array.isArray(deaths) ? (deaths[0] as Record<string, unknown> | undefined) : undefined;
  const reason = text(newest?.reason);
  const workerError = text(headers?.[HEADERS.error]);
  const chosen =
    reason === undefined || reason === FAILURE_REASONS.rejected
      ? (workerError ?? reason ?? FAILURE_REASONS.rejected)
      : reason;
  return chosen.slice(0, MAX_ERROR_LENGTH);
}

/** Header values arrive as strings, or as Buffers when a publisher sent bytes. */
function text(value: unknown): string | undefined {
  if (typeof value === 'string') return value || undefined;
  if (Buffer.isBuffer(value)) return value.toString('utf8') || undefined;
  return undefined;
}
