// The dispatch loop (PROTOCOL §6): claim → publish with confirms → record, in batches. Claims run one
// at a time (so priority order holds across batches) while up to `pipelineDepth` batches' worth of
// claimed tasks wait for their confirms: waiting for quorum confirms is most of a batch's time, and
// overlapping it is what makes the loop fast. Confirmed tasks then wait out the record delay outside
// that window. Everything it calls is injected, so it runs in tests without Fastify.
import { randomUUID } from 'node:crypto';
import { backoffMs } from '@task-pipeline/common';
import {
  type ConfirmedPublisher,
  confirmedPublisher,
  type ManagedChannel,
  PRIORITIES,
  type Priority,
  PublishError,
} from '@task-pipeline/rabbitmq';
import type { ConfirmChannel } from 'amqplib';
import type { ProducerConfig } from '../config.js';
import type { ProducerMetrics } from '../metrics.js';
import { DATABASE_BACKOFF, PUBLISH_FAILURE_BACKOFF } from './backoff.js';
import { nextStartIds, randomStartIds } from './claim-query.js';
import type { ClaimedTask, DispatchRepository, TaskRef } from './dispatch-repository.js';
import { claimShare } from './in-flight.js';
import type { DispatcherStats, InsertClaim, PauseReason, TaskAttempt } from './types.js';
import { createWakeSignal } from './wakeup.js';
import { buildWorkMessages, type OutgoingMessage } from './work-message.js';

export type DispatchConfig = ProducerConfig['dispatch'];

export type DispatcherMetrics = Pick<
  ProducerMetrics,
  'tasksDispatched' | 'publishFailures' | 'dispatchBatchSize' | 'dispatchBatchDuration' | 'dispatcherPaused'
>;

export interface DispatchLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** Broker events after which the dispatcher looks again at once instead of at its next poll. */
const BROKER_CHANGES = ['connected', 'unblocked', 'channel-open'] as const;
type BrokerChange = (typeof BROKER_CHANGES)[number];

/** What the dispatcher needs of the broker connection (a Broker): its state and when it changes. */
export interface DispatchBroker {
  readonly connected: boolean;
  readonly blocked: boolean;
  on(event: BrokerChange, listener: () => void): unknown;
  off(event: BrokerChange, listener: () => void): unknown;
}

/**
 * Where the dispatcher publishes: the confirmed publisher of its live channel, or undefined while the
 * channel is (re)opening. A reopened channel has another publisher, which is how a batch notices that
 * its channel changed under it.
 */
export interface DispatchPublisher {
  current(): ConfirmedPublisher | undefined;
}

/** The DispatchPublisher of a managed confirm channel (one confirmed publisher per live channel). */
export function channelPublisher(
  channel: ManagedChannel<ConfirmChannel>,
  confirmTimeoutMs: number,
): DispatchPublisher {
  return {
    current() {
      const live = channel.current();
      return live && confirmedPublisher(live, confirmTimeoutMs);
    },
  };
}

/** The statements the loop runs (dispatch-repository.ts). */
export type DispatchStatements = Pick<
  DispatchRepository,
  'claim' | 'recordSent' | 'release' | 'countInFlight' | 'reserveClaims' | 'forgetClaims'
>;

function toRef({ id, priority, attempt }: ClaimedTask): TaskRef {
  return { id, priority, attempt };
}

/**
 * A confirmed task's key while it waits for its record: the attempt too, since a task can be in two
 * of this dispatcher's batches at once (an operator redrove it, or its lease ran out while a record
 * kept failing, and it was claimed again), and each batch records, or is spared, only its own claim.
 */
function attemptKey({ id, attempt }: TaskAttempt): string {
  return `${id}/${attempt}`;
}

export interface FailedPublish {
  task: TaskRef;
  reason: string;
}

/** What a batch's publishing leaves to settle. */
interface Published {
  confirmed: TaskRef[];
  failed: FailedPublish[];
  unpublished: TaskRef[];
}

