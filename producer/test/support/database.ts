// A database of the producer's schema for one test file: a copy of a template migrated once per
// version of producer/migrations (the test kit's createMigratedDatabase), not a migration run per file.
import { createMigratedDatabase, type Migrations, type TestDatabase } from '@task-pipeline/testkit/isolation';
import pino from 'pino';
import { MIGRATIONS_DIR, migrate } from '../../src/db/migrate.js';

const silent = pino({ level: 'silent' });

export const PRODUCER_MIGRATIONS: Migrations = {
  dir: MIGRATIONS_DIR,
  migrate: (url) => migrate(url, silent),
};

export function createProducerDatabase(prefix: string): Promise<TestDatabase> {
  return createMigratedDatabase(prefix, PRODUCER_MIGRATIONS);
}
