// Composition of one consumer replica: broker connection (topology asserted on every connect),
// one confirm channel for every publish, the worker, the reporter, and the health/metrics port.
// main.ts is the process entry; tests call startConsumer directly.
import { hostname } from 'node:os';
import { Broker, buildTopology, type ManagedChannel } from '@task-pipeline/rabbitmq';
import type { Channel } from 'amqplib';
import type { Logger } from 'pino';
import type { ConsumerConfig } from './config.js';
import { type HealthServer, type Readiness, startHealthServer } from './health.js';
import { type ConsumerMetrics, createConsumerMetrics } from './metrics.js';
import { createPublisher, createResultPublisher } from './publishing.js';
import { createReporter, type Reporter, type ReporterTiming } from './reporter.js';
import { createStatusClient } from './status-client.js';
import { createWorker, type Worker } from './worker.js';

/** Timings that are not configuration (CONTRACT §8 fixes the variables) but tests shorten. */
export interface ConsumerTuning {
  connectionName: string;
  publishConfirmTimeoutMs: number;
  reconnectInitialDelayMs: number;
  reconnectMaxDelayMs: number;
  reporter: Partial<ReporterTiming>;
  reportRequestTimeoutMs: number;
}

export interface ConsumerDependencies {
  logger: Logger;
  tuning?: Partial<ConsumerTuning>;
}

export interface Consumer {
  /** The health/metrics server, e.g. http://127.0.0.1:3001. */
  readonly healthUrl: string;
  readonly metrics: ConsumerMetrics;
  /** The connection and its managed channels: diagnostics, and tests that force channel errors. */
  readonly broker: Broker;
  readonly channels: {
    publish: ManagedChannel<Channel>;
    worker: ManagedChannel<Channel> | undefined;
    reporter: ManagedChannel<Channel> | undefined;
  };
  readiness(): Readiness;
  /** Stops consuming, lets in-flight work finish within SHUTDOWN_GRACE_MS, closes everything. */
  close(): Promise<void>;
}

export async function startConsumer(config: ConsumerConfig, deps: ConsumerDependencies): Promise<Consumer> {
  const tuning: ConsumerTuning = {
    connectionName: `consumer@${hostname()}:${process.pid}`,
    publishConfirmTimeoutMs: 5_000,
    reconnectInitialDelayMs: 200,
    reconnectMaxDelayMs: 5_000,
    reporter: {},
    reportRequestTimeoutMs: 10_000,
    ...deps.tuning,
  };
  const logger = deps.logger;
  const metrics = createConsumerMetrics();
  const broker = new Broker({
    url: config.amqpUrl,
    connectionName: tuning.connectionName,
    topology: buildTopology({ role: 'consumer', retryDelaysSeconds: config.retryDelaysSeconds }),
    logger: logger.child({ component: 'broker' }),
    reconnectInitialDelayMs: tuning.reconnectInitialDelayMs,
    reconnectMaxDelayMs: tuning.reconnectMaxDelayMs,
  });
  const publishChannel = broker.confirmChannel({ name: 'publish' });
  const publisher = createPublisher({
    channel: publishChannel,
    confirmTimeoutMs: tuning.publishConfirmTimeoutMs,
  });

  let worker: Worker | undefined;
  if (config.workerQueues.length > 0) {
    worker = createWorker({
      broker,
      queues: config.workerQueues,
      prefetch: config.workerPrefetch,
      processingTimeMs: config.processingTimeMs,
      policy: config,
      publisher,
      publishResult: createResultPublisher(publisher),
      metrics,
      logger: logger.child({ component: 'worker' }),
    });
  }

  const client = config.reporterEnabled
    ? createStatusClient({
        producerUrl: config.producerUrl,
        token: config.statusApiToken,
        requestTimeoutMs: tuning.reportRequestTimeoutMs,
      })
    : undefined;
  let reporter: Reporter | undefined;
  if (client) {
    reporter = createReporter({
      broker,
      publisher,
      client,
      batchSize: config.reportBatchSize,
      batchMs: config.reportBatchMs,
      timing: tuning.reporter,
      metrics,
      logger: logger.child({ component: 'reporter' }),
      onStateChange: () => updateReadyGauge(),
    });
  }

  const readiness = (): Readiness => {
    const reporting = reporter?.state();
    return {
      // Every channel open means every consumer attached (their setup ran on the live channel).
      ready: broker.ready && (reporting?.ready ?? true),
      broker: { connected: broker.connected, blocked: broker.blocked, channels: broker.channelStates() },
      worker: worker ? { queues: config.workerQueues } : 'disabled',
      reporter: reporting ? (reporting.ready ? 'running' : reporting) : 'disabled',
    };
  };
  const updateReadyGauge = () => metrics.ready.set(readiness().ready ? 1 : 0);
  for (const event of ['connected', 'disconnected', 'channel-open', 'channel-closed'] as const) {
    broker.on(event, updateReadyGauge);
  }
  updateReadyGauge();

  let health: HealthServer;
  try {
    health = await startHealthServer({
      port: config.healthPort,
      readiness,
      registry: metrics.registry,
      logger,
    });
  } catch (err) {
    await client?.close();
    throw err;
  }
  await broker.start();
  logger.info(
    {
      workerQueues: config.workerQueues,
      reporter: config.reporterEnabled,
      health: health.url,
      connection: tuning.connectionName,
    },
    'consumer started',
  );

  let closing: Promise<void> | undefined;
  return {
    healthUrl: health.url,
    metrics,
    broker,
    channels: { publish: publishChannel, worker: worker?.channel, reporter: reporter?.channel },
    readiness,
    close() {
      closing ??= (async () => {
        // Leave part of the grace period for closing channels and the connection.
        const drainMs = Math.max(0, config.shutdownGraceMs - Math.min(1_000, config.shutdownGraceMs / 4));
        const deadline = AbortSignal.timeout(drainMs);
        await Promise.all([worker?.stop(deadline), reporter?.stop(deadline)]);
        // Unacked deliveries return to their queues when the channels close.
        await broker.close();
        await client?.close();
        await health.close();
        logger.info({}, 'consumer stopped');
      })();
      return closing;
    },
  };
}
