// The shape of one benchmark run's results: what the measures return, what the report and the plots
// read, and what docs/bench/results.json keeps.
import type { MachineFacts } from './machine.js';
import type { Profile } from './plan.js';
import type { ProcessUsage } from './resources.js';

export interface Rate {
  /** Items counted in the window. */
  count: number;
  elapsedMs: number;
  perSecond: number;
  /** Messages seen more than once by the sink (should be 0). */
  duplicates?: number;
}

/** A side is missing when that part failed (see `failures`). */
export interface DispatchRow {
  backlog: number;
  naive: Rate | undefined;
  ours: Rate | undefined;
}

export type DrainSystem = 'task-pipeline' | 'pg-boss' | 'graphile-worker';

export interface DrainRow {
  system: DrainSystem;
  tasks: number;
  /** Whether every task finished before the timeout. */
  completed: boolean;
  rate: Rate;
  settings: string;
  resources: ProcessUsage[];
}

export interface HttpStats {
  requests: number;
  reqPerSec: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  non2xx: number;
}

export interface ApiRow {
  route: 'create-task' | 'update-task-status';
  ours: HttpStats | undefined;
  naive: HttpStats | undefined;
  /** The naive app with concurrent requests coalesced into one statement: the proposed fix, measured. */
  prototype: HttpStats | undefined;
}

export interface Quantiles {
  p50Ms: number;
  p99Ms: number;
}

export interface LatencyResult {
  targetPerSec: number;
  /** The uncounted warm-up at the same rate before the measured creates. */
  warmUpMs: number;
  created: number;
  achievedPerSec: number;
  /** Tasks that reached success before the settle timeout. */
  succeeded: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
  /** The create request itself, as the client saw it. */
  createP50Ms: number;
  createP99Ms: number;
  /** Where the time goes: created → sent (claim, publish, confirm, record) and sent → success. */
  stages: { createdToSent: Quantiles; sentToSuccess: Quantiles } | undefined;
  resources: ProcessUsage[];
}

export interface ScaleRow {
  backlog: number;
  dispatch: Rate | undefined;
  drain: Rate | undefined;
  explain: string | undefined;
}

export interface MeasureFailure {
  measure: string;
  error: string;
}

export interface BenchResults {
  profile: Profile;
  command: string;
  startedAt: string;
  durationS: number;
  serviceLogLevel: string;
  machine: MachineFacts;
  dispatch?: DispatchRow[];
  drain?: DrainRow[];
  api?: ApiRow[];
  latency?: LatencyResult;
  scale?: ScaleRow[];
  failures: MeasureFailure[];
}
