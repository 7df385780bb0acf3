// The HTTP contract of the operator routes (PROTOCOL §4): the list, a task's detail, the stats and the
// bulk redrive. One filter shape serves the list (query string) and the bulk redrive (JSON body), so
// both select tasks by the same rules.
import { PRIORITIES } from '@task-pipeline/rabbitmq';
import { z } from 'zod';
import { TASK_STATUSES } from '../tasks/status-transitions.js';
import { TaskSchema } from './tasks.js';

/** Rows a list page may return. */
export const MAX_LIST_LIMIT = 500;
export const DEFAULT_LIST_LIMIT = 100;
/** Tasks one bulk redrive may change. */
export const MAX_REDRIVE_LIMIT = 1000;
export const DEFAULT_REDRIVE_LIMIT = 100;
/** Longest substring a text or error filter may search for. */
const MAX_SEARCH_LENGTH = 200;

const TimestampSchema = z.iso.datetime({ offset: true });

/** Tasks examined per status branch of a list page or a redrive selection (see operator-repository). */
export const SCAN_BUDGET = 20_000;
/** A bulk redrive counts its matches up to this many. */
export const MATCH_COUNT_BOUND = 10_000;
export const MATCH_BOUND_DESCRIPTION =
  `\`matched\` counts the matching error and sent tasks up to ${MATCH_COUNT_BOUND.toLocaleString('en')}, among ` +
  `the newest ${SCAN_BUDGET.toLocaleString('en')} of each status that the filters' time range selects.`;

/**
 * One or several values: repeated (`status=sent&status=error`, or a JSON array) or comma-separated
 * (`status=sent,error`).
 */
function oneOrSeveral<T extends readonly [string, ...string[]]>(values: T, what: string) {
  return z
    .union([z.string(), z.array(z.string())])
    .transform((v) =>
      (Array.isArray(v) ? v : [v])
        .flatMap((s) => s.split(','))
        .map((s) => s.trim())
        .filter((s) => s !== ''),
    )
    .pipe(z.array(z.enum(values)).min(1))
    .describe(`${what}: one or several of ${values.join(', ')} (repeated or comma-separated)`);
}

const SearchSchema = z
  .string()
  .min(1)
  .max(MAX_SEARCH_LENGTH)
  .refine((v) => !v.includes('\u0000'), 'must not contain NUL (U+0000)');

/** The filters of the list and of the bulk redrive. Absent: no condition. */
export const taskFilterShape = {
  status: oneOrSeveral(TASK_STATUSES, 'Task status').optional(),
  priority: oneOrSeveral(PRIORITIES, 'Priority').optional(),
  createdAfter: TimestampSchema.optional().describe('Created at or after this time (ISO 8601)'),
  createdBefore: TimestampSchema.optional().describe('Created before this time (ISO 8601)'),
  sentBefore: TimestampSchema.optional().describe(
    '`sent` tasks whose sent_at is older than this (the tasks whose message may be lost); selects `sent` only',
  ),
  text: SearchSchema.optional().describe(
    `Substring of the task text, case-insensitive, at most ${MAX_SEARCH_LENGTH} characters`,
  ),
  error: SearchSchema.optional().describe(
    `Substring of the error, case-insensitive, at most ${MAX_SEARCH_LENGTH} characters`,
  ),
};
export const TaskFilterSchema = z.strictObject(taskFilterShape);
export type TaskFilter = z.infer<typeof TaskFilterSchema>;

export const LIST_ORDERS = ['newest', 'oldest'] as const;
export type ListOrder = (typeof LIST_ORDERS)[number];

export const TaskListQuerySchema = z.strictObject({
  ...taskFilterShape,
  limit: z
    .string()
    .regex(/^\d{1,4}$/, 'must be an integer')
    .transform(Number)
    .pipe(z.int().min(1).max(MAX_LIST_LIMIT))
    .default(DEFAULT_LIST_LIMIT)
    .describe(`Tasks per page, 1..${MAX_LIST_LIMIT}`),
  cursor: z
    .string()
    .max(200)
    .optional()
    .describe('The `nextCursor` of the previous page (opaque); absent for the first page'),
  order: z.enum(LIST_ORDERS).default('newest').describe('By creation time (then id)'),
});
export type TaskListQuery = z.infer<typeof TaskListQuerySchema>;

