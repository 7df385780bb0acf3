// What `./run.sh --local` starts, decided from the environment alone (pure, unit-tested): one
// producer and N consumers with distinct health ports, all reading the names of .env.example.
// Defaults come from the services' own config schemas, never restated here.

import type { z } from 'zod';
import { ConsumerEnvSchema } from '../../../consumer/src/config.js';
import { ProducerEnvSchema } from '../../../producer/src/config.js';

export type Env = Record<string, string | undefined>;

/**
 * The node flags each service runs with, here as in the images' CMD (a test keeps them equal). They
 * hold V8's heap near what the services use: an old generation capped at 512 MiB, which also makes
 * V8 let it grow to about 1.4 × what survived the last full collection instead of up to 4 × (V8
 * scales that factor with the cap), and a young generation of 2 × 8 MiB for the producer and 2 × 4 MiB
 * for a consumer, where V8 takes up to 2 × 16 MiB. The live heap is about 30 MiB in the producer and
 * 17 MiB in a consumer; past the heap, ~50 MiB of a service's RSS is the node binary's own code. In
 * alternating drains (BENCHMARKS.md, the eleventh session on issue 16) peak RSS fell from 196-210 to
 * 139-140 MiB (producer) and from 127-129 to 112-114 MiB (consumers) at about the same CPU per task; a
 * 4 MiB young generation for the producer as well cost a fifth of the drain rate (it allocates far
 * more per task, and a smaller young generation promotes more of what is in flight).
 */
export const SERVICE_NODE_ARGS = {
  producer: ['--max-semi-space-size=8', '--max-old-space-size=512'],
  consumer: ['--max-semi-space-size=4', '--max-old-space-size=512'],
} as const satisfies Record<ServicePlan['role'], readonly string[]>;

export interface ServicePlan {
  /** Log prefix and process name: `producer`, `consumer-1`, ... */
  name: string;
  role: 'producer' | 'consumer';
  /** Built entry point, relative to the repository root (what the images run too). */
  entry: string;
  env: Record<string, string>;
  readyUrl: string;
}

export interface LocalPlan {
  services: ServicePlan[];
  /** Every port the run listens on; checked free before anything starts. */
  ports: number[];
  urls: { api: string; docs: string; metrics: string };
  databaseUrl: string;
  amqpUrl: string;
  /** How long a service may take to stop after SIGTERM before it is killed. */
  stopTimeoutMs: number;
}

/**
 * The subset of dotenv syntax .env files need: `NAME=value`, optional `export `, `#` comments,
 * single or double quotes around the value. Later lines win, as in a shell.
 */
export function parseDotEnv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    const match = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!match) continue;
    const [, name, rest] = match as unknown as [string, string, string];
    out[name] = unquote(rest);
  }
  return out;
}

function unquote(value: string): string {
  const quote = value[0];
  if ((quote === '"' || quote === "'") && value.length >= 2) {
    const end = value.indexOf(quote, 1);
    if (end > 0) return value.slice(1, end);
  }
  // An unquoted value ends at a comment that follows whitespace.
  return value.replace(/\s+#.*$/, '').trim();
}

/** The shell wins over .env (as with compose); an empty value counts as unset. */
export function mergeEnv(shell: Env, dotEnv: Record<string, string>): Record<string, string> {
  const merged: Record<string, string> = {};
  for (const [name, value] of Object.entries(dotEnv)) if (value !== '') merged[name] = value;
  for (const [name, value] of Object.entries(shell))
    if (value !== undefined && value !== '') merged[name] = value;
  return merged;
}

export class ConfigValueError extends Error {
  readonly code = 'CONFIG_INVALID';
}

function field<T>(schema: z.ZodType<T>, name: string, env: Record<string, string>): T {
  const parsed = schema.safeParse(env[name]);
  if (!parsed.success) {
    throw new ConfigValueError(`invalid configuration: ${name}: ${parsed.error.issues[0]?.message}`);
  }
  return parsed.data;
}

/** A listening address as a client reaches it: wildcard addresses mean "this machine". */
function clientHost(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

export function planLocalRun(env: Record<string, string>, consumerCount = 2): LocalPlan {
  // Field by field: the producer schema's cross-variable checks forbid .pick(); the services
  // validate the whole environment themselves when they start.
  const p = ProducerEnvSchema.shape;
  const producer = {
    PORT: field(p.PORT, 'PORT', env),
    HOST: field(p.HOST, 'HOST', env),
    DATABASE_URL: field(p.DATABASE_URL, 'DATABASE_URL', env),
    AMQP_URL: field(p.AMQP_URL, 'AMQP_URL', env),
  };
  const firstHealthPort = field(ConsumerEnvSchema.shape.HEALTH_PORT, 'HEALTH_PORT', env);
  const apiBase = `http://${clientHost(producer.HOST)}:${producer.PORT}`;
  // Consumers report to this producer unless told otherwise.
  const producerUrl = env.PRODUCER_URL ?? apiBase;

  const services: ServicePlan[] = [
    {
      name: 'producer',
      role: 'producer',
      entry: 'producer/dist/server.js',
      env: { ...env },
      readyUrl: `${apiBase}/health/ready`,
    },
  ];
  for (let i = 0; i < consumerCount; i++) {
    const healthPort = firstHealthPort + i;
    services.push({
      name: `consumer-${i + 1}`,
      role: 'consumer',
      entry: 'consumer/dist/main.js',
      env: { ...env, PRODUCER_URL: producerUrl, HEALTH_PORT: String(healthPort) },
      readyUrl: `http://127.0.0.1:${healthPort}/health/ready`,
    });
  }
  return {
    services,
    ports: [producer.PORT, ...services.slice(1).map((s) => Number(s.env.HEALTH_PORT))],
    urls: { api: `${apiBase}/api/v1`, docs: `${apiBase}/docs`, metrics: `${apiBase}/metrics` },
    databaseUrl: producer.DATABASE_URL,
    amqpUrl: producer.AMQP_URL,
    // The services' own grace period plus the time to notice it is over.
    stopTimeoutMs: field(p.SHUTDOWN_GRACE_MS, 'SHUTDOWN_GRACE_MS', env) + 2000,
  };
}