export interface BatchResult {
  /** How many tasks the batch claimed. */
  claimed: number;
  /** Confirmed and recorded as sent by this batch. */
  sent: readonly string[];
  /** Confirmed, but a report or a newer claim got there first (or the row stayed locked). */
  notRecorded: readonly string[];
  failed: readonly FailedPublish[];
  /** Claimed but never handed to the broker (channel lost, blocked, stopping, lease running out). */
  unpublished: readonly TaskRef[];
}

/** Test seams at the crash points of PROTOCOL §6; a hook that never resolves freezes its batch there. */
export interface DispatcherHooks {
  afterClaim?(tasks: readonly ClaimedTask[]): void | Promise<void>;
  /** Before the `index`th work message of a batch, carrying `tasks`, is published. */
  beforePublish?(tasks: readonly ClaimedTask[], index: number): void | Promise<void>;
  beforeRecord?(confirmed: readonly TaskRef[], failed: readonly FailedPublish[]): void | Promise<void>;
  afterBatch?(result: BatchResult): void;
}

export interface DispatcherOptions {
  config: DispatchConfig;
  repository: DispatchStatements;
  broker: DispatchBroker;
  publisher: DispatchPublisher;
  metrics: DispatcherMetrics;
  logger: DispatchLogger;
  hooks?: DispatcherHooks;
  /**
   * Full batches in flight at once (publishing, awaiting confirms): the tasks claimed and not yet
   * confirmed stay within pipelineDepth × DISPATCH_BATCH_SIZE, which bounds the unconfirmed publish
   * window. The loop claims while a whole batch still fits; an insert's claim (a few tasks,
   * when idle) while its tasks fit.
   */
  pipelineDepth?: number;
  random?: () => number;
  randomId?: () => string;
}

export const DEFAULT_PIPELINE_DEPTH = 4;
const PRIORITY_RANK = Object.fromEntries(PRIORITIES.map((p, i) => [p, i])) as Record<Priority, number>;

/** How long a count of the in-flight figure (and the share it gave) is trusted. */
const SENT_COUNT_TTL_MS = 1_000;
/** While held back by the in-flight cap, how often to recount `sent`. */
const IN_FLIGHT_RECHECK_MS = 250;
/** Record retries for rows a concurrent report holds locked for a moment. */
const RECORD_LOCKED_RETRIES = 6;
const RECORD_LOCKED_BACKOFF = { initialMs: 10, maxMs: 250 };

const sleep = (ms: number) =>
  new Promise<void>((resolve) => {
    setTimeout(resolve, ms).unref();
  });

export class Dispatcher {
  readonly #o: Required<Omit<DispatcherOptions, 'hooks'>> & { hooks: DispatcherHooks };
  readonly #signal = createWakeSignal();
  readonly #batches = new Set<Promise<boolean>>();
  #abort = new AbortController();
  #loop: Promise<void> | undefined;
  #stopping = false;
  #paused: PauseReason | undefined;
  /** This dispatcher's row in dispatcher_claims. */
  readonly #id = randomUUID();
  /** Cached count of `sent` tasks (all replicas) and when it was read; adjusted by our own records. */
  #sentCount: number | undefined;
  #sentCountAt = Number.NEGATIVE_INFINITY;
  /** What the other dispatchers had claimed or reserved and not recorded, at that count. */
  #claimedElsewhere = 0;
  /** What this dispatcher may still claim before it counts again (in-flight.ts). */
  #share = 0;
  /** Tasks this replica claimed (or an insert is claiming) and has not recorded or released yet. */
  #unrecorded = 0;
  /**
   * Confirmed tasks waiting out DISPATCH_RECORD_DELAY_MS before their record, and when their confirm
   * came (the sent_at a report of them writes), by attemptKey. Part of #unrecorded, but no longer of
   * the publish window: their messages are in the queue.
   */
  readonly #awaitingRecord = new Map<string, Date>();
  /** Ends each record delay now (stop() cuts them short). */
  readonly #recordDelays = new Set<() => void>();
  /** The last claim took a full batch: more may be waiting, so creates queue up behind it. */
  #backlog = true;
  /** The loop is waiting for claimed tasks to be confirmed (the window is full), not for work. */
  #windowFull = false;
  #publishFailureStreak = 0;
  #databaseFailureStreak = 0;
  /** Where each priority's next claim starts (random order): random at first, then continuing. */
  #startIds: Record<Priority, string>;
  /** No claims before this time (performance.now()): backoff after failures. */
  #holdUntil = 0;
  #dispatched = 0;