export const TaskListSchema = z
  .object({
    items: z.array(TaskSchema),
    nextCursor: z
      .string()
      .nullable()
      .describe(
        'Where the next page starts; null at the end. A page examines a bounded number of tasks, so with ' +
          'selective filters it may hold fewer than `limit` items (even none) while nextCursor is not null.',
      ),
  })
  .meta({ id: 'TaskList' });

export const TaskRedriveRecordSchema = z
  .object({
    at: TimestampSchema.describe('When the redrive happened'),
    fromStatus: z.enum(TASK_STATUSES).describe('The status it left'),
    attempt: z.int().describe('The attempt it ended (the redrive started attempt + 1)'),
    error: z.string().nullable().describe('The error it had, if any'),
    sentAt: TimestampSchema.nullable(),
    finishedAt: TimestampSchema.nullable(),
  })
  .meta({ id: 'TaskRedriveRecord' });

export const TaskDetailSchema = TaskSchema.extend({
  history: z
    .object({
      createdAt: TimestampSchema,
      sentAt: TimestampSchema.nullable().describe('Sent by the current attempt'),
      finishedAt: TimestampSchema.nullable().describe('Finished by the current attempt'),
      updatedAt: TimestampSchema,
      redrives: z.array(TaskRedriveRecordSchema).describe('Every redrive, oldest first, with what it reset'),
    })
    .describe('The timestamps of each state the task passed'),
}).meta({ id: 'TaskDetail' });
export type TaskDetail = z.infer<typeof TaskDetailSchema>;

export const TaskPathParamsSchema = z.strictObject({
  taskId: z
    .uuid()
    .overwrite((id) => id.toLowerCase())
    .describe('Task id (UUID)'),
});

export const TaskStatsSchema = z
  .object({
    counts: z
      .array(z.object({ status: z.enum(TASK_STATUSES), priority: z.enum(PRIORITIES), count: z.int() }))
      .describe('Tasks by status and priority (kept by the write path, never counted per request)'),
    oldestWaitingAgeS: z.number().nullable().describe('Age of the oldest waiting task, seconds'),
    oldestSentAgeS: z.number().nullable().describe('Age of the oldest sent task, seconds'),
    staleSent: z
      .object({ olderThanS: z.int(), count: z.int() })
      .describe('`sent` tasks sent longer ago than STALE_SENT_AFTER_S: their message may be lost'),
    throughput: z
      .array(z.object({ minute: TimestampSchema, created: z.int(), finished: z.int() }))
      .describe('Tasks created and finished per minute, the last 60 minutes, oldest first'),
    at: TimestampSchema.describe('When these figures were read'),
  })
  .meta({ id: 'TaskStats' });
export type TaskStats = z.infer<typeof TaskStatsSchema>;

export const RedriveTasksSchema = z
  .strictObject({
    ...taskFilterShape,
    dryRun: z.boolean().default(false).describe('Count and list what would be redriven; change nothing'),
    limit: z
      .int()
      .min(1)
      .max(MAX_REDRIVE_LIMIT)
      .default(DEFAULT_REDRIVE_LIMIT)
      .describe(`Tasks redriven by this call at most, 1..${MAX_REDRIVE_LIMIT}`),
  })
  .meta({ id: 'RedriveTasks' });
export type RedriveTasks = z.infer<typeof RedriveTasksSchema>;

export const RedriveTasksReplySchema = z
  .object({
    dryRun: z.boolean(),
    matched: z
      .int()
      .describe(`Redrivable tasks that match (error and sent only). ${MATCH_BOUND_DESCRIPTION}`),
    redriven: z.int().describe('Tasks moved to waiting by this call (0 in a dry run)'),
    taskIds: z.array(z.uuid()).describe('The tasks redriven (in a dry run: those a real call would take)'),
  })
  .meta({ id: 'RedriveTasksReply' });
