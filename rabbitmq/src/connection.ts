// The broker connection lifecycle in one place. amqplib's recovery reconnects a lost *connection*
// and re-asserts the topology before anything else runs on it; this module adds what amqplib does
// not: channels that are reopened (with their consumers) when the *channel* alone closes (a 406, a
// 404, the broker's consumer timeout) while the connection lives, and readiness that reflects them.
import { EventEmitter } from 'node:events';
import type { Writable } from 'node:stream';
import { backoffMs } from '@task-pipeline/common';
import amqp, { type Channel, type ChannelModel, type ConfirmChannel } from 'amqplib';
import { RECONNECT_BACKOFF } from './contract.js';
import { assertTopology, type Topology } from './topology.js';

export interface BrokerLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface BrokerOptions {
  url: string;
  /** Shown by `rabbitmqctl list_connections name client_properties` and in the management UI. */
  connectionName: string;
  topology: Topology;
  logger: BrokerLogger;
  reconnectInitialDelayMs?: number;
  reconnectMaxDelayMs?: number;
  /**
   * How long close() waits for the broker to answer before it drops the socket: a broker cut off by a
   * partition never answers, and a shutdown must end within its grace period all the same.
   */
  closeTimeoutMs?: number;
}

export interface ChannelOptions<C> {
  name: string;
  /** Runs on every fresh channel before it is handed out: prefetch, consumers. A throw reopens it later. */
  setup?: (channel: C) => Promise<void>;
}

export interface ManagedChannel<C> {
  readonly name: string;
  /** The live channel, or undefined while it is (re)opening. */
  current(): C | undefined;
  /** The live channel, waiting through reconnects; rejects when the broker is closed or `signal` aborts. */
  wait(signal?: AbortSignal): Promise<C>;
}

interface Slot {
  name: string;
  confirm: boolean;
  setup: ((channel: Channel) => Promise<void>) | undefined;
  channel: Channel | undefined;
  opening: boolean;
  failures: number;
  timer: NodeJS.Timeout | undefined;
  waiters: { resolve: (ch: Channel) => void; reject: (err: Error) => void }[];
}

export interface BrokerEvents {
  connected: [];
  disconnected: [Error];
  blocked: [string];
  unblocked: [];
  'channel-open': [string];
  'channel-closed': [string];
}

export class BrokerClosedError extends Error {
  readonly code = 'BROKER_CLOSED';
}

export class Broker extends EventEmitter<BrokerEvents> {
  readonly #options: Required<BrokerOptions>;
  readonly #slots: Slot[] = [];
  #connection: Awaited<ReturnType<typeof connectWithRecovery>> | undefined;
  #model: ChannelModel | undefined;
  /** The connection's socket, dropped when the broker does not answer a close. */
  #stream: Writable | undefined;
  #closing = false;
  #blocked = false;

