// The worker (PROTOCOL §7): a work message becomes outcome values in a pure function (park, or one
// of ack | retry | dead-letter for each task it carries); one wrapper turns them into confirmed
// publishes followed by one ack or nack on the delivering channel. A failed publish returns the
// whole message to its queue, after a backoff (REQUEUE_BACKOFF).

import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { backoffMs } from '@task-pipeline/common';
import type { Broker } from '@task-pipeline/rabbitmq';
import {
  EXCHANGES,
  FAILURE_REASONS,
  HEADERS,
  JSON_CONTENT_TYPE,
  type ManagedChannel,
  type Priority,
  parseWorkMessage,
  readTaskReferences,
  type TaskResult,
  type WorkMessage,
  type WorkQueue,
} from '@task-pipeline/rabbitmq';
import type { Channel } from 'amqplib';
import type { Logger } from 'pino';
import { cancelAll, consumeAll, type Delivery, flushSettlements, settleOrDrop } from './deliveries.js';
import type { ConsumerMetrics } from './metrics.js';
import { publishParked } from './parking.js';
import type { Publisher, ResultPublisher } from './publishing.js';
import {
  decideRetry,
  FailedMessages,
  REQUEUE_BACKOFF,
  type RetryPolicy,
  readRetryCount,
} from './retry-policy.js';
import { type SimulationPolicy, simulateOutcome } from './simulate-processing.js';

/** What becomes of one task of a work message. */
export type TaskOutcome =
  /** Processed: publish the success result. */
  | { kind: 'ack'; result: TaskResult }
  /** Failed with retries left: publish a copy of the task to the retry exchange. */
  | {
      kind: 'retry';
      task: WorkMessage;
      exchange: string;
      delaySeconds: number;
      routingKey: Priority;
      retryCount: number;
      error: string;
    }
  /**
   * Failed for the last time: to tasks.dlq. A message in one task's own form is nacked without
   * requeue (the broker dead-letters it); a task of a `{"tasks": [...]}` message is published there
   * on its own.
   */
  | { kind: 'dead-letter'; task: WorkMessage; retryCount: number; error: string };

export type WorkOutcome =
  /**
   * Usable: every task's outcome is made durable (confirmed publishes), then the message is acked.
   * `listed`: the message is in the `{"tasks": [...]}` form, so a task's retry copy or dead letter is
   * written in its own form rather than being the message itself.
   */
  | { kind: 'tasks'; tasks: TaskOutcome[]; listed: boolean }
  /** Unusable: copy to tasks.parking (and report invalid_message for each task it names), then ack. */
  | { kind: 'park'; reason: string; reports: TaskResult[] };

export type WorkPolicy = SimulationPolicy & RetryPolicy;

export interface IncomingWork {
  content: Buffer;
  contentType: string | undefined;
  headers: Record<string, unknown> | undefined;
}

export function decideWork(policy: WorkPolicy, message: IncomingWork): WorkOutcome {
  const parsed = parseWorkMessage(message.content, message.contentType);
  if (!parsed.ok) {
    const reports = readTaskReferences(message.content).references.map(
      (ref): TaskResult => ({ ...ref, status: 'error', error: FAILURE_REASONS.invalidMessage }),
    );
    return { kind: 'park', reason: parsed.reason, reports };
  }
  const retryCount = readRetryCount(message.headers);
  return {
    kind: 'tasks',
    tasks: parsed.value.map((task) => decideTask(policy, task, retryCount)),
    listed: parsed.listed,
  };
}

function decideTask(policy: WorkPolicy, task: WorkMessage, retryCount: number): TaskOutcome {
  const { taskId, attempt, priority } = task;
  const simulated = simulateOutcome(policy, { taskId, attempt, retryCount });
  if (simulated.ok) return { kind: 'ack', result: { taskId, attempt, status: 'success' } };
  const next = decideRetry(policy, retryCount);
  if (next.kind === 'dead-letter') return { kind: 'dead-letter', task, retryCount, error: simulated.error };
  return {
    kind: 'retry',
    task,
    exchange: next.exchange,
    delaySeconds: next.delaySeconds,
    routingKey: priority,
    retryCount: next.nextRetryCount,
    error: simulated.error,
  };
}

/**
 * Waits for every publish to end, then answers the first failure: a message is settled only then,
 * since a requeue while some still ran would let its redelivery publish those outcomes a second time.
 */
async function allPublished(publishes: Promise<void>[]): Promise<PublishFailure | undefined> {
  const ended = await Promise.allSettled(publishes);
  const failed = ended.find((p) => p.status === 'rejected');
  return failed && { error: failed.reason };
}

