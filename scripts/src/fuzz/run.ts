// One fuzz run on the shared servers, isolated in its own database and vhost: the HTTP phase against
// a producer whose dispatcher is off (so only requests change the tasks table), the raw phase on every
// listening port (the producer's API, the consumer's HEALTH_PORT), then the AMQP phase with the
// dispatcher on. A service that exits on its own at any point fails the run.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { QUEUES } from '@task-pipeline/rabbitmq';
import { createTestDatabase, createTestVhost } from '@task-pipeline/testkit/isolation';
import { freePort } from '@task-pipeline/testkit/private-process';
import { type Service, startService, waitForHttp } from '@task-pipeline/testkit/processes';
import postgres from 'postgres';
import { request } from 'undici';
import {
  drainParking,
  malformedMessages,
  type ParkedMessage,
  publishMalformed,
  queueDepths,
  type RealTask,
} from './amqp-fuzz.js';
import { generateCases } from './arbitraries.js';
import { type HttpFuzzResult, runHttpFuzz } from './http-fuzz.js';
import { generateRawCases } from './raw-arbitraries.js';
import { type RawFuzzResult, runRawFuzz } from './raw-fuzz.js';

export interface FuzzOptions {
  requests: number;
  /** Generated raw-byte requests, on top of the hand-written ones sent to every port. */
  raw: number;
  seed: number;
  amqp: boolean;
  logLevel: string;
}

export interface AmqpFuzzResult {
  published: number;
  parked: ParkedMessage[];
  /** Published messages that left the queues without being parked (consumed after a report). */
  consumed: number;
  /** Messages parked more than once (only a crash between park and ack may do that). */
  parkedTwice: string[];
  drained: boolean;
  /** Finished tasks whose status or attempt changed during the phase (must be none). */
  changedTasks: string[];
  producerServerErrors: number;
  servicesAlive: boolean;
  notes: string[];
}

