// Every measure runs in its own database and RabbitMQ vhost on the shared servers (created through the
// test isolation helpers, dropped afterwards, even when the measure fails): runs never see each
// other's rows or messages, and nothing restarts a shared server.

import { createTestDatabase, createTestVhost, TEST_POSTGRES_URL } from '@task-pipeline/testkit/isolation';
import pino from 'pino';
import postgres from 'postgres';
import { migrate } from '../../../producer/src/db/migrate.js';
import { BENCH_TEXT } from './plan.js';

export type Sql = postgres.Sql;

export interface Sandbox {
  /** The database's name: its backends are the PostgreSQL processes a measure counts. */
  database: string;
  databaseUrl: string;
  amqpUrl: string;
  /** A small pool for seeding and polling; ended with the sandbox. */
  sql: Sql;
}

const quiet = pino({ level: 'warn' });

/** Creates a database (with the producer's schema) and a vhost, runs `fn`, then drops both. */
export async function withSandbox<T>(name: string, fn: (sandbox: Sandbox) => Promise<T>): Promise<T> {
  const database = await createTestDatabase(`bench_${name}`);
  try {
    const vhost = await createTestVhost(`bench_${name}`);
    try {
      await migrate(database.url, quiet);
      const sql = postgres(database.url, { max: 4, onnotice: () => undefined });
      try {
        return await fn({ database: database.name, databaseUrl: database.url, amqpUrl: vhost.url, sql });
      } finally {
        await sql.end({ timeout: 5 });
      }
    } finally {
      await vhost.drop();
    }
  } finally {
    await database.drop();
  }
}

/**
 * Has PostgreSQL write out what earlier work left dirty (a CHECKPOINT): a 1M-row seed or the previous
 * system's drain is otherwise flushed, with the full-page images that follow a checkpoint, inside the
 * next measured window, at the cost of whichever part runs there. Every measured part starts from it,
 * the peers' too.
 */
export async function checkpoint(): Promise<void> {
  const admin = postgres(TEST_POSTGRES_URL, { max: 1, onnotice: () => undefined });
  try {
    await admin`checkpoint`;
  } finally {
    await admin.end();
  }
}

export type SeedStatus = 'waiting' | 'sent';

/**
 * Inserts `count` tasks server-side with generate_series (no rows cross the wire), in chunks so one
 * huge statement does not hold a transaction for the whole 1M-row seed. `sent` rows get attempt 1,
 * as the dispatcher would have left them, so status reports for them are real transitions.
 */
export async function seedTasks(
  sql: Sql,
  count: number,
  status: SeedStatus = 'waiting',
  onProgress?: (done: number) => void,
): Promise<void> {
  const chunk = 100_000;
  for (let start = 0; start < count; start += chunk) {
    const n = Math.min(chunk, count - start);
    const sentColumns = status === 'sent' ? sql`'sent', 1, now()` : sql`'waiting', 0, null`;
    await sql`
      insert into tasks (id, text, priority, status, attempts, sent_at)
      select gen_random_uuid(), ${BENCH_TEXT} || ' #' || g, 'medium', ${sentColumns}
      from generate_series(1, ${n}::int) as g`;
    onProgress?.(start + n);
  }
  await sql`analyze tasks`;
}

export async function countByStatus(sql: Sql): Promise<Record<string, number>> {
  const rows = await sql<{ status: string; n: string }[]>`
    select status, count(*)::text as n from tasks group by status`;
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
}

/** Unfinished tasks, counted through the partial indexes on waiting and sent (cheap to poll). */
export async function countUnfinished(sql: Sql): Promise<number> {
  const [row] = await sql<{ n: string }[]>`
    select ((select count(*) from tasks where status = 'waiting')
          + (select count(*) from tasks where status = 'sent'))::text as n`;
  return Number(row?.n ?? 0);
}

/** When the last task finished (ms), from the producer's own finished_at stamps. */
export async function lastFinishedAt(sql: Sql): Promise<number | undefined> {
  const [row] = await sql<{ at: Date | null }[]>`select max(finished_at) as at from tasks`;
  return row?.at?.getTime();
}
