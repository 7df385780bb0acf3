// The consumer's whole configuration: one zod schema over the environment, parsed once at start.
// process.env is read nowhere else. A bad value stops the boot with the variable's name.
import { envBoolean as bool, envLogLevel, envInt as int, parseEnv } from '@task-pipeline/common';
import {
  ALL_WORK_QUEUES,
  brokerUrlListSchema,
  DEFAULT_RETRY_DELAYS_SECONDS,
  MAX_WORK_MESSAGE_BYTES,
  type WorkQueue,
} from '@task-pipeline/rabbitmq/contract';
import { z } from 'zod';

/**
 * RabbitMQ closes the channel of a delivery left unacknowledged past its consumer timeout (30 min by
 * default) and redelivers everything on it: a task that takes longer is processed again and again
 * until the delivery limit dead-letters it. Half of that leaves room for a slow result publish.
 */
export const MAX_PROCESSING_TIME_MS = 15 * 60_000;

/**
 * The most message bytes a worker, or the reporter, may hold at once from one kind of queue. A worker
 * holds WORKER_PREFETCH deliveries per queue it consumes (the limit is per consumer), each up to
 * MAX_WORK_MESSAGE_BYTES; the reporter as many result messages as fit (reporter.ts). Beyond this a
 * burst of large messages would take more memory than a modest container has.
 */
export const MAX_PREFETCHED_BYTES = 256 * 1024 * 1024;

/** A comma-separated list; blanks around items are ignored. */
const list = <O>(item: z.ZodType<O>) =>
  z.preprocess(
    (v) => (typeof v === 'string' ? v.split(',').map((part) => part.trim()) : v),
    z.array(item).min(1, 'must list at least one value'),
  );

export const ConsumerEnvSchema = z
  .object({
    // One broker URL or a cluster's nodes, comma-separated (parseBrokerUrls says how).
    AMQP_URL: brokerUrlListSchema.default('amqp://guest:guest@127.0.0.1:5672'),
    PRODUCER_URL: z.url({ protocol: /^https?$/ }).default('http://127.0.0.1:3000'),
    STATUS_API_TOKEN: z.string().min(16, 'must be at least 16 characters'),
    WORKER_QUEUES: list(z.enum(ALL_WORK_QUEUES as [WorkQueue, ...WorkQueue[]]))
      .refine((queues) => new Set(queues).size === queues.length, 'lists a queue twice')
      .default([...ALL_WORK_QUEUES]),
    // Bounds the result publishes awaiting their confirm, not the work in progress: with little work per
    // message a worker spends its slots waiting for the quorum queue's confirms.
    WORKER_PREFETCH: int(1, 65_535).default(256),
    PROCESSING_TIME_MS: z.coerce
      .number()
      .int()
      .min(0)
      .max(
        MAX_PROCESSING_TIME_MS,
        `must be at most ${MAX_PROCESSING_TIME_MS} (15 min): RabbitMQ closes a channel whose delivery stays unacknowledged past its consumer timeout (30 min by default), and every task would be processed again`,
      )
      .default(100),
    FAILURE_RATE: z.coerce.number().min(0).max(1).default(0.1),
    FAILURE_SEED: z.string().min(1).default('task-pipeline'),
    MAX_RETRIES: int(0, 1_000).default(3),
    // Whole seconds: each delay names an exchange and a queue (`tasks.retry.<d>`).
    RETRY_DELAYS_SECONDS: list(int(1, 86_400)).default([...DEFAULT_RETRY_DELAYS_SECONDS]),
    REPORTER_ENABLED: bool.default(true),
    // The producer's batch route takes at most 1,000 reports; fewer, fuller batches cost it fewer commits.
    REPORT_BATCH_SIZE: int(1, 1_000).default(1_000),
    REPORT_BATCH_MS: int(0, 60_000).default(0),
    HEALTH_PORT: int(0, 65_535).default(3001),
    SHUTDOWN_GRACE_MS: int(0).default(8000),
    LOG_LEVEL: envLogLevel.default('info'),
    // Replicas of each quorum queue this service creates; unset leaves it to the broker (every node up
    // to 3). Queues that exist keep theirs (see assertTopology).
    QUORUM_INITIAL_GROUP_SIZE: int(1, 99).optional(),
  })
  .superRefine((env, ctx) => {
    const queues = env.WORKER_QUEUES.length;
    const held = env.WORKER_PREFETCH * queues * MAX_WORK_MESSAGE_BYTES;
    if (held > MAX_PREFETCHED_BYTES) {
      const most = Math.floor(MAX_PREFETCHED_BYTES / (queues * MAX_WORK_MESSAGE_BYTES));
      ctx.addIssue({
        code: 'custom',
        path: ['WORKER_PREFETCH'],
        message:
          `${env.WORKER_PREFETCH} deliveries × ${queues} queue(s) × ${MAX_WORK_MESSAGE_BYTES / 1024} KiB ` +
          `can hold ${Math.ceil(held / 2 ** 20)} MiB of work messages; at most ${most} with ${queues} queue(s), ` +
          `which keeps them within ${MAX_PREFETCHED_BYTES / 2 ** 20} MiB`,
      });
    }
  });

/** The parsed environment as the consumer uses it; its type is inferred from the schema. */
function toConfig(e: z.output<typeof ConsumerEnvSchema>) {
  return {
    amqpUrl: e.AMQP_URL,
    quorumInitialGroupSize: e.QUORUM_INITIAL_GROUP_SIZE,
    producerUrl: e.PRODUCER_URL,
    statusApiToken: e.STATUS_API_TOKEN,
    /** Empty means no worker: a reporter-only replica (programmatic use; the environment needs one). */
    workerQueues: e.WORKER_QUEUES as readonly WorkQueue[],
    workerPrefetch: e.WORKER_PREFETCH,
    processingTimeMs: e.PROCESSING_TIME_MS,
    failureRate: e.FAILURE_RATE,
    failureSeed: e.FAILURE_SEED,
    maxRetries: e.MAX_RETRIES,
    retryDelaysSeconds: e.RETRY_DELAYS_SECONDS as readonly number[],
    reporterEnabled: e.REPORTER_ENABLED,
    reportBatchSize: e.REPORT_BATCH_SIZE,
    reportBatchMs: e.REPORT_BATCH_MS,
    /** 0 picks a free port (tests). */
    healthPort: e.HEALTH_PORT,
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    logLevel: e.LOG_LEVEL,
  };
}

export type ConsumerConfig = ReturnType<typeof toConfig>;

/** Parses the environment; throws a ConfigError (common) whose message names every bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): ConsumerConfig {
  return toConfig(parseEnv(ConsumerEnvSchema, env));
}
