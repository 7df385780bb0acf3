// The producer's whole configuration: one zod schema over the environment, parsed once at start.
// process.env is read nowhere else. A bad value stops the boot with the variable's name.
import { envBoolean as bool, envLogLevel, envInt as int, parseEnv } from '@task-pipeline/common';
import {
  brokerUrlListSchema,
  MAX_TASKS_PER_WORK_MESSAGE,
  QUEUE_MAX_LENGTH,
} from '@task-pipeline/rabbitmq/contract';
import { z } from 'zod';
import { MIN_STATEMENT_DEADLINE_MS, statementDeadlineMs } from './dispatch/dispatch-repository.js';

const DURATION_UNIT_S = { d: 86_400, h: 3_600, m: 60, s: 1 } as const;
/** `7d`, `12h`, `30m`, `45s` → seconds; `0` → 0 (off). A bare number other than 0 has no unit: refused. */
export const durationSeconds = z
  .string()
  .regex(/^(0|\d{1,6}[dhms])$/, 'must be 0 or a whole number with a unit: d, h, m or s (7d, 12h, 30m)')
  .transform((v) => (v === '0' ? 0 : Number(v.slice(0, -1)) * DURATION_UNIT_S[v.slice(-1) as 'd']));

export const ProducerEnvSchema = z
  .object({
    PORT: int(0, 65_535).default(3000),
    HOST: z.string().min(1).default('0.0.0.0'),
    DATABASE_URL: z
      .url({ protocol: /^postgres(ql)?$/ })
      .default('postgres://postgres:postgres@127.0.0.1:5432/tasks'),
    // One broker URL or a cluster's nodes, comma-separated (parseBrokerUrls says how).
    AMQP_URL: brokerUrlListSchema.default('amqp://guest:guest@127.0.0.1:5672'),
    STATUS_API_TOKEN: z.string().min(16, 'must be at least 16 characters'),
    // May read the operator routes (list, detail, stats) but not redrive: the console's read-only mode.
    OPERATOR_READ_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
    // Finished tasks older than this are deleted; 0 keeps everything.
    TASK_RETENTION: durationSeconds.prefault('7d'),
    // A task sent longer ago than this counts as stale (its message may be lost): metric and stats.
    STALE_SENT_AFTER_S: int(1).default(600),
    DISPATCHER_ENABLED: bool.default(true),
    DISPATCH_BATCH_SIZE: int(1, 10_000).default(500),
    // Tasks of one priority and one claim that may share a work message (PROTOCOL §5): the broker's
    // work is per message, and 20 a message halved the CPU a task costs in the drain. 1 (the default)
    // sends every task alone: the only form consumers before this setting read, and the one where
    // WORKER_PREFETCH bounds the tasks a worker holds, which strict priorities need (README).
    DISPATCH_TASKS_PER_MESSAGE: int(1, MAX_TASKS_PER_WORK_MESSAGE).default(1),
    DISPATCH_POLL_INTERVAL_MS: int(10).default(1000),
    DISPATCH_ORDER: z.enum(['random', 'fifo']).default('random'),
    DISPATCH_LEASE_S: int(1).default(30),
    DISPATCH_CONFIRM_TIMEOUT_MS: int(100).default(5000),
    DISPATCH_MAX_IN_FLIGHT: int(1).default(10_000),
    // How long confirmed tasks wait before they are recorded as sent: a task whose result this
    // producer applies meanwhile needs no record at all (PROTOCOL §6, step 3). 0 records at once.
    DISPATCH_RECORD_DELAY_MS: int(0, 10_000).default(1000),
    // PostgreSQL's statement_timeout and lock_timeout of the API's connections. A request whose
    // statement outlasts them answers 503 with Retry-After; the reporters' requests time out at 10 s.
    API_STATEMENT_TIMEOUT_MS: int(100, 600_000).default(5000),
    API_LOCK_TIMEOUT_MS: int(100, 600_000).default(2000),
    SHUTDOWN_GRACE_MS: int(0).default(8000),
    LOG_LEVEL: envLogLevel.default('info'),
    // Replicas of each quorum queue this service creates; unset leaves it to the broker (every node up
    // to 3). Queues that exist keep theirs (see assertTopology).
    QUORUM_INITIAL_GROUP_SIZE: int(1, 99).optional(),
  })
  .superRefine((env, ctx) => {
    // A lease shorter than a few confirm timeouts would let a second dispatcher re-claim tasks whose
    // confirms are merely slow, publishing them twice.
    const deadlineMs = statementDeadlineMs({
      leaseSeconds: env.DISPATCH_LEASE_S,
      confirmTimeoutMs: env.DISPATCH_CONFIRM_TIMEOUT_MS,
    });
    if (env.DISPATCH_LEASE_S * 1000 <= 3 * env.DISPATCH_CONFIRM_TIMEOUT_MS) {
      ctx.addIssue({
        code: 'custom',
        path: ['DISPATCH_LEASE_S'],
        message: `must exceed 3 × DISPATCH_CONFIRM_TIMEOUT_MS (${(3 * env.DISPATCH_CONFIRM_TIMEOUT_MS) / 1000} s)`,
      });
    } else if (deadlineMs < MIN_STATEMENT_DEADLINE_MS) {
      // The dispatcher's statements may take lease − 2 × confirm timeout: too little for a claim.
      ctx.addIssue({
        code: 'custom',
        path: ['DISPATCH_LEASE_S'],
        message:
          `must be at least 2 × DISPATCH_CONFIRM_TIMEOUT_MS + ${MIN_STATEMENT_DEADLINE_MS / 1000} s ` +
          `(${(2 * env.DISPATCH_CONFIRM_TIMEOUT_MS + MIN_STATEMENT_DEADLINE_MS) / 1000} s), so that the ` +
          `dispatcher's statements get at least ${MIN_STATEMENT_DEADLINE_MS / 1000} s (they get ${deadlineMs / 1000} s)`,
      });
    }
    if (env.DISPATCH_RECORD_DELAY_MS > env.DISPATCH_CONFIRM_TIMEOUT_MS) {
      // Publishing stops early enough for a confirm timeout, the delay and the record to fit in the
      // lease; a delay past the confirm timeout would eat into the record's own share of it.
      ctx.addIssue({
        code: 'custom',
        path: ['DISPATCH_RECORD_DELAY_MS'],
        message: `must not exceed DISPATCH_CONFIRM_TIMEOUT_MS (${env.DISPATCH_CONFIRM_TIMEOUT_MS})`,
      });
    }
    if (env.OPERATOR_READ_TOKEN !== undefined && env.OPERATOR_READ_TOKEN === env.STATUS_API_TOKEN) {
      // The same value would give the read-only holder every right of the status token.
      ctx.addIssue({
        code: 'custom',
        path: ['OPERATOR_READ_TOKEN'],
        message: 'must differ from STATUS_API_TOKEN',
      });
    }
    if (env.DISPATCH_MAX_IN_FLIGHT >= QUEUE_MAX_LENGTH) {
      ctx.addIssue({
        code: 'custom',
        path: ['DISPATCH_MAX_IN_FLIGHT'],
        message: `must stay below the work queues' x-max-length (${QUEUE_MAX_LENGTH})`,
      });
    }
  });

