// Settlements on a fake channel: acks gathered for ACK_GATHER_MS (or until half the prefetch is
// gathered) leave as one `multiple` ack for the unbroken run of outstanding tags, one by one for the
// rest; a `multiple` ack never covers a delivery in progress.
import { EventEmitter } from 'node:events';
import type { Channel, ConsumeMessage } from 'amqplib';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { ACK_GATHER_MS, consumeAll, type Delivery, settleOrDrop } from '../../src/deliveries.js';
import { createConsumerMetrics } from '../../src/metrics.js';

type Frame = ['ack', number, boolean] | ['nack', number, boolean];

function fakeChannel() {
  const frames: Frame[] = [];
  let deliver: ((message: ConsumeMessage | null) => void) | undefined;
  const emitter = new EventEmitter();
  const channel = Object.assign(emitter, {
    prefetch: async () => ({}),
    consume: async (_queue: string, onMessage: (message: ConsumeMessage | null) => void) => {
      deliver = onMessage;
      return { consumerTag: 'ctag' };
    },
    ack: (message: ConsumeMessage, allUpTo = false) => {
      frames.push(['ack', message.fields.deliveryTag, allUpTo]);
    },
    nack: (message: ConsumeMessage, _allUpTo: boolean, requeue: boolean) => {
      frames.push(['nack', message.fields.deliveryTag, requeue]);
    },
    close: async () => emitter.emit('close'),
  }) as unknown as Channel;
  return {
    channel,
    frames,
    deliver: (tag: number) => deliver?.(message(tag)),
    /** The broker cancels the consumer (queue deleted, leader moved). */
    cancel: () => deliver?.(null),
  };
}

function message(tag: number): ConsumeMessage {
  return { fields: { deliveryTag: tag }, properties: {}, content: Buffer.alloc(0) } as ConsumeMessage;
}

/** Lets the gathered acks leave: the gathering time passes (fake timers), and the turn ends. */
const gathered = () => vi.advanceTimersByTimeAsync(ACK_GATHER_MS);

async function setup(tags: number, prefetch = 100) {
  const fake = fakeChannel();
  const deliveries: Delivery[] = [];
  await consumeAll(fake.channel, ['q'], prefetch, (d) => deliveries.push(d));
  for (let tag = 1; tag <= tags; tag += 1) fake.deliver(tag);
  return { ...fake, deliveries, metrics: createConsumerMetrics() };
}

describe('settlements', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  test('acks gathered over several turns covering every outstanding tag leave as one multiple ack', async () => {
    const { deliveries, frames, metrics } = await setup(5);
    for (const d of [...deliveries].reverse()) {
      settleOrDrop(metrics, d, 'ack');
      await vi.advanceTimersByTimeAsync(1);
    }
    expect(frames).toEqual([]);
    await vi.advanceTimersByTimeAsync(ACK_GATHER_MS - 5);
    expect(frames).toEqual([['ack', 5, true]]);
  });

  test('once half the prefetch is gathered, the acks leave at the end of the turn', async () => {
    const { deliveries, frames, metrics } = await setup(6, 8);
    for (const d of deliveries.slice(0, 3)) settleOrDrop(metrics, d, 'ack');
    await vi.advanceTimersByTimeAsync(0);
    expect(frames).toEqual([]);
    settleOrDrop(metrics, deliveries[3] as Delivery, 'ack');
    expect(frames).toEqual([]);
    await vi.advanceTimersByTimeAsync(0);
    expect(frames).toEqual([['ack', 4, true]]);
    // The gathering starts again: nothing more leaves until its time has passed.
    settleOrDrop(metrics, deliveries[4] as Delivery, 'ack');
    await vi.advanceTimersByTimeAsync(ACK_GATHER_MS - 1);
    expect(frames).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(frames.slice(1)).toEqual([['ack', 5, true]]);
  });

  test('a requeue or reject of a delivery whose ack is gathered sends nothing: it stays acked', async () => {
    const { deliveries, frames, metrics } = await setup(1);
    const [only] = deliveries as [Delivery];
    settleOrDrop(metrics, only, 'ack');
    settleOrDrop(metrics, only, 'requeue');
    await gathered();
    expect(frames).toEqual([['ack', 1, true]]);
  });

  test('a consumer the broker cancels sends its gathered acks before the channel closes', async () => {
    const { channel, deliveries, frames, metrics, cancel } = await setup(2);
    const closed = new Promise((resolve) => channel.once('close', resolve));
    settleOrDrop(metrics, deliveries[0] as Delivery, 'ack');
    cancel();
    await closed;
    expect(frames).toEqual([['ack', 1, true]]);
  });

  test('with a prefetch of one, every ack leaves at the end of its turn', async () => {
    const { deliveries, frames, metrics } = await setup(1, 1);
    settleOrDrop(metrics, deliveries[0] as Delivery, 'ack');
    await vi.advanceTimersByTimeAsync(0);
    expect(frames).toEqual([['ack', 1, true]]);
  });

  test('a delivery still in progress breaks the run: the acks after it go one by one', async () => {
    const { deliveries, frames, metrics } = await setup(6);
    for (const i of [0, 1, 3, 5]) settleOrDrop(metrics, deliveries[i] as Delivery, 'ack');
    await gathered();
    expect(frames).toEqual([
      ['ack', 2, true],
      ['ack', 4, false],
      ['ack', 6, false],
    ]);
    // The one in progress finishes later: it is now the oldest outstanding, so multiple is safe again.
    settleOrDrop(metrics, deliveries[2] as Delivery, 'ack');
    settleOrDrop(metrics, deliveries[4] as Delivery, 'ack');
    await gathered();
    expect(frames.slice(3)).toEqual([['ack', 5, true]]);
  });

  test('requeues and rejects go out at once, and a later multiple ack may pass over them', async () => {
    const { deliveries, frames, metrics } = await setup(4);
    settleOrDrop(metrics, deliveries[1] as Delivery, 'requeue');
    settleOrDrop(metrics, deliveries[2] as Delivery, 'reject');
    expect(frames).toEqual([
      ['nack', 2, true],
      ['nack', 3, false],
    ]);
    settleOrDrop(metrics, deliveries[0] as Delivery, 'ack');
    settleOrDrop(metrics, deliveries[3] as Delivery, 'ack');
    await gathered();
    expect(frames.slice(2)).toEqual([['ack', 4, true]]);
  });

  test('a settlement for a closed channel is dropped and counted, never sent', async () => {
    const { channel, deliveries, frames, metrics } = await setup(2);
    settleOrDrop(metrics, deliveries[0] as Delivery, 'ack');
    await channel.close();
    await gathered();
    expect(settleOrDrop(metrics, deliveries[1] as Delivery, 'ack')).toBe(false);
    expect(frames).toEqual([]);
    expect(deliveries[0]?.alive()).toBe(false);
    const dropped = await metrics.droppedSettlements.get();
    // Both: the ack gathered before the close, and the one asked for after it.
    expect(dropped.values.reduce((n, v) => n + v.value, 0)).toBe(2);
  });
});
