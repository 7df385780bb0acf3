// The first five minutes, as a newcomer lives them: a fresh `git clone` of this repository, `./run.sh`,
// then every command it printed, exactly as printed. Docker mode when an engine answers (skipped,
// saying why, otherwise); local mode, which runs in the foreground: started, its printed command run
// beside it, then stopped with Ctrl-C (SIGINT) as it says.
//
// The clone gets a .env with free ports (and, in local mode, a database and vhost of its own), as a
// user on a busy machine would set them: the shared servers and anyone else's stack stay untouched.
import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { containerEngineUnavailable, REPO_ROOT } from '@task-pipeline/testkit/compose-stack';
import { eventually } from '@task-pipeline/testkit/eventually';
import {
  createTestVhost,
  TEST_POSTGRES_URL,
  type TestVhost,
  uniqueName,
} from '@task-pipeline/testkit/isolation';
import { freePort, freePortPair, isAlive } from '@task-pipeline/testkit/private-process';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const exec = promisify(execFile);
const skipReason = containerEngineUnavailable();
if (skipReason) console.warn(`first run, docker mode: skipped: ${skipReason}`);
const curlMissing = spawnSync('curl', ['--version']).error !== undefined;
if (!skipReason && curlMissing)
  console.warn('first run, docker mode: the curl line is not tried: no curl here');

/** A login shell's environment, not this test runner's: no PORT, token, npm_* or test variables. */
function cleanEnv(): Record<string, string> {
  const keep = ['PATH', 'HOME', 'USER', 'LANG', 'TMPDIR', 'DOCKER_HOST', 'TERM'];
  return Object.fromEntries(
    keep.flatMap((name) => (process.env[name] ? [[name, process.env[name] as string]] : [])),
  );
}

/** `git clone` of this repository's committed HEAD into a fresh folder; returns the clone's path. */
async function freshClone(prefix: string): Promise<string> {
  const parent = mkdtempSync(join(tmpdir(), `${prefix}-`));
  // The folder's name becomes the compose project's: lower case, unique.
  const dir = join(parent, `${prefix}-${randomBytes(3).toString('hex')}`);
  await exec('git', ['clone', '--quiet', REPO_ROOT, dir]);
  return dir;
}

interface Run {
  code: number | null;
  stdout: string;
  /** stdout and stderr as a terminal would show them. */
  output: string;
}

/** Runs one printed command line as a user's shell would, in the clone. */
function shell(command: string, cwd: string, timeoutMs: number): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-c', command], { cwd, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      output += chunk.toString();
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, output });
    });
  });
}

/** The commands a block of `name   command   (note)` lines offers, by name. */
function printedCommands(output: string, names: readonly string[]): Map<string, string> {
  const found = new Map<string, string>();
  for (const line of output.split('\n')) {
    for (const name of names) {
      const match = new RegExp(`^(?:launcher \\| )?\\s+${name}\\s{2,}(.+?)(?:\\s{2,}\\(.*\\))?$`).exec(line);
      if (match?.[1]) found.set(name, match[1].trim());
    }
  }
  return found;
}