  constructor(options: DispatcherOptions) {
    this.#o = {
      ...options,
      pipelineDepth: options.pipelineDepth ?? DEFAULT_PIPELINE_DEPTH,
      random: options.random ?? Math.random,
      randomId: options.randomId ?? randomUUID,
      hooks: options.hooks ?? {},
    };
    this.#startIds = randomStartIds(this.#o.randomId);
  }

  stats(): DispatcherStats {
    return {
      enabled: true,
      running: this.#loop !== undefined && !this.#stopping,
      paused: this.#paused,
      batchesInFlight: this.#batches.size,
      sentCount: this.#sentCount,
      claimedElsewhere: this.#claimedElsewhere,
      dispatched: this.#dispatched,
    };
  }

  /** New work may be waiting (a create here or on another replica, a broker that came back). */
  wake(): void {
    this.#signal.wake();
  }

  /** When the confirm of each of these attempts came, for those still waiting for their record. */
  confirmedAt(attempts: readonly TaskAttempt[]): ReadonlyMap<string, Date> {
    const found = new Map<string, Date>();
    if (this.#awaitingRecord.size === 0) return found;
    for (const task of attempts) {
      const at = this.#awaitingRecord.get(attemptKey(task));
      if (at) found.set(task.id, at);
    }
    return found;
  }

  /**
   * Reports of these tasks were applied (the rows took their final status, with the confirm's time as
   * sent_at): those still waiting for their record need none. Skipping it changes nothing the record
   * would have: its fence (still waiting, same attempt) no longer holds for a reported row.
   */
  reported(attempts: readonly TaskAttempt[]): void {
    if (this.#awaitingRecord.size === 0) return;
    for (const task of attempts) {
      // Finished: nothing left to record, and no longer in flight, so it stops counting against
      // DISPATCH_MAX_IN_FLIGHT now, not when its batch's delay ends (that would hold claims back).
      if (this.#awaitingRecord.delete(attemptKey(task))) this.#unrecorded -= 1;
    }
  }

  start(): void {
    if (this.#loop) return;
    this.#stopping = false;
    this.#abort = new AbortController();
    for (const event of BROKER_CHANGES) this.#o.broker.on(event, this.#onBroker);
    this.#loop = this.#run();
  }

  /**
   * Stops claiming, lets batches in flight finish (their confirms are bounded by the confirm timeout;
   * tasks not yet handed to the broker are released at once for any replica to take) and waits up to
   * `timeoutMs` for them. A batch still unfinished after that keeps its leases, which expire.
   */
  async stop(timeoutMs: number): Promise<void> {
    if (!this.#loop) return;
    this.#stopping = true;
    this.#abort.abort();
    for (const cut of [...this.#recordDelays]) cut();
    this.#signal.wake();
    for (const event of BROKER_CHANGES) this.#o.broker.off(event, this.#onBroker);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    // The loop may be waiting for a claim or a count that only its statement deadline ends, later than
    // a shutdown may take: the same time limit covers it.
    const loopOutcome = await Promise.race([this.#loop, deadline]);
    const outcome =
      loopOutcome === 'timeout'
        ? loopOutcome
        : await Promise.race([Promise.allSettled([...this.#batches]), deadline]);
    if (outcome === 'timeout') {
      this.#o.logger.warn(
        { batches: this.#batches.size, claiming: loopOutcome === 'timeout' },
        'dispatcher stopped with batches unfinished; their leases will expire',
      );
    } else {
      // Nothing claimed is left: out of the shared figure now rather than when the row expires.
      // Unfinished claims keep the row until then, as they keep their leases.
      const forgotten = this.#o.repository.forgetClaims(this.#id).catch((err: unknown) => {
        this.#o.logger.debug({ err }, 'could not remove the claims row; it expires by itself');
      });
      await Promise.race([forgotten, deadline]);
    }
    clearTimeout(timer);
    this.#loop = undefined;
    this.#setPaused(undefined);
  }

  /**
   * One claim and its batch, awaited: what the loop does once, for tests that walk the crash points
   * step by step. Returns undefined when nothing was claimable.
   */
  async dispatchOnce(): Promise<BatchResult | undefined> {
    const limit = Math.min(this.#o.config.batchSize, await this.#room());
    if (limit <= 0) return undefined;
    const claimedAt = performance.now();
    const claimed = await this.#claim(limit);
    if (claimed.length === 0) return undefined;
    return this.#process(claimed, claimedAt);
  }

  /**
   * Lets an insert of `count` fresh tasks claim them itself (lease and first attempt in the insert), so
   * they go out without the claim's round trip and its row version: only when claiming them at once is
   * what this loop would do anyway. Nothing may be waiting for it (its last claim came back short:
   * otherwise new tasks queue behind the backlog, in priority and random order), nothing holds it back,
   * and its share of the in-flight room (in-flight.ts) and the pipeline have room. Undefined:
   * insert them waiting, as usual.
   */
  claimOnInsert(count: number): InsertClaim | undefined {
    const { broker, publisher, config } = this.#o;
    const now = performance.now();
    const free =
      this.#loop !== undefined &&
      !this.#stopping &&
      !this.#backlog &&
      this.#paused === undefined &&
      this.#holdUntil <= now &&
      broker.connected &&
      !broker.blocked &&
      publisher.current() !== undefined &&
      // Counted in tasks, not batches: at a steady trickle of creates, small insert batches each
      // awaiting a confirm filled four batch slots, and a third of the tasks fell back to waiting and
      // the loop's claim (a round trip and a commit more; BENCHMARKS.md, issue 16).
      this.#unconfirmed() + count <= this.#window() &&
      // The share stays reserved in the claims row for a lease after its count: taking from it
      // meanwhile keeps the cap, even when the loop (idle, polling) has not counted again since.
      now - this.#sentCountAt <= config.leaseSeconds * 1000 &&
      count <= this.#share;
    if (!free) return undefined;
    this.#unrecorded += count;
    this.#share -= count;
    const claimedAt = performance.now();
    let settled = false;
    const settle = () => {
      if (settled) return false;
      settled = true;
      return true;
    };
    return {
      leaseSeconds: config.leaseSeconds,
      claimed: (tasks) => {
        if (!settle()) return;
        // #process gives back what it was handed; the rest of the reservation goes now.
        this.#unrecorded -= count - tasks.length;
        this.#share += count - tasks.length;
        const inClaimOrder = [...tasks].sort((a, b) => PRIORITY_RANK[a.priority] - PRIORITY_RANK[b.priority]);
        if (tasks.length > 0) this.#track(this.#process(inClaimOrder, claimedAt));
      },
      abandoned: () => {
        if (!settle()) return;
        this.#unrecorded -= count;
        this.#share += count;
      },
    };
  }

  readonly #onBroker = () => this.#signal.wake();

  /** The most tasks claimed and not yet confirmed at once (see pipelineDepth). */
  #window(): number {
    return this.#o.pipelineDepth * this.#o.config.batchSize;
  }

  /** Claimed tasks not confirmed (failed or unpublished ones until released): what the publish window holds. */
  #unconfirmed(): number {
    return this.#unrecorded - this.#awaitingRecord.size;
  }

  async #run(): Promise<void> {
    const { config, logger } = this.#o;
    logger.info(
      { order: config.order, batchSize: config.batchSize, maxInFlight: config.maxInFlight },
      'dispatcher started',
    );
    while (!this.#stopping) {
      try {
        await this.#step();
      } catch (err) {
        // Only the database can fail here (claims and counts); publish errors are per message.
        this.#databaseFailureStreak += 1;
        const delay = backoffMs(this.#databaseFailureStreak, DATABASE_BACKOFF, this.#o.random);
        this.#holdUntil = performance.now() + delay;
        this.#setPaused('database');
        logger.warn({ err, retryInMs: delay }, 'dispatcher cannot reach PostgreSQL; retrying');
      }
    }
    logger.info({ dispatched: this.#dispatched }, 'dispatcher stopped claiming');
  }

  async #step(): Promise<void> {
    const { config, broker, publisher } = this.#o;
    const wait = (ms: number) => this.#signal.wait(ms, this.#abort.signal);
    const holdFor = this.#holdUntil - performance.now();
    if (holdFor > 0) return wait(holdFor);
    if (!broker.connected || !publisher.current()) {
      this.#setPaused('broker_down');
      return wait(config.pollIntervalMs);
    }
    if (broker.blocked) {
      this.#setPaused('broker_blocked');
      return wait(config.pollIntervalMs);
    }
    this.#windowFull = this.#unconfirmed() + config.batchSize > this.#window();
    if (this.#windowFull) return wait(config.pollIntervalMs);
    const room = await this.#room();
    this.#databaseFailureStreak = 0;
    if (room <= 0) {
      this.#setPaused('in_flight');
      return wait(Math.min(IN_FLIGHT_RECHECK_MS, config.pollIntervalMs));
    }
    this.#setPaused(undefined);
    const limit = Math.min(config.batchSize, room);
    const claimedAt = performance.now();
    const claimed = await this.#claim(limit);
    if (claimed.length > 0) this.#track(this.#process(claimed, claimedAt));
    // A short batch means the backlog is drained (for this replica): sleep until woken or the poll.
    this.#backlog = claimed.length >= limit;
    if (!this.#backlog) await wait(config.pollIntervalMs);
  }

  /**
   * What this dispatcher may still claim under DISPATCH_MAX_IN_FLIGHT (in-flight.ts): its share of the
   * room at its last count, reserved in its claims row, minus what it has claimed since. It counts
   * again once the share is spent or a second old, so that reports freeing room are seen.
   */
  async #room(): Promise<number> {
    const { maxInFlight, leaseSeconds } = this.#o.config;
    const { repository } = this.#o;
    const now = performance.now();
    if (this.#share > 0 && now - this.#sentCountAt <= SENT_COUNT_TTL_MS) return this.#share;
    // Own tasks recorded while the count runs may be counted twice, as sent and as ours: cautious.
    const own = this.#unrecorded;
    const shareBefore = this.#share;
    const figure = await repository.countInFlight({ cap: maxInFlight + 1, dispatcherId: this.#id });
    const share = claimShare({ maxInFlight, ...figure, own });
    // Reserved before any of it is claimed, so that from now on the others count it as claimed; the
    // row outlives the claims made on it by their lease.
    await repository.reserveClaims({
      dispatcherId: this.#id,
      claimed: own + share,
      lifetimeSeconds: leaseSeconds + SENT_COUNT_TTL_MS / 1000,
    });
    this.#sentCount = figure.sent;
    this.#claimedElsewhere = figure.claimedElsewhere;
    this.#sentCountAt = now;
    // Inserts that claimed from the old share while this ran are not in `own`, so not in the row just
    // reserved: they come out of the new share, or the cap would be passed by that many.
    this.#share = share - (shareBefore - this.#share);
    return this.#share;
  }

  async #claim(limit: number): Promise<ClaimedTask[]> {
    const { config } = this.#o;
    const claimed = await this.#o.repository.claim({
      order: config.order,
      limit,
      leaseSeconds: config.leaseSeconds,
      startIds: this.#startIds,
    });
    this.#startIds = nextStartIds(this.#startIds, claimed);
    this.#unrecorded += claimed.length;
    this.#share -= claimed.length;
    return claimed;
  }

  /**
   * Keeps a batch in #batches until it ends, then wakes the loop if that can change its next step:
   * it waits for room in the window, the backlog goes on, or tasks of the batch are claimable again.
   * Otherwise (an insert's claim done while idle) a wake-up would only run a claim that finds nothing.
   */
  #track(batch: Promise<BatchResult>): void {
    const tracked = batch.then(
      (result) => result.failed.length + result.unpublished.length > 0,
      (err: unknown) => {
        this.#o.logger.error({ err }, 'dispatch batch failed unexpectedly');
        return true;
      },
    );
    this.#batches.add(tracked);
    void tracked.then((returned) => {
      this.#batches.delete(tracked);
      if (returned || this.#windowFull || this.#backlog) this.#signal.wake();
    });
  }

  /**
   * Publishes a claimed batch, then settles it from what #publish kept of its tasks: nothing that
   * waits out the record delay holds the tasks themselves (their texts), only their TaskRefs.
   */
  #process(claimed: ClaimedTask[], claimedAt: number): Promise<BatchResult> {
    const count = claimed.length;
    const started = performance.now();
    this.#o.metrics.dispatchBatchSize.observe(count);
    return this.#publishClaimed(claimed, claimedAt).then(
      (published) => this.#settle(count, published, started),
      (err: unknown) => {
        this.#unrecorded -= count;
        throw err;
      },
    );
  }

  async #publishClaimed(claimed: ClaimedTask[], claimedAt: number) {
    await this.#o.hooks.afterClaim?.(claimed);
    return this.#publish(buildWorkMessages(claimed, this.#o.config.tasksPerMessage), claimedAt);
  }

  async #settle(
    count: number,
    { confirmed, failed, unpublished }: Published,
    started: number,
  ): Promise<BatchResult> {
    const { hooks, metrics } = this.#o;
    let settled = 0;
    try {
      const confirmedAt = new Date();
      for (const task of confirmed) this.#awaitingRecord.set(attemptKey(task), confirmedAt);
      // The window may have room now: the confirmed tasks left it.
      if (confirmed.length > 0 && this.#windowFull) this.#signal.wake();
      let recorded: { sent: string[]; notRecorded: string[] };
      try {
        await hooks.beforeRecord?.(confirmed, failed);
        // Nothing confirmed, nothing to spare: the failed and unpublished go back at once, and a
        // batch that failed as a whole holds claims back now, not a delay later.
        if (confirmed.length > 0) await this.#recordDelay();
        // A confirmed task no longer awaiting its record was reported meanwhile (reported()).
        const reportedFirst = confirmed.filter((t) => !this.#awaitingRecord.has(attemptKey(t)));
        recorded = await this.#record(
          confirmed.filter((t) => this.#awaitingRecord.has(attemptKey(t))),
          confirmedAt,
        );
        recorded.notRecorded.push(...reportedFirst.map((t) => t.id));
        // Every confirmed task was dispatched, whoever wrote its next status (the record, or a report
        // that got there first on this producer or another).
        this.#countDispatched(confirmed);
      } finally {
        // Recorded (counted as sent from now on), or left to their leases; reported ones left already.
        for (const task of confirmed) {
          if (this.#awaitingRecord.delete(attemptKey(task))) this.#unrecorded -= 1;
        }
        settled = confirmed.length;
      }
      const { sent, notRecorded } = recorded;
      await this.#releaseFailed(failed);
      if (confirmed.length > 0) {
        this.#publishFailureStreak = 0;
      } else if (failed.length > 0) {
        // Nothing got through: the channel or the broker is failing as a whole, so the next batch
        // would fail alike. Hold claims back (a partial failure, an unbound priority, does not).
        this.#publishFailureStreak += 1;
        const hold = backoffMs(this.#publishFailureStreak, PUBLISH_FAILURE_BACKOFF, this.#o.random);
        this.#holdUntil = Math.max(this.#holdUntil, performance.now() + hold);
        this.#setPaused('publish_failures');
      }
      // Never handed to the broker: free at once for any replica whose broker is reachable.
      await this.#release(unpublished, 0);
      const result: BatchResult = { claimed: count, sent, notRecorded, failed, unpublished };
      metrics.dispatchBatchDuration.observe((performance.now() - started) / 1000);
      if (failed.length + unpublished.length > 0) {
        this.#o.logger.debug(
          {
            claimed: count,
            sent: sent.length,
            failed: failed.length,
            unpublished: unpublished.length,
          },
          'dispatch batch partly failed',
        );
      }
      hooks.afterBatch?.(result);
      return result;
    } finally {
      this.#unrecorded -= count - settled;
    }
  }

  /**
   * Publishes a batch's work messages, taking them off `messages` one by one: what then awaits the
   * confirms holds the tasks' refs only, not their texts.
   */
  async #publish(messages: OutgoingMessage[], claimedAt: number): Promise<Published> {
    const { broker, publisher: publishers, config, hooks, metrics } = this.#o;
    // Publishing must end early enough that every confirm (bounded by the confirm timeout), the record
    // delay and the record land before the lease runs out and another dispatcher may claim the task
    // again.
    const publishDeadline =
      claimedAt + config.leaseSeconds * 1000 - 2 * config.confirmTimeoutMs - config.recordDelayMs;
    const publisher = publishers.current();
    const outcomes: Promise<FailedPublish[] | TaskRef[]>[] = [];
    const unpublished: TaskRef[] = [];
    for (let i = 0; messages.length > 0; i += 1) {
      const message = messages.shift() as OutgoingMessage;
      if (hooks.beforePublish) await hooks.beforePublish(message.tasks, i);
      if (
        !publisher ||
        publishers.current() !== publisher ||
        broker.blocked ||
        this.#stopping ||
        performance.now() > publishDeadline
      ) {
        for (const rest of [message, ...messages]) unpublished.push(...rest.tasks.map(toRef));
        break;
      }
      const refs = message.tasks.map(toRef);
      // A message's confirm, nack or return settles every task it carries.
      outcomes.push(
        publisher.publish(message.exchange, message.routingKey, message.body, message.options).then(
          () => refs,
          (err: unknown) => {
            const reason = err instanceof PublishError ? err.code : 'UNKNOWN';
            metrics.publishFailures.inc({ reason });
            return refs.map((task) => ({ task, reason }));
          },
        ),
      );
    }
    const confirmed: TaskRef[] = [];
    const failed: FailedPublish[] = [];
    for (const outcome of await Promise.all(outcomes)) {
      for (const item of outcome) {
        if ('reason' in item) failed.push(item);
        else confirmed.push(item);
      }
    }
    return { confirmed, failed, unpublished };
  }

  /**
   * Confirmed tasks wait DISPATCH_RECORD_DELAY_MS before their record (cut short by stop()): the
   * result of a short task usually comes back within it, and a task this replica reported needs no
   * record (see reported()). A record that would only find the row finished is a statement, a commit
   * and a non-HOT row version saved.
   */
  #recordDelay(): Promise<void> {
    const ms = this.#o.config.recordDelayMs;
    if (ms <= 0 || this.#stopping) return Promise.resolve();
    // Kept in a set that stop() empties, not as abort listeners: a second's delay at a few batches a
    // second overlaps more batches than an AbortSignal takes listeners before Node warns of a leak.
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#recordDelays.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#recordDelays.add(done);
    });
  }

  /**
   * Confirmed → sent. Rows a report holds locked for a moment are retried a few times; a database
   * error is retried until it works or the dispatcher stops (the fence keeps a late record correct).
   * Whatever stays unrecorded keeps its lease, expires and goes out again: at-least-once.
   */
  async #record(
    confirmed: readonly TaskRef[],
    confirmedAt: Date,
  ): Promise<{ sent: string[]; notRecorded: string[] }> {
    const { repository, logger } = this.#o;
    const sent: string[] = [];
    let remaining = confirmed;
    let lockedRounds = 0;
    let errors = 0;
    while (remaining.length > 0) {
      let outcome: Awaited<ReturnType<DispatchStatements['recordSent']>>;
      try {
        outcome = await repository.recordSent(remaining, confirmedAt);
      } catch (err) {
        errors += 1;
        if (this.#stopping) {
          logger.warn(
            { err, tasks: remaining.length },
            'could not record confirmed tasks while stopping; they will be re-sent',
          );
          break;
        }
        const delay = backoffMs(errors, DATABASE_BACKOFF, this.#o.random);
        logger.warn(
          { err, tasks: remaining.length, retryInMs: delay },
          'could not record confirmed tasks; retrying',
        );
        await sleep(delay);
        continue;
      }
      sent.push(...outcome.done);
      const locked = new Set(outcome.locked);
      remaining = remaining.filter((t) => locked.has(t.id));
      if (remaining.length === 0) break;
      lockedRounds += 1;
      if (lockedRounds > RECORD_LOCKED_RETRIES) {
        logger.warn(
          { tasks: remaining.length },
          'confirmed tasks stayed locked; their leases will expire and they go out again',
        );
        break;
      }
      await sleep(backoffMs(lockedRounds, RECORD_LOCKED_BACKOFF, this.#o.random));
    }
    const sentIds = new Set(sent);
    if (this.#sentCount !== undefined) this.#sentCount += sent.length;
    return { sent, notRecorded: confirmed.filter((t) => !sentIds.has(t.id)).map((t) => t.id) };
  }

  /** Confirmed tasks: their messages are in the queue. */
  #countDispatched(tasks: readonly TaskRef[]): void {
    const byPriority = new Map<Priority, number>();
    for (const task of tasks) byPriority.set(task.priority, (byPriority.get(task.priority) ?? 0) + 1);
    for (const [priority, n] of byPriority) this.#o.metrics.tasksDispatched.inc({ priority }, n);
    this.#dispatched += tasks.length;
  }

  /**
   * A failed task keeps its lease for a while longer, growing with its attempt number: a task that
   * keeps failing (its priority unbound, say) is retried ever more slowly while the others flow.
   */
  async #releaseFailed(failed: readonly FailedPublish[]): Promise<void> {
    const byAttempt = new Map<number, TaskRef[]>();
    for (const { task } of failed)
      byAttempt.set(task.attempt, [...(byAttempt.get(task.attempt) ?? []), task]);
    for (const [attempt, tasks] of byAttempt) {
      await this.#release(tasks, backoffMs(attempt, PUBLISH_FAILURE_BACKOFF, this.#o.random));
    }
  }

  async #release(tasks: readonly TaskRef[], delayMs: number): Promise<void> {
    if (tasks.length === 0) return;
    try {
      await this.#o.repository.release(tasks, delayMs);
    } catch (err) {
      // Harmless: the leases expire by themselves.
      this.#o.logger.warn(
        { err, tasks: tasks.length },
        'could not release claimed tasks; their leases will expire',
      );
    }
  }

  #setPaused(reason: PauseReason | undefined): void {
    if (this.#paused === reason) return;
    const { metrics, logger } = this.#o;
    if (this.#paused) metrics.dispatcherPaused.set({ reason: this.#paused }, 0);
    if (reason) {
      metrics.dispatcherPaused.set({ reason }, 1);
      logger.info({ reason }, 'dispatcher paused');
    } else if (this.#paused) {
      logger.info({ was: this.#paused }, 'dispatcher resumed');
    }
    this.#paused = reason;
  }
}

export function createDispatcher(options: DispatcherOptions): Dispatcher {
  return new Dispatcher(options);
}