export interface FuzzReport {
  options: FuzzOptions;
  http: HttpFuzzResult;
  raw: RawFuzzResult;
  amqp?: AmqpFuzzResult;
  /** Services that exited while no one was stopping them, with their exit code: each fails the run. */
  exits: string[];
  ok: boolean;
  logs: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const RETRY_DELAYS = [1];
const SEED_TASKS = 30;

/** Sum of http_request_duration_seconds_count over 5xx status codes in a Prometheus page. */
export function serverErrorCount(metrics: string): number {
  let n = 0;
  for (const line of metrics.split('\n')) {
    if (/^http_request_duration_seconds_count\{[^}]*status_code="5\d\d"/.test(line)) {
      n += Number(line.trim().split(/\s+/).pop());
    }
  }
  return n;
}

async function api(
  baseUrl: string,
  method: 'POST' | 'PUT' | 'GET',
  path: string,
  body?: unknown,
  token?: string,
): Promise<{ status: number; json: unknown }> {
  const res = await request(`${baseUrl}${path}`, {
    method,
    headers: {
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.body.text();
  return { status: res.statusCode, json: text ? JSON.parse(text) : undefined };
}

export async function runFuzz(
  options: FuzzOptions,
  log: (line: string) => void = (l) => console.error(l),
): Promise<FuzzReport> {
  const t0 = Date.now();
  const at = () => `${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s`;
  const database = await createTestDatabase('fuzz');
  const vhost = await createTestVhost('fuzz');
  const sql = postgres(database.url, { max: 1, onnotice: () => undefined });
  const token = randomBytes(24).toString('hex');
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const producerEnv = {
    PORT: String(port),
    HOST: '127.0.0.1',
    DATABASE_URL: database.url,
    AMQP_URL: vhost.url,
    STATUS_API_TOKEN: token,
    LOG_LEVEL: options.logLevel,
  };
  const services: Service[] = [];
  const exits: string[] = [];
  /** A deliberate stop; a service found already gone has died on its own. */
  const stopService = async (s: Service) => {
    if (s.exitCode() !== undefined) exits.push(`${s.name} exited with ${s.exitCode()} (log ${s.logPath})`);
    await s.stop();
  };
  const startProducer = async (dispatcher: boolean) => {
    const s = startService('fuzz-producer', 'producer/src/server.ts', {
      ...producerEnv,
      DISPATCHER_ENABLED: String(dispatcher),
    });
    services.push(s);
    await waitForHttp(s, `${baseUrl}/health/ready`, 120_000);
    return s;
  };
  try {
    log(
      `${at()} fuzz: ${options.requests} requests, seed ${options.seed}; database ${database.name}, vhost ${vhost.name}`,
    );
    let producer = await startProducer(false);
    // The consumer runs from the start: its health port is fuzzed too. With the dispatcher off it has
    // no work, so it cannot change the tasks table during the HTTP and raw phases.
    const healthPort = await freePort();
    const consumer = startService('fuzz-consumer', 'consumer/src/main.ts', {
      AMQP_URL: vhost.url,
      PRODUCER_URL: baseUrl,
      STATUS_API_TOKEN: token,
      PROCESSING_TIME_MS: '0',
      FAILURE_RATE: '0.2',
      MAX_RETRIES: '1',
      RETRY_DELAYS_SECONDS: RETRY_DELAYS.join(','),
      HEALTH_PORT: String(healthPort),
      LOG_LEVEL: options.logLevel,
    });
    services.push(consumer);
    await waitForHttp(consumer, `http://127.0.0.1:${healthPort}/health/ready`, 120_000);

    const taskIds: string[] = [];
    for (let i = 0; i < SEED_TASKS; i++) {
      const { status, json } = await api(baseUrl, 'POST', '/api/v1/create-task', {
        text: `fuzz seed ${i}`,
        priority: (['high', 'medium', 'low'] as const)[i % 3],
      });
      if (status !== 201) throw new Error(`seeding a task answered ${status}: ${JSON.stringify(json)}`);
      taskIds.push((json as { taskId: string }).taskId);
    }
    // A few finished tasks, so status reports and redrives meet every starting status.
    for (const [i, taskId] of taskIds.slice(0, 10).entries()) {
      await api(
        baseUrl,
        'PUT',
        '/api/v1/update-task-status',
        { taskId, taskStatus: i % 2 ? 'error' : 'success' },
        token,
      );
    }

    const cases = generateCases(options.requests, options.seed);
    const http = await runHttpFuzz(
      cases,
      { baseUrl, token, sql, taskIds, alive: () => producer.exitCode() === undefined },
      (done, r) => {
        if (done > 0 && done % 1000 === 0)
          log(
            `${at()} http ${done}/${cases.length}: ${JSON.stringify(r.byStatus)}, findings ${r.findings.length}`,
          );
      },
    );
    log(
      `${at()} http done: ${http.requests} requests, 5xx ${http.serverErrors}, ` +
        `failures ${http.findings.filter((f) => f.severe).length}, format deviations ${http.findings.filter((f) => !f.severe).length}`,
    );

    const rawCases = generateRawCases(options.raw, options.seed);
    const raw = await runRawFuzz(
      rawCases,
      {
        host: '127.0.0.1',
        token,
        sql,
        ports: {
          producer: { port, alive: () => producer.exitCode() === undefined },
          consumer: { port: healthPort, alive: () => consumer.exitCode() === undefined },
        },
      },
      (done, r) => {
        if (done > 0 && done % 1000 === 0)
          log(`${at()} raw ${done}/${rawCases.length}: ${JSON.stringify(r.byService)}`);
      },
    );
    log(
      `${at()} raw done: ${raw.requests} requests, failures ${raw.findings.filter((f) => f.severe).length}, ` +
        `format deviations ${raw.findings.filter((f) => !f.severe).length}`,
    );

    let amqpResult: AmqpFuzzResult | undefined;
    if (options.amqp && raw.died.length === 0) {
      await stopService(producer);
      producer = await startProducer(true);
      amqpResult = await amqpPhase({ sql, vhost: vhost.name, amqpUrl: vhost.url, baseUrl, log, at });
      const consumerReady = await request(`http://127.0.0.1:${healthPort}/health/ready`)
        .then(async (r) => {
          await r.body.dump();
          return r.statusCode === 200;
        })
        .catch(() => false);
      amqpResult.servicesAlive =
        producer.exitCode() === undefined && consumer.exitCode() === undefined && consumerReady;
      if (!consumerReady) amqpResult.notes.push('consumer not ready after the malformed messages');
    }

    // The token must never reach a log line (request logs, errors, the reporter's retries).
    await Promise.all([producer, consumer].map(stopService));
    const leakedInto = services
      .filter((s) => {
        try {
          return readFileSync(s.logPath, 'utf8').includes(token);
        } catch {
          return false;
        }
      })
      .map((s) => s.logPath);
    for (const log of leakedInto) {
      http.findings.push({
        index: -1,
        severe: true,
        problem: `STATUS_API_TOKEN written to ${log}`,
        request: '',
      });
    }
    const ok =
      exits.length === 0 &&
      http.findings.every((f) => !f.severe) &&
      raw.findings.every((f) => !f.severe) &&
      (amqpResult === undefined ||
        (amqpResult.drained &&
          amqpResult.servicesAlive &&
          amqpResult.changedTasks.length === 0 &&
          amqpResult.producerServerErrors === 0 &&
          amqpResult.parkedTwice.length === 0));
    return {
      options,
      http,
      raw,
      ...(amqpResult ? { amqp: amqpResult } : {}),
      exits,
      ok,
      logs: services.map((s) => s.logPath),
    };
  } finally {
    await Promise.all(services.map((s) => s.stop()));
    await sql.end({ timeout: 5 });
    await vhost.drop();
    await database.drop();
  }
}

async function amqpPhase(ctx: {
  sql: postgres.Sql;
  vhost: string;
  amqpUrl: string;
  baseUrl: string;
  log: (line: string) => void;
  at: () => string;
}): Promise<AmqpFuzzResult> {
  const notes: string[] = [];
  const unfinished = async () =>
    (
      await ctx.sql<{ n: number }[]>`select count(*)::int as n from tasks where status in ('waiting', 'sent')`
    )[0]?.n ?? 0;
  for (let deadline = Date.now() + 120_000; (await unfinished()) > 0 && Date.now() < deadline; )
    await sleep(500);
  const stuck = await ctx.sql<{ id: string; status: string; attempts: number }[]>`
    select id, status, attempts from tasks where status in ('waiting', 'sent') order by id limit 20`;
  if (stuck.length > 0) {
    notes.push(
      `tasks still unfinished before the malformed messages: ${stuck.map((t) => `${t.id} ${t.status}@${t.attempts}`).join(', ')}`,
    );
  }
  const snapshot = async () =>
    new Map(
      (
        await ctx.sql<
          { id: string; status: string; attempts: number }[]
        >`select id, status, attempts from tasks`
      ).map((r) => [r.id, `${r.status}@${r.attempts}`]),
    );
  const before = await snapshot();
  const rows = await ctx.sql<RealTask[]>`
    select id, attempts, priority from tasks where status in ('success', 'error') order by id limit 20`;
  const messages = malformedMessages(rows, RETRY_DELAYS);
  const metricsBefore = await request(`${ctx.baseUrl}/metrics`).then((r) => r.body.text());
  ctx.log(
    `${ctx.at()} amqp: ${before.size} tasks finished; publishing ${messages.length} malformed messages`,
  );
  await publishMalformed(ctx.amqpUrl, messages);

  // Quiet: every queue but parking empty (ready + unacked) on three checks in a row.
  let drained = false;
  let quietChecks = 0;
  for (let deadline = Date.now() + 120_000; Date.now() < deadline; ) {
    const depths = await queueDepths(ctx.vhost);
    const busy = [...depths].filter(([q, n]) => q !== QUEUES.parking && n > 0);
    quietChecks = busy.length === 0 ? quietChecks + 1 : 0;
    if (quietChecks >= 3) {
      drained = true;
      break;
    }
    await sleep(1_000);
  }
  if (!drained) notes.push('queues did not drain within 120 s (a message loops or is stuck)');
  const after = await snapshot();
  const changedTasks = [...before].filter(([id, state]) => after.get(id) !== state).map(([id]) => id);
  const metricsAfter = await request(`${ctx.baseUrl}/metrics`).then((r) => r.body.text());
  const parked = (await drainParking(ctx.amqpUrl)).filter((p) => p.label !== '(no label)');
  // A message parked twice comes back with the same body; the parts of one result message do not.
  const seen = new Set<string>();
  const parkedTwice = parked
    .filter((p) => {
      const key = `${p.label}\u0000${p.content}`;
      return seen.has(key) || !seen.add(key);
    })
    .map((p) => p.label);
  return {
    published: messages.length,
    parked,
    consumed: messages.length - new Set(parked.map((p) => p.label)).size,
    parkedTwice,
    drained,
    changedTasks,
    producerServerErrors: serverErrorCount(metricsAfter) - serverErrorCount(metricsBefore),
    servicesAlive: true,
    notes,
  };
}