/** An outcome that could not be made durable: the message was not settled and goes back. */
interface PublishFailure {
  error: unknown;
}

/** Headers the broker writes when it dead-letters; a fresh retry copy starts without them. */
const BROKER_HEADERS = /^x-(death|first-death-|last-death-|delivery-count)/;

export function retryHeaders(
  original: Record<string, unknown> | undefined,
  retryCount: number,
  error: string,
): Record<string, unknown> {
  const kept = Object.entries(original ?? {}).filter(([name]) => !BROKER_HEADERS.test(name));
  return { ...Object.fromEntries(kept), [HEADERS.retryCount]: retryCount, [HEADERS.error]: error };
}

export interface WorkerOptions {
  /** The connection the worker consumes on. */
  broker: Broker;
  /**
   * The connection its publishes go through: while the broker blocks it (a resource alarm), the
   * worker takes no new deliveries, since it could not publish their outcomes.
   */
  publishing: Pick<Broker, 'blocked' | 'on'>;
  queues: readonly WorkQueue[];
  prefetch: number;
  processingTimeMs: number;
  policy: WorkPolicy;
  /** Retry copies, dead letters of tasks that shared a message, parked messages: one confirmed publish each. */
  publisher: Publisher;
  /** Results, gathered many to a message. */
  publishResult: ResultPublisher;
  metrics: ConsumerMetrics;
  logger: Logger;
}

export interface Worker {
  readonly channel: ManagedChannel<Channel>;
  /** Stops consuming and waits (until `signal` aborts) for in-flight messages to settle. */
  stop(signal: AbortSignal): Promise<void>;
}

