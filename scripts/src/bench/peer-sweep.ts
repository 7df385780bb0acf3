// Finds a peer's best settings on this machine: drains the same backlog with each variant below, in
// rounds (every other round in reverse order, so a change in the machine's load falls on all of them),
// and prints jobs/s and CPU per job. The winners are peer-settings.ts's defaults, with the sweep
// written there.
//   npx tsx --conditions=source scripts/src/bench/peer-sweep.ts pg-boss [--jobs=50000] [--rounds=2]
import { loadavg } from 'node:os';
import { REPO_ROOT } from '@task-pipeline/testkit/processes';
import {
  GRAPHILE_SETTINGS,
  type GraphileSettings,
  PEERS,
  type Peer,
  PG_BOSS_SETTINGS,
  type PgBossSettings,
} from './baselines/peer-settings.js';
import { accountOf } from './cpu.js';
import type { MeasureContext } from './measures/common.js';
import { peerDrain } from './measures/drain.js';
import { createProgress } from './progress.js';
import { prepareRuntime } from './runtime.js';
import { formatNumber } from './stats.js';

const PG_BOSS_VARIANTS: PgBossSettings[] = [
  { ...PG_BOSS_SETTINGS, batchSize: 100, localConcurrency: 4 },
  { ...PG_BOSS_SETTINGS, batchSize: 500, localConcurrency: 1 },
  { ...PG_BOSS_SETTINGS, batchSize: 500, localConcurrency: 2 },
  { ...PG_BOSS_SETTINGS, batchSize: 500, localConcurrency: 4 },
  { ...PG_BOSS_SETTINGS, batchSize: 500, localConcurrency: 8, max: 12 },
  { ...PG_BOSS_SETTINGS, batchSize: 1_000, localConcurrency: 4 },
  { ...PG_BOSS_SETTINGS, batchSize: 500, localConcurrency: 4, orderByCreatedOn: true },
];

const GRAPHILE_VARIANTS: GraphileSettings[] = [
  { ...GRAPHILE_SETTINGS, concurrentJobs: 8, maxPoolSize: 10 },
  { ...GRAPHILE_SETTINGS, concurrentJobs: 24, maxPoolSize: 25 },
  { ...GRAPHILE_SETTINGS, concurrentJobs: 24, maxPoolSize: 25, localQueueSize: 100 },
  { ...GRAPHILE_SETTINGS, concurrentJobs: 24, maxPoolSize: 25, localQueueSize: 1_000 },
  { ...GRAPHILE_SETTINGS, concurrentJobs: 48, maxPoolSize: 50 },
  { ...GRAPHILE_SETTINGS, concurrentJobs: 24, maxPoolSize: 25, completeJobBatchDelay: 250 },
];

function option(argv: readonly string[], name: string, fallback: number): number {
  const arg = argv.find((a) => a.startsWith(`--${name}=`));
  const value = arg ? Number(arg.slice(name.length + 3)) : fallback;
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} takes a positive integer`);
  return value;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const peer = argv.find((a) => !a.startsWith('--')) as Peer | undefined;
  if (!peer || !(PEERS as readonly string[]).includes(peer)) {
    throw new Error(`usage: peer-sweep.ts ${PEERS.join(' | ')} [--jobs=N] [--rounds=N]`);
  }
  const jobs = option(argv, 'jobs', 50_000);
  const rounds = option(argv, 'rounds', 2);
  const progress = createProgress();
  const ctx: MeasureContext = {
    progress,
    failures: [],
    runtime: await prepareRuntime(REPO_ROOT, progress),
    idleSampleMs: 2_000,
  };
  const variants: readonly (PgBossSettings | GraphileSettings)[] =
    peer === 'pg-boss' ? PG_BOSS_VARIANTS : GRAPHILE_VARIANTS;
  const lines: string[] = [];
  for (let round = 1; round <= rounds; round++) {
    const order = round % 2 === 1 ? variants : [...variants].reverse();
    for (const settings of order) {
      const load = loadavg()[0]?.toFixed(1);
      const row = await peerDrain(peer, jobs, 300_000, ctx, settings);
      const cpu = accountOf(row);
      lines.push(
        `round ${round}, load ${load}: ${formatNumber(row.rate.perSecond)} jobs/s, ${formatNumber(cpu?.totalMicrosPerItem)} µs/job${row.completed ? '' : ' (timed out)'}  ${row.settings}`,
      );
      progress.log(lines[lines.length - 1] ?? '');
    }
  }
  console.log(
    `\n${peer}, ${formatNumber(jobs)} jobs, node ${ctx.runtime.node.version}:\n${lines.join('\n')}`,
  );
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
