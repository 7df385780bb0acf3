// Regression test for the patch in patches/postgres+3.4.9.patch (RELIABILITY.md, "the producer can
// crash when PostgreSQL restarts"): postgres.js 3.4.9 could throw an uncaught TypeError from nextWrite
// when a buffered write fired after the server closed the socket. A child process runs the workload
// that reproduced it while a private cluster restarts over and over; an uncaught error ends that child
// with a non-zero exit, which is what this test watches.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { type PrivatePostgres, startPrivatePostgres } from '@task-pipeline/testkit/private-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const RESTARTS = 30;
const RESTART_GAP_MS = 300;
const workload = fileURLToPath(new URL('./fixtures/postgres-restart-workload.ts', import.meta.url));

describe('postgres.js through repeated PostgreSQL restarts', () => {
  let pg: PrivatePostgres;
  let child: ChildProcess | undefined;

  beforeAll(async () => {
    pg = await startPrivatePostgres();
  });
  afterAll(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await pg?.destroy();
  });

  it(`does not crash the process in ${RESTARTS} restarts under transactions, notifies and SKIP LOCKED`, async () => {
    const proc = spawn(process.execPath, ['--import', 'tsx', workload], {
      env: { ...process.env, WORKLOAD_DATABASE_URL: pg.url },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    let stdout = '';
    let stderr = '';
    proc.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    proc.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = once(proc, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    const alive = () => proc.exitCode === null && proc.signalCode === null;
    while (alive() && !stdout.includes('ready\n')) await new Promise((r) => setTimeout(r, 50));

    let restarts = 0;
    while (alive() && restarts < RESTARTS) {
      await new Promise((r) => setTimeout(r, RESTART_GAP_MS));
      await pg.restart();
      restarts += 1;
    }
    // Let the pool reconnect and run against the restarted server before the orderly stop.
    await new Promise((r) => setTimeout(r, 1_000));
    if (alive()) proc.kill('SIGTERM');
    const [code, signal] = await exited;

    const context = `after ${restarts} restarts, exit ${code} ${signal ?? ''}\nstderr:\n${stderr.slice(-3_000)}`;
    expect({ code, signal }, context).toEqual({ code: 0, signal: null });
    expect(restarts, context).toBe(RESTARTS);
    const counts = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, number>;
    // The restarts really cut queries off, and the pool kept working between them.
    expect(counts.failed, context).toBeGreaterThan(0);
    expect(counts.ok, context).toBeGreaterThan(RESTARTS);
  }, 180_000);
});
