// A delivery remembers the channel that delivered it: acks go only there (a delivery tag means
// nothing on another channel, and acking it there closes that channel with a 406). Once the
// delivering channel is gone the broker redelivers the message, so its settlement is dropped.
//
// Acks are gathered per channel for up to ACK_GATHER_MS and sent as one `basic.ack` with `multiple`
// for the longest run of outstanding delivery tags that are all acked, one by one for the rest: one
// frame, and one operation in the quorum queue's log, settles many deliveries. An ack is never on a
// task's path (the result is already published), so waiting costs no latency; but a finished delivery
// still counts against its consumer's prefetch until acked, so once half the smallest prefetch of the
// channel's consumers is gathered they leave at the end of that event-loop turn. Requeues and rejects
// go out at once, one by one: a `multiple` ack never covers a delivery still in progress, because only
// tags that are outstanding and acked in an unbroken run from the oldest are covered.
import type { Channel, ConsumeMessage } from 'amqplib';
import type { ConsumerMetrics } from './metrics.js';

/** What consuming and settling use of an amqplib channel (a fake one in unit tests). */
export type DeliveryChannel = Pick<Channel, 'prefetch' | 'consume' | 'cancel' | 'ack' | 'nack' | 'close'> & {
  once(event: 'close', listener: () => void): unknown;
};

export interface Delivery {
  readonly channel: DeliveryChannel;
  readonly message: ConsumeMessage;
  /** The queue it came from. */
  readonly queue: string;
  /** False once the delivering channel has closed. */
  alive(): boolean;
}

export type Settlement = 'ack' | 'requeue' | 'reject';

/**
 * The longest an ack waits for others to leave with. Acks gathered per event-loop turn went out one or
 * a few at a time at moderate rates, each an operation in the quorum queue's log: at 1,000 tasks a
 * second, 10 ms took about a tenth off the broker's CPU per task (BENCHMARKS.md, issue 16 notes).
 */
export const ACK_GATHER_MS = 10;

/** Delivery tags of one channel, outstanding in delivery order, and the acks gathered to leave together. */
class ChannelSettlements {
  open = true;
  /** Outstanding tags in delivery (ascending) order; settled ones are skipped and trimmed from the front. */
  #tags: number[] = [];
  #head = 0;
  readonly #settled = new Set<number>();
  /** Gathered acks: each tag with what to count when its ack is dropped (the channel closed first). */
  #acks = new Map<number, () => void>();
  /** Gathered acks that send at the end of the turn: half the smallest prefetch on the channel. */
  #flushAt = Number.POSITIVE_INFINITY;
  #timer: NodeJS.Timeout | undefined;
  #turnEnd: NodeJS.Immediate | undefined;

  constructor(readonly channel: DeliveryChannel) {
    channel.once('close', () => {
      this.open = false;
    });
  }

  /** A consumer with this prefetch consumes on the channel. */
  consuming(prefetch: number): void {
    this.#flushAt = Math.min(this.#flushAt, Math.max(1, Math.floor(prefetch / 2)));
  }

  delivered(tag: number): void {
    this.#tags.push(tag);
  }

