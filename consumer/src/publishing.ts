// Confirmed publishes that survive a channel being reopened: a publish that fails because the
// confirm channel closed (or timed out) is tried again on the fresh channel a few times before the
// caller gives up and returns its delivery to the queue.
import {
  BrokerClosedError,
  confirmedPublisher,
  JSON_CONTENT_TYPE,
  type ManagedChannel,
  type PublishOptions,
  QUEUES,
  type ResultMessage,
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

export interface PublisherOptions {
  channel: ManagedChannel<ConfirmChannel>;
  confirmTimeoutMs: number;
  attempts?: number;
}

export function createPublisher({ channel, confirmTimeoutMs, attempts = 3 }: PublisherOptions): Publisher {
  return {
    async publish(exchange, routingKey, content, options) {
      let lastError: unknown;
      for (let attempt = 1; attempt <= attempts; attempt += 1) {
        try {
          // Waits through a reopen, but not forever: the caller's delivery is held meanwhile. An open
          // channel is taken as it is, without a timeout signal (a timer) for every publish.
          const ch = channel.current() ?? (await channel.wait(AbortSignal.timeout(confirmTimeoutMs)));
          await confirmedPublisher(ch, confirmTimeoutMs).publish(exchange, routingKey, content, options);
          return;
        } catch (err) {
          lastError = err;
          if (err instanceof BrokerClosedError) break;
          if (attempt < attempts) await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
        }
      }
      throw new PublishFailedError(`could not publish to ${exchange || '(default)'}/${routingKey}`, {
        cause: lastError,
      });
    },
  };
}

/** A result for the reporter: durable in tasks.results before the work message is acked. */
export function publishResult(publisher: Publisher, result: ResultMessage): Promise<void> {
  return publisher.publish('', QUEUES.results, Buffer.from(JSON.stringify(result)), {
    messageId: result.taskId,
    contentType: JSON_CONTENT_TYPE,
  });
}
