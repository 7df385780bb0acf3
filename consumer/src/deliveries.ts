// A delivery remembers the channel that delivered it: acks go only there (a delivery tag means
// nothing on another channel, and acking it there closes that channel with a 406). Once the
// delivering channel is gone the broker redelivers the message, so its settlement is dropped.
import type { Channel, ConsumeMessage } from 'amqplib';
import type { ConsumerMetrics } from './metrics.js';

export interface Delivery {
  readonly channel: Channel;
  readonly message: ConsumeMessage;
  /** The queue it came from. */
  readonly queue: string;
  /** False once the delivering channel has closed. */
  alive(): boolean;
}

export type Settlement = 'ack' | 'requeue' | 'reject';

/** Call once per fresh channel; deliveries made on it share its liveness. */
function trackChannel(channel: Channel): () => boolean {
  let open = true;
  channel.once('close', () => {
    open = false;
  });
  return () => open;
}

/**
 * Acks, requeues or rejects (`nack` without requeue: dead-letters) on the delivering channel.
 * Returns false, and counts it, when the settlement was dropped because that channel is gone.
 */
export function settleOrDrop(metrics: ConsumerMetrics, delivery: Delivery, how: Settlement): boolean {
  if (delivery.alive()) {
    try {
      if (how === 'ack') delivery.channel.ack(delivery.message);
      else delivery.channel.nack(delivery.message, false, how === 'requeue');
      return true;
    } catch {
      // The channel started closing after the liveness check: same as closed.
    }
  }
  metrics.droppedSettlements.inc({ queue: delivery.queue });
  return false;
}

/** Starts consumers on `queues` with one handler; returns their tags (to cancel them on shutdown). */
export async function consumeAll(
  channel: Channel,
  queues: readonly string[],
  onDelivery: (delivery: Delivery) => void,
): Promise<string[]> {
  const alive = trackChannel(channel);
  const tags: string[] = [];
  for (const queue of queues) {
    const { consumerTag } = await channel.consume(queue, (message) => {
      // null: the broker cancelled this consumer (queue deleted, leader moved). A fresh channel,
      // which the Broker opens when this one closes, starts consumers again.
      if (message === null) {
        channel.close().catch(() => undefined);
        return;
      }
      onDelivery({ channel, message, queue, alive });
    });
    tags.push(consumerTag);
  }
  return tags;
}

/** Stops new deliveries on a channel; in-flight ones can still be settled. */
export async function cancelAll(channel: Channel | undefined, tags: readonly string[]): Promise<void> {
  if (!channel) return;
  for (const tag of tags) await channel.cancel(tag).catch(() => undefined);
}
