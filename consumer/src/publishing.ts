// Confirmed publishes that survive a channel being reopened: a publish that fails because the
// confirm channel closed (or timed out) is tried again on the fresh channel a few times before the
// caller gives up and returns its delivery to the queue.
import { randomUUID } from 'node:crypto';
import { type BackoffPolicy, backoffMs, coalesce } from '@task-pipeline/common';
import {
  BrokerClosedError,
  confirmedPublisher,
  JSON_CONTENT_TYPE,
  MAX_RESULTS_PER_MESSAGE,
  type ManagedChannel,
  type PublishOptions,
  QUEUES,
  type ResultMessage,
  type TaskResult,
} from '@task-pipeline/rabbitmq';
import type { ConfirmChannel } from 'amqplib';

export interface Publisher {
  publish(exchange: string, routingKey: string, content: Buffer, options: PublishOptions): Promise<void>;
}

export class PublishFailedError extends Error {
  readonly code = 'PUBLISH_FAILED';
  constructor(message: string, options: { cause: unknown }) {
    super(message, options);
    this.name = 'PublishFailedError';
  }
}

/** Between attempts of one publish: long enough for a closed channel to be reopened. */
const PUBLISH_RETRY_BACKOFF: BackoffPolicy = { initialMs: 200, maxMs: 1_600 };

export interface PublisherOptions {
  channel: ManagedChannel<ConfirmChannel>;
  confirmTimeoutMs: number;
  /** The publishing connection is blocked by a broker alarm: confirms wait for it (see confirmedPublisher). */
  blocked?: () => boolean;
  attempts?: number;
}

export function createPublisher({
  channel,
  confirmTimeoutMs,
  blocked,
  attempts = 3,
}: PublisherOptions): Publisher {
  return {
    async publish(exchange, routingKey, content, options) {
      let lastError: unknown;
      for (let attempt = 1; attempt <= attempts; attempt += 1) {
        try {
          // Waits through a reopen, but not forever: the caller's delivery is held meanwhile. An open
          // channel is taken as it is, without a timeout signal (a timer) for every publish.
          const ch = channel.current() ?? (await channel.wait(AbortSignal.timeout(confirmTimeoutMs)));
          await confirmedPublisher(ch, confirmTimeoutMs, { blocked }).publish(
            exchange,
            routingKey,
            content,
            options,
          );
          return;
        } catch (err) {
          lastError = err;
          if (err instanceof BrokerClosedError) break;
          if (attempt < attempts) {
            await new Promise((r) => setTimeout(r, backoffMs(attempt, PUBLISH_RETRY_BACKOFF)));
          }
        }
      }
      throw new PublishFailedError(`could not publish to ${exchange || '(default)'}/${routingKey}`, {
        cause: lastError,
      });
    },
  };
}

/** Publishes one result; resolves once it is durable in tasks.results (with others: see below). */
export type ResultPublisher = (result: TaskResult) => Promise<void>;

/**
 * Results travel many to a message: the results of one event-loop turn leave as one confirmed
 * publish to tasks.results, and while that one awaits its confirm the next ones gather (two messages
 * in flight at most). One publish, one delivery and one ack then cover a whole batch instead of one
 * task each, which is most of what a task costs the broker. A lone result waits for nothing but the end
 * of its turn. Each caller acks its work message only after this resolves, so a result is durable
 * before the work it reports is acked; a failed publish fails every result of its message.
 */
export function createResultPublisher(publisher: Publisher): ResultPublisher {
  return coalesce(
    async (results: readonly TaskResult[]) => {
      const message: ResultMessage = { results: [...results] };
      await publisher.publish('', QUEUES.results, Buffer.from(JSON.stringify(message)), {
        // Distinct per message, so a return (the queue is missing) is charged to the right publish.
        messageId: randomUUID(),
        contentType: JSON_CONTENT_TYPE,
      });
      return results.map(() => undefined);
    },
    { maxBatch: MAX_RESULTS_PER_MESSAGE, maxInFlight: 2 },
  );
}
