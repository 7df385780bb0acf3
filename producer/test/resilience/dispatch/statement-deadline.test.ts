// A dispatcher statement that never gets an answer must not stall the dispatch loop: past its deadline
// it is cancelled and fails like any database error, and the loop backs off, retries and dispatches.
// Two real hangs: a connection whose bytes stop flowing (what a query left pending by a PostgreSQL
// restart looks like to the driver), and a statement waiting on a table lock on the server.

import { eventually } from '@task-pipeline/testkit/eventually';
import postgres, { type Sql } from 'postgres';
import { afterEach, describe, expect, test } from 'vitest';
import { createDispatchRepository } from '../../../src/dispatch/dispatch-repository.js';
import {
  capturingLogger,
  insertTasks,
  resetState,
  startDispatcher,
  statusCounts,
  type TestDispatcher,
  useServices,
} from '../../support/dispatch.js';
import { startFreezingProxy } from '../../support/freezing-proxy.js';

const DEADLINE_MS = 500;
const DATABASE_RETRY = 'dispatcher cannot reach PostgreSQL; retrying';

/** A pool configured like the producer's (no array-type lookup), tagged for pg_stat_activity. */
function producerLikePool(url: string, applicationName: string): Sql {
  return postgres(url, {
    max: 10,
    fetch_types: false,
    onnotice: () => undefined,
    connection: { application_name: applicationName },
  });
}

const running: TestDispatcher[] = [];
const cleanups: (() => Promise<unknown>)[] = [];

const services = useServices('dispatch_deadline');

afterEach(async () => {
  await Promise.all(running.splice(0).map((d) => d.close()));
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await resetState(services);
});

describe('dispatcher statement deadline', () => {
  test('a connection that stops answering: the statement fails at its deadline and the loop dispatches', async () => {
    const proxy = await startFreezingProxy(new URL(services.db.url));
    cleanups.push(() => proxy.close());
    const url = new URL(services.db.url);
    url.host = `127.0.0.1:${proxy.port}`;
    const pool = producerLikePool(url.toString(), 'deadline-frozen');
    cleanups.push(() => pool.end({ timeout: 1 }));
    // One open, idle connection, then silence on it: the dispatcher's first statement takes it.
    await pool`SELECT 1`;
    proxy.freeze();

    const tasks = await insertTasks(services.sql, 50);
    const { logger, messages } = capturingLogger();
    running.push(
      await startDispatcher(services, {
        repository: createDispatchRepository(pool, { statementDeadlineMs: DEADLINE_MS }),
        logger,
      }),
    );

    await eventually(
      'every task sent after the stuck statement',
      async () => (await statusCounts(services.sql)).sent === tasks.length,
      { timeoutMs: 60_000 },
    );
    expect(proxy.swallowedBytes()).toBeGreaterThan(0);
    expect(messages).toContain(DATABASE_RETRY);
  });

  test('a statement waiting on a lock is cancelled on the server, and the loop dispatches once it is free', async () => {
    const applicationName = 'deadline-locked';
    const pool = producerLikePool(services.db.url, applicationName);
    cleanups.push(() => pool.end({ timeout: 1 }));
    const tasks = await insertTasks(services.sql, 50);
    const holder = await services.sql.reserve();
    await holder`BEGIN`;
    await holder`LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE`;
    const { logger, messages } = capturingLogger();
    running.push(
      await startDispatcher(services, {
        repository: createDispatchRepository(pool, { statementDeadlineMs: DEADLINE_MS }),
        logger,
      }),
    );

    try {
      await eventually(
        'four statements past their deadline',
        () => messages.filter((m) => m === DATABASE_RETRY).length >= 4,
        { timeoutMs: 60_000 },
      );
      // Each cancelled statement left the server; without the cancel, every retry would add one more
      // backend waiting on the lock. The current retry may be waiting, and one cancel in transit.
      const [waiting] = await services.sql<{ n: number }[]>`
        SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE application_name = ${applicationName} AND wait_event_type = 'Lock'`;
      expect(waiting?.n).toBeLessThanOrEqual(2);
      const [sent] = await holder<{ n: number }[]>`
        SELECT count(*)::int AS n FROM tasks WHERE status = 'sent'`;
      expect(sent?.n).toBe(0);
    } finally {
      await holder`COMMIT`;
      holder.release();
    }

    await eventually(
      'every task sent once the lock is gone',
      async () => (await statusCounts(services.sql)).sent === tasks.length,
      { timeoutMs: 60_000 },
    );
  });
});
