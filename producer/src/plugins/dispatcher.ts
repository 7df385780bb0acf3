// The dispatcher (CONTRACT §6) as a plugin: claims waiting tasks, publishes them with confirms and
// records them as sent. Needs the database pool, the metrics and the broker connection.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { ProducerConfig } from '../config.js';
import type { DispatcherHandle } from '../dispatch/types.js';

export type { DispatcherHandle, DispatcherStats, PauseReason } from '../dispatch/types.js';

declare module 'fastify' {
  interface FastifyInstance {
    dispatcher: DispatcherHandle;
  }
}

export interface DispatcherPluginOptions {
  config: Pick<ProducerConfig, 'dispatch' | 'shutdownGraceMs'>;
}

async function dispatcherPlugin(app: FastifyInstance, options: DispatcherPluginOptions): Promise<void> {
  const { enabled } = options.config.dispatch;
  // Interim seam so app.ts and the create route can be wired now; the loop lands in the next commits.
  app.decorate('dispatcher', {
    taskCreated: () => undefined,
    stats: () => ({
      enabled,
      running: false,
      paused: undefined,
      batchesInFlight: 0,
      sentCount: undefined,
      dispatched: 0,
    }),
  } satisfies DispatcherHandle);
}

export default fp(dispatcherPlugin, {
  name: 'dispatcher',
  fastify: '5.x',
  dependencies: ['db', 'metrics', 'amqp'],
});
