// Our services as the benchmark runs them: the built producer and consumer entry points under the
// run's node (as the images run them), each its own process on a free port, configured only through
// the environment names of PROTOCOL §8.

import { join } from 'node:path';
import { freePort } from '@task-pipeline/testkit/private-process';
import { type Service, startService, waitForHttp } from '@task-pipeline/testkit/processes';
import { SERVICE_NODE_ARGS } from '../launcher/plan.js';
import { OUR_BEST_SETTINGS } from './plan.js';
import { type Baseline, type BenchRuntime, baselineEntry, SERVICE_ENTRIES } from './runtime.js';
import type { Sandbox } from './sandbox.js';

export const BENCH_TOKEN = 'bench-status-api-token-0123456789';

/**
 * BENCH_CPU_PROF=DIR starts every service (ours and the baselines) with `--cpu-prof` into DIR/<name>/
 * (written when it stops); `profile-summary.ts` lists where the time went.
 */
function profileArgs(name: string): string[] {
  const dir = process.env.BENCH_CPU_PROF;
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${join(dir, name)}`] : [];
}

export interface RunningProducer {
  service: Service;
  url: string;
}

export interface ServiceOptions {
  /** Extra environment on top of the benchmark's (overrides it). */
  env?: Record<string, string>;
  /** node flags before the entry, e.g. `--cpu-prof --cpu-prof-dir=DIR` when profiling. */
  nodeArgs?: readonly string[];
}

/**
 * Log level for every service under test. `warn` keeps the per-request info log out of the numbers
 * of a run whose output nobody reads; BENCH_LOG_LEVEL=info measures the shipping default instead.
 */
export const SERVICE_LOG_LEVEL = process.env.BENCH_LOG_LEVEL ?? 'warn';

export async function startProducer(
  sandbox: Sandbox,
  runtime: BenchRuntime,
  options: ServiceOptions & { port?: number } = {},
): Promise<RunningProducer> {
  const port = options.port ?? (await freePort());
  const service = startService(
    'producer',
    SERVICE_ENTRIES.producer,
    {
      PORT: String(port),
      HOST: '127.0.0.1',
      DATABASE_URL: sandbox.databaseUrl,
      AMQP_URL: sandbox.amqpUrl,
      STATUS_API_TOKEN: BENCH_TOKEN,
      LOG_LEVEL: SERVICE_LOG_LEVEL,
      ...OUR_BEST_SETTINGS,
      ...options.env,
    },
    {
      execPath: runtime.node.execPath,
      nodeArgs: [...profileArgs('producer'), ...SERVICE_NODE_ARGS.producer, ...(options.nodeArgs ?? [])],
    },
  );
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp(service, `${url}/health/ready`);
  } catch (err) {
    await service.stop();
    throw err;
  }
  return { service, url };
}

/** A consumer replica with no simulated work and no simulated failures (the drain setup). */
export async function startConsumer(
  sandbox: Sandbox,
  runtime: BenchRuntime,
  producerUrl: string,
  index: number,
  options: ServiceOptions = {},
): Promise<Service> {
  const healthPort = await freePort();
  const service = startService(
    `consumer-${index}`,
    SERVICE_ENTRIES.consumer,
    {
      AMQP_URL: sandbox.amqpUrl,
      PRODUCER_URL: producerUrl,
      STATUS_API_TOKEN: BENCH_TOKEN,
      PROCESSING_TIME_MS: '0',
      FAILURE_RATE: '0',
      HEALTH_PORT: String(healthPort),
      LOG_LEVEL: SERVICE_LOG_LEVEL,
      ...options.env,
    },
    {
      execPath: runtime.node.execPath,
      nodeArgs: [
        ...profileArgs(`consumer-${index}`),
        ...SERVICE_NODE_ARGS.consumer,
        ...(options.nodeArgs ?? []),
      ],
    },
  );
  try {
    await waitForHttp(service, `http://127.0.0.1:${healthPort}/health/ready`);
  } catch (err) {
    await service.stop();
    throw err;
  }
  return service;
}

/** A baseline (naive loop, naive API, peer worker, raw publisher), built and run like our services. */
export function startBaseline(
  name: string,
  baseline: Baseline,
  env: Record<string, string>,
  runtime: BenchRuntime,
): Service {
  return startService(name, baselineEntry(baseline), env, {
    execPath: runtime.node.execPath,
    nodeArgs: profileArgs(name),
  });
}