const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(0)} s`;

describe.skipIf(skipReason)('fresh clone, docker mode: ./run.sh, then what it printed', () => {
  let clone: string;
  let apiPort: number;
  let printed: Map<string, string>;

  beforeAll(async () => {
    clone = await freshClone('first-docker');
    apiPort = await freePort();
    writeFileSync(join(clone, '.env'), `PORT=${apiPort}\nRABBITMQ_MANAGEMENT_PORT=${await freePort()}\n`);
  });

  afterAll(async () => {
    if (clone) {
      // Whatever the run left: containers, volumes, and the images built for this project.
      await shell(
        'docker-compose --profile tools down -v --rmi local -t 5 || docker compose --profile tools down -v --rmi local -t 5',
        clone,
        300_000,
      );
      rmSync(join(clone, '..'), { recursive: true, force: true });
    }
  });

  test('./run.sh brings the stack up and prints the way to try it', async () => {
    const started = Date.now();
    const run = await shell('./run.sh', clone, 590_000);
    console.log(`first run, docker mode: ./run.sh took ${seconds(started)}`);
    expect(run.code, run.output.slice(-3000)).toBe(0);
    expect(run.output).toContain('Task pipeline is up');
    expect(run.output).toContain(`API           http://localhost:${apiPort}/api/v1`);
    printed = printedCommands(run.output, ['Try it', 'Or with curl', 'Logs', 'Stop']);
    expect([...printed.keys()].sort()).toEqual(['Logs', 'Or with curl', 'Stop', 'Try it']);
  });

  test('"Try it" works as printed: tasks created and all finished', async () => {
    const command = printed.get('Try it') as string;
    const started = Date.now();
    const run = await shell(command, clone, 300_000);
    console.log(`first run, docker mode: \`${command}\` took ${seconds(started)}`);
    expect(run.code, run.output.slice(-3000)).toBe(0);
    expect(run.output).toMatch(/all finished: \d+ success, \d+ error of 100/);
  });

  test.skipIf(curlMissing)('"Or with curl" works as printed: 201 with the task', async () => {
    const run = await shell(printed.get('Or with curl') as string, clone, 60_000);
    expect(run.code, run.output).toBe(0);
    // curl's progress meter goes to stderr; the answer is stdout.
    expect(JSON.parse(run.stdout)).toMatchObject({ text: 'hi', status: 'waiting' });
  });

  test('"Logs" follows the services\' logs until stopped', async () => {
    const child = spawn('bash', ['-c', printed.get('Logs') as string], {
      cwd: clone,
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    await eventually('log lines of the producer', () => /producer[-_]1/.test(output), {
      timeoutMs: 60_000,
      intervalMs: 200,
    });
    expect(child.exitCode, 'still following').toBeNull();
    process.kill(-(child.pid as number), 'SIGINT');
    await new Promise((resolve) => child.once('exit', resolve));
  });

  test('"Stop" stops and removes the stack', async () => {
    const run = await shell(printed.get('Stop') as string, clone, 120_000);
    expect(run.code, run.output).toBe(0);
    const left = await shell(
      'docker ps -q --filter "label=com.docker.compose.project=$(basename "$PWD")"',
      clone,
      30_000,
    );
    expect(left.output.trim()).toBe('');
  });
});

describe('fresh clone, local mode: ./run.sh --local, what it printed, then Ctrl-C', () => {
  const database = uniqueName('first_run');
  let vhost: TestVhost;
  let clone: string;
  let run: ChildProcess;
  let output = '';
  let exited: Promise<number | null>;
  let printed: Map<string, string>;

  beforeAll(async () => {
    vhost = await createTestVhost('first_run');
    clone = await freshClone('first-local');
    const databaseUrl = new URL(TEST_POSTGRES_URL);
    databaseUrl.pathname = `/${database}`;
    writeFileSync(
      join(clone, '.env'),
      [
        `PORT=${await freePort()}`,
        `HEALTH_PORT=${await freePortPair()}`,
        `DATABASE_URL=${databaseUrl}`,
        `AMQP_URL=${vhost.url}`,
        '',
      ].join('\n'),
    );
  });

  afterAll(async () => {
    if (run?.pid !== undefined && run.exitCode === null && isAlive(run.pid))
      process.kill(-run.pid, 'SIGKILL');
    const sql = postgres(TEST_POSTGRES_URL, { max: 1, onnotice: () => undefined });
    await sql.unsafe(`drop database if exists "${database}" with (force)`).finally(() => sql.end());
    await vhost?.drop();
    if (clone) rmSync(join(clone, '..'), { recursive: true, force: true });
  });

  test('./run.sh --local installs, builds, starts everything and prints the way to try it', async () => {
    const started = Date.now();
    // Its own process group, as a terminal gives it: Ctrl-C reaches the group.
    run = spawn('./run.sh', ['--local'], {
      cwd: clone,
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    exited = new Promise((resolve) => run.once('exit', (code) => resolve(code)));
    const collect = (chunk: Buffer) => {
      output += chunk.toString();
    };
    run.stdout?.on('data', collect);
    run.stderr?.on('data', collect);
    await eventually(
      'the launcher to say it is ready',
      () => output.includes('Ctrl-C stops everything.') || run.exitCode !== null,
      { timeoutMs: 540_000, intervalMs: 200 },
    );
    console.log(`first run, local mode: ./run.sh --local ready after ${seconds(started)}`);
    expect(run.exitCode, output.slice(-3000)).toBeNull();
    expect(output).toContain('run.sh: npm ci');
    printed = printedCommands(output, ['Try it']);
    expect(printed.get('Try it')).toBeDefined();
  });

  test('"Try it" works as printed, beside the running launcher', async () => {
    const command = printed.get('Try it') as string;
    const started = Date.now();
    const result = await shell(command, clone, 300_000);
    console.log(`first run, local mode: \`${command}\` took ${seconds(started)}`);
    expect(result.code, result.output.slice(-3000)).toBe(0);
    expect(result.output).toMatch(/all finished: \d+ success, \d+ error of 100/);
  });

  test('Ctrl-C stops it, with exit 0', async () => {
    process.kill(-(run.pid as number), 'SIGINT');
    const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 60_000))]);
    expect(code, output.slice(-3000)).toBe(0);
  });
});
