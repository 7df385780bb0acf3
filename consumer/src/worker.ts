// The worker (PROTOCOL §7): a work message becomes an outcome value (ack | retry | dead-letter |
// park) in a pure function; one wrapper turns the outcome into confirmed publishes followed by the
// ack or nack on the delivering channel. A failed publish returns the message to its queue.

import type { Broker } from '@task-pipeline/rabbitmq';
import {
  FAILURE_REASONS,
  HEADERS,
  type ManagedChannel,
  type Priority,
  parseMessage,
  readTaskReference,
  type TaskResult,
  WorkMessageSchema,
  type WorkQueue,
} from '@task-pipeline/rabbitmq';
import type { Channel } from 'amqplib';
import type { Logger } from 'pino';
import { cancelAll, consumeAll, type Delivery, flushSettlements, settleOrDrop } from './deliveries.js';
import type { ConsumerMetrics } from './metrics.js';
import { publishParked } from './parking.js';
import type { Publisher, ResultPublisher } from './publishing.js';
import { decideRetry, type RetryPolicy, readRetryCount } from './retry-policy.js';
import { type SimulationPolicy, simulateOutcome } from './simulate-processing.js';

export type WorkOutcome =
  /** Processed: publish the success result, then ack. */
  | { kind: 'ack'; result: TaskResult }
  /** Failed with retries left: publish a copy to the retry exchange, then ack. */
  | {
      kind: 'retry';
      taskId: string;
      exchange: string;
      delaySeconds: number;
      routingKey: Priority;
      retryCount: number;
      error: string;
    }
  /** Failed for the last time: nack without requeue, so the broker dead-letters it to tasks.dlq. */
  | { kind: 'dead-letter'; error: string }
  /** Unusable: copy to tasks.parking (and report invalid_message when the task is known), then ack. */
  | { kind: 'park'; reason: string; report?: TaskResult };

export type WorkPolicy = SimulationPolicy & RetryPolicy;

export interface IncomingWork {
  content: Buffer;
  contentType: string | undefined;
  headers: Record<string, unknown> | undefined;
}

export function decideWork(policy: WorkPolicy, message: IncomingWork): WorkOutcome {
  const parsed = parseMessage(WorkMessageSchema, message.content, message.contentType);
  if (!parsed.ok) {
    const ref = readTaskReference(message.content);
    return {
      kind: 'park',
      reason: parsed.reason,
      ...(ref && { report: { ...ref, status: 'error', error: FAILURE_REASONS.invalidMessage } }),
    };
  }
  const { taskId, attempt, priority } = parsed.value;
  const retryCount = readRetryCount(message.headers);
  const simulated = simulateOutcome(policy, { taskId, attempt, retryCount });
  if (simulated.ok) return { kind: 'ack', result: { taskId, attempt, status: 'success' } };
  const next = decideRetry(policy, retryCount);
  if (next.kind === 'dead-letter') return { kind: 'dead-letter', error: simulated.error };
  return {
    kind: 'retry',
    taskId,
    exchange: next.exchange,
    delaySeconds: next.delaySeconds,
    routingKey: priority,
    retryCount: next.nextRetryCount,
    error: simulated.error,
  };
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
  /** Retry copies and parked messages, one confirmed publish each. */
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

  const onDelivery = (delivery: Delivery) => {
    const handled = handle(delivery).finally(() => inFlight.delete(handled));
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
    try {
      if (outcome.kind !== 'park' && processingTimeMs > 0) {
        await new Promise((r) => setTimeout(r, processingTimeMs));
      }
      await apply(delivery, outcome, log);
    } catch (err) {
      // Only publishes throw: the outcome could not be made durable, so the message goes back.
      log().warn({ err, outcome: outcome.kind }, 'could not publish the outcome; returning the message');
      settleOrDrop(metrics, delivery, 'requeue');
    } finally {
      stopTimer();
    }
  }

  async function apply(delivery: Delivery, outcome: WorkOutcome, log: () => Logger): Promise<void> {
    const queue = delivery.queue;
    switch (outcome.kind) {
      case 'ack': {
        await publishResult(outcome.result);
        if (settleOrDrop(metrics, delivery, 'ack')) metrics.processed.inc({ queue });
        return;
      }
      case 'retry': {
        const { properties, content } = delivery.message;
        await publisher.publish(outcome.exchange, outcome.routingKey, content, {
          messageId: outcome.taskId,
          contentType: properties.contentType,
          timestamp: properties.timestamp,
          headers: retryHeaders(properties.headers, outcome.retryCount, outcome.error),
        });
        if (settleOrDrop(metrics, delivery, 'ack')) {
          metrics.failed.inc({ queue });
          metrics.retried.inc({ queue, delay_seconds: String(outcome.delaySeconds) });
        }
        return;
      }
      case 'dead-letter': {
        // A nack cannot carry this failure's error: the broker adds x-death (reason `rejected`) and
        // the reporter reports the x-error the previous retry wrote (the same simulated failure), or
        // `rejected` when MAX_RETRIES=0 left no retry to write one.
        if (settleOrDrop(metrics, delivery, 'reject')) {
          metrics.failed.inc({ queue });
          metrics.deadLettered.inc({ queue });
          log().debug({ error: outcome.error }, 'dead-lettered a work message');
        }
        return;
      }
      case 'park': {
        await publishParked(publisher, delivery, outcome.reason);
        // Reported before the ack: a task whose message was unusable must not stay `sent`.
        if (outcome.report) await publishResult(outcome.report);
        if (settleOrDrop(metrics, delivery, 'ack')) {
          metrics.parked.inc({ queue });
          log().warn({ reason: outcome.reason, taskId: outcome.report?.taskId }, 'parked a work message');
        }
        return;
      }
    }
  }

  return {
    channel,
    async stop(signal) {
      stopping = true;
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
