// What the dispatcher shows to the rest of the producer (health, tests, the create route).
import type { ClaimedTask } from './dispatch-repository.js';

/**
 * Why the dispatcher is holding back right now; undefined while it claims normally. publish_failures:
 * whole batches failed to publish (nacked, unroutable, timed out), so claims wait out a backoff.
 */
export type PauseReason = 'broker_down' | 'broker_blocked' | 'in_flight' | 'database' | 'publish_failures';

export interface DispatcherStats {
  /** DISPATCHER_ENABLED: false means this replica only wakes the others. */
  enabled: boolean;
  /** The loop is running (false before start and after close). */
  running: boolean;
  paused: PauseReason | undefined;
  /** Claimed batches being published or recorded by this replica. */
  batchesInFlight: number;
  /** Last cached count of `sent` tasks (all replicas), as used for back-pressure. */
  sentCount: number | undefined;
  /** Tasks the other dispatchers had claimed and not recorded at that count (back-pressure too). */
  claimedElsewhere: number;
  /** Tasks this replica published and had confirmed by the broker since start. */
  dispatched: number;
}

/** One claim of a task: a report names it, and the dispatcher keeps its unrecorded confirms by it. */
export type TaskAttempt = Pick<ClaimedTask, 'id' | 'attempt'>;

/** The stats of a replica whose dispatcher is disabled (DISPATCHER_ENABLED=false). */
export const DISABLED_DISPATCHER_STATS: Readonly<DispatcherStats> = {
  enabled: false,
  running: false,
  paused: undefined,
  batchesInFlight: 0,
  sentCount: undefined,
  claimedElsewhere: 0,
  dispatched: 0,
};

/**
 * A claim taken by the insert that creates the tasks (see Dispatcher.claimOnInsert): the insert sets
 * the lease and the first attempt; the dispatcher publishes what it inserted, or forgets the claim
 * when the insert failed.
 */
export interface InsertClaim {
  leaseSeconds: number;
  claimed(tasks: ClaimedTask[]): void;
  abandoned(): void;
}

export interface DispatcherHandle {
  /**
   * Called after a task-creating transaction committed: wakes this replica's loop now and, rate-limited,
   * the other replicas through NOTIFY. Works (and only notifies) when the dispatcher is disabled.
   */
  taskCreated(): void;
  /** See Dispatcher.claimOnInsert: undefined when this replica does not dispatch or is busy. */
  claimOnInsert(count: number): InsertClaim | undefined;
  /**
   * Reports to write: when this replica's dispatcher had the confirm of each of these attempts that
   * it has not recorded yet, by task id.
   */
  confirmedAt(attempts: readonly TaskAttempt[]): ReadonlyMap<string, Date>;
  /** Reports written: these attempts, if still waiting for a record here, need none. */
  reported(attempts: readonly TaskAttempt[]): void;
  stats(): DispatcherStats;
}
