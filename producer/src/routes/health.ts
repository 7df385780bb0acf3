// Liveness (the process answers) and readiness (PostgreSQL answers and requests get through: without
// either, nothing can be served).
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { problem } from '../problems.js';
import { LiveSchema, NotReadySchema, ReadySchema } from '../schemas/health.js';
import { COMMON_PROBLEMS, jsonResponse, PROBLEM_CONTENT_TYPE } from '../schemas/problem.js';

/** A readiness probe must answer well within a probe's timeout even while the database hangs. */
export const DATABASE_CHECK_TIMEOUT_MS = 2000;

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const healthRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/health/live',
    {
      schema: {
        tags: ['health'],
        summary: 'The process is up',
        operationId: 'live',
        security: [],
        response: { ...COMMON_PROBLEMS, 200: jsonResponse('Alive', LiveSchema) },
      },
    },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/health/ready',
    {
      schema: {
        tags: ['health'],
        summary:
          'PostgreSQL answers and requests get through (broker and dispatcher state are reported, not required)',
        operationId: 'ready',
        security: [],
        response: {
          ...COMMON_PROBLEMS,
          200: jsonResponse('PostgreSQL answers and requests get through', ReadySchema),
          503: {
            description:
              'PostgreSQL does not answer, requests are not getting through (statements time out or wait ' +
              'too long), or the producer is shutting down',
            content: { [PROBLEM_CONTENT_TYPE]: { schema: NotReadySchema } },
          },
        },
      },
    },
    async (request, reply) => {
      const databaseUp = await withTimeout(
        Promise.resolve(app.sql`select 1`),
        DATABASE_CHECK_TIMEOUT_MS,
      ).then(
        () => true,
        (err: unknown) => {
          request.log.warn({ err }, 'readiness: PostgreSQL does not answer');
          return false;
        },
      );
      const { broker } = app;
      const requests = app.tasks.flow();
      const checks = {
        database: databaseUp ? ('up' as const) : ('down' as const),
        requests,
        broker: { connected: broker.connected, blocked: broker.blocked, ready: broker.ready },
        dispatcher: { ...app.dispatcher.stats() },
      };
      const stalled = Object.entries(requests)
        .filter(([, flow]) => flow.stalled)
        .map(([kind]) => kind);
      if (databaseUp && stalled.length === 0) return reply.code(200).send({ status: 'ready', checks });
      const detail = databaseUp
        ? `${stalled.join(' and ')} are not getting through: statements time out or wait too long`
        : 'PostgreSQL does not answer';
      return reply
        .code(503)
        .type(PROBLEM_CONTENT_TYPE)
        .send({ ...problem('unavailable', detail), checks });
    },
  );
};

export default healthRoutes;
