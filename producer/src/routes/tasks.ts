// The task API (PROTOCOL §4). Thin: validate, call the repository, map its outcome to a status code.
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { BEARER_SCHEME } from '../plugins/swagger.js';
import { describeIssues, ProblemError, problem } from '../problems.js';
import {
  AUTH_PROBLEMS,
  BODY_PROBLEMS,
  COMMON_PROBLEMS,
  jsonResponse,
  problemResponse,
} from '../schemas/problem.js';
import {
  CreateTaskHeadersSchema,
  CreateTaskSchema,
  StatusBatchEnvelopeSchema,
  StatusBatchHeadersSchema,
  StatusBatchReplySchema,
  type StatusBatchResult,
  StatusBatchSchema,
  StatusReplySchema,
  StatusUpdateBodySchema,
  type StatusUpdatePart,
  StatusUpdateQuerySchema,
  StatusUpdateSchema,
  TaskIdQuerySchema,
  TaskSchema,
} from '../schemas/tasks.js';
import type { ReportedTask, ReportResult } from '../tasks/repository.js';
import type { StatusUpdate, Task } from '../tasks/task.js';

/** The batch route's body limit: 1,000 reports with 2,000-character errors fit. */
export const BATCH_BODY_LIMIT_BYTES = 1024 * 1024;

const security = [{ [BEARER_SCHEME]: [] }];

/** Query and body of the single status route may split the fields, but must not disagree. */
export function mergeStatusUpdate(
  query: StatusUpdatePart,
  body: StatusUpdatePart | null | undefined,
): StatusUpdate {
  const merged: Record<string, unknown> = { ...query };
  for (const [key, value] of Object.entries(body ?? {})) {
    if (value === undefined) continue;
    if (merged[key] !== undefined && merged[key] !== value) {
      throw new ProblemError('invalidRequest', `${key} differs between the query and the body`);
    }
    merged[key] = value;
  }
  const parsed = StatusUpdateSchema.safeParse(merged);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => ({ path: i.path.join('/'), message: i.message }));
    throw new ProblemError('invalidRequest', describeIssues(issues));
  }
  return parsed.data;
}

type ReportAnswer<T extends ReportedTask> =
  | { status: 200; task: T; stale: boolean }
  | { status: 404 | 409; kind: 'notFound' | 'statusConflict'; detail: string; task?: T };

function answerReport<T extends ReportedTask>(
  update: StatusUpdate,
  result: ReportResult<T>,
): ReportAnswer<T> {
  switch (result.outcome) {
    case 'applied':
    case 'duplicate':
    case 'stale':
      return { status: 200, task: result.task, stale: result.outcome === 'stale' };
    case 'not_found':
      return { status: 404, kind: 'notFound', detail: `task ${update.taskId} does not exist` };
    case 'conflict': {
      const { task } = result;
      const detail =
        result.reason === 'attempt_ahead'
          ? `attempt ${update.attempt} is ahead of task ${task.taskId}'s attempt ${task.attempts}`
          : `task ${task.taskId} is already ${task.status} (attempt ${task.attempts}); ${update.taskStatus} refused`;
      return { status: 409, kind: 'statusConflict', detail, task };
    }
  }
}

/** RFC 7240 `Prefer: return=minimal`, among other preferences. */
export function prefersMinimal(prefer: string | undefined): boolean {
  return prefer !== undefined && /(?:^|[\s,;])return=minimal(?:$|[\s,;])/i.test(prefer);
}

