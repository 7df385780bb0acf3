// What each piece the operator API added to the tasks table costs the drain's statements, measured
// alone: the same sequence a drain runs against the database (insert in batches of 500, claim 500,
// record 500 as sent, report 1,000 as success) on a fresh migrated database, once with everything and
// once without each piece (the list index tasks_created, the partial index tasks_error, the counters'
// triggers), once with none of them, and once with trigram indexes on top (what was not added).
// Variants alternate over rounds, so a change of the machine's load shows up as spread, not as a
// difference. It runs on a private PostgreSQL cluster (autovacuum
// off), so the WAL each variant writes is its own: a figure the machine's load does not move, unlike
// the times, which a shared 2-core machine makes noisy.
//   npx tsx --conditions=source scripts/src/bench/write-path-cost.ts [--tasks=50000] [--rounds=3]
import { loadavg } from 'node:os';
import { startPrivatePostgres } from '@task-pipeline/testkit/private-postgres';
import pino from 'pino';
import postgres from 'postgres';
import { migrate } from '../../../producer/src/db/migrate.js';
import { BENCH_TEXT } from './plan.js';

const PIECES = {
  tasks_created: 'drop index tasks_created',
  tasks_error: 'drop index tasks_error',
  counters:
    'drop trigger task_counts_insert on tasks; drop trigger task_counts_update on tasks; drop trigger task_counts_delete on tasks',
} as const;
type Piece = keyof typeof PIECES;
const ALL = Object.keys(PIECES) as Piece[];
/**
 * What was not added, measured the same way: trigram indexes for the list's text and error "contains"
 * filters (the bounded walk answers them instead).
 */
const TRIGRAMS = [
  'create extension if not exists pg_trgm',
  'create index tasks_text_trgm on tasks using gin (text gin_trgm_ops)',
  'create index tasks_error_trgm on tasks using gin (error gin_trgm_ops)',
];
const VARIANTS: { name: string; without: Piece[]; add?: string[] }[] = [
  { name: 'everything', without: [] },
  ...ALL.map((piece) => ({ name: `without ${piece}`, without: [piece] })),
  { name: 'none of them', without: ALL },
  { name: 'everything + trigrams', without: [], add: TRIGRAMS },
];

function option(name: string, fallback: number): number {
  const arg = process.argv.find((a) => a.startsWith(`--${name}=`));
  const value = arg === undefined ? fallback : Number(arg.slice(name.length + 3));
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer`);
  return value;
}

async function drainStatements(sql: postgres.Sql, tasks: number): Promise<{ ms: number; walBytes: number }> {
  const [before] = await sql<{ lsn: string }[]>`select pg_current_wal_insert_lsn()::text as lsn`;
  const started = performance.now();
  for (let done = 0; done < tasks; done += 500) {
    await sql`
      insert into tasks (id, text, priority)
      select gen_random_uuid(), ${BENCH_TEXT} || ' #' || g, 'medium' from generate_series(1, 500) g`;
  }
  for (;;) {
    const claimed = await sql<{ id: string }[]>`
      update tasks set attempts = attempts + 1, claimed_until = now() + interval '30 s'
       where id in (select id from tasks where status = 'waiting' and priority = 'medium'
                     and claimed_until is null order by id limit 500 for update skip locked)
      returning id`;
    if (claimed.length === 0) break;
    const ids = claimed.map((r) => r.id);
    await sql`
      update tasks set status = 'sent', sent_at = now(), claimed_until = null, updated_at = now()
       where id = any(${ids}::uuid[]) and status = 'waiting'`;
  }
  for (;;) {
    const reported = await sql`
      update tasks set status = 'success', finished_at = now(), updated_at = now()
       where id in (select id from tasks where status = 'sent' order by id limit 1000 for update)`;
    if (reported.count === 0) break;
  }
  const ms = performance.now() - started;
  const [wal] = await sql<{ bytes: string }[]>`
    select pg_wal_lsn_diff(pg_current_wal_insert_lsn(), ${before?.lsn as string}::pg_lsn)::text as bytes`;
  return { ms, walBytes: Number(wal?.bytes) };
}

async function main(): Promise<void> {
  const tasks = option('tasks', 50_000);
  const rounds = option('rounds', 3);
  const pg = await startPrivatePostgres({
    settings: { autovacuum: 'off', fsync: 'on', synchronous_commit: 'on' },
  });
  try {
    // isolation.ts reads this when it is first imported: set it before loading it.
    process.env.TEST_POSTGRES_URL = pg.url;
    const { createTestDatabase } = await import('@task-pipeline/testkit/isolation');
    const times = new Map<string, number[]>(VARIANTS.map((v) => [v.name, []]));
    const wal = new Map<string, number[]>(VARIANTS.map((v) => [v.name, []]));
    const loads: number[] = [loadavg()[0] as number];
    for (let round = 0; round < rounds; round += 1) {
      const order = round % 2 === 0 ? VARIANTS : [...VARIANTS].reverse();
      for (const variant of order) {
        const db = await createTestDatabase('write_path_cost');
        try {
          await migrate(db.url, pino({ level: 'silent' }));
          const sql = postgres(db.url, { max: 1, onnotice: () => undefined });
          try {
            for (const piece of variant.without) await sql.unsafe(PIECES[piece]);
            for (const statement of variant.add ?? []) await sql.unsafe(statement);
            const run = await drainStatements(sql, tasks);
            times.get(variant.name)?.push(run.ms);
            wal.get(variant.name)?.push(run.walBytes);
          } finally {
            await sql.end({ timeout: 1 });
          }
        } finally {
          await db.drop();
        }
      }
      loads.push(loadavg()[0] as number);
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
    const base = { ms: median(times.get('none of them') ?? []), wal: median(wal.get('none of them') ?? []) };
    console.log(
      `${tasks} tasks inserted, claimed, recorded, reported; ${rounds} rounds; load ${loads.map((l) => l.toFixed(1)).join(' → ')}`,
    );
    for (const variant of VARIANTS) {
      const ms = times.get(variant.name) ?? [];
      const bytes = median(wal.get(variant.name) ?? []);
      console.log(
        `${variant.name.padEnd(24)} WAL ${(bytes / 1e6).toFixed(1)} MB (${(((bytes - base.wal) / base.wal) * 100).toFixed(1)} % vs none), ` +
          `time median ${(median(ms) / 1000).toFixed(2)} s (${ms.map((x) => (x / 1000).toFixed(2)).join(', ')})`,
      );
    }
  } finally {
    await pg.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
