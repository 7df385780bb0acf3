import { existsSync } from 'node:fs';
import { isAlive } from '@task-pipeline/testkit/private-process';
import { type PrivateRabbit, startPrivateRabbit } from '@task-pipeline/testkit/private-rabbitmq';
import amqp from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const QUEUE = 'private-rabbit-test';

describe('private RabbitMQ', () => {
  let rabbit: PrivateRabbit;

  beforeAll(async () => {
    rabbit = await startPrivateRabbit();
  }, 120_000);
  afterAll(async () => {
    await rabbit?.destroy();
  }, 120_000);

  const messageCount = async () => {
    const connection = await amqp.connect(rabbit.url);
    try {
      const channel = await connection.createChannel();
      return (await channel.checkQueue(QUEUE)).messageCount;
    } finally {
      await connection.close();
    }
  };

  it('is a separate node on its own port', async () => {
    expect(rabbit.port).not.toBe(5672);
    expect(rabbit.nodeName).toMatch(/^tp-[0-9a-f]+@localhost$/);
    const { stdout } = await rabbit.ctl('-q', 'eval', 'node().');
    expect(stdout.trim()).toBe(`'${rabbit.nodeName}'`);
  });

  it('keeps a quorum queue and its persistent messages through a restart and a SIGKILL', async () => {
    const connection = await amqp.connect(rabbit.url);
    const channel = await connection.createConfirmChannel();
    await channel.assertQueue(QUEUE, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    for (let i = 0; i < 50; i++) channel.sendToQueue(QUEUE, Buffer.from(String(i)), { persistent: true });
    await channel.waitForConfirms();
    await connection.close();

    await rabbit.restart();
    expect(await messageCount()).toBe(50);

    await rabbit.kill();
    expect(rabbit.pid()).toBeUndefined();
    await rabbit.start();
    expect(await messageCount()).toBe(50);
  }, 180_000);

  it('refuses connections while stopped', async () => {
    await rabbit.stop();
    await expect(amqp.connect(rabbit.url)).rejects.toThrow();
    await rabbit.start();
    expect(await messageCount()).toBe(50);
  }, 180_000);

  it('destroy stops the node and removes its folder', async () => {
    const other = await startPrivateRabbit();
    const pid = other.pid();
    await other.destroy();
    expect(existsSync(other.dir)).toBe(false);
    expect(pid).toBeDefined();
    expect(isAlive(pid as number)).toBe(false);
  }, 180_000);
});
