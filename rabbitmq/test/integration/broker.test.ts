import {
  Broker,
  buildTopology,
  confirmedPublisher,
  EXCHANGES,
  PublishError,
  WORK_QUEUES,
} from '@task-pipeline/rabbitmq';
import { eventually } from '@task-pipeline/testkit/eventually';
import { useTestVhost } from '@task-pipeline/testkit/hooks';
import { rabbitmqctl } from '@task-pipeline/testkit/isolation';
import pino from 'pino';
import { describe, expect, test } from 'vitest';

const vhost = useTestVhost('broker');

const logger = pino({ level: 'silent' });

describe('Broker', () => {
  test('asserts the topology, publishes with confirms, fails unroutable publishes', async () => {
    const broker = new Broker({
      url: vhost.url,
      connectionName: 'test-broker',
      topology: buildTopology({ role: 'producer' }),
      logger,
    });
    await broker.start();
    const channel = broker.confirmChannel({ name: 'publish' });
    const ch = await channel.wait();
    const publisher = confirmedPublisher(ch, 5_000);
    await publisher.publish(EXCHANGES.tasks, 'high', Buffer.from('{}'), { messageId: 'a' });
    const q = await ch.checkQueue(WORK_QUEUES.high);
    expect(q.messageCount).toBe(1);
    const err = await publisher
      .publish(EXCHANGES.tasks, 'nowhere', Buffer.from('{}'), { messageId: 'b' })
      .catch((e) => e);
    expect(err).toBeInstanceOf(PublishError);
    expect((err as PublishError).code).toBe('UNROUTABLE');
    await broker.close();
  });

  test('reopens a channel that the broker closed while the connection lives', async () => {
    const broker = new Broker({
      url: vhost.url,
      connectionName: 'test-reopen',
      topology: buildTopology({ role: 'producer' }),
      logger,
      reconnectInitialDelayMs: 50,
    });
    await broker.start();
    const channel = broker.confirmChannel({ name: 'publish' });
    const first = await channel.wait();
    // A passive declare of a missing queue closes the channel with 404.
    await first.checkQueue('does-not-exist').catch(() => undefined);
    await new Promise((r) => setTimeout(r, 20));
    const second = await channel.wait();
    expect(second).not.toBe(first);
    expect(broker.ready).toBe(true);
    await broker.close();
  });

  test('reconnects after the broker closes the connection', async () => {
    const broker = new Broker({
      url: vhost.url,
      connectionName: 'test-reconnect',
      topology: buildTopology({ role: 'producer' }),
      logger,
      reconnectInitialDelayMs: 50,
    });
    await broker.start();
    await broker.confirmChannel({ name: 'publish' }).wait();
    // Both listeners before the close: the broker may be back before rabbitmqctl has even exited.
    const disconnected = new Promise((r) => broker.once('disconnected', r));
    const reopened = new Promise<void>((r) => broker.once('channel-open', () => r()));
    const out = await rabbitmqctl('list_connections', '-p', vhost.name, 'pid', 'client_properties');
    const pid = out
      .split('\n')
      .find((l) => l.includes('test-reconnect'))
      ?.split('\t')[0];
    expect(pid).toBeTruthy();
    await rabbitmqctl('close_connection', pid as string, 'test');
    await disconnected;
    await reopened;
    expect(broker.ready).toBe(true);
    await broker.close();
  });
});

describe('Broker over a list of brokers', () => {
  test('skips a node that refuses, connects to the next, and after a loss comes round to it again', async () => {
    // Port 1 refuses at once: a node that is down.
    const dead = 'amqp://guest:guest@127.0.0.1:1';
    const live = new URL(vhost.url);
    // What the Broker logs, in order: which node it connected to, which one failed.
    const events: string[] = [];
    const record = (obj: object, msg: string) => {
      const { node } = obj as { node?: string };
      if (msg === 'connected to RabbitMQ') events.push(`connected ${node}`);
      if (msg === 'RabbitMQ connection attempt failed') events.push(`failed ${node}`);
    };
    const broker = new Broker({
      url: `${dead},${vhost.url}`,
      connectionName: 'test-failover',
      topology: buildTopology({ role: 'producer' }),
      logger: { debug: record, info: record, warn: record, error: record },
      reconnectInitialDelayMs: 50,
      random: () => 0, // start with the dead node
    });
    await broker.start();
    await broker.waitForConnect();
    expect(broker.node).toBe(`127.0.0.1:${live.port}`);

    // Both listeners before the close: refused at once, the dead node lets the broker be back on the
    // live one before rabbitmqctl has even exited (a listener added after it waited forever).
    const disconnected = new Promise((r) => broker.once('disconnected', r));
    const reconnected = new Promise<void>((r) => broker.once('connected', () => r()));
    const out = await rabbitmqctl('list_connections', '-p', vhost.name, 'pid', 'client_properties');
    const pid = out
      .split('\n')
      .find((l) => l.includes('test-failover'))
      ?.split('\t')[0];
    await rabbitmqctl('close_connection', pid as string, 'test');
    await disconnected;
    // Next in rotation is the dead node; then round again to the live one.
    await reconnected;
    const livePort = `127.0.0.1:${live.port}`;
    expect(events).toEqual([
      'failed 127.0.0.1:1',
      `connected ${livePort}`,
      'failed 127.0.0.1:1',
      `connected ${livePort}`,
    ]);
    await broker.confirmChannel({ name: 'publish' }).wait();
    await broker.close();
  });
});

describe('Broker, a connection replaced while a channel is being set up', () => {
  test('opens that channel on the new connection', async () => {
    const broker = new Broker({
      url: vhost.url,
      connectionName: 'test-replaced-during-setup',
      topology: buildTopology({ role: 'producer' }),
      logger,
      reconnectInitialDelayMs: 50,
    });
    let release: () => void = () => undefined;
    const released = new Promise<void>((r) => {
      release = r;
    });
    let setups = 0;
    const channel = broker.channel({
      name: 'slow-setup',
      setup: async () => {
        setups += 1;
        await released;
      },
    });
    await broker.start();
    await broker.waitForConnect();
    await eventually('the channel set up once', () => setups === 1, { timeoutMs: 10_000 });

    const reconnected = new Promise((r) => broker.once('connected', () => r(undefined)));
    await rabbitmqctl('close_connection', await connectionPid('test-replaced-during-setup'), 'test');
    await reconnected;
    // The first setup finishes only now, on a connection that is gone.
    release();
    const opened = await Promise.race([
      channel.wait(),
      new Promise((r) => setTimeout(() => r('never opened'), 10_000)),
    ]);
    expect(opened).not.toBe('never opened');
    expect(setups).toBe(2);
    expect(broker.ready).toBe(true);
    await broker.close();
  });
});

async function connectionPid(name: string): Promise<string> {
  const out = await rabbitmqctl('list_connections', '-p', vhost.name, 'pid', 'client_properties');
  const pid = out
    .split('\n')
    .find((l) => l.includes(name))
    ?.split('\t')[0];
  if (!pid) throw new Error(`no connection named ${name}`);
  return pid;
}
