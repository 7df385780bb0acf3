// A database of the producer's schema for one test file: a copy of a template migrated once per
// version of producer/migrations (the test kit's createMigratedDatabase), not a migration run per file.
import { createMigratedDatabase, type Migrations, type TestDatabase } from '@task-pipeline/testkit/isolation';
import pino from 'pino';
import type postgres from 'postgres';
import { MIGRATIONS_DIR, migrate } from '../../src/db/migrate.js';

const silent = pino({ level: 'silent' });

export const PRODUCER_MIGRATIONS: Migrations = {
  dir: MIGRATIONS_DIR,
  migrate: (url) => migrate(url, silent),
};

export function createProducerDatabase(prefix: string): Promise<TestDatabase> {
  return createMigratedDatabase(prefix, PRODUCER_MIGRATIONS);
}

/** Runs `work` in a transaction that is then rolled back, and returns what it returned. */
export async function inRolledBackTransaction<T>(
  sql: postgres.Sql,
  work: (tx: postgres.TransactionSql) => Promise<T>,
): Promise<T> {
  let result: { value: T } | undefined;
  await sql
    .begin(async (tx) => {
      result = { value: await work(tx) };
      throw new RolledBack();
    })
    .catch((err: unknown) => {
      if (!(err instanceof RolledBack)) throw err;
    });
  if (!result) throw new Error('the rolled-back transaction returned nothing');
  return result.value;
}

class RolledBack extends Error {}
