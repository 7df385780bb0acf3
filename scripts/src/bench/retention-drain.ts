// Retention's cost on the drain: two drains of the same backlog behind the same history of finished
// tasks, one with retention off (TASK_RETENTION=0) and one with it deleting that history (every
// finished row is 30 days old, past the default 7 days), in alternating order so that a change of
// the machine's load between them shows up as disagreeing pairs. Prints both rates and the rows
// retention deleted during the drain.
//   npx tsx --conditions=source scripts/src/bench/retention-drain.ts [--history=3000000] [--tasks=100000] [--pairs=1]
import { loadavg } from 'node:os';
import { TEST_POSTGRES_URL } from '@task-pipeline/testkit/isolation';
import { REPO_ROOT } from '@task-pipeline/testkit/processes';
import postgres from 'postgres';
import { machineFacts } from './machine.js';
import type { MeasureContext } from './measures/common.js';
import { oursDrain } from './measures/drain.js';
import { BENCH_TEXT } from './plan.js';
import { createProgress } from './progress.js';
import { prepareRuntime } from './runtime.js';
import type { Sandbox } from './sandbox.js';
import { formatNumber } from './stats.js';

function option(name: string, fallback: number): number {
  const arg = process.argv.find((a) => a.startsWith(`--${name}=`));
  const value = arg === undefined ? fallback : Number(arg.slice(name.length + 3));
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer`);
  return value;
}

/**
 * `rows` success tasks created and finished 30 days ago, in chunks of a million. No sent_at: the
 * drain's clock starts at the first sent_at it finds.
 */
async function seedHistory(sandbox: Sandbox, rows: number, progress: ReturnType<typeof createProgress>) {
  const bar = progress.bar(`history: seed ${formatNumber(rows)} finished`, rows);
  const chunk = 1_000_000;
  for (let start = 0; start < rows; start += chunk) {
    const n = Math.min(chunk, rows - start);
    await sandbox.sql`
      insert into tasks (id, text, priority, status, attempts, created_at, updated_at, sent_at, finished_at)
      select gen_random_uuid(), ${BENCH_TEXT} || ' #' || g, 'medium', 'success', 1,
             now() - interval '30 days' + g * interval '1 ms', now() - interval '30 days',
             null, now() - interval '30 days' + g * interval '1 ms'
        from generate_series(${start + 1}::int, ${start + n}::int) as g`;
    bar.update(start + n);
  }
  await sandbox.sql`vacuum analyze tasks`;
  bar.finish('');
}

async function main(): Promise<void> {
  const history = option('history', 3_000_000);
  const tasks = option('tasks', 100_000);
  const pairs = option('pairs', 1);
  const progress = createProgress();
  const admin = postgres(TEST_POSTGRES_URL, { max: 1, onnotice: () => undefined });
  const machine = await machineFacts(admin).finally(() => admin.end());
  const runtime = await prepareRuntime(REPO_ROOT, progress);
  const ctx: MeasureContext = { progress, failures: [], runtime, idleSampleMs: 3_000 };
  progress.log(
    `retention drain: ${formatNumber(tasks)} tasks behind ${formatNumber(history)} finished, ${pairs} pair(s), load ${machine.loadAverage.join(' ')}`,
  );
  const results: string[] = [];
  for (let pair = 0; pair < pairs; pair += 1) {
    const order = pair % 2 === 0 ? ['0', '7d'] : ['7d', '0'];
    for (const retention of order) {
      let left = history;
      const row = await oursDrain(tasks, 600_000, ctx, `drain TASK_RETENTION=${retention}`, {
        producerEnv: { TASK_RETENTION: retention },
        prepare: (sandbox) => seedHistory(sandbox, history, progress),
        after: async (sandbox) => {
          const [counted] = await sandbox.sql<{ n: string }[]>`
            select count(*)::text as n from tasks where created_at < now() - interval '7 days'`;
          left = Number(counted?.n ?? 0);
        },
      });
      results.push(
        `TASK_RETENTION=${retention}: ${formatNumber(row.rate.perSecond)}/s over ${(row.rate.elapsedMs / 1000).toFixed(1)} s, ` +
          `history rows deleted by the end: ${formatNumber(history - left)}`,
      );
    }
  }
  progress.log(
    `\n${results.join('\n')}\nload after: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
