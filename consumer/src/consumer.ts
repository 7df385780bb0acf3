// Composition of one consumer replica: two broker connections (topology asserted on every connect),
// one that consumes (worker, reporter) and one that publishes (results, retries, parking); the
// worker, the reporter, and the health/metrics port. main.ts is the process entry; tests call
// startConsumer directly.
//
// Why two connections: during a memory or disk alarm RabbitMQ blocks every connection that publishes
// and stops reading from it, acks included. On one shared connection nothing would drain, the alarm
// might never clear, and work held meanwhile would be done twice once it did. Apart, the consuming
// connection keeps acking (the reporter drains tasks.results and tasks.dlq) while the worker takes no
// new work until publishing is unblocked.
import { hostname } from 'node:os';
import { Broker, buildTopology, type ManagedChannel, RECONNECT_BACKOFF } from '@task-pipeline/rabbitmq';
import type { Channel } from 'amqplib';
import type { Logger } from 'pino';
import type { ConsumerConfig } from './config.js';
import { type HealthServer, type Readiness, startHealthServer } from './health.js';
import { type ConsumerMetrics, createConsumerMetrics } from './metrics.js';
import { createPublisher, createResultPublisher } from './publishing.js';
import { createReporter, type Reporter, type ReporterTiming } from './reporter.js';
import { createStatusClient } from './status-client.js';
import { createWorker, type Worker } from './worker.js';

/** Timings that are not configuration (PROTOCOL §8 fixes the variables) but tests shorten. */
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
  /** The connections and their managed channels: diagnostics, and tests that force channel errors. */
  readonly connections: { consume: Broker; publish: Broker };
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
    reconnectInitialDelayMs: RECONNECT_BACKOFF.initialMs,
    reconnectMaxDelayMs: RECONNECT_BACKOFF.maxMs,
    reporter: {},
    reportRequestTimeoutMs: 10_000,
    ...deps.tuning,
  };
  const logger = deps.logger;
  const metrics = createConsumerMetrics();
  const topology = buildTopology({
    role: 'consumer',
    retryDelaysSeconds: config.retryDelaysSeconds,
    quorumInitialGroupSize: config.quorumInitialGroupSize,
  });
  const connect = (role: 'consume' | 'publish') =>
    new Broker({
      url: config.amqpUrl,
      connectionName: `${tuning.connectionName} (${role})`,
      topology,
      logger: logger.child({ component: 'broker', connection: role }),
      reconnectInitialDelayMs: tuning.reconnectInitialDelayMs,
      reconnectMaxDelayMs: tuning.reconnectMaxDelayMs,
      // What the grace period leaves after the drain (see close()).
      closeTimeoutMs: Math.min(1_000, config.shutdownGraceMs / 4),
    });
  const consuming = connect('consume');
  const publishing = connect('publish');
  const publishChannel = publishing.confirmChannel({ name: 'publish' });
  const publisher = createPublisher({
    channel: publishChannel,
    confirmTimeoutMs: tuning.publishConfirmTimeoutMs,
    blocked: () => publishing.blocked,
  });

  let worker: Worker | undefined;
  if (config.workerQueues.length > 0) {
    worker = createWorker({
      broker: consuming,
      publishing,
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
      broker: consuming,
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
      ready: consuming.ready && publishing.ready && (reporting?.ready ?? true),
      broker: {
        consume: { connected: consuming.connected, channels: consuming.channelStates() },
        publish: {
          connected: publishing.connected,
          blocked: publishing.blocked,
          channels: publishing.channelStates(),
        },
      },
      worker: worker ? { queues: config.workerQueues } : 'disabled',
      reporter: reporting ? (reporting.ready ? 'running' : reporting) : 'disabled',
    };
  };
  const updateReadyGauge = () => metrics.ready.set(readiness().ready ? 1 : 0);
  for (const connection of [consuming, publishing]) {
    for (const event of ['connected', 'disconnected', 'channel-open', 'channel-closed'] as const) {
      connection.on(event, updateReadyGauge);
    }
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
  await Promise.all([consuming.start(), publishing.start()]);
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
    connections: { consume: consuming, publish: publishing },
    channels: { publish: publishChannel, worker: worker?.channel, reporter: reporter?.channel },
    readiness,
    close() {
      closing ??= (async () => {
        // Leave part of the grace period for closing channels and the connection.
        const drainMs = Math.max(0, config.shutdownGraceMs - Math.min(1_000, config.shutdownGraceMs / 4));
        const deadline = AbortSignal.timeout(drainMs);
        await Promise.all([worker?.stop(deadline), reporter?.stop(deadline)]);
        // Unacked deliveries return to their queues when the channels close; both connections close at
        // once, each within what the grace period leaves (a broker that does not answer is dropped).
        await Promise.all([consuming.close(), publishing.close()]);
        await client?.close();
        await health.close();
        logger.info({}, 'consumer stopped');
      })();
      return closing;
    },
  };
}
