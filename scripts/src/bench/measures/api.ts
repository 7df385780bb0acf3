// Measure 3: create-task and update-task-status through autocannon (closed loop, c connections, d
// seconds) against our producer and against the naive route, on the same tasks table. The producer's
// dispatcher is off: this measures the API, not the API competing with dispatch for the same cores.

import { freePort } from '@task-pipeline/testkit/private-process';
import type { Service } from '@task-pipeline/testkit/processes';
import autocannon, { type Result } from 'autocannon';
import type { Progress } from '../progress.js';
import type { ApiRow, HttpStats } from '../results.js';
import { type Sandbox, seedTasks, withSandbox } from '../sandbox.js';
import { BENCH_TOKEN, startBaseline, startProducer } from '../services.js';
import { formatNumber } from '../stats.js';
import { attempt, type MeasureContext } from './common.js';

export interface ApiOptions {
  connections: number;
  durationS: number;
  /** `sent` tasks per side, each reported once; more requests than this repeat ids (200, no change). */
  sentRows: number;
}

const CREATE_BODY = JSON.stringify({ text: 'benchmark task: create through the API' });
const JSON_HEADERS = { 'content-type': 'application/json' };

function toStats(result: Result): HttpStats {
  return {
    requests: result.requests.total,
    reqPerSec: result.requests.average,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    errors: result.errors,
    non2xx: result.non2xx,
  };
}

async function cannon(
  label: string,
  options: Parameters<typeof autocannon>[0],
  durationS: number,
  progress: Progress,
): Promise<HttpStats> {
  const bar = progress.bar(label, durationS);
  const instance = autocannon(options);
  let seconds = 0;
  let requests = 0;
  instance.on('tick', (tick: { counter: number }) => {
    seconds += 1;
    requests += tick.counter;
    bar.update(seconds, `${formatNumber(requests / seconds)} req/s`);
  });
  const stats = toStats(await instance);
  bar.finish(`${formatNumber(stats.reqPerSec)} req/s, p50 ${stats.p50Ms} ms, p99 ${stats.p99Ms} ms`);
  return stats;
}

interface Target {
  url: string;
  ids: readonly string[];
}

async function createTask(target: Target, options: ApiOptions, progress: Progress, who: string) {
  return cannon(
    `${who} create-task`,
    {
      url: `${target.url}/api/v1/create-task`,
      method: 'POST',
      headers: JSON_HEADERS,
      body: CREATE_BODY,
      connections: options.connections,
      duration: options.durationS,
    },
    options.durationS,
    progress,
  );
}

async function updateStatus(target: Target, options: ApiOptions, progress: Progress, who: string) {
  let next = 0;
  return cannon(
    `${who} update-task-status`,
    {
      url: `${target.url}/api/v1/update-task-status`,
      connections: options.connections,
      duration: options.durationS,
      requests: [
        {
          method: 'PUT',
          headers: { ...JSON_HEADERS, authorization: `Bearer ${BENCH_TOKEN}` },
          setupRequest: (request) => {
            const taskId = target.ids[next++ % target.ids.length];
            return { ...request, body: JSON.stringify({ taskId, taskStatus: 'success', attempt: 1 }) };
          },
        },
      ],
    },
    options.durationS,
    progress,
  );
}

/** A second of load before the measured runs, so both servers are past JIT warm-up and pool start. */
async function warmUp(url: string, options: ApiOptions): Promise<void> {
  if (options.durationS < 3) return;
  await autocannon({
    url: `${url}/api/v1/create-task`,
    method: 'POST',
    headers: JSON_HEADERS,
    body: CREATE_BODY,
    connections: options.connections,
    duration: 1,
  });
}

/** `count` distinct `sent` tasks for each of `sides` servers, so every report is a real transition. */
async function sentIds(sandbox: Sandbox, count: number, sides: number): Promise<string[][]> {
  await seedTasks(sandbox.sql, count * sides, 'sent');
  const rows = await sandbox.sql<{ id: string }[]>`select id from tasks where status = 'sent'`;
  const ids = rows.map((r) => r.id);
  return Array.from({ length: sides }, (_, i) => ids.slice(i * count, (i + 1) * count));
}

type Side = { create: HttpStats; update: HttpStats };

async function baselineSide(
  mode: 'naive' | 'coalesced',
  who: string,
  sandbox: Sandbox,
  ids: readonly string[],
  options: ApiOptions,
  ctx: MeasureContext,
): Promise<Side> {
  const { progress, runtime } = ctx;
  const port = await freePort();
  let service: Service | undefined;
  try {
    service = startBaseline(
      `${mode}-api`,
      'naive-api',
      { DATABASE_URL: sandbox.databaseUrl, PORT: String(port), MODE: mode },
      runtime,
    );
    await service.message('ready', 60_000);
    const target = { url: `http://127.0.0.1:${port}`, ids };
    await warmUp(target.url, options);
    return {
      create: await createTask(target, options, progress, who),
      update: await updateStatus(target, options, progress, who),
    };
  } finally {
    await service?.stop();
  }
}

export async function measureApi(options: ApiOptions, ctx: MeasureContext): Promise<ApiRow[]> {
  const { progress } = ctx;
  return withSandbox('api', async (sandbox) => {
    const seedBar = progress.bar(`api: seed ${formatNumber(options.sentRows * 3)} sent tasks`, 1);
    const [oursIds = [], naiveIds = [], prototypeIds = []] = await sentIds(sandbox, options.sentRows, 3);
    seedBar.finish('');

    const ours = await attempt(ctx, 'api: producer', async (): Promise<Side> => {
      const producer = await startProducer(sandbox, ctx.runtime, { env: { DISPATCHER_ENABLED: 'false' } });
      try {
        const target = { url: producer.url, ids: oursIds };
        await warmUp(producer.url, options);
        return {
          create: await createTask(target, options, progress, 'producer'),
          update: await updateStatus(target, options, progress, 'producer'),
        };
      } finally {
        await producer.service.stop();
      }
    });
    const naive = await attempt(ctx, 'api: naive route', () =>
      baselineSide('naive', 'naive route', sandbox, naiveIds, options, ctx),
    );
    const prototype = await attempt(ctx, 'api: coalescing prototype', () =>
      baselineSide('coalesced', 'coalescing prototype', sandbox, prototypeIds, options, ctx),
    );

    return [
      { route: 'create-task', ours: ours?.create, naive: naive?.create, prototype: prototype?.create },
      { route: 'update-task-status', ours: ours?.update, naive: naive?.update, prototype: prototype?.update },
    ];
  });
}
