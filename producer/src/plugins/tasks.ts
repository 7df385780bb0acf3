// The task repository as a plugin: one instance for the whole API, so single creates and reports from
// every route share its coalescers, and readiness can see whether their requests are moving.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { ProducerConfig } from '../config.js';
import { createTaskRepository, type TaskRepository } from '../tasks/repository.js';

declare module 'fastify' {
  interface FastifyInstance {
    tasks: TaskRepository;
  }
}

/**
 * How much longer than the server's statement_timeout a request waits for its statement before it
 * gives up by itself: time to get a pool connection and for the server's own timeout to arrive. Only a
 * connection that has gone silent (no answer, no error) runs into it.
 */
export const CLIENT_DEADLINE_MARGIN_MS = 1_000;

export interface TasksPluginOptions {
  config: Pick<ProducerConfig, 'api'>;
}

async function tasksPlugin(app: FastifyInstance, options: TasksPluginOptions): Promise<void> {
  app.decorate(
    'tasks',
    createTaskRepository(app.sql, {
      deadlineMs: options.config.api.statementTimeoutMs + CLIENT_DEADLINE_MARGIN_MS,
      claimOnInsert: (count) => app.dispatcher.claimOnInsert(count),
      unrecorded: app.dispatcher,
    }),
  );
}

export default fp(tasksPlugin, { name: 'tasks', fastify: '5.x', dependencies: ['db', 'dispatcher'] });
