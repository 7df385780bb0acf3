// Message schemas shared by both services (CONTRACT §5, §7). Parsing is pure: callers decide what a
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

export const WorkMessageSchema = z.object({
  taskId: z.uuid(),
  text: z.string(),
  priority: z.enum(PRIORITIES),
  createdAt: z.iso.datetime({ offset: true }),
  /** The dispatch number (the task's `attempts` when it was claimed): fences late reports. */
  attempt: z.int().positive(),
});
export type WorkMessage = z.infer<typeof WorkMessageSchema>;

export const ResultMessageSchema = z.object({
  taskId: z.uuid(),
  attempt: z.int().positive(),
  status: z.enum(RESULT_STATUSES),
  error: z.string().max(MAX_ERROR_LENGTH).optional(),
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
  if (body.length > maxBytes)
    return { ok: false, reason: `body of ${body.length} bytes exceeds ${maxBytes}` };
  if (contentType !== JSON_CONTENT_TYPE) {
    return { ok: false, reason: `content type ${contentType ?? '(none)'} is not ${JSON_CONTENT_TYPE}` };
  }
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    return { ok: false, reason: 'body is not valid JSON' };
  }
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

/**
 * The taskId and attempt of a message that failed validation, when they can still be read, so the
 * task can be reported `error` (invalid_message) instead of staying `sent` forever.
 */
export function readTaskReference(body: Buffer): { taskId: string; attempt: number } | undefined {
  try {
    const json = JSON.parse(body.toString('utf8')) as unknown;
    const ref = z.object({ taskId: z.uuid(), attempt: z.int().positive() }).safeParse(json);
    return ref.success ? ref.data : undefined;
  } catch {
    return undefined;
  }
}