export type ProducerEnv = z.input<typeof ProducerEnvSchema>;

/** The parsed environment as the producer uses it, grouped; its type is inferred from the schema. */
function toConfig(e: z.output<typeof ProducerEnvSchema>) {
  return {
    port: e.PORT,
    host: e.HOST,
    databaseUrl: e.DATABASE_URL,
    amqpUrl: e.AMQP_URL,
    quorumInitialGroupSize: e.QUORUM_INITIAL_GROUP_SIZE,
    statusApiToken: e.STATUS_API_TOKEN,
    /** Reads the operator routes, never changes anything. */
    operatorReadToken: e.OPERATOR_READ_TOKEN,
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    logLevel: e.LOG_LEVEL,
    api: {
      statementTimeoutMs: e.API_STATEMENT_TIMEOUT_MS,
      lockTimeoutMs: e.API_LOCK_TIMEOUT_MS,
    },
    operator: {
      retentionSeconds: e.TASK_RETENTION,
      staleSentAfterS: e.STALE_SENT_AFTER_S,
    },
    dispatch: {
      enabled: e.DISPATCHER_ENABLED,
      batchSize: e.DISPATCH_BATCH_SIZE,
      tasksPerMessage: e.DISPATCH_TASKS_PER_MESSAGE,
      pollIntervalMs: e.DISPATCH_POLL_INTERVAL_MS,
      order: e.DISPATCH_ORDER,
      leaseSeconds: e.DISPATCH_LEASE_S,
      confirmTimeoutMs: e.DISPATCH_CONFIRM_TIMEOUT_MS,
      maxInFlight: e.DISPATCH_MAX_IN_FLIGHT,
      recordDelayMs: e.DISPATCH_RECORD_DELAY_MS,
    },
  };
}

export type ProducerConfig = ReturnType<typeof toConfig>;

/** Parses the environment; throws a ConfigError (common) whose message names every bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): ProducerConfig {
  return toConfig(parseEnv(ProducerEnvSchema, env));
}
