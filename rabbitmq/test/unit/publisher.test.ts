// The confirmed publisher on a fake confirm channel: the broker's answers are played by the test.
import { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';
import type { ConfirmChannel } from 'amqplib';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { coalesceWrites } from '../../src/connection.js';
import { confirmedPublisher, PublishError } from '../../src/publisher.js';

type Confirm = (err: unknown) => void;

function fakeChannel() {
  const confirms: { messageId: string; confirm: Confirm }[] = [];
  const emitter = new EventEmitter();
  const channel = Object.assign(emitter, {
    publish: (
      _exchange: string,
      _key: string,
      _content: Buffer,
      options: { messageId: string },
      cb: Confirm,
    ) => {
      confirms.push({ messageId: options.messageId, confirm: cb });
      return true;
    },
  }) as unknown as ConfirmChannel;
  const returned = (messageId: string) => emitter.emit('return', { properties: { messageId } });
  return { channel, confirms, returned };
}

const publish = (channel: ConfirmChannel, messageId: string, timeoutMs = 1_000) =>
  confirmedPublisher(channel, timeoutMs).publish('x', 'k', Buffer.from('{}'), { messageId });

afterEach(() => {
  vi.useRealTimers();
});

describe('confirmedPublisher', () => {
  test('resolves on the ack, rejects a nack', async () => {
    const { channel, confirms } = fakeChannel();
    const ok = publish(channel, 'a');
    const nacked = publish(channel, 'b');
    confirms[0]?.confirm(null);
    confirms[1]?.confirm(new Error('nack'));
    await expect(ok).resolves.toBeUndefined();
    await expect(nacked).rejects.toMatchObject({ code: 'NACKED' });
  });

  test('a return before the ack makes that publish fail as unroutable, and only that one', async () => {
    const { channel, confirms, returned } = fakeChannel();
    const first = publish(channel, 'a');
    const second = publish(channel, 'b');
    returned('b');
    confirms[1]?.confirm(null);
    confirms[0]?.confirm(null);
    await expect(second).rejects.toMatchObject({ code: 'UNROUTABLE' });
    await expect(first).resolves.toBeUndefined();
    // The return was used up: a later publish under the same id is not charged with it.
    const again = publish(channel, 'b');
    confirms[2]?.confirm(null);
    await expect(again).resolves.toBeUndefined();
  });

  test('publishes without a confirm fail at their deadline, in order, with one timer for all', async () => {
    vi.useFakeTimers();
    const { channel, confirms } = fakeChannel();
    const setTimeoutSpy = vi.spyOn(globalThis, 'setTimeout');
    const early = publish(channel, 'a');
    await vi.advanceTimersByTimeAsync(400);
    const late = publish(channel, 'b');
    const confirmed = publish(channel, 'c');
    confirms[2]?.confirm(null);
    await expect(confirmed).resolves.toBeUndefined();
    const earlyFailed = expect(early).rejects.toMatchObject({ code: 'CONFIRM_TIMEOUT' });
    await vi.advanceTimersByTimeAsync(600);
    await earlyFailed;
    let lateSettled = false;
    void late.catch(() => {
      lateSettled = true;
    });
    await vi.advanceTimersByTimeAsync(100);
    expect(lateSettled).toBe(false);
    const lateFailed = expect(late).rejects.toBeInstanceOf(PublishError);
    await vi.advanceTimersByTimeAsync(400);
    await lateFailed;
    // A confirm that arrives after the deadline changes nothing.
    confirms[0]?.confirm(null);
    expect(setTimeoutSpy.mock.calls.length).toBeLessThanOrEqual(3);
    expect(confirmedPublisher(channel, 1_000).pending).toBe(0);
  });
});

describe('coalesceWrites', () => {
  test('writes of one tick reach the socket as one batch', async () => {
    const stream = new PassThrough();
    const batches: number[] = [];
    const writev = vi.fn((chunks: { chunk: Buffer }[], done: () => void) => {
      batches.push(chunks.length);
      done();
    });
    const write = (_chunk: Buffer, _encoding: string, done: () => void) => {
      batches.push(1);
      done();
    };
    Object.assign(stream, { _writev: writev, _write: write });
    coalesceWrites(stream);
    for (let i = 0; i < 5; i += 1) stream.write(Buffer.from([i]));
    await new Promise((resolve) => setImmediate(resolve));
    stream.write(Buffer.from([9]));
    await new Promise((resolve) => setImmediate(resolve));
    expect(batches).toEqual([5, 1]);
  });
});
