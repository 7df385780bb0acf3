// What a benchmark run measures and at which sizes: pure, so the CLI, the smoke test and the report
// agree on one plan. Sizes are the issue's; `quick` keeps every measure but shrinks windows and
// backlogs so the whole run takes under two minutes.

/** The text every seeded task and peer job carries: the size of a short real task. */
export const BENCH_TEXT = 'benchmark task: resize the image at /uploads/2024/05/photo.jpg to 640x480';

export const MEASURES = ['dispatch', 'drain', 'api', 'latency', 'scale', 'cluster'] as const;
export type MeasureName = (typeof MEASURES)[number];
/**
 * What a run measures unless `--only` says otherwise. The cluster measure starts four private
 * RabbitMQ nodes (about a minute on this machine before anything is measured): `--full` and
 * `--only=cluster` only.
 */
export const DEFAULT_MEASURES: readonly MeasureName[] = MEASURES.filter((m) => m !== 'cluster');

export const PROFILES = ['smoke', 'quick', 'default', 'full'] as const;
export type Profile = (typeof PROFILES)[number];

export interface BenchPlan {
  profile: Profile;
  measures: readonly MeasureName[];
  /**
   * Measure 1: the real dispatcher vs the naive loop, each a rate over a fixed window, and the raw
   * confirmed-publish ceiling of the broker with `rawWindow` unconfirmed messages in flight.
   */
  dispatch: { backlogs: readonly number[]; windowMs: number; rawWindow: number };
  /** Measure 2: end-to-end drain of a pre-filled backlog, ours and the peers. */
  drain: { tasks: number; timeoutMs: number; peers?: boolean };
  /** Measure 3: autocannon against our routes and the naive ones. */
  api: { connections: number; durationS: number; sentRows: number };
  /** Measure 4: open-loop creates at a fixed rate, create → success latency. */
  latency: { ratePerS: number; warmUpMs: number; durationMs: number; settleTimeoutMs: number };
  /**
   * Measure 6: dispatch and drain at small and (with --full) large backlogs. `smallRuns`: how many
   * times the smallest backlog is measured when a larger one is compared with it (its median run
   * counts): it is through in about a second, so one run's noise would decide the comparison.
   */
  scale: { backlogs: readonly number[]; windowMs: number; smallRuns: number };
  /** Measure 7: the same drain on a private single node and on a private 3-node cluster. */
  cluster: { tasks: number; timeoutMs: number };
  /** How long the shared servers are sampled idle before each run whose CPU is counted. */
  idleSampleMs: number;
}

/**
 * Unconfirmed messages the raw publisher keeps in flight. Swept on 200,000 messages over 5 s windows,
 * two rounds in alternating order at load 10–13 (msg/s): 100: 4,806 / 5,485; 500: 5,735 / 5,400;
 * 1,000: 4,716 / 5,160; 2,000: 4,121 / 5,040; 5,000: 6,193 / 4,213. Flat beyond the noise from 100
 * up; 1,000 sits between the dispatcher's one batch (500) and its four in flight (2,000).
 */
export const RAW_WINDOW = 1_000;

const DEFAULT_PLAN: BenchPlan = {
  profile: 'default',
  measures: MEASURES,
  dispatch: { backlogs: [50_000, 200_000], windowMs: 10_000, rawWindow: RAW_WINDOW },
  drain: { tasks: 100_000, timeoutMs: 300_000 },
  api: { connections: 64, durationS: 10, sentRows: 200_000 },
  latency: { ratePerS: 1_000, warmUpMs: 5_000, durationMs: 30_000, settleTimeoutMs: 60_000 },
  scale: { backlogs: [10_000], windowMs: 15_000, smallRuns: 1 },
  cluster: { tasks: 100_000, timeoutMs: 300_000 },
  idleSampleMs: 3_000,
};

