// The container deployment for real (issue 8): docker-compose.yml and the three Dockerfiles on a
// Docker engine, under a compose project of its own (never a developer's stack, never this
// machine's PostgreSQL/RabbitMQ). Skips, saying why, when no engine answers.
//   npm run test:containers

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import {
  ComposeStack,
  type ContainerState,
  containerEngineUnavailable,
  docker,
  REPO_ROOT,
} from '@task-pipeline/testkit/compose-stack';
import {
  type LocalRegistry,
  registryUnavailable,
  startLocalRegistry,
} from '@task-pipeline/testkit/local-registry';
import { freePort } from '@task-pipeline/testkit/private-process';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type ApiClient, createApiClient, type Task } from '../../src/cli/api-client.js';
import { isTerminal } from '../../src/cli/progress.js';
import { createTasks, watchTasks } from '../../src/cli/task-runner.js';

const exec = promisify(execFile);
const skipReason = containerEngineUnavailable();
if (skipReason) console.warn(`containers: skipped: ${skipReason}`);
const registrySkipReason = skipReason ?? registryUnavailable();
if (!skipReason && registrySkipReason)
  console.warn(`containers: publish test skipped: ${registrySkipReason}`);

/** Six containers: postgres, rabbitmq, producer, haproxy, two consumers. */
const STACK_SIZE = 6;
const APP_SERVICES = ['producer', 'consumer'];
const timings: Record<string, string> = {};

/** One replica's /metrics, read inside its container (replicas publish no port of their own). */
async function replicaMetrics(containerId: string): Promise<string> {
  return docker(
    'exec',
    containerId,
    'node',
    '-e',
    "fetch('http://127.0.0.1:3000/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))",
  );
}

/** Sum of a metric's samples in a Prometheus page, over the label sets that contain `labels`. */
function sumOf(page: string, name: string, labels = ''): number {
  let sum = 0;
  for (const line of page.split('\n')) {
    const match = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (match?.[1] === name && (match[2] ?? '').includes(labels)) sum += Number(match[3]);
  }
  return sum;
}

function seconds(since: number): string {
  return `${((Date.now() - since) / 1000).toFixed(1)} s`;
}

