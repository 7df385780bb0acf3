// Confirmed, mandatory publishing (PROTOCOL §5): a publish succeeds only when the broker confirmed it
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
  /**
   * Required: it correlates basic.return with the publish it answers. Publishes awaiting their confirm
   * on one channel at the same time should carry distinct ids, or a return may be charged to the wrong one.
   */
  messageId: string;
}

export interface ConfirmedPublisher {
  publish(exchange: string, routingKey: string, content: Buffer, options: PublishOptions): Promise<void>;
  /** Publishes awaiting their confirm. */
  readonly pending: number;
}

interface Pending {
  deadline: number;
  settle: (err?: Error) => void;
  settled: boolean;
  messageId: string;
  target: string;
}

export interface ConfirmedPublisherOptions {
  /**
   * True while the broker blocks the connection (a resource alarm). It reads nothing from a blocked
   * connection, so confirms cannot come: the clock stops, and each publish gets its whole timeout once
   * the block lifts. Timing out instead would return work to its queue while its publish, buffered
   * on the socket, still goes out when the alarm clears: the same work done twice.
   */
  blocked?: () => boolean;
}

const publishers = new WeakMap<ConfirmChannel, ConfirmedPublisher>();

/** One publisher per channel (the `return` listener must be attached once): the first call's options hold. */
export function confirmedPublisher(
  channel: ConfirmChannel,
  confirmTimeoutMs: number,
  options: ConfirmedPublisherOptions = {},
): ConfirmedPublisher {
  let publisher = publishers.get(channel);
  if (!publisher) {
    publisher = createConfirmedPublisher(channel, confirmTimeoutMs, options);
    publishers.set(channel, publisher);
  }
  return publisher;
}

function createConfirmedPublisher(
  channel: ConfirmChannel,
  confirmTimeoutMs: number,
  { blocked = () => false }: ConfirmedPublisherOptions,
): ConfirmedPublisher {
  /** Returns whose ack has not arrived yet, by messageId (empty unless a route is missing). */
  const returned = new Map<string, number>();
  // Every publish has the same timeout, so deadlines come in publish order: one timer for the oldest
  // unconfirmed publish serves them all (a timer per message costs more than the publish itself).
  let queue: Pending[] = [];
  let head = 0;
  let pending = 0;
  let timer: NodeJS.Timeout | undefined;

  channel.on('return', (message: { properties: { messageId?: string } }) => {
    const id = message.properties.messageId ?? '';
    returned.set(id, (returned.get(id) ?? 0) + 1);
  });

  function takeReturn(messageId: string): boolean {
    const count = returned.get(messageId);
    if (count === undefined) return false;
    if (count > 1) returned.set(messageId, count - 1);
    else returned.delete(messageId);
    return true;
  }

  function expire(): void {
    timer = undefined;
    const now = performance.now();
    if (blocked()) {
      for (let i = head; i < queue.length; i += 1) (queue[i] as Pending).deadline = now + confirmTimeoutMs;
      arm();
      return;
    }
    compact();
    while (head < queue.length) {
      const entry = queue[head] as Pending;
      if (entry.deadline > now) break;
      // Settling the oldest entry compacts the queue past it (and any settled ones behind it).
      entry.settle(
        new PublishError(
          'CONFIRM_TIMEOUT',
          `no confirm for ${entry.messageId} to ${entry.target} within ${confirmTimeoutMs} ms`,
        ),
      );
    }
    arm();
  }

  /**
   * Drops settled entries from the front. Called on every settle of the oldest entry, not only when
   * the timer fires: confirms arrive in publish order, so this keeps the queue to the publishes still
   * unconfirmed. Left to the timer (every confirm-timeout), the settled entries of the last seconds
   * outlived two scavenges and were promoted: tens of thousands of them at a drain's rate (issue 16,
   * BENCHMARKS.md).
   */
  function compact(): void {
    while (head < queue.length && (queue[head] as Pending).settled) head += 1;
    if (head === queue.length) {
      queue = [];
      head = 0;
    } else if (head > 1024 && head * 2 > queue.length) {
      queue = queue.slice(head);
      head = 0;
    }
  }

  function arm(): void {
    if (timer || head >= queue.length) return;
    const delay = Math.max(0, (queue[head] as Pending).deadline - performance.now());
    timer = setTimeout(expire, delay);
    timer.unref();
  }

  return {
    get pending() {
      return pending;
    },
    publish(exchange, routingKey, content, options) {
      return new Promise<void>((resolve, reject) => {
        const target = `${exchange || '(default)'}/${routingKey}`;
        const entry: Pending = {
          deadline: performance.now() + confirmTimeoutMs,
          settled: false,
          messageId: options.messageId,
          target,
          settle: (err) => {
            if (entry.settled) return;
            entry.settled = true;
            pending -= 1;
            if (queue[head] === entry) compact();
            if (err) reject(err);
            else resolve();
          },
        };
        pending += 1;
        queue.push(entry);
        arm();
        try {
          channel.publish(
            exchange,
            routingKey,
            content,
            { persistent: true, ...options, mandatory: true },
            (err: unknown) => {
              // An unroutable message is acked too: its return, which came first, decides.
              const wasReturned = returned.size > 0 && takeReturn(options.messageId);
              if (entry.settled) return;
              if (err) {
                const closed = err instanceof Error && /closed/i.test(err.message);
                entry.settle(
                  new PublishError(
                    closed ? 'CHANNEL_CLOSED' : 'NACKED',
                    closed
                      ? `channel closed before ${target} was confirmed`
                      : `broker nacked a publish to ${target}`,
                    { cause: err },
                  ),
                );
              } else if (wasReturned) {
                entry.settle(new PublishError('UNROUTABLE', `no queue is bound for ${target}`));
              } else {
                entry.settle();
              }
            },
          );
        } catch (err) {
          entry.settle(
            new PublishError('CHANNEL_CLOSED', `cannot publish to ${target}: channel closed`, {
              cause: err,
            }),
          );
        }
      });
    },
  };
}
