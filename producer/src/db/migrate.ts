// Schema migrations with node-pg-migrate. Several producers may start at once: its advisory lock in
// `wait` mode lets the first one migrate while the others wait, then find nothing left to do.
import { fileURLToPath } from 'node:url';
import { runner } from 'node-pg-migrate';

/** producer/migrations, from src/db (tests, tsx) and from dist/db (built) alike. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations', import.meta.url));

export interface MigrationLogger {
  info(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export async function migrate(databaseUrl: string, logger: MigrationLogger): Promise<string[]> {
  const applied = await runner({
    databaseUrl,
    dir: MIGRATIONS_DIR,
    direction: 'up',
    migrationsTable: 'pgmigrations',
    advisoryLockMode: 'wait',
    checkOrder: true,
    logger: {
      debug: (msg: string) => logger.debug({}, msg),
      info: (msg: string) => logger.debug({}, msg),
      warn: (msg: string) => logger.warn({}, msg),
      error: (msg: string) => logger.error({}, msg),
    },
  });
  const names = applied.map((m) => m.name);
  logger.info({ applied: names }, names.length > 0 ? 'database migrated' : 'database schema is current');
  return names;
}
