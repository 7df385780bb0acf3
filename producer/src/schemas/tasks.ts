// The HTTP contract of the task routes (PROTOCOL §3, §4). Routes validate with these and the OpenAPI
// document is generated from them. Request objects are strict: a misspelt optional field (`attempts`
// for `attempt`, `priorty`) must be a 400, not silently ignored — a lost `attempt` would lose fencing.
import { MAX_ERROR_LENGTH, MAX_TEXT_LENGTH, PRIORITIES, RESULT_STATUSES } from '@task-pipeline/rabbitmq';
import { z } from 'zod';
import { TASK_STATUSES } from '../tasks/status-transitions.js';
import { ProblemSchema } from './problem.js';

/** Reports per batch request (the reporter's REPORT_BATCH_SIZE must stay at or below it). */
export const MAX_BATCH_REPORTS = 1000;
/** The `attempts` column is an int4. */
const MAX_ATTEMPT = 2 ** 31 - 1;

// With the `u` flag a valid surrogate pair is one code point, so this matches only lone halves.
const LONE_SURROGATE = /\p{Surrogate}/u;
const NUL = '\u0000';

function codePointCountBetween(value: string, min: number, max: number): boolean {
  let count = 0;
  for (const _ of value) {
    count += 1;
    if (count > max) return false;
  }
  return count >= min;
}

/** PostgreSQL text cannot hold NUL, and a lone surrogate has no UTF-8 form: refuse both up front. */
function storableText(schema: z.ZodString): z.ZodString {
  return schema
    .refine((v) => !v.includes(NUL), 'must not contain NUL (U+0000)')
    .refine((v) => !LONE_SURROGATE.test(v), 'must be well-formed Unicode (no lone surrogates)');
}

export const TaskIdSchema = z
  .uuid()
  // PostgreSQL answers in lower case; the batch route matches rows to items by this string.
  .overwrite((id) => id.toLowerCase())
  .describe('Task id (UUID)');

export const TaskTextSchema = storableText(
  z
    .string()
    .trim()
    .refine(
      (v) => codePointCountBetween(v, 1, MAX_TEXT_LENGTH),
      `must be 1..${MAX_TEXT_LENGTH} Unicode code points after trimming`,
    ),
).describe(`Text to process: 1..${MAX_TEXT_LENGTH} code points after trimming; stored trimmed`);

export const PrioritySchema = z.enum(PRIORITIES).describe('Picks the work queue and the claim order');

const ErrorTextSchema = storableText(z.string().max(MAX_ERROR_LENGTH)).describe(
  `Failure reason, at most ${MAX_ERROR_LENGTH} characters`,
);

const AttemptSchema = z
  .int()
  .min(0)
  .max(MAX_ATTEMPT)
  .describe(
    'The dispatch number the report is about (the work message’s `attempt`); default: the current one',
  );

const TimestampSchema = z.iso.datetime({ offset: true });

export const TaskSchema = z
  .object({
    taskId: z.uuid(),
    text: z.string(),
    priority: PrioritySchema,
    status: z.enum(TASK_STATUSES),
    attempts: z.int().describe('Dispatch number: incremented by every claim and every redrive'),
    error: z.string().nullable(),
    createdAt: TimestampSchema,
    updatedAt: TimestampSchema,
    sentAt: TimestampSchema.nullable(),
    finishedAt: TimestampSchema.nullable(),
  })
  .meta({ id: 'Task' });
export type Task = z.infer<typeof TaskSchema>;

export const StatusReplySchema = TaskSchema.extend({
  stale: z
    .literal(true)
    .optional()
    .describe('The report was about an older attempt and changed nothing (fencing)'),
}).meta({ id: 'TaskStatusReply' });

export const CreateTaskSchema = z
  .strictObject({
    text: TaskTextSchema,
    priority: PrioritySchema.default('medium'),
  })
  .meta({ id: 'CreateTask' });
export type CreateTask = z.infer<typeof CreateTaskSchema>;

export const CreateTaskHeadersSchema = z.object({
  'idempotency-key': z
    .string()
    .regex(/^[\x21-\x7e]{1,255}$/, 'must be 1..255 visible ASCII characters')
    .optional()
    .describe(
      'Same key and body → the same task (200); same key, other body → 422. A key is remembered as ' +
        'long as its task: retention (TASK_RETENTION, 7 days by default) deletes finished tasks, and ' +
        'their keys are forgotten with them, so a key reused after that creates a new task.',
    ),
});

export const TaskIdQuerySchema = z.strictObject({ taskId: TaskIdSchema });

const statusUpdateFields = {
  taskId: TaskIdSchema,
  taskStatus: z.enum(RESULT_STATUSES),
  attempt: AttemptSchema.optional(),
  error: ErrorTextSchema.optional(),
};

export const StatusUpdateSchema = z.strictObject(statusUpdateFields).meta({ id: 'StatusUpdate' });
export type StatusUpdate = z.infer<typeof StatusUpdateSchema>;

/** Query and body of the single route each carry any subset; together they must form a StatusUpdate. */
export const StatusUpdateQuerySchema = z.strictObject({
  ...StatusUpdateSchema.partial().shape,
  attempt: z
    .string()
    .regex(/^\d{1,10}$/, 'must be a non-negative integer')
    .transform(Number)
    .pipe(AttemptSchema)
    .optional(),
});
export const StatusUpdateBodySchema = StatusUpdateSchema.partial().nullish();
export type StatusUpdatePart = z.infer<typeof StatusUpdateQuerySchema>;

export const StatusBatchSchema = z
  .strictObject({
    reports: z.array(StatusUpdateSchema).min(1).max(MAX_BATCH_REPORTS),
  })
  .meta({ id: 'StatusBatch' });

/**
 * What the batch route actually requires of the whole body: each item is checked on its own, so one
 * malformed report gets a per-item 400 (the reporter parks it) instead of failing its neighbours.
 */
export const StatusBatchEnvelopeSchema = z.strictObject({
  reports: z.array(z.unknown()).min(1).max(MAX_BATCH_REPORTS),
});

export const StatusBatchHeadersSchema = z.object({
  prefer: z
    .string()
    .optional()
    .describe('`return=minimal`: results without `task` (RFC 7240); answered with Preference-Applied'),
});

export const BATCH_ITEM_STATUSES = [200, 400, 404, 409] as const;

export const StatusBatchResultSchema = z
  .object({
    taskId: z
      .string()
      .nullable()
      .describe(
        'The item’s taskId in canonical lower case (as sent when it is not a UUID, null when not a string); results come in request order',
      ),
    status: z.literal(BATCH_ITEM_STATUSES),
    stale: z.literal(true).optional(),
    task: TaskSchema.optional().describe('The task after the batch (200 and 409; not with return=minimal)'),
    problem: ProblemSchema.optional().describe('Why the item was not applied (400, 404, 409)'),
  })
  .meta({ id: 'StatusBatchResult' });
export type StatusBatchResult = z.infer<typeof StatusBatchResultSchema>;

export const StatusBatchReplySchema = z
  .object({ results: z.array(StatusBatchResultSchema).describe('One result per report, in request order') })
  .meta({ id: 'StatusBatchReply' });
