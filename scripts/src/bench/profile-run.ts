// A benchmark run on a private PostgreSQL cluster with pg_stat_statements loaded (the shared server
// cannot load it without a restart, which nothing here may do), then the statements that took the
// most time. Same arguments as `npm run bench`; results go to a temp folder, not the repository.
//   npx tsx --conditions=source scripts/src/bench/profile-run.ts --quick --only=drain
// With BENCH_CPU_PROF=DIR, our services also write CPU profiles (see profile-summary.ts).
// `--pg-setting=NAME=VALUE` (repeatable) sets a server setting of the private cluster, e.g.
// `--pg-setting=shared_buffers=1GB --full --only=scale` to see the backlog measure on a server sized
// for its table. `--slow-plans=MS` loads auto_explain and prints, for each statement that ever ran
// longer than MS, how often it did and the plan of its slowest run: a cached plan gone bad shows there
// (BENCHMARKS.md, issue 16, the fifth session).
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPrivatePostgres } from '@task-pipeline/testkit/private-postgres';
import postgres from 'postgres';
import { slowPlans } from './slow-plans.js';

const TOP = 15;

const PG_SETTING = '--pg-setting=';
const SLOW_PLANS = '--slow-plans=';
const PLAN_LINES = 40;

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const extraSettings = Object.fromEntries(
    args
      .filter((a) => a.startsWith(PG_SETTING))
      .map((a) => {
        const [name, ...value] = a.slice(PG_SETTING.length).split('=');
        if (!name || value.length === 0) throw new Error(`${a}: expected ${PG_SETTING}NAME=VALUE`);
        return [name, value.join('=')];
      }),
  );
  const slowMs = args.find((a) => a.startsWith(SLOW_PLANS))?.slice(SLOW_PLANS.length);
  if (slowMs !== undefined && !/^\d+$/.test(slowMs))
    throw new Error(`${SLOW_PLANS}${slowMs}: expected milliseconds`);
  const explainSettings: Record<string, string> =
    slowMs === undefined
      ? {}
      : {
          session_preload_libraries: 'auto_explain',
          'auto_explain.log_min_duration': slowMs,
          'auto_explain.log_analyze': 'on',
          'auto_explain.log_buffers': 'on',
        };
  const pg = await startPrivatePostgres({
    settings: {
      ...extraSettings,
      ...explainSettings,
      shared_preload_libraries: 'pg_stat_statements',
      'pg_stat_statements.track': 'all',
      // The shared server's durability, so commit costs are the real ones.
      fsync: 'on',
      synchronous_commit: 'on',
    },
  });
  try {
    // isolation.ts reads this when it is first imported: set it before loading the benchmark.
    process.env.TEST_POSTGRES_URL = pg.url;
    const admin = postgres(pg.url, { max: 1, onnotice: () => undefined });
    await admin`create extension if not exists pg_stat_statements`;
    const [{ parseArgs }, { createProgress }, { runBench }] = await Promise.all([
      import('./plan.js'),
      import('./progress.js'),
      import('./run.js'),
    ]);
    const outDir = await mkdtemp(join(tmpdir(), 'bench-profile-'));
    const { plan } = parseArgs(args.filter((a) => !a.startsWith(PG_SETTING) && !a.startsWith(SLOW_PLANS)));
    await runBench(plan, { outDir, progress: createProgress(), command: 'profile-run' });
    const rows = await admin<
      {
        calls: string;
        total_ms: number;
        mean_ms: number;
        rows: string;
        wal_records: string;
        wal_bytes: string;
        query: string;
      }[]
    >`
      select calls::text, total_exec_time as total_ms, mean_exec_time as mean_ms, rows::text,
             wal_records::text, wal_bytes::text, regexp_replace(query, '\\s+', ' ', 'g') as query
      from pg_stat_statements
      where query not ilike '%pg_stat_statements%'
      order by total_exec_time desc
      limit ${TOP}`;
    console.log(`\nreport in ${outDir}/BENCHMARKS.md\ntop ${TOP} statements by total execution time:`);
    for (const r of rows) {
      console.log(
        `${r.total_ms.toFixed(0).padStart(8)} ms total ${r.calls.padStart(8)} calls ${r.mean_ms.toFixed(2).padStart(8)} ms mean ${r.rows.padStart(8)} rows ${r.wal_records.padStart(9)} WAL records ${r.wal_bytes.padStart(11)} WAL bytes  ${r.query.slice(0, 160)}`,
      );
    }
    const [wal] = await admin<{ wal_records: string; wal_sync: string; wal_write: string }[]>`
      select wal_records::text, wal_sync::text, wal_write::text from pg_stat_wal`;
    console.log(`WAL: ${wal?.wal_records} records, ${wal?.wal_write} writes, ${wal?.wal_sync} syncs`);
    if (slowMs !== undefined) {
      const slow = slowPlans(await readFile(join(pg.dir, 'postgres.log'), 'utf8'));
      console.log(`\nstatements that ran longer than ${slowMs} ms: ${slow.length}`);
      for (const s of slow) {
        console.log(
          `\n${s.runs} run${s.runs === 1 ? '' : 's'}, the slowest ${s.slowestMs.toFixed(1)} ms: ${s.query.slice(0, 160)}`,
        );
        console.log(s.plan.split('\n').slice(0, PLAN_LINES).join('\n'));
      }
    }
    await admin.end();
  } finally {
    await pg.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