  constructor(options: BrokerOptions) {
    super();
    this.#options = {
      reconnectInitialDelayMs: RECONNECT_BACKOFF.initialMs,
      reconnectMaxDelayMs: RECONNECT_BACKOFF.maxMs,
      closeTimeoutMs: 2_000,
      ...options,
    };
  }

  get connected(): boolean {
    return this.#model !== undefined;
  }

  /** True while the broker has sent `connection.blocked` (a resource alarm): publishes would stall. */
  get blocked(): boolean {
    return this.#blocked;
  }

  /** True when connected and every managed channel is open (consumers attached). */
  get ready(): boolean {
    return this.connected && this.#slots.every((slot) => slot.channel !== undefined);
  }

  channelStates(): Record<string, boolean> {
    return Object.fromEntries(this.#slots.map((slot) => [slot.name, slot.channel !== undefined]));
  }

  /** Starts connecting in the background: a broker that is down delays nothing else. */
  async start(): Promise<void> {
    const { logger } = this.#options;
    const connection = await connectWithRecovery(this.#options);
    this.#connection = connection;
    connection.on('connect', (model: ChannelModel) => {
      this.#model = model;
      this.#stream = (model as ChannelModel & { connection: { stream: Writable } }).connection.stream;
      coalesceWrites(this.#stream);
      logger.info({ connection: this.#options.connectionName }, 'connected to RabbitMQ');
      this.emit('connected');
      for (const slot of this.#slots) {
        slot.failures = 0;
        void this.#open(slot);
      }
    });
    connection.on('disconnect', (err: Error) => {
      this.#model = undefined;
      // A new connection starts unblocked; whoever paused for the block may resume (and meet it again).
      if (this.#blocked) {
        this.#blocked = false;
        this.emit('unblocked');
      }
      for (const slot of this.#slots) this.#lose(slot);
      logger.warn({ err }, 'lost the RabbitMQ connection; reconnecting');
      this.emit('disconnected', err);
    });
    connection.on('connect-failed', (err: Error) =>
      logger.warn({ err }, 'RabbitMQ connection attempt failed'),
    );
    connection.on('reconnect-scheduled', ({ attempt, delay }: { attempt: number; delay: number }) =>
      logger.debug({ attempt, delay }, 'RabbitMQ reconnect scheduled'),
    );
    connection.on('error', (err: Error) => logger.warn({ err }, 'RabbitMQ connection error'));
    connection.on('blocked', (reason: string) => {
      this.#blocked = true;
      logger.warn({ reason }, 'RabbitMQ blocked publishing');
      this.emit('blocked', reason);
    });
    connection.on('unblocked', () => {
      this.#blocked = false;
      logger.info({}, 'RabbitMQ unblocked publishing');
      this.emit('unblocked');
    });
  }

  /** Resolves once connected for the first time (tests and scripts; services do not wait). */
  async waitForConnect(): Promise<void> {
    if (!this.#connection) throw new Error('Broker.start() was not called');
    await this.#connection.waitForConnect();
  }

  confirmChannel(options: ChannelOptions<ConfirmChannel>): ManagedChannel<ConfirmChannel> {
    return this.#register(
      options as unknown as ChannelOptions<Channel>,
      true,
    ) as ManagedChannel<ConfirmChannel>;
  }

  channel(options: ChannelOptions<Channel>): ManagedChannel<Channel> {
    return this.#register(options, false);
  }

  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    const closed = new BrokerClosedError('broker connection closed');
    const graceful = (async () => {
      for (const slot of this.#slots) {
        clearTimeout(slot.timer);
        for (const waiter of slot.waiters.splice(0)) waiter.reject(closed);
        const channel = slot.channel;
        slot.channel = undefined;
        await channel?.close().catch(() => undefined);
      }
      await this.#connection?.close().catch(() => undefined);
    })();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), this.#options.closeTimeoutMs);
    });
    if ((await Promise.race([graceful, late])) === 'late') {
      this.#options.logger.warn(
        { closeTimeoutMs: this.#options.closeTimeoutMs },
        'RabbitMQ did not answer the close; dropping the connection',
      );
      // Recovery first, or the dropped socket would be reconnected; then the socket, with an error:
      // amqplib watches its 'error' and 'end', not 'close'. A close still waiting for its answer may
      // never settle, so it is left behind.
      void this.#connection?.close().catch(() => undefined);
      this.#stream?.destroy(new Error(`no answer to the close within ${this.#options.closeTimeoutMs} ms`));
    }
    clearTimeout(timer);
    this.#model = undefined;
  }

  #register(options: ChannelOptions<Channel>, confirm: boolean): ManagedChannel<Channel> {
    const slot: Slot = {
      name: options.name,
      confirm,
      setup: options.setup,
      channel: undefined,
      opening: false,
      failures: 0,
      timer: undefined,
      waiters: [],
    };
    this.#slots.push(slot);
    if (this.#model) void this.#open(slot);
    return {
      name: slot.name,
      current: () => slot.channel,
      wait: (signal) => this.#wait(slot, signal),
    };
  }

  #wait(slot: Slot, signal?: AbortSignal): Promise<Channel> {
    if (slot.channel) return Promise.resolve(slot.channel);
    if (this.#closing) return Promise.reject(new BrokerClosedError('broker connection closed'));
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: (ch: Channel) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(ch);
        },
        reject: (err: Error) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      const onAbort = () => {
        slot.waiters.splice(slot.waiters.indexOf(waiter), 1);
        reject(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      slot.waiters.push(waiter);
    });
  }

  async #open(slot: Slot): Promise<void> {
    const model = this.#model;
    if (!model || this.#closing || slot.opening || slot.channel) return;
    slot.opening = true;
    const { logger } = this.#options;
    let channel: Channel | undefined;
    // Set when the connection was replaced while this open ran: the 'connect' handler skipped this
    // slot (it was still opening), so nobody else would open it on the new connection.
    let reopenOnNewConnection = false;
    try {
      channel = slot.confirm ? await model.createConfirmChannel() : await model.createChannel();
      const opened = channel;
      // Without an 'error' listener a channel error (406, 404) would crash the process.
      opened.on('error', (err: Error) => logger.warn({ err, channel: slot.name }, 'RabbitMQ channel error'));
      opened.on('close', () => {
        if (slot.channel !== opened) return;
        this.#lose(slot);
        if (!this.#closing && this.#model === model) this.#scheduleReopen(slot);
      });
      await slot.setup?.(opened);
      if (this.#closing || this.#model !== model) {
        await opened.close().catch(() => undefined);
        reopenOnNewConnection = !this.#closing && this.#model !== undefined;
        return;
      }
      slot.channel = opened;
      slot.failures = 0;
      for (const waiter of slot.waiters.splice(0)) waiter.resolve(opened);
      logger.debug({ channel: slot.name }, 'RabbitMQ channel open');
      this.emit('channel-open', slot.name);
    } catch (err) {
      logger.warn({ err, channel: slot.name }, 'could not open RabbitMQ channel; retrying');
      await channel?.close().catch(() => undefined);
      this.#scheduleReopen(slot);
    } finally {
      slot.opening = false;
      if (reopenOnNewConnection) void this.#open(slot);
    }
  }

  #lose(slot: Slot): void {
    if (!slot.channel) return;
    slot.channel = undefined;
    this.#options.logger.warn({ channel: slot.name }, 'RabbitMQ channel closed');
    this.emit('channel-closed', slot.name);
  }

  #scheduleReopen(slot: Slot): void {
    if (slot.timer || this.#closing) return;
    const { reconnectInitialDelayMs, reconnectMaxDelayMs } = this.#options;
    slot.failures += 1;
    const delay = backoffMs(slot.failures, {
      initialMs: reconnectInitialDelayMs,
      maxMs: reconnectMaxDelayMs,
    });
    slot.timer = setTimeout(() => {
      slot.timer = undefined;
      void this.#open(slot);
    }, delay);
    slot.timer.unref();
  }
}