export function createWorker(options: WorkerOptions): Worker {
  const { broker, publishing, queues, prefetch, processingTimeMs, policy } = options;
  const { publisher, publishResult, metrics, logger } = options;
  const inFlight = new Set<Promise<void>>();
  let stopping = false;
  let consumerTags: string[] = [];
  /** Failed publishes per message: sets its hold before it is returned. */
  const failedMessages = new FailedMessages();
  const stopped = new AbortController();
  // Every held message listens for the stop; hundreds may be held at once.
  setMaxListeners(0, stopped.signal);

  const onDelivery = (delivery: Delivery) => {
    // handle() settles or returns every message it can; what throws past it is a defect (a metric,
    // a log) after the settlement, which must not turn into a requeue of a settled message.
    const handled = handle(delivery)
      .catch((err: unknown) => logger.error({ err, queue: delivery.queue }, 'a work message handler failed'))
      .finally(() => inFlight.delete(handled));
    inFlight.add(handled);
  };

  const channel = broker.channel({
    name: 'worker',
    setup: async (ch) => {
      if (!stopping && !publishing.blocked) consumerTags = await consumeAll(ch, queues, prefetch, onDelivery);
    },
  });

  // Deliveries in hand wait for their publishes, which go out when the alarm clears (their confirm
  // clock is stopped meanwhile); the broker keeps the rest for replicas that can publish.
  publishing.on('blocked', () => {
    logger.warn({}, 'publishing is blocked by a broker alarm: taking no new deliveries');
    void cancelAll(channel.current(), consumerTags);
  });
  publishing.on('unblocked', () => {
    const ch = channel.current();
    if (stopping || !ch) return;
    logger.info({}, 'publishing is unblocked: consuming again');
    consumeAll(ch, queues, prefetch, onDelivery).then(
      (tags) => {
        consumerTags = tags;
      },
      // The channel is closing: its reopening consumes again.
      (err: unknown) => logger.warn({ err }, 'could not consume again after the alarm'),
    );
  });

  async function handle(delivery: Delivery): Promise<void> {
    const stopTimer = metrics.processingDuration.startTimer({ queue: delivery.queue });
    const { content, properties } = delivery.message;
    const outcome = decideWork(policy, {
      content,
      contentType: properties.contentType,
      headers: properties.headers,
    });
    // A child logger costs an object and its serialised bindings: only the rare outcomes log.
    const log = () => logger.child({ queue: delivery.queue, messageId: properties.messageId });
    // One count per message: a task's retry copies share its id (and queue), not its retry count. A
    // message without an id (not one of ours) shares one count per queue.
    const failureKey = () =>
      `${delivery.queue}/${properties.messageId ?? ''}/${readRetryCount(properties.headers)}`;
    if (outcome.kind === 'tasks' && processingTimeMs > 0) {
      await new Promise((r) => setTimeout(r, processingTimeMs));
    }
    const failure =
      outcome.kind === 'park' ? await park(delivery, outcome, log) : await applyTasks(delivery, outcome, log);
    stopTimer();
    if (!failure) {
      if (failedMessages.size > 0) failedMessages.settled(failureKey());
      return;
    }
    // The outcome could not be made durable, so the message goes back (it was not settled), held for
    // a while first (REQUEUE_BACKOFF), and at once when the worker stops.
    const holdMs = backoffMs(failedMessages.failed(failureKey()), REQUEUE_BACKOFF);
    log().warn(
      { err: failure.error, outcome: outcome.kind, returnInMs: holdMs },
      'could not publish the outcome; returning the message',
    );
    await sleep(holdMs, undefined, { signal: stopped.signal }).catch(() => undefined);
    if (settleOrDrop(metrics, delivery, 'requeue')) metrics.returned.inc({ queue: delivery.queue });
  }

  /**
   * Publishes every task's outcome, then settles the message once. A message of one task that is
   * dead-lettered is only nacked (the broker moves it, with x-death); a publish that fails returns the
   * whole message, and the outcomes already out come again with it (a duplicate result is fenced).
   */
  async function applyTasks(
    delivery: Delivery,
    { tasks, listed }: Extract<WorkOutcome, { kind: 'tasks' }>,
    log: () => Logger,
  ): Promise<PublishFailure | undefined> {
    const queue = delivery.queue;
    const [only] = tasks;
    if (!listed && only?.kind === 'dead-letter') {
      if (settleOrDrop(metrics, delivery, 'reject')) {
        metrics.failed.inc({ queue });
        metrics.deadLettered.inc({ queue });
        // A nack cannot carry this failure's error: the broker adds x-death (reason `rejected`) and
        // the reporter reports the x-error the previous retry wrote (the same simulated failure), or
        // `rejected` when MAX_RETRIES=0 left no retry to write one.
        log().debug({ error: only.error }, 'dead-lettered a work message');
      }
      return;
    }
    const failure = await allPublished(tasks.map((task) => publishOutcome(delivery, task, listed)));
    if (failure) return failure;
    if (!settleOrDrop(metrics, delivery, 'ack')) return;
    for (const task of tasks) {
      if (task.kind === 'ack') {
        metrics.processed.inc({ queue });
        continue;
      }
      metrics.failed.inc({ queue });
      if (task.kind === 'retry') metrics.retried.inc({ queue, delay_seconds: String(task.delaySeconds) });
      else metrics.deadLettered.inc({ queue });
    }
  }

  function publishOutcome(delivery: Delivery, outcome: TaskOutcome, listed: boolean): Promise<void> {
    if (outcome.kind === 'ack') return publishResult(outcome.result);
    const { properties, content } = delivery.message;
    // A message in one task's form travels on as it is; a task of a list, in its own form, which
    // every consumer reads (also one from before lists, during an upgrade).
    const body = listed ? Buffer.from(JSON.stringify(outcome.task)) : content;
    const options = {
      messageId: outcome.task.taskId,
      contentType: listed ? JSON_CONTENT_TYPE : properties.contentType,
      timestamp: properties.timestamp,
      headers: retryHeaders(properties.headers, outcome.retryCount, outcome.error),
    };
    return outcome.kind === 'retry'
      ? publisher.publish(outcome.exchange, outcome.routingKey, body, options)
      : publisher.publish(EXCHANGES.deadLetter, '', body, options);
  }

  async function park(
    delivery: Delivery,
    outcome: Extract<WorkOutcome, { kind: 'park' }>,
    log: () => Logger,
  ): Promise<PublishFailure | undefined> {
    const parked = await allPublished([publishParked(publisher, delivery, outcome.reason)]);
    if (parked) return parked;
    // Reported before the ack: a task whose message was unusable must not stay `sent`.
    const failure = await allPublished(outcome.reports.map((report) => publishResult(report)));
    if (failure) return failure;
    if (settleOrDrop(metrics, delivery, 'ack')) {
      metrics.parked.inc({ queue: delivery.queue });
      const taskIds = outcome.reports.map((r) => r.taskId);
      log().warn({ reason: outcome.reason, taskIds }, 'parked a work message');
    }
  }

  return {
    channel,
    async stop(signal) {
      stopping = true;
      stopped.abort();
      await cancelAll(channel.current(), consumerTags, signal);
      const aborted = new Promise<void>((resolve) => {
        if (signal.aborted) resolve();
        else signal.addEventListener('abort', () => resolve(), { once: true });
      });
      await Promise.race([Promise.allSettled([...inFlight]), aborted]);
      flushSettlements(channel.current());
    },
  };
}
