// Confirmed, mandatory publishing (CONTRACT §5): a publish succeeds only when the broker confirmed it
// AND did not return it. RabbitMQ *acks* an unroutable mandatory message after sending basic.return,
// so the return is remembered by messageId and turns the following ack into a failure.
import type { ConfirmChannel, Options } from 'amqplib';

export type PublishErrorCode = 'UNROUTABLE' | 'NACKED' | 'CHANNEL_CLOSED' | 'CONFIRM_TIMEOUT';

export class PublishError extends Error {
  constructor(
    readonly code: PublishErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'PublishError';
  }
}

export interface PublishOptions extends Options.Publish {
  /** Required: it correlates basic.return with the publish it answers. */
  messageId: string;
}

export interface ConfirmedPublisher {
  publish(exchange: string, routingKey: string, content: Buffer, options: PublishOptions): Promise<void>;
  /** Publishes awaiting their confirm. */
  readonly pending: number;
}

interface Pending {
  returned: boolean;
}

const publishers = new WeakMap<ConfirmChannel, ConfirmedPublisher>();

/** One publisher per channel: the `return` listener must be attached once. */
export function confirmedPublisher(channel: ConfirmChannel, confirmTimeoutMs: number): ConfirmedPublisher {
  let publisher = publishers.get(channel);
  if (!publisher) {
    publisher = createConfirmedPublisher(channel, confirmTimeoutMs);
    publishers.set(channel, publisher);
  }
  return publisher;
}

function createConfirmedPublisher(channel: ConfirmChannel, confirmTimeoutMs: number): ConfirmedPublisher {
  const inFlight = new Map<string, Pending[]>();
  let pending = 0;
  channel.on('return', (message: { properties: { messageId?: string } }) => {
    const waiting = inFlight.get(message.properties.messageId ?? '');
    const entry = waiting?.find((p) => !p.returned);
    if (entry) entry.returned = true;
  });

  return {
    get pending() {
      return pending;
    },
    publish(exchange, routingKey, content, options) {
      return new Promise<void>((resolve, reject) => {
        const entry: Pending = { returned: false };
        const list = inFlight.get(options.messageId) ?? [];
        list.push(entry);
        inFlight.set(options.messageId, list);
        pending += 1;
        let settled = false;
        const settle = (err?: Error) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          pending -= 1;
          const remaining = (inFlight.get(options.messageId) ?? []).filter((p) => p !== entry);
          if (remaining.length > 0) inFlight.set(options.messageId, remaining);
          else inFlight.delete(options.messageId);
          if (err) reject(err);
          else resolve();
        };
        const timer = setTimeout(
          () =>
            settle(
              new PublishError(
                'CONFIRM_TIMEOUT',
                `no confirm for ${options.messageId} within ${confirmTimeoutMs} ms`,
              ),
            ),
          confirmTimeoutMs,
        );
        const target = `${exchange || '(default)'}/${routingKey}`;
        try {
          channel.publish(
            exchange,
            routingKey,
            content,
            { persistent: true, ...options, mandatory: true },
            (err: unknown) => {
              if (err) {
                const closed = err instanceof Error && /closed/i.test(err.message);
                settle(
                  new PublishError(
                    closed ? 'CHANNEL_CLOSED' : 'NACKED',
                    closed
                      ? `channel closed before ${target} was confirmed`
                      : `broker nacked a publish to ${target}`,
                    { cause: err },
                  ),
                );
              } else if (entry.returned) {
                settle(new PublishError('UNROUTABLE', `no queue is bound for ${target}`));
              } else {
                settle();
              }
            },
          );
        } catch (err) {
          settle(
            new PublishError('CHANNEL_CLOSED', `cannot publish to ${target}: channel closed`, { cause: err }),
          );
        }
      });
    },
  };
}
