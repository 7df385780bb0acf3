// Cross-replica wake-ups resume after a PostgreSQL restart (private cluster): the driver's listen
// connection reconnects and listens again by itself; a replica ignores its own announcements.

import { eventually } from '@task-pipeline/testkit/eventually';
import { type PrivatePostgres, startPrivatePostgres } from '@task-pipeline/testkit/private-postgres';
import postgres, { type Sql } from 'postgres';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createCrossReplicaWakeup, TASKS_CREATED_CHANNEL } from '../../../src/dispatch/wakeup.js';
import { logger } from '../../support/dispatch.js';

let pg: PrivatePostgres;
let listenerSql: Sql;
let notifierSql: Sql;

beforeAll(async () => {
  pg = await startPrivatePostgres();
  // No array-type lookup on connect (porsager/postgres#1192): the restart below would otherwise
  // surface an unhandled rejection from inside the driver.
  const options = { onnotice: () => undefined, fetch_types: false } as const;
  // As the app's pool (db plugin): a connect attempt gives up after 5 s.
  listenerSql = postgres(pg.url, { ...options, max: 2, connect_timeout: 5 });
  // One connection: its notifications are committed, and so delivered, in the order sent.
  notifierSql = postgres(pg.url, { ...options, max: 1 });
}, 60_000);

afterAll(async () => {
  await Promise.all([listenerSql?.end({ timeout: 1 }), notifierSql?.end({ timeout: 1 })]);
  await pg?.destroy();
});

describe('cross-replica wake-up through a database restart', () => {
  test('wake-ups from another replica arrive, also after a restart; its own never wake it', async () => {
    let wakes = 0;
    const wakeup = createCrossReplicaWakeup({
      sql: listenerSql,
      instanceId: 'listener',
      logger,
      onWake: () => {
        wakes += 1;
      },
    });
    const otherReplicaCreated = async () => {
      const before = wakes;
      await eventually(
        'a wake-up from the other replica',
        async () => {
          await notifierSql.notify(TASKS_CREATED_CHANNEL, 'created:other-replica').catch(() => undefined);
          return wakes > before;
        },
        { timeoutMs: 60_000 },
      );
    };
    try {
      await wakeup.listen();
      // A second listener on the same driver connection sees each notification right after the
      // wake-up's handler did: once it has seen both, the wake-up has handled both.
      const seen: string[] = [];
      const probe = await listenerSql.listen(TASKS_CREATED_CHANNEL, (payload) => void seen.push(payload));
      // Its own announcement does not wake it; the other replica's does.
      await notifierSql.notify(TASKS_CREATED_CHANNEL, 'created:listener');
      await notifierSql.notify(TASKS_CREATED_CHANNEL, 'created:other-replica');
      await eventually('both notifications delivered', () => seen.length === 2, { timeoutMs: 10_000 });
      await probe.unlisten();
      expect(wakes).toBe(1);

      await pg.restart();
      await otherReplicaCreated();
    } finally {
      await wakeup.close();
    }
  }, 120_000);
});