/**
 * amqplib hands every frame to the socket with a write() of its own, one system call each: a batch of
 * 500 publishes, or as many acks, cost 500 calls. Corked until the end of the current tick, the socket
 * sends what one turn of the event loop wrote as one writev; nothing waits longer than that turn.
 */
export function coalesceWrites(stream: Writable): void {
  const write = stream.write;
  let corked = false;
  const uncork = () => {
    corked = false;
    stream.uncork();
  };
  stream.write = function (this: Writable, ...args: Parameters<Writable['write']>) {
    if (!corked) {
      corked = true;
      this.cork();
      process.nextTick(uncork);
    }
    return write.apply(this, args);
  } as Writable['write'];
}

function connectWithRecovery(options: Required<BrokerOptions>) {
  return amqp.connect(options.url, {
    clientProperties: { connection_name: options.connectionName },
    // amqplib leaves Nagle's algorithm on: a small frame written while an earlier one is unacknowledged
    // would wait for the broker's (possibly delayed) ACK. Frames are already coalesced per tick.
    noDelay: true,
    recovery: {
      waitForConnect: false,
      initialDelay: options.reconnectInitialDelayMs,
      maxDelay: options.reconnectMaxDelayMs,
      maxRetries: Number.POSITIVE_INFINITY,
      // Runs on every new connection before it is handed out: the topology exists before any
      // channel of ours publishes or consumes.
      setup: async (model: ChannelModel) => {
        const channel = await model.createChannel();
        try {
          await assertTopology(channel, options.topology);
        } finally {
          await channel.close().catch(() => undefined);
        }
      },
    },
  });
}

export function createBroker(options: BrokerOptions): Broker {
  return new Broker(options);
}