  /** Gathers an ack: it leaves within ACK_GATHER_MS, or at the turn's end once enough are gathered. */
  ack(tag: number, dropped: () => void): void {
    this.#acks.set(tag, dropped);
    if (this.#turnEnd) return;
    if (this.#acks.size >= this.#flushAt) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#turnEnd = setImmediate(() => this.flush());
    } else {
      this.#timer ??= setTimeout(() => this.flush(), ACK_GATHER_MS);
    }
  }

  /**
   * Requeue or reject now. A delivery whose ack is already gathered stays acked: a second settlement
   * of one delivery tag closes the channel (406).
   */
  nack(message: ConsumeMessage, requeue: boolean): void {
    if (this.#acks.has(message.fields.deliveryTag)) return;
    this.channel.nack(message, false, requeue);
    this.#settle(message.fields.deliveryTag);
  }

  #settle(tag: number): void {
    this.#settled.add(tag);
    while (this.#head < this.#tags.length && this.#settled.delete(this.#tags[this.#head] as number)) {
      this.#head += 1;
    }
    if (this.#head === this.#tags.length) {
      this.#tags = [];
      this.#head = 0;
    } else if (this.#head > 4096) {
      this.#tags = this.#tags.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Sends the acks gathered so far (when due, or before the channel is closed on purpose). */
  flush(): void {
    clearTimeout(this.#timer);
    clearImmediate(this.#turnEnd);
    this.#timer = undefined;
    this.#turnEnd = undefined;
    if (this.#acks.size === 0) return;
    const acks = this.#acks;
    this.#acks = new Map();
    if (!this.open) {
      for (const dropped of acks.values()) dropped();
      return;
    }
    // The longest unbroken run of acked tags from the oldest outstanding one: one `multiple` ack.
    let last: number | undefined;
    for (let i = this.#head; i < this.#tags.length; i += 1) {
      const tag = this.#tags[i] as number;
      if (this.#settled.has(tag)) continue;
      if (!acks.has(tag)) break;
      last = tag;
    }
    try {
      if (last !== undefined) {
        this.channel.ack({ fields: { deliveryTag: last } } as ConsumeMessage, true);
        for (const tag of acks.keys()) {
          if (tag > last) continue;
          this.#settle(tag);
          acks.delete(tag);
        }
      }
      for (const tag of acks.keys()) {
        this.channel.ack({ fields: { deliveryTag: tag } } as ConsumeMessage, false);
        this.#settle(tag);
        acks.delete(tag);
      }
    } catch {
      // The channel started closing: its deliveries come again on the next one.
      this.open = false;
      for (const dropped of acks.values()) dropped();
    }
  }
}

const settlements = new WeakMap<DeliveryChannel, ChannelSettlements>();

function settlementsOf(channel: DeliveryChannel): ChannelSettlements {
  let state = settlements.get(channel);
  if (!state) {
    state = new ChannelSettlements(channel);
    settlements.set(channel, state);
  }
  return state;
}

/**
 * Acks (gathered with the channel's other acks: see ACK_GATHER_MS), requeues or rejects (`nack`
 * without requeue: dead-letters) on the delivering channel. Returns false, and counts it, when the
 * settlement was dropped because that channel is gone; a gathered ack whose channel closes before it
 * leaves is counted then.
 */
export function settleOrDrop(metrics: ConsumerMetrics, delivery: Delivery, how: Settlement): boolean {
  const state = settlementsOf(delivery.channel);
  if (state.open) {
    try {
      if (how === 'ack') {
        state.ack(delivery.message.fields.deliveryTag, () =>
          metrics.droppedSettlements.inc({ queue: delivery.queue }),
        );
      } else state.nack(delivery.message, how === 'requeue');
      return true;
    } catch {
      // The channel started closing after the liveness check: same as closed.
    }
  }
  metrics.droppedSettlements.inc({ queue: delivery.queue });
  return false;
}

/** Sends a channel's gathered acks now: before a shutdown closes it, so no finished work comes back. */
export function flushSettlements(channel: DeliveryChannel | undefined): void {
  if (channel) settlements.get(channel)?.flush();
}

/**
 * Starts consumers on `queues`, each with `prefetch` (per consumer: quorum queues have no channel-wide
 * limit), with one handler; returns their tags (to cancel them on shutdown).
 */
export async function consumeAll(
  channel: DeliveryChannel,
  queues: readonly string[],
  prefetch: number,
  onDelivery: (delivery: Delivery) => void,
): Promise<string[]> {
  const state = settlementsOf(channel);
  const alive = () => state.open;
  const tags: string[] = [];
  // The prefetch in force at each consume is that consumer's limit.
  await channel.prefetch(prefetch);
  state.consuming(prefetch);
  for (const queue of queues) {
    const { consumerTag } = await channel.consume(queue, (message) => {
      // null: the broker cancelled this consumer (queue deleted, leader moved). A fresh channel,
      // which the Broker opens when this one closes, starts consumers again.
      if (message === null) {
        state.flush();
        channel.close().catch(() => undefined);
        return;
      }
      state.delivered(message.fields.deliveryTag);
      onDelivery({ channel, message, queue, alive });
    });
    tags.push(consumerTag);
  }
  return tags;
}

/**
 * Stops new deliveries on a channel; in-flight ones can still be settled. Gives up waiting for the
 * broker's answers when `signal` aborts: a broker cut off by a partition never answers, and shutdown
 * must not wait for it past its grace period.
 */
export async function cancelAll(
  channel: DeliveryChannel | undefined,
  tags: readonly string[],
  signal?: AbortSignal,
): Promise<void> {
  if (!channel) return;
  const cancels = Promise.all(tags.map((tag) => channel.cancel(tag).catch(() => undefined)));
  if (!signal) {
    await cancels;
    return;
  }
  if (signal.aborted) return;
  await new Promise<void>((resolve) => {
    signal.addEventListener('abort', () => resolve(), { once: true });
    void cancels.then(() => resolve());
  });
}
