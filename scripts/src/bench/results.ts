// The shape of one benchmark run's results: what the measures return, what the report and the plots
// read, and what docs/bench/results.json keeps.

import type { Peer } from './baselines/peer-settings.js';
import type { MachineFacts } from './machine.js';
import type { Profile } from './plan.js';
import type { ProcessUsage } from './resources.js';

export interface Rate {
  /** Items counted in the window. */
  count: number;
  elapsedMs: number;
  perSecond: number;
  /** Tasks seen more than once by the sink (should be 0). */
  duplicates?: number;
}

/** CPU and memory of every process a rate counted, sampled from when the counting began. */
export interface Measured {
  resources: ProcessUsage[];
  /** Items finished while the CPU was sampled: what the CPU per item divides by. */
  cpuItems: number;
}

export interface MeasuredRate extends Rate, Measured {}

/** A side is missing when that part failed (see `failures`). */
export interface DispatchRow {
  backlog: number;
  naive: MeasuredRate | undefined;
  ours: MeasuredRate | undefined;
}

/** Measure 1's ceiling: confirmed publishes to the same quorum queue with nothing else to do. */
export interface RawBrokerResult {
  /** Unconfirmed messages the publisher keeps in flight at most. */
  window: number;
  /** Body size of each message, bytes (a work message of the seeded task text). */
  messageBytes: number;
  rate: MeasuredRate;
}

export type DrainSystem = 'task-pipeline' | Peer;

export interface DrainRow extends Measured {
  system: DrainSystem;
  /** The peer library's version (npm); ours has none. */
  version?: string;
  tasks: number;
  /** Whether every task finished before the timeout. */
  completed: boolean;
  rate: Rate;
  settings: string;
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

/** CPU counted from the first measured create until all succeeded; cpuItems: the tasks created. */
export interface LatencyResult extends Measured {
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
  dispatch: MeasuredRate | undefined;
  drain: Rate | undefined;
  /** The items every backlog's rates past the warm-up leave out (stats.ts, rateAfterWarmUp). */
  warmUp: number;
  /** The same windows from the warm-up on, timed by the tasks' sent_at and finished_at. */
  dispatchPastWarmUp: Rate | undefined;
  drainPastWarmUp: Rate | undefined;
  /**
   * Runs of this backlog (plan.scale.smallRuns for the smallest, 1 otherwise): the row is the median
   * run of each part, and these are every run's rates past the warm-up (tasks/s, in run order).
   */
  runs: number;
  dispatchRunsPastWarmUp: (number | undefined)[];
  drainRunsPastWarmUp: (number | undefined)[];
  explain: string | undefined;
}

/** Measure 7: the same backlog drained through one private node and through a private 3-node cluster. */
export interface ClusterResult {
  /** The broker's version, as the nodes report it. */
  broker: string;
  single: DrainRow | undefined;
  cluster: DrainRow | undefined;
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
  /** The node every measured process ran on, and where it came from. */
  runtime: { node: string; source: string };
  dispatch?: DispatchRow[];
  rawBroker?: RawBrokerResult;
  drain?: DrainRow[];
  api?: ApiRow[];
  latency?: LatencyResult;
  scale?: ScaleRow[];
  cluster?: ClusterResult;
  failures: MeasureFailure[];
}
