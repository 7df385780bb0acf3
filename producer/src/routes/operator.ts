// The operator API (PROTOCOL §4): list and search, a task's detail, stats, bulk redrive. Reads take
// STATUS_API_TOKEN or OPERATOR_READ_TOKEN; the bulk redrive only STATUS_API_TOKEN.
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { BEARER_SCHEME, READ_BEARER_SCHEME } from '../plugins/swagger.js';
import { ProblemError } from '../problems.js';
import {
  MATCH_BOUND_DESCRIPTION,
  RedriveTasksReplySchema,
  RedriveTasksSchema,
  TaskDetailSchema,
  TaskListQuerySchema,
  TaskListSchema,
  TaskPathParamsSchema,
  TaskStatsSchema,
} from '../schemas/operator.js';
import {
  AUTH_PROBLEMS,
  BODY_PROBLEMS,
  COMMON_PROBLEMS,
  jsonResponse,
  problemResponse,
  READ_AUTH_PROBLEMS,
} from '../schemas/problem.js';
import { InvalidCursorError } from '../tasks/operator-repository.js';

const readSecurity: Record<string, string[]>[] = [{ [BEARER_SCHEME]: [] }, { [READ_BEARER_SCHEME]: [] }];
const security = [{ [BEARER_SCHEME]: [] }];

const operatorRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/api/v1/tasks',
    {
      onRequest: app.requireReadToken,
      schema: {
        tags: ['operator'],
        summary: 'List and search tasks, newest first (keyset pagination)',
        operationId: 'listTasks',
        description:
          'Filters combine with AND; `status` and `priority` take several values. Pages follow ' +
          '`nextCursor`. A page examines a bounded number of tasks, so a selective filter may answer ' +
          'fewer than `limit` items with a cursor to go on from.',
        security: readSecurity,
        querystring: TaskListQuerySchema,
        response: {
          ...COMMON_PROBLEMS,
          200: jsonResponse('A page of tasks', TaskListSchema),
          400: problemResponse('A filter, the limit or the cursor is invalid'),
          ...READ_AUTH_PROBLEMS,
        },
      },
    },
    async (request) => {
      try {
        return await app.operator.list(request.query);
      } catch (err) {
        if (err instanceof InvalidCursorError) throw new ProblemError('invalidRequest', err.message);
        throw err;
      }
    },
  );

  app.get(
    '/api/v1/tasks/:taskId',
    {
      onRequest: app.requireReadToken,
      schema: {
        tags: ['operator'],
        summary: 'A task with its history (attempts, error, the time of each state, every redrive)',
        operationId: 'getTaskDetail',
        security: readSecurity,
        params: TaskPathParamsSchema,
        response: {
          ...COMMON_PROBLEMS,
          200: jsonResponse('The task and its history', TaskDetailSchema),
          400: problemResponse('taskId is not a UUID'),
          ...READ_AUTH_PROBLEMS,
          404: problemResponse('No such task'),
        },
      },
    },
    async (request) => {
      const detail = await app.operator.detail(request.params.taskId);
      if (!detail) throw new ProblemError('notFound', `task ${request.params.taskId} does not exist`);
      return detail;
    },
  );

  app.get(
    '/api/v1/task-stats',
    {
      onRequest: app.requireReadToken,
      schema: {
        tags: ['operator'],
        summary: 'Counts by status and priority, ages, stale sent tasks, throughput of the last hour',
        operationId: 'getTaskStats',
        description: 'Cheap to poll every few seconds: no statement counts the tasks table.',
        security: readSecurity,
        response: {
          ...COMMON_PROBLEMS,
          200: jsonResponse('The figures', TaskStatsSchema),
          ...READ_AUTH_PROBLEMS,
        },
      },
    },
    async () => app.operator.stats(),
  );

  app.post(
    '/api/v1/redrive-tasks',
    {
      onRequest: app.requireStatusToken,
      schema: {
        tags: ['operator'],
        summary: 'Redrive the error and sent tasks that match the list’s filters (dry run to count)',
        operationId: 'redriveTasks',
        description:
          'Each task as the single redrive does (attempts + 1, every older message and report stale), ' +
          `newest first, at most \`limit\` per call. ${MATCH_BOUND_DESCRIPTION} Filters selecting ` +
          'waiting or success tasks redrive none of them. `sentBefore` selects sent tasks by age: those ' +
          'whose message may be lost.',
        security,
        body: RedriveTasksSchema,
        response: {
          ...COMMON_PROBLEMS,
          200: jsonResponse('What matched and what was redriven', RedriveTasksReplySchema),
          400: problemResponse('Invalid filters or limit'),
          ...AUTH_PROBLEMS,
          ...BODY_PROBLEMS,
        },
      },
    },
    async (request) => {
      const result = await app.operator.redriveMany(request.body);
      if (result.redriven > 0) {
        app.metrics.redrives.inc(result.redriven);
        app.dispatcher.taskCreated();
      }
      request.log.info(
        { matched: result.matched, redriven: result.redriven, dryRun: result.dryRun },
        'bulk redrive',
      );
      return result;
    },
  );
};

export default operatorRoutes;
