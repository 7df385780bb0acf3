// The consumer's whole configuration: one zod schema over the environment, parsed once at start.
// process.env is read nowhere else. A bad value stops the boot with the variable's name.
import { ALL_WORK_QUEUES, DEFAULT_RETRY_DELAYS_SECONDS, type WorkQueue } from '@task-pipeline/rabbitmq';
import { z } from 'zod';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);

/** A comma-separated list; blanks around items are ignored. */
const list = <O>(item: z.ZodType<O>) =>
  z.preprocess(
    (v) => (typeof v === 'string' ? v.split(',').map((part) => part.trim()) : v),
    z.array(item).min(1, 'must list at least one value'),
  );

export const ConsumerEnvSchema = z.object({
  AMQP_URL: z.url({ protocol: /^amqps?$/ }).default('amqp://guest:guest@127.0.0.1:5672'),
  PRODUCER_URL: z.url({ protocol: /^https?$/ }).default('http://127.0.0.1:3000'),
  STATUS_API_TOKEN: z.string().min(16, 'must be at least 16 characters'),
  WORKER_QUEUES: list(z.enum(ALL_WORK_QUEUES as [WorkQueue, ...WorkQueue[]]))
    .refine((queues) => new Set(queues).size === queues.length, 'lists a queue twice')
    .default([...ALL_WORK_QUEUES]),
  // Bounds the result publishes awaiting their confirm, not the work in progress: with little work per
  // message a worker spends its slots waiting for the quorum queue's confirms.
  WORKER_PREFETCH: int(1, 65_535).default(256),
  PROCESSING_TIME_MS: int(0, 3_600_000).default(100),
  FAILURE_RATE: z.coerce.number().min(0).max(1).default(0.1),
  FAILURE_SEED: z.string().min(1).default('task-pipeline'),
  MAX_RETRIES: int(0, 1_000).default(3),
  // Whole seconds: each delay names an exchange and a queue (`tasks.retry.<d>`).
  RETRY_DELAYS_SECONDS: list(int(1, 86_400)).default([...DEFAULT_RETRY_DELAYS_SECONDS]),
  REPORTER_ENABLED: bool.default(true),
  // The producer's batch route takes at most 1,000 reports; fewer, fuller batches cost it fewer commits.
  REPORT_BATCH_SIZE: int(1, 1_000).default(1_000),
  REPORT_BATCH_MS: int(0, 60_000).default(50),
  HEALTH_PORT: int(0, 65_535).default(3001),
  SHUTDOWN_GRACE_MS: int(0).default(8000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type LogLevel = z.infer<typeof ConsumerEnvSchema>['LOG_LEVEL'];

export interface ConsumerConfig {
  amqpUrl: string;
  producerUrl: string;
  statusApiToken: string;
  /** Empty means no worker: a reporter-only replica (programmatic use; the environment needs one). */
  workerQueues: readonly WorkQueue[];
  workerPrefetch: number;
  processingTimeMs: number;
  failureRate: number;
  failureSeed: string;
  maxRetries: number;
  retryDelaysSeconds: readonly number[];
  reporterEnabled: boolean;
  reportBatchSize: number;
  reportBatchMs: number;
  /** 0 picks a free port (tests). */
  healthPort: number;
  shutdownGraceMs: number;
  logLevel: LogLevel;
}

export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
}

/** Parses the environment; throws a ConfigError whose message names every bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): ConsumerConfig {
  // Empty strings mean "unset", as compose files often pass `VAR=` through.
  const defined = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = ConsumerEnvSchema.safeParse(defined);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (i) => `${i.path[0]?.toString() ?? 'environment'}: ${i.message}`,
    );
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  const e = parsed.data;
  return {
    amqpUrl: e.AMQP_URL,
    producerUrl: e.PRODUCER_URL,
    statusApiToken: e.STATUS_API_TOKEN,
    workerQueues: e.WORKER_QUEUES,
    workerPrefetch: e.WORKER_PREFETCH,
    processingTimeMs: e.PROCESSING_TIME_MS,
    failureRate: e.FAILURE_RATE,
    failureSeed: e.FAILURE_SEED,
    maxRetries: e.MAX_RETRIES,
    retryDelaysSeconds: e.RETRY_DELAYS_SECONDS,
    reporterEnabled: e.REPORTER_ENABLED,
    reportBatchSize: e.REPORT_BATCH_SIZE,
    reportBatchMs: e.REPORT_BATCH_MS,
    healthPort: e.HEALTH_PORT,
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    logLevel: e.LOG_LEVEL,
  };
}
