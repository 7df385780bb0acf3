// Message schemas shared by both services (PROTOCOL §5, §7). Parsing is pure: callers decide what a
// failure means (park, report invalid_message), never this module.
import { z } from 'zod';
import { PRIORITIES } from './topology.js';

export const MAX_TEXT_LENGTH = 10_000;
export const MAX_ERROR_LENGTH = 2_000;
/** Any work message: one task of 10k code points (≤ 40 KB UTF-8, more when JSON escapes it) fits. */
export const MAX_WORK_MESSAGE_BYTES = 64 * 1024;

export const JSON_CONTENT_TYPE = 'application/json';

export const HEADERS = {
  retryCount: 'x-retry-count',
  error: 'x-error',
  parkReason: 'x-park-reason',
  /** The queue a parked message was taken from: tells a human where it would have gone. */
  parkedFrom: 'x-parked-from',
  death: 'x-death',
  traceparent: 'traceparent',
} as const;

export const RESULT_STATUSES = ['success', 'error'] as const;
export type ResultStatus = (typeof RESULT_STATUSES)[number];

/** Failure reasons the pipeline itself writes into a task's `error`. */
export const FAILURE_REASONS = {
  deliveryLimit: 'delivery_limit',
  invalidMessage: 'invalid_message',
  rejected: 'rejected',
  expired: 'expired',
} as const;

/**
 * A task id in any spelling, lower-cased at the boundary: PostgreSQL answers in lower case, and the
 * reporter matches the producer's answers to its reports by this string, so an upper-case id in a
 * message would otherwise never match its answer.
 */
export const TaskIdSchema = z.uuid().overwrite((id) => id.toLowerCase());

export const WorkMessageSchema = z.object({
  taskId: TaskIdSchema,
  text: z.string(),
  priority: z.enum(PRIORITIES),
  createdAt: z.iso.datetime({ offset: true }),
  /** The dispatch number (the task's `attempts` when it was claimed): fences late reports. */
  attempt: z.int().positive(),
});
export type WorkMessage = z.infer<typeof WorkMessageSchema>;

/**
 * Tasks per work message at most. A message may carry several tasks of one priority that one claim
 * took (DISPATCH_TASKS_PER_MESSAGE): one confirmed publish, one delivery and one ack for all of them,
 * where the broker's work is per message. Any work message stays within MAX_WORK_MESSAGE_BYTES, so
 * what a worker's prefetch holds is bounded as before.
 */
export const MAX_TASKS_PER_WORK_MESSAGE = 64;

const WorkBatchSchema = z.object({
  tasks: z
    .array(WorkMessageSchema)
    .min(1)
    .max(MAX_TASKS_PER_WORK_MESSAGE)
    // It went to one priority's queue, and each task's outcome is published under its id.
    .refine((tasks) => tasks.every((t) => t.priority === tasks[0]?.priority), 'tasks of several priorities')
    .refine((tasks) => new Set(tasks.map((t) => t.taskId)).size === tasks.length, 'a task twice'),
});

/** One task's result, as a worker found it. */
export const TaskResultSchema = z.object({
  taskId: TaskIdSchema,
  attempt: z.int().positive(),
  status: z.enum(RESULT_STATUSES),
  error: z.string().max(MAX_ERROR_LENGTH).optional(),
});
export type TaskResult = z.infer<typeof TaskResultSchema>;

/**
 * Results per message in tasks.results: a worker publishes what it finished together as one message
 * (one confirmed publish, one delivery and one ack for all of them); the producer's batch route takes
 * as many reports in one request.
 */
export const MAX_RESULTS_PER_MESSAGE = 1000;
/** A full result message: 1,000 results with the longest errors stay below this. */
export const MAX_RESULT_MESSAGE_BYTES = 4 * 1024 * 1024;

export const ResultMessageSchema = z.object({
  results: z.array(TaskResultSchema).min(1).max(MAX_RESULTS_PER_MESSAGE),
});
export type ResultMessage = z.infer<typeof ResultMessageSchema>;

export type ParseResult<T> = { ok: true; value: T } | { ok: false; reason: string };

