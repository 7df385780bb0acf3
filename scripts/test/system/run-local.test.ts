// `./run.sh --local` as a user runs it (issue 5): it builds, creates the database, starts the
// producer and two consumers as local processes; 200 tasks created through the API all finish;
// SIGINT stops every child and frees every port. Its own database and vhost on the shared servers.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { REPO_ROOT } from '@task-pipeline/testkit/compose-stack';
import { eventually } from '@task-pipeline/testkit/eventually';
import {
  createTestVhost,
  TEST_POSTGRES_URL,
  type TestVhost,
  uniqueName,
} from '@task-pipeline/testkit/isolation';
import { freePort, freePortPair, isAlive, portIsFree } from '@task-pipeline/testkit/private-process';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type ApiClient, createApiClient } from '../../src/cli/api-client.js';
import { createTasks, watchTasks } from '../../src/cli/task-runner.js';

/** Direct children of a process, from /proc/<pid>/stat ("pid (comm) state ppid ..."). */
function childrenOf(pid: number): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number)
    .filter((candidate) => {
      try {
        const stat = readFileSync(`/proc/${candidate}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
      } catch {
        return false;
      }
    });
}

describe('./run.sh --local', () => {
  const database = uniqueName('run_local');
  let vhost: TestVhost;
  let run: ChildProcess;
  let output = '';
  let exited: Promise<number | null>;
  let ports: number[];
  let servicePids: number[] = [];
  let children: number[] = [];
  let stoppedCleanly = false;
  let api: ApiClient;

  beforeAll(async () => {
    vhost = await createTestVhost('run_local');
    const port = await freePort();
    const healthPort = await freePortPair();
    ports = [port, healthPort, healthPort + 1];
    const databaseUrl = new URL(TEST_POSTGRES_URL);
    databaseUrl.pathname = `/${database}`;
    run = spawn('bash', ['run.sh', '--local'], {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        STATUS_API_TOKEN: randomBytes(24).toString('hex'),
        PORT: String(port),
        HEALTH_PORT: String(healthPort),
        // Not created beforehand: the launcher must create it.
        DATABASE_URL: databaseUrl.toString(),
        AMQP_URL: vhost.url,
        RETRY_DELAYS_SECONDS: '1',
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    exited = new Promise((resolve) => run.once('exit', (code) => resolve(code)));
    run.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    run.stderr?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    api = createApiClient(`http://127.0.0.1:${port}`);
  });

  afterAll(async () => {
    await api?.close();
    // Only after a failed stop: once everything exited, these pids may belong to someone else.
    if (!stoppedCleanly) {
      for (const pid of [run?.pid, ...children]) {
        if (pid !== undefined && isAlive(pid)) process.kill(pid, 'SIGKILL');
      }
    }
    const sql = postgres(TEST_POSTGRES_URL, { max: 1, onnotice: () => undefined });
    await sql.unsafe(`drop database if exists "${database}" with (force)`).finally(() => sql.end());
    await vhost?.drop();
  });

  test('builds, creates the database and starts a producer and two consumers', async () => {
    await eventually(
      'the launcher to report ready',
      () => output.includes('Ctrl-C stops everything.') || run.exitCode !== null,
      { timeoutMs: 300_000, intervalMs: 200 },
    );
    expect(run.exitCode, output.slice(-3000)).toBeNull();
    expect(output).toContain('run.sh: npm run build');
    expect(output).toMatch(new RegExp(`PostgreSQL \\S+/${database}: database created`));
    expect(output).toContain(`API          http://127.0.0.1:${ports[0]}/api/v1`);
    const ready = /ready \(producer (\d+), consumer-1 (\d+), consumer-2 (\d+)\)/.exec(output);
    expect(ready).not.toBeNull();
    servicePids = (ready as RegExpExecArray).slice(1).map(Number);
    // run.sh execs the launcher, so the services are its children (next to tsx's esbuild helper).
    children = childrenOf(run.pid as number);
    expect(children).toEqual(expect.arrayContaining(servicePids));
    for (const port of ports) expect(await portIsFree(port), `port ${port} in use`).toBe(false);
  });

  test('200 tasks created through the API all reach success or error', async () => {
    const tasks = await createTasks(api, 200, { label: 'run-local' });
    const result = await watchTasks(
      api,
      tasks.map((t) => t.taskId),
      { timeoutMs: 180_000 },
    );
    expect(result.complete, JSON.stringify(result.tally)).toBe(true);
    expect(result.tally.success + result.tally.error).toBe(200);
  });

  test('SIGINT stops every child process and frees every port', async () => {
    run.kill('SIGINT');
    const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 60_000))]);
    expect(code, output.slice(-3000)).toBe(0);
    expect(output).toContain('launcher | SIGINT: stopping producer, consumer-1, consumer-2');
    for (const pid of children) expect(isAlive(pid), `pid ${pid}`).toBe(false);
    for (const port of ports) expect(await portIsFree(port), `port ${port}`).toBe(true);
    stoppedCleanly = true;
  });
});