describe.skipIf(skipReason)('container deployment', () => {
  let stack: ComposeStack;
  let api: ApiClient;
  let baseUrl: string;
  let managementUrl: string;
  let finished: Map<string, Task>;
  let backlog: Task[];

  beforeAll(async () => {
    const [port, managementPort] = [await freePort(), await freePort()];
    baseUrl = `http://127.0.0.1:${port}`;
    managementUrl = `http://127.0.0.1:${managementPort}`;
    stack = new ComposeStack({
      STATUS_API_TOKEN: randomBytes(24).toString('hex'),
      PORT: String(port),
      RABBITMQ_MANAGEMENT_PORT: String(managementPort),
      // Slow enough work that the kills land mid-run (2 consumers × 4 in flight / 0.5 s ≈ 16 tasks/s).
      PROCESSING_TIME_MS: '500',
      WORKER_PREFETCH: '4',
      RETRY_DELAYS_SECONDS: '1',
      // Claims of a killed producer come back after 16 s instead of 30.
      DISPATCH_LEASE_S: '16',
      LOG_LEVEL: 'warn',
    });
    api = createApiClient(baseUrl);
  });

  afterAll(async () => {
    await api?.close();
    const started = Date.now();
    await stack?.destroy();
    timings['teardown (down -v --rmi local)'] = seconds(started);
    console.log(`containers: timings ${JSON.stringify(timings, null, 2)}`);
  });

  test('compose builds every image and brings all six containers to healthy', async () => {
    const started = Date.now();
    await stack.compose('up', '-d', '--build');
    timings['up --build'] = seconds(started);
    const running = await stack.waitHealthy(STACK_SIZE, 240_000);
    timings['up --build until all healthy'] = seconds(started);
    expect(running.map((c) => c.service).sort()).toEqual([
      'consumer',
      'consumer',
      'haproxy',
      'postgres',
      'producer',
      'rabbitmq',
    ]);
    const images = await docker(
      'images',
      '--format',
      '{{.Repository}} {{.Size}}',
      '--filter',
      `reference=${stack.project}*`,
    );
    console.log(`containers: images of this build:\n${images}`);
  });

  test('the app containers run as a non-root user and pass their image HEALTHCHECK', async () => {
    const apps = (await stack.containers()).filter((c) => APP_SERVICES.includes(c.service));
    expect(apps).toHaveLength(3);
    for (const container of apps) {
      expect(container.user, container.name).toBe('node');
      expect((await docker('exec', container.id, 'id', '-u')).trim(), container.name).toBe('1000');
      expect(container.healthcheck.slice(0, 3), container.name).toEqual(['CMD', 'bash', '-c']);
      expect(container.health, container.name).toBe('healthy');
    }
    const [haproxy] = await stack.service('haproxy');
    expect(haproxy?.user).toBe('haproxy');
    expect((await docker('exec', haproxy?.id as string, 'id', '-un')).trim()).toBe('haproxy');
  });

  test('the API, Swagger UI and the RabbitMQ management UI answer on the published ports', async () => {
    for (const url of [`${baseUrl}/health/ready`, `${baseUrl}/docs`, `${baseUrl}/docs/json`, managementUrl]) {
      const response = await fetch(url);
      await response.body?.cancel();
      expect(response.status, url).toBe(200);
    }
    const published = await Promise.all(
      (await stack.containers()).map(async (c) => [c.service, (await docker('port', c.id)).trim()] as const),
    );
    const withPorts = published.filter(([, ports]) => ports !== '').map(([service]) => service);
    expect(withPorts.sort()).toEqual(['haproxy', 'rabbitmq']);
  });

  test('500 tasks all finish although a consumer and the producer are killed mid-run', async () => {
    const started = Date.now();
    const tasks = await createTasks(api, 500, { label: 'containers' });
    let killed: Promise<{ doneAtKill: number; victims: ContainerState[] }> | undefined;
    const killMidRun = async (doneAtKill: number) => {
      const [consumer] = await stack.service('consumer');
      const [producer] = await stack.service('producer');
      const victims = [consumer, producer] as ContainerState[];
      await docker('kill', ...victims.map((c) => c.id));
      await new Promise((r) => setTimeout(r, 2000));
      await stack.compose('up', '-d');
      await stack.waitHealthy(STACK_SIZE, 120_000);
      return { doneAtKill, victims };
    };
    const result = await watchTasks(
      api,
      tasks.map((t) => t.taskId),
      {
        timeoutMs: 300_000,
        onProgress: (t) => {
          if (!killed && t.success + t.error >= 25) killed = killMidRun(t.success + t.error);
        },
      },
    );
    timings['500 tasks with kills'] = seconds(started);
    expect(killed, 'the kill never happened').toBeDefined();
    const { doneAtKill, victims } = await (killed as NonNullable<typeof killed>);
    console.log(
      `containers: killed ${victims.map((v) => v.name).join(' and ')} with ${doneAtKill}/500 tasks done`,
    );
    expect(doneAtKill, 'killed before the run ended').toBeLessThan(500);
    for (const victim of victims) {
      const now = (await stack.containers()).find((c) => c.id === victim.id);
      expect(now?.running, victim.name).toBe(true);
      expect(now?.startedAt, `${victim.name} was started again`).not.toBe(victim.startedAt);
    }
    expect(result.complete).toBe(true);
    expect(result.tally.success + result.tally.error).toBe(500);
    finished = result.tasks;
  });

  test('with the consumers stopped, a backlog of sent tasks waits in RabbitMQ', async () => {
    await stack.compose('stop', 'consumer');
    for (const c of await stack.service('consumer'))
      expect([c.running, c.exitCode], c.name).toEqual([false, 0]);
    backlog = await createTasks(api, 100, { label: 'backlog' });
    const sent = await watchTasks(
      api,
      backlog.map((t) => t.taskId),
      { timeoutMs: 120_000, until: (status) => status === 'sent' || isTerminal(status) },
    );
    expect(sent.complete).toBe(true);
    expect(sent.tally.sent).toBe(100);
  });

  test('docker-compose stop: every service ends by itself within the 10 s stop timeout', async () => {
    const started = Date.now();
    await stack.compose('stop', '-t', '10');
    timings['compose stop (all services)'] = seconds(started);
    // 137 would mean compose had to SIGKILL after 10 s; 0 is a graceful exit on SIGTERM.
    const all = await stack.containers();
    expect(all).toHaveLength(STACK_SIZE);
    for (const c of all) expect([c.name, c.running, c.exitCode]).toEqual([c.name, false, 0]);
  });

  test('down + up without -v keeps every task and the queued backlog', async () => {
    let started = Date.now();
    await stack.compose('down');
    expect(await stack.containers()).toEqual([]);
    await stack.compose('up', '-d');
    await stack.waitHealthy(STACK_SIZE, 240_000);
    timings['down + up until healthy'] = seconds(started);

    const again = await watchTasks(api, [...finished.keys()], { timeoutMs: 60_000 });
    expect(again.complete).toBe(true);
    for (const [taskId, task] of finished) {
      const now = again.tasks.get(taskId);
      expect([now?.status, now?.attempts, now?.finishedAt]).toEqual([
        task.status,
        task.attempts,
        task.finishedAt,
      ]);
    }

    started = Date.now();
    const drained = await watchTasks(
      api,
      backlog.map((t) => t.taskId),
      { timeoutMs: 180_000 },
    );
    timings['backlog of 100 after restart'] = seconds(started);
    expect(drained.complete).toBe(true);
    expect(drained.tally.success + drained.tally.error).toBe(100);
  });

  test('scaled to two producers behind HAProxy: both serve, both dispatch, no task sent twice', async () => {
    const started = Date.now();
    await stack.compose('up', '-d', '--scale', 'producer=2');
    await stack.waitHealthy(STACK_SIZE + 1, 240_000);
    const producers = await stack.service('producer');
    expect(producers).toHaveLength(2);
    // HAProxy finds the new replica through compose's DNS and sends it requests once its readiness
    // check passes: wait until each replica has answered a request that came through HAProxy.
    const served = (text: string) =>
      sumOf(text, 'http_request_duration_seconds_count', 'route="/health/live"');
    const deadline = Date.now() + 60_000;
    for (;;) {
      await Promise.all(
        Array.from({ length: 6 }, () => fetch(`${baseUrl}/health/live`).then((r) => r.body?.cancel())),
      );
      const pages = await Promise.all(producers.map((p) => replicaMetrics(p.id)));
      if (pages.every((page) => served(page) > 0)) break;
      if (Date.now() > deadline) throw new Error('HAProxy did not send requests to both producers in 60 s');
      await new Promise((r) => setTimeout(r, 1000));
    }
    timings['scale to two producers until both serve'] = seconds(started);

    const counts = async () =>
      (await Promise.all(producers.map((p) => replicaMetrics(p.id)))).map((page) => ({
        created: sumOf(page, 'tasks_created_total'),
        dispatched: sumOf(page, 'tasks_dispatched_total'),
      }));
    const before = await counts();
    const tasks = await createTasks(api, 300, { label: 'two producers' });
    const result = await watchTasks(
      api,
      tasks.map((t) => t.taskId),
      { timeoutMs: 180_000 },
    );
    timings['300 tasks through two producers'] = seconds(started);
    expect(result.complete, JSON.stringify(result.tally)).toBe(true);
    expect(result.tally.success + result.tally.error).toBe(300);
    const after = await counts();
    const created = after.map((a, i) => a.created - (before[i]?.created ?? 0));
    const dispatched = after.map((a, i) => a.dispatched - (before[i]?.dispatched ?? 0));
    console.log(
      `containers: two producers created ${created.join(' + ')}, dispatched ${dispatched.join(' + ')}`,
    );
    // Both replicas took creates (HAProxy balances) and both dispatchers claimed some of them.
    for (const n of [...created, ...dispatched]) expect(n).toBeGreaterThan(0);
    expect(created.reduce((a, b) => a + b, 0)).toBe(300);
    // Each task was claimed once and recorded sent once: a second claim would have raised its attempt.
    expect(dispatched.reduce((a, b) => a + b, 0)).toBe(300);
    expect([...result.tasks.values()].filter((t) => t.attempts !== 1)).toEqual([]);
    // Whichever producer applied the report, before or after the other one's record: each has a sentAt.
    expect([...result.tasks.values()].filter((t) => t.sentAt === null)).toEqual([]);
  });

  describe.skipIf(registrySkipReason)('publish scripts', () => {
    let registry: LocalRegistry;
    const tag = `ct-${randomBytes(3).toString('hex')}`;
    const pushed: string[] = [];

    beforeAll(async () => {
      registry = await startLocalRegistry();
    });
    afterAll(async () => {
      for (const ref of pushed) await docker('rmi', ref).catch(() => undefined);
      await registry?.stop();
    });

    test.each([
      ['publish_producer.sh', 'task-pipeline-producer'],
      ['publish_consumer.sh', 'task-pipeline-consumer'],
      ['publish_rabbit.sh', 'task-pipeline-rabbitmq'],
    ])('%s pushes to a local registry, and the pushed tag pulls by digest', async (script, image) => {
      const started = Date.now();
      const ref = `${registry.address}/${image}:${tag}`;
      const { stdout } = await exec(
        'bash',
        [`${REPO_ROOT}${script}`, '--registry', registry.address, '--tag', tag],
        {
          maxBuffer: 64 * 1024 * 1024,
        },
      );
      timings[`${script} (build from cache + push)`] = seconds(started);
      pushed.push(ref);
      const digestRef = /pushed \S+ as (\S+@sha256:[0-9a-f]{64})$/m.exec(stdout)?.[1];
      expect(digestRef, stdout.slice(-500)).toBeDefined();
      const imageId = (await docker('image', 'inspect', '-f', '{{.Id}}', ref)).trim();

      // Untag locally so the pull has to ask the registry for that manifest.
      await docker('rmi', ref);
      await docker('pull', digestRef as string);
      pushed.push(digestRef as string);
      expect((await docker('image', 'inspect', '-f', '{{.Id}}', digestRef as string)).trim()).toBe(imageId);
    });
  });
});