export function planFor(profile: Profile, measures?: readonly MeasureName[]): BenchPlan {
  const base = {
    ...DEFAULT_PLAN,
    profile,
    measures: measures ?? (profile === 'full' ? MEASURES : DEFAULT_MEASURES),
  };
  switch (profile) {
    case 'default':
      return base;
    case 'full':
      return { ...base, scale: { backlogs: [10_000, 1_000_000], windowMs: 20_000, smallRuns: 3 } };
    case 'quick':
      return {
        ...base,
        dispatch: { backlogs: [50_000, 200_000], windowMs: 3_000, rawWindow: RAW_WINDOW },
        drain: { tasks: 10_000, timeoutMs: 120_000 },
        api: { connections: 64, durationS: 2, sentRows: 40_000 },
        latency: { ratePerS: 1_000, warmUpMs: 2_000, durationMs: 5_000, settleTimeoutMs: 30_000 },
        scale: { backlogs: [10_000], windowMs: 5_000, smallRuns: 1 },
        cluster: { tasks: 10_000, timeoutMs: 120_000 },
        idleSampleMs: 1_000,
      };
    case 'smoke':
      // Exercises every code path on N=200: numbers mean nothing here, only that nothing rotted. The
      // windows only bound a part that hangs: each ends when its 200 items are through, however
      // slow a loaded machine makes that, so the smoke test can count all of them.
      return {
        ...base,
        dispatch: { backlogs: [200], windowMs: 60_000, rawWindow: RAW_WINDOW },
        drain: { tasks: 200, timeoutMs: 60_000 },
        api: { connections: 4, durationS: 1, sentRows: 200 },
        latency: { ratePerS: 100, warmUpMs: 500, durationMs: 1_000, settleTimeoutMs: 30_000 },
        scale: { backlogs: [200], windowMs: 60_000, smallRuns: 1 },
        cluster: { tasks: 200, timeoutMs: 60_000 },
        idleSampleMs: 300,
      };
  }
}

export interface CliOptions {
  plan: BenchPlan;
  /** Where BENCHMARKS.md goes; plots and raw results go to `<outDir>/docs/bench/`. */
  outDir: string | undefined;
}

export class UsageError extends Error {
  readonly code = 'BENCH_USAGE';
}

export const USAGE = `usage: npm run bench -- [--quick | --full] [--only=dispatch,drain,api,latency,scale,cluster] [--out=DIR]
  (default)  every measure but cluster at the issue's sizes, about 6-11 minutes
  --quick    the same, smaller windows and backlogs, about 2-3 minutes (7 at load average 10)
  --full     the default plus the 1M-row scale run and the cluster measure (a 3-node private
             RabbitMQ cluster against a single private node: about 4 minutes more)
  --only     a comma-separated subset of the measures
  --out      write BENCHMARKS.md and docs/bench/ under DIR instead of the repository root
  --no-peers the drain without pg-boss and graphile-worker: for before/after runs of our own
             changes (the report then has no peer ratios)`;

export function parseArgs(argv: readonly string[]): CliOptions {
  let profile: Profile = 'default';
  let measures: readonly MeasureName[] | undefined;
  let outDir: string | undefined;
  let peers = true;
  for (const arg of argv) {
    if (arg === '--quick' || arg === '--full') {
      if (profile !== 'default') throw new UsageError('--quick and --full exclude each other');
      profile = arg === '--quick' ? 'quick' : 'full';
    } else if (arg.startsWith('--only=')) {
      const names = arg.slice('--only='.length).split(',').filter(Boolean);
      const unknown = names.filter((n) => !(MEASURES as readonly string[]).includes(n));
      if (unknown.length > 0 || names.length === 0) {
        throw new UsageError(`--only takes ${MEASURES.join(', ')}; got ${unknown.join(', ') || 'nothing'}`);
      }
      measures = MEASURES.filter((m) => names.includes(m));
    } else if (arg === '--no-peers') {
      peers = false;
    } else if (arg.startsWith('--out=')) {
      outDir = arg.slice('--out='.length);
      if (!outDir) throw new UsageError('--out needs a directory');
    } else {
      throw new UsageError(`unknown argument ${arg}`);
    }
  }
  const plan = planFor(profile, measures);
  return { plan: peers ? plan : { ...plan, drain: { ...plan.drain, peers } }, outDir };
}

/**
 * Our producer at its best documented settings, as every peer runs at its own: 20 tasks a work
 * message (README, `DISPATCH_TASKS_PER_MESSAGE`), which the default of 1 trades for strict priorities
 * and upgrade safety.
 */
export const OUR_BEST_SETTINGS: Readonly<Record<string, string>> = { DISPATCH_TASKS_PER_MESSAGE: '20' };

/** `NAME=value` pairs as the report prints them. */
export function settingsText(settings: Readonly<Record<string, string>>): string {
  return Object.entries(settings)
    .map(([name, value]) => `${name}=${value}`)
    .join(' ');
}
