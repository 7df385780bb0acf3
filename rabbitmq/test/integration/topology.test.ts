// The topology assertion with a quorum group size (QUORUM_INITIAL_GROUP_SIZE) against queues that
// exist from before the setting, from another value of it, or without it: RabbitMQ compares the
// argument on every redeclare, so each of these closed the channel with PRECONDITION_FAILED.

import { createTestVhost, rabbitmqctl, type TestVhost } from '@task-pipeline/testkit/isolation';
import amqp, { type Channel, type ChannelModel } from 'amqplib';
import pino from 'pino';
import { afterAll, afterEach, beforeEach, describe, expect, test } from 'vitest';
import { Broker } from '../../src/connection.js';
import { assertTopology, buildTopology, type Topology, WORK_QUEUES } from '../../src/topology.js';

const vhosts: TestVhost[] = [];
let vhost: TestVhost;
let connection: ChannelModel;

beforeEach(async () => {
  vhost = await createTestVhost('topology');
  vhosts.push(vhost);
  connection = await amqp.connect(vhost.url);
  connection.on('error', () => undefined);
});
afterEach(async () => {
  await connection?.close().catch(() => undefined);
});
afterAll(async () => {
  await Promise.all(vhosts.map((v) => v.drop()));
});

const channel = async (): Promise<Channel> => {
  const ch = await connection.createChannel();
  // The refusals below reject the declare; without a listener amqplib closes the connection too.
  ch.on('error', () => undefined);
  return ch;
};
const assert = async (topology: Topology) => assertTopology(await channel(), topology, channel);
const withSize = (size: number | undefined) =>
  buildTopology({ role: 'consumer', retryDelaysSeconds: [1], quorumInitialGroupSize: size });

/** The group size each queue of the vhost was created with (`none` without the argument). */
async function groupSizes(): Promise<Map<string, string>> {
  const out = await rabbitmqctl('list_queues', '-p', vhost.name, '--no-table-headers', 'name', 'arguments');
  return new Map(
    out
      .trim()
      .split('\n')
      .map((line) => {
        const [name, args] = line.split('\t') as [string, string];
        return [name, /\{"x-quorum-initial-group-size",(\d+)\}/.exec(args)?.[1] ?? 'none'];
      }),
  );
}

describe('assertTopology with a quorum group size', () => {
  test('creates missing queues with it', async () => {
    await assert(withSize(2));
    const sizes = await groupSizes();
    expect(sizes.get(WORK_QUEUES.high)).toBe('2');
    expect(sizes.get('tasks.retry.1')).toBe('2');
  });

  test('is idempotent over queues created without it, with another value, and with it while unset', async () => {
    await assert(withSize(undefined));
    await assert(withSize(3));
    await assert(withSize(3));
    const before = await groupSizes();
    expect(before.get(WORK_QUEUES.high)).toBe('none');

    const other = await createTestVhost('topology-other');
    vhosts.push(other);
    const otherConnection = await amqp.connect(other.url);
    otherConnection.on('error', () => undefined);
    try {
      const open = async () => {
        const ch = await otherConnection.createChannel();
        ch.on('error', () => undefined);
        return ch;
      };
      await assertTopology(await open(), withSize(2), open);
      await assertTopology(await open(), withSize(3), open);
      await assertTopology(await open(), withSize(undefined), open);
    } finally {
      await otherConnection.close();
    }
  });

  test('still refuses a queue whose other arguments differ', async () => {
    const ch = await channel();
    await ch.assertQueue(WORK_QUEUES.high, {
      durable: true,
      arguments: { 'x-queue-type': 'quorum', 'x-delivery-limit': 5 },
    });
    await expect(assert(withSize(3))).rejects.toThrow(
      /PRECONDITION.FAILED.*x-delivery-limit|inequivalent arg/,
    );
  });

  test('a Broker connects over queues created with another group size, and stays connected', async () => {
    await assert(withSize(2));
    const broker = new Broker({
      url: vhost.url,
      connectionName: 'test-group-size',
      topology: withSize(3),
      logger: pino({ level: 'silent' }),
      reconnectInitialDelayMs: 50,
    });
    let lost = 0;
    broker.on('disconnected', () => {
      lost += 1;
    });
    await broker.start();
    await broker.waitForConnect();
    await broker.channel({ name: 'probe' }).wait();
    expect(broker.connected).toBe(true);
    expect(lost).toBe(0);
    await broker.close();
  });
});
