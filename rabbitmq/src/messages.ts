// Message schemas shared by both services (PROTOCOL §5, §7). Parsing is pure: callers decide what a
// failure means (park, report invalid_message), never this module.
import { z } from 'zod';
import { PRIORITIES } from './topology.js';

export const MAX_TEXT_LENGTH = 10_000;
export const MAX_ERROR_LENGTH = 2_000;
/** A work message carries at most 10k code points (≤ 40 KB UTF-8) plus a small envelope. */
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

/** Parses a JSON message body; the reason names what was wrong, for `x-park-reason`. */
export function parseMessage<T>(
  schema: z.ZodType<T>,
  body: Buffer,
  contentType: string | undefined,
  maxBytes = MAX_WORK_MESSAGE_BYTES,
): ParseResult<T> {
  const json = decodeJson(body, contentType, maxBytes);
  return json.ok ? validate(schema, json.value) : json;
}

/**
 * The results of a message from tasks.results. Besides today's `{"results": [...]}`, a message of the
 * earlier one-result form (`{"taskId", "attempt", "status", "error"?}`) is read as a list of one: such
 * messages can still be queued while replicas are upgraded, and must be reported, not parked.
 */
export function parseResultMessage(body: Buffer, contentType: string | undefined): ParseResult<TaskResult[]> {
  const json = decodeJson(body, contentType, MAX_RESULT_MESSAGE_BYTES);
  if (!json.ok) return json;
  const isList = typeof json.value === 'object' && json.value !== null && 'results' in json.value;
  if (isList) {
    const parsed = validate(ResultMessageSchema, json.value);
    return parsed.ok ? { ok: true, value: parsed.value.results } : parsed;
  }
  const single = validate(TaskResultSchema, json.value);
  return single.ok ? { ok: true, value: [single.value] } : single;
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

/**
 * The taskId and attempt of a message that failed validation, when they can still be read, so the
 * task can be reported `error` (invalid_message) instead of staying `sent` forever.
 */
export function readTaskReference(body: Buffer): { taskId: string; attempt: number } | undefined {
  try {
    const json = JSON.parse(body.toString('utf8')) as unknown;
    const ref = TaskReferenceSchema.safeParse(json);
    return ref.success ? ref.data : undefined;
  } catch {
    return undefined;
  }
}
