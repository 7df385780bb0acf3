// Regression test for the patch in patches/postgres+3.4.9.patch (RELIABILITY.md, "the producer can
// crash when PostgreSQL restarts"): postgres.js 3.4.9 could throw an uncaught TypeError from nextWrite
// when a buffered write fired after the server closed the socket. A child process runs the workload
// that reproduced it while a private cluster restarts over and over; an uncaught error ends that child
// with a non-zero exit, which is what this test watches.
import { eventually } from '@task-pipeline/testkit/eventually';
import { type PrivatePostgres, startPrivatePostgres } from '@task-pipeline/testkit/private-postgres';
import { type Service, startService } from '@task-pipeline/testkit/processes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const RESTARTS = 30;
const RESTART_GAP_MS = 300;
const WORKLOAD = 'scripts/test/resilience/fixtures/postgres-restart-workload.ts';

describe('postgres.js through repeated PostgreSQL restarts', () => {
  let pg: PrivatePostgres;
  let child: Service | undefined;

  beforeAll(async () => {
    pg = await startPrivatePostgres();
  });
  afterAll(async () => {
    child?.kill('SIGKILL');
    await pg?.destroy();
  });

  it(`does not crash the process in ${RESTARTS} restarts under transactions, notifies and SKIP LOCKED`, async () => {
    const proc = startService('restart-workload', WORKLOAD, { WORKLOAD_DATABASE_URL: pg.url });
    child = proc;
    const alive = () => proc.exitCode() === undefined;
    await eventually('the workload ready (or gone)', () => !alive() || proc.lines().includes('ready'), {
      timeoutMs: 120_000,
    });

    let restarts = 0;
    while (alive() && restarts < RESTARTS) {
      await new Promise((r) => setTimeout(r, RESTART_GAP_MS));
      await pg.restart();
      restarts += 1;
    }
    // Let the pool reconnect and run against the restarted server before the orderly stop.
    await new Promise((r) => setTimeout(r, 1_000));
    proc.kill('SIGTERM');
    const { code, signal } = await proc.exited;

    const context = `after ${restarts} restarts, exit ${code} ${signal ?? ''}\noutput:\n${proc.tail(40)}`;
    expect({ code, signal }, context).toEqual({ code: 0, signal: null });
    expect(restarts, context).toBe(RESTARTS);
    // Its last line on stdout is the counts (stderr shares the log: take the last JSON line).
    const counts = JSON.parse(proc.lines().findLast((l) => l.startsWith('{"')) ?? '{}') as Record<
      string,
      number
    >;
    // The restarts really cut queries off, and the pool kept working between them.
    expect(counts.failed, context).toBeGreaterThan(0);
    expect(counts.ok, context).toBeGreaterThan(RESTARTS);
  }, 180_000);
});