const taskRoutes: FastifyPluginAsyncZod = async (app) => {
  const { tasks } = app;
  const countReport = (result: ReportResult<ReportedTask>) =>
    app.metrics.reports.inc({ outcome: result.outcome });

  app.post(
    '/api/v1/create-task',
    {
      schema: {
        tags: ['tasks'],
        summary: 'Create a task (status waiting)',
        operationId: 'createTask',
        // Open by design (PROTOCOL §4): no token.
        security: [],
        headers: CreateTaskHeadersSchema,
        body: CreateTaskSchema,
        response: {
          ...COMMON_PROBLEMS,
          201: jsonResponse('Created (status waiting)', TaskSchema),
          200: jsonResponse('Replay: the task this Idempotency-Key created with the same body', TaskSchema),
          400: problemResponse('Invalid body (text empty or too long, NUL, lone surrogate, unknown field)'),
          ...BODY_PROBLEMS,
          422: problemResponse('Idempotency-Key already used with another body'),
        },
      },
    },
    async (request, reply) => {
      const result = await tasks.create({
        ...request.body,
        idempotencyKey: request.headers['idempotency-key'],
      });
      switch (result.outcome) {
        case 'created':
          app.metrics.tasksCreated.inc({ priority: result.task.priority });
          // A task the insert claimed is being published already; the others need a dispatcher.
          if (!result.claimed) app.dispatcher.taskCreated();
          return reply.code(201).send(result.task);
        case 'replayed':
          return reply.code(200).send(result.task);
        case 'key_reused':
          throw new ProblemError(
            'idempotencyKeyReused',
            'this Idempotency-Key was first used with another body; use a new key for a new task',
          );
      }
    },
  );

  app.get(
    '/api/v1/get-task-data',
    {
      schema: {
        tags: ['tasks'],
        summary: 'Read a task',
        operationId: 'getTaskData',
        // Open by design (PROTOCOL §4): no token.
        security: [],
        querystring: TaskIdQuerySchema,
        response: {
          ...COMMON_PROBLEMS,
          200: jsonResponse('The task', TaskSchema),
          400: problemResponse('taskId missing or not a UUID'),
          404: problemResponse('No such task'),
        },
      },
    },
    async (request) => {
      const task = await tasks.get(request.query.taskId);
      if (!task) throw new ProblemError('notFound', `task ${request.query.taskId} does not exist`);
      return task;
    },
  );

  app.put(
    '/api/v1/update-task-status',
    {
      onRequest: app.requireStatusToken,
      schema: {
        tags: ['status'],
        summary: 'Report a task’s result (query parameters or JSON body)',
        operationId: 'updateTaskStatus',
        description:
          'success | error for the task’s current attempt (or `attempt`). An older attempt answers 200 with ' +
          '`stale: true` and changes nothing; the same status again answers 200 and changes nothing.',
        security,
        querystring: StatusUpdateQuerySchema,
        body: StatusUpdateBodySchema,
        response: {
          ...COMMON_PROBLEMS,
          200: jsonResponse(
            'Applied, or changed nothing (same status again, or `stale: true`)',
            StatusReplySchema,
          ),
          400: problemResponse('Invalid fields, or query and body disagree'),
          ...AUTH_PROBLEMS,
          404: problemResponse('No such task'),
          409: problemResponse(
            'Refused transition (success ↔ error, or an attempt the task has not reached)',
          ),
          ...BODY_PROBLEMS,
        },
      },
    },
    async (request) => {
      const update = mergeStatusUpdate(request.query, request.body);
      const result = await tasks.report(update);
      countReport(result);
      const answer = answerReport(update, result);
      if (answer.status !== 200) throw new ProblemError(answer.kind, answer.detail);
      return answer.stale ? { ...answer.task, stale: true as const } : answer.task;
    },
  );

  app.put(
    '/api/v1/update-task-statuses',
    {
      onRequest: app.requireStatusToken,
      bodyLimit: BATCH_BODY_LIMIT_BYTES,
      // Items are checked one by one below, so a bad item gets its own 400 next to applied neighbours.
      attachValidation: true,
      schema: {
        tags: ['status'],
        summary: 'Report up to 1,000 results in one request (the reporter’s route)',
        operationId: 'updateTaskStatuses',
        description:
          'One result per report, in request order, each with the single route’s status code. A malformed ' +
          'report gets a per-item 400; only a malformed envelope fails the whole request. Reports of one ' +
          'task are applied in request order. With `Prefer: return=minimal` the results carry no `task` ' +
          '(the reporter’s choice: it reads only the codes).',
        security,
        headers: StatusBatchHeadersSchema,
        body: StatusBatchSchema,
        response: {
          ...COMMON_PROBLEMS,
          200: jsonResponse('One result per report, in request order', StatusBatchReplySchema),
          400: problemResponse('The envelope is not {"reports": [1..1000 items]}'),
          ...AUTH_PROBLEMS,
          ...BODY_PROBLEMS,
        },
      },
    },
    async (request, reply) => {
      const envelope = StatusBatchEnvelopeSchema.safeParse(request.body);
      if (!envelope.success) {
        const issues = envelope.error.issues.map((i) => ({
          path: `body/${i.path.join('/')}`,
          message: i.message,
        }));
        throw new ProblemError('invalidRequest', describeIssues(issues));
      }
      // A body that passed the route's schema is valid item by item already; only a body that did not
      // is checked item by item, so its good reports still apply.
      const items = envelope.data.reports.map((raw) =>
        request.validationError
          ? { raw, parsed: StatusUpdateSchema.safeParse(raw) }
          : { raw, parsed: { success: true as const, data: raw as StatusUpdate } },
      );
      const valid = items.flatMap((item) => (item.parsed.success ? [item.parsed.data] : []));
      const minimal = prefersMinimal(request.headers.prefer);
      if (minimal) reply.header('preference-applied', 'return=minimal');
      const outcomes: ReportResult<ReportedTask>[] =
        valid.length === 0
          ? []
          : minimal
            ? await tasks.reportBatchMinimal(valid)
            : await tasks.reportBatch(valid);
      let next = 0;
      const results = items.map(({ raw, parsed }): StatusBatchResult => {
        const rawId = (raw as { taskId?: unknown } | null)?.taskId;
        if (!parsed.success) {
          app.metrics.reports.inc({ outcome: 'invalid' });
          const issues = parsed.error.issues.map((i) => ({ path: i.path.join('/'), message: i.message }));
          return {
            taskId: typeof rawId === 'string' ? rawId : null,
            status: 400,
            problem: problem('invalidRequest', describeIssues(issues)),
          };
        }
        const result = outcomes[next++] as ReportResult<ReportedTask>;
        countReport(result);
        const answer = answerReport(parsed.data, result);
        const base = { taskId: parsed.data.taskId, status: answer.status };
        const task = !minimal && answer.task ? { task: answer.task as Task } : {};
        if (answer.status === 200) return { ...base, ...task, ...(answer.stale ? { stale: true } : {}) };
        return { ...base, problem: problem(answer.kind, answer.detail), ...task };
      });
      return { results };
    },
  );

  app.post(
    '/api/v1/redrive-task',
    {
      onRequest: app.requireStatusToken,
      schema: {
        tags: ['status'],
        summary: 'Send an error or sent task again (operator)',
        operationId: 'redriveTask',
        description:
          'error | sent → waiting with attempts + 1: every older message and report of the task becomes stale.',
        security,
        querystring: TaskIdQuerySchema,
        response: {
          ...COMMON_PROBLEMS,
          200: jsonResponse('The task, waiting again with attempts + 1', TaskSchema),
          400: problemResponse('taskId missing or not a UUID'),
          ...AUTH_PROBLEMS,
          404: problemResponse('No such task'),
          409: problemResponse('The task is waiting or success'),
          ...BODY_PROBLEMS,
        },
      },
    },
    async (request) => {
      const { taskId } = request.query;
      const result = await tasks.redrive(taskId);
      switch (result.outcome) {
        case 'applied':
          app.metrics.redrives.inc();
          app.dispatcher.taskCreated();
          return result.task;
        case 'not_found':
          throw new ProblemError('notFound', `task ${taskId} does not exist`);
        case 'conflict':
          throw new ProblemError(
            'statusConflict',
            `task ${taskId} is ${result.task.status}; only error or sent tasks can be redriven`,
          );
      }
    },
  );
};

export default taskRoutes;
