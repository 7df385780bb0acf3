// The dispatcher (PROTOCOL §6) as a plugin: claims waiting tasks, publishes them with confirms and
// records them as sent; wakes up on creates here and, through LISTEN/NOTIFY, on the other replicas.
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { ProducerConfig } from '../config.js';
import { createDispatchRepository, statementDeadlineMs } from '../dispatch/dispatch-repository.js';
import { channelPublisher, createDispatcher, type DispatcherHooks } from '../dispatch/dispatcher.js';
import { startTaskGauges } from '../dispatch/task-gauges.js';
import { DISABLED_DISPATCHER_STATS, type DispatcherHandle } from '../dispatch/types.js';
import { createCrossReplicaWakeup } from '../dispatch/wakeup.js';

export type { DispatcherHandle, DispatcherStats, PauseReason } from '../dispatch/types.js';

declare module 'fastify' {
  interface FastifyInstance {
    dispatcher: DispatcherHandle;
  }
}

export interface DispatcherPluginOptions {
  config: Pick<ProducerConfig, 'dispatch' | 'shutdownGraceMs' | 'operator'>;
  /** Crash-point seams for tests. */
  hooks?: DispatcherHooks;
  /** Overrides the default number of overlapping batches (benchmarks). */
  pipelineDepth?: number;
}

async function dispatcherPlugin(app: FastifyInstance, options: DispatcherPluginOptions): Promise<void> {
  const { config } = options;
  const logger = app.log.child({ component: 'dispatcher' });
  const repository = createDispatchRepository(app.dispatchSql, {
    statementDeadlineMs: statementDeadlineMs(config.dispatch),
  });
  const gauges = startTaskGauges({
    repository,
    metrics: app.metrics,
    logger,
    staleSentAfterS: config.operator.staleSentAfterS,
  });

  const dispatcher = config.dispatch.enabled
    ? createDispatcher({
        config: config.dispatch,
        repository,
        broker: app.broker,
        publisher: channelPublisher(
          app.broker.confirmChannel({ name: 'dispatch' }),
          config.dispatch.confirmTimeoutMs,
        ),
        metrics: app.metrics,
        logger,
        hooks: options.hooks,
        pipelineDepth: options.pipelineDepth,
      })
    : undefined;

  const wakeup = createCrossReplicaWakeup({
    sql: app.sql,
    instanceId: randomUUID(),
    logger,
    onWake: () => dispatcher?.wake(),
  });

  app.decorate('dispatcher', {
    taskCreated() {
      dispatcher?.wake();
      wakeup.notify();
    },
    claimOnInsert: (count) => dispatcher?.claimOnInsert(count),
    confirmedAt: (attempts) => dispatcher?.confirmedAt(attempts) ?? new Map(),
    reported: (attempts) => dispatcher?.reported(attempts),
    stats: () => dispatcher?.stats() ?? DISABLED_DISPATCHER_STATS,
  } satisfies DispatcherHandle);

  if (dispatcher) {
    // Starts once the whole app is ready, not while later plugins are still registering.
    app.addHook('onReady', async () => {
      void wakeup.listen();
      dispatcher.start();
    });
  }

  // Stopping starts with the close, alongside the requests' draining, and has half the grace period
  // (see graceful-close.ts): a confirm or a statement that never answers must not make the producer
  // overrun SHUTDOWN_GRACE_MS. It is awaited in onClose, which runs before db's and amqp's (registered
  // earlier), so the pool and the channel are still open while in-flight batches finish and unpublished
  // leases are released.
  let stopped: Promise<void> | undefined;
  app.addHook('preClose', async () => {
    gauges.stop();
    stopped = dispatcher?.stop(
      Math.min(config.dispatch.confirmTimeoutMs + 2_000, config.shutdownGraceMs / 2),
    );
  });
  app.addHook('onClose', async () => {
    await stopped;
    await wakeup.close();
  });
}

export default fp(dispatcherPlugin, {
  name: 'dispatcher',
  fastify: '5.x',
  dependencies: ['db', 'metrics', 'amqp'],
});
