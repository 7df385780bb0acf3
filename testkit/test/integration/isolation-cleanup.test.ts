// withIsolation: a test file's setup that fails half-way leaves no database and no vhost behind on
// the shared servers, whichever part failed.
import postgres from 'postgres';
import { afterAll, expect, test } from 'vitest';
import {
  createTestDatabase,
  createTestVhost,
  rabbitmqctl,
  TEST_POSTGRES_URL,
  type TestDatabase,
  type TestVhost,
  withIsolation,
} from '../../src/isolation.js';

const admin = postgres(TEST_POSTGRES_URL, { max: 1, onnotice: () => undefined });
afterAll(() => admin.end());

async function databaseExists(name: string): Promise<boolean> {
  const [row] = await admin<
    { n: number }[]
  >`select count(*)::int as n from pg_database where datname = ${name}`;
  return row?.n === 1;
}

async function vhostExists(name: string): Promise<boolean> {
  return (await rabbitmqctl('list_vhosts', 'name')).split('\n').includes(name);
}

test('a setup that throws drops the database and the vhost it was given', async () => {
  let made: [TestDatabase, TestVhost] | undefined;
  const failing = withIsolation(
    createTestDatabase('isolation_a'),
    createTestVhost('isolation_a'),
    async (db, vhost) => {
      made = [db, vhost];
      expect(await databaseExists(db.name)).toBe(true);
      expect(await vhostExists(vhost.name)).toBe(true);
      throw new Error('the app did not start');
    },
  );
  await expect(failing).rejects.toThrow('the app did not start');
  const [db, vhost] = made as [TestDatabase, TestVhost];
  expect(await databaseExists(db.name)).toBe(false);
  expect(await vhostExists(vhost.name)).toBe(false);
});

test('a database that cannot be made takes the vhost made beside it along, and setup never runs', async () => {
  let vhostName: string | undefined;
  const vhost = createTestVhost('isolation_b').then((made) => {
    vhostName = made.name;
    return made;
  });
  let ran = false;
  const failing = withIsolation(createTestDatabase('isolation_b', 'tp_no_such_template'), vhost, async () => {
    ran = true;
  });
  await expect(failing).rejects.toThrow(/tp_no_such_template/);
  expect(ran).toBe(false);
  expect(vhostName).toBeDefined();
  expect(await vhostExists(vhostName as string)).toBe(false);
});

test('a setup that succeeds keeps both, for the file to drop', async () => {
  const [db, vhost] = await withIsolation(
    createTestDatabase('isolation_c'),
    createTestVhost('isolation_c'),
    async (db, vhost) => [db, vhost] as const,
  );
  expect(await databaseExists(db.name)).toBe(true);
  expect(await vhostExists(vhost.name)).toBe(true);
  await Promise.all([db.drop(), vhost.drop()]);
});
