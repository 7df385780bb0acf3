// Cross-replica wake-ups resume after a PostgreSQL restart (private cluster): the driver's listen
// connection reconnects and listens again by itself; a replica ignores its own announcements.
import postgres, { type Sql } from 'postgres';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  type PrivatePostgres,
  startPrivatePostgres,
} from '../../../../scripts/src/testing/private-postgres.js';
import { createCrossReplicaWakeup, TASKS_CREATED_CHANNEL } from '../../../src/dispatch/wakeup.js';
import { eventually, logger } from './support.js';

let pg: PrivatePostgres;
let listenerSql: Sql;
let notifierSql: Sql;

beforeAll(async () => {
  pg = await startPrivatePostgres();
  // No array-type lookup on connect (porsager/postgres#1192): the restart below would otherwise
  // surface an unhandled rejection from inside the driver.
  const options = { max: 2, onnotice: () => undefined, fetch_types: false } as const;
  // As the app's pool (db plugin): a connect attempt gives up after 5 s.
  listenerSql = postgres(pg.url, { ...options, connect_timeout: 5 });
  notifierSql = postgres(pg.url, options);
}, 60_000);

afterAll(async () => {
  await Promise.all([listenerSql?.end({ timeout: 1 }), notifierSql?.end({ timeout: 1 })]);
  await pg?.destroy();
});

describe('cross-replica wake-up through a database restart', () => {
  test('wake-ups from another replica arrive before and after the restart, never from itself', async () => {
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
        async () => {
          await notifierSql.notify(TASKS_CREATED_CHANNEL, 'created:other-replica').catch(() => undefined);
          return wakes > before;
        },
        60_000,
        'a wake-up from the other replica',
      );
    };
    try {
      wakeup.listen();
      await otherReplicaCreated();
      // Its own announcements do not wake itself.
      const own = wakes;
      await notifierSql.notify(TASKS_CREATED_CHANNEL, 'created:listener');
      await notifierSql.notify(TASKS_CREATED_CHANNEL, 'created:other-replica');
      await eventually(() => wakes > own, 10_000, 'the second notification');
      expect(wakes).toBe(own + 1);

      await pg.restart();
      await otherReplicaCreated();
    } finally {
      await wakeup.close();
    }
  }, 120_000);
});