/**
 * The results of a message from tasks.results. Besides today's `{"results": [...]}`, a message of the
 * earlier one-result form (`{"taskId", "attempt", "status", "error"?}`) is read as a list of one: such
 * messages can still be queued while replicas are upgraded, and must be reported, not parked.
 */
export function parseResultMessage(body: Buffer, contentType: string | undefined): ParseResult<TaskResult[]> {
  const json = decodeJson(body, contentType, MAX_RESULT_MESSAGE_BYTES);
  if (!json.ok) return json;
  if (hasField(json.value, 'results')) {
    const parsed = validate(ResultMessageSchema, json.value);
    return parsed.ok ? { ok: true, value: parsed.value.results } : parsed;
  }
  const single = validate(TaskResultSchema, json.value);
  return single.ok ? { ok: true, value: [single.value] } : single;
}

/**
 * The tasks of a work message: `{"tasks": [...]}` (several tasks; `listed`) or one task's own form,
 * which retry copies, dead letters and a dispatcher sending one task a message keep using.
 */
export function parseWorkMessage(
  body: Buffer,
  contentType: string | undefined,
): { ok: true; value: WorkMessage[]; listed: boolean } | { ok: false; reason: string } {
  const json = decodeJson(body, contentType, MAX_WORK_MESSAGE_BYTES);
  if (!json.ok) return json;
  if (!hasField(json.value, 'tasks')) {
    const single = validate(WorkMessageSchema, json.value);
    return single.ok ? { ok: true, value: [single.value], listed: false } : single;
  }
  const parsed = validate(WorkBatchSchema, json.value);
  return parsed.ok ? { ok: true, value: parsed.value.tasks, listed: true } : parsed;
}

/** Which form a message has: the list form names its list; the one-item form does not. */
function hasField(json: unknown, field: string): boolean {
  return typeof json === 'object' && json !== null && field in json;
}

function decodeJson(body: Buffer, contentType: string | undefined, maxBytes: number): ParseResult<unknown> {
  if (body.length > maxBytes)
    return { ok: false, reason: `body of ${body.length} bytes exceeds ${maxBytes}` };
  if (contentType !== JSON_CONTENT_TYPE) {
    return { ok: false, reason: `content type ${contentType ?? '(none)'} is not ${JSON_CONTENT_TYPE}` };
  }
  try {
    return { ok: true, value: JSON.parse(body.toString('utf8')) };
  } catch {
    return { ok: false, reason: 'body is not valid JSON' };
  }
}

function validate<T>(schema: z.ZodType<T>, json: unknown): ParseResult<T> {
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return {
      ok: false,
      reason: `invalid ${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'schema mismatch'}`,
    };
  }
  return { ok: true, value: parsed.data };
}

const TaskReferenceSchema = z.object({ taskId: TaskIdSchema, attempt: z.int().positive() });

export type TaskReference = z.infer<typeof TaskReferenceSchema>;

export interface TaskReferences {
  /** Distinct (taskId, attempt) pairs, at most MAX_TASKS_PER_WORK_MESSAGE. */
  references: TaskReference[];
  /** Tasks of the message without a readable taskId and attempt, or past that many. */
  unreadable: number;
}

/**
 * The taskIds and attempts of a work message that failed validation, as far as they can still be
 * read (each task of a message of several on its own), so those tasks can be reported `error`
 * (invalid_message, or the reason they were dead-lettered) instead of staying `sent` forever. Never
 * more than a message may carry: a forged list of a million ids yields no more reports than that.
 */
export function readTaskReferences(body: Buffer): TaskReferences {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    return { references: [], unreadable: 1 };
  }
  const items = hasField(json, 'tasks') ? (json as { tasks: unknown }).tasks : [json];
  if (!Array.isArray(items)) return { references: [], unreadable: 1 };
  const seen = new Map<string, TaskReference>();
  let readable = 0;
  for (const item of items.slice(0, MAX_TASKS_PER_WORK_MESSAGE)) {
    const ref = TaskReferenceSchema.safeParse(item);
    if (!ref.success) continue;
    readable += 1;
    seen.set(`${ref.data.taskId}/${ref.data.attempt}`, ref.data);
  }
  return { references: [...seen.values()], unreadable: items.length - readable };
}
