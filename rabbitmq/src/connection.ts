// The broker connection lifecycle in one place: connect to one node of the broker list, assert the
// topology before anything else runs on the connection, and when the connection is lost try the next
// node in rotation with backoff (amqplib's own recovery only ever retries the one URL it was given).
// Channels are reopened (with their consumers) on every new connection, and also when the *channel*
// alone closes (a 406, a 404, the broker's consumer timeout) while the connection lives; readiness
// reflects them.
import { EventEmitter } from 'node:events';
import type { Writable } from 'node:stream';
import { backoffMs } from '@task-pipeline/common';
import amqp, { type Channel, type ChannelModel, type ConfirmChannel } from 'amqplib';
import { brokerLabel, firstBrokerIndex, nextBroker, parseBrokerUrls } from './brokers.js';
import { RECONNECT_BACKOFF } from './contract.js';
import { assertTopology, type Topology } from './topology.js';

export interface BrokerLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface BrokerOptions {
  /** One broker URL, or the comma-separated list of a cluster's nodes (`AMQP_URL`, see parseBrokerUrls). */
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
  /** A node that neither accepts nor refuses (a partition) is given up after this long. */
  connectTimeoutMs?: number;
  /** Picks the first node and the jitter (tests). */
  random?: () => number;
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
  readonly #urls: string[];
  readonly #slots: Slot[] = [];
  #started = false;
  /** The node connected to, or tried next. */
  #index: number;
  /** Consecutive failures since the last connection (a loss counts as the first). */
  #failures = 0;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #model: ChannelModel | undefined;
  /** A connection being opened or set up, closed with the broker. */
  #pending: ChannelModel | undefined;
  /** The connection's socket, dropped when the broker does not answer a close. */
  #stream: Writable | undefined;
  #closing = false;
  #blocked = false;
  #firstConnect: { promise: Promise<void>; resolve: () => void; reject: (err: Error) => void };

  constructor(options: BrokerOptions) {
    super();
    this.#options = {
      reconnectInitialDelayMs: RECONNECT_BACKOFF.initialMs,
      reconnectMaxDelayMs: RECONNECT_BACKOFF.maxMs,
      closeTimeoutMs: 2_000,
      connectTimeoutMs: 10_000,
      random: Math.random,
      ...options,
    };
    this.#urls = parseBrokerUrls(options.url);
    this.#index = firstBrokerIndex(this.#urls.length, this.#options.random);
    let resolve!: () => void;
    let reject!: (err: Error) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // Only tests and scripts wait for it; a close before the first connect must not go unhandled.
    promise.catch(() => undefined);
    this.#firstConnect = { promise, resolve, reject };
  }

  get connected(): boolean {
    return this.#model !== undefined;
  }

  /** `host:port` of the node connected to, undefined while disconnected. */
  get node(): string | undefined {
    return this.#model ? brokerLabel(this.#urls[this.#index] as string) : undefined;
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
    if (this.#started) return;
    this.#started = true;
    // Deferred so that listeners attached right after start() see the first 'connected'.
    setImmediate(() => void this.#connect());
  }

  async #connect(): Promise<void> {
    if (this.#closing) return;
    const { logger, connectionName } = this.#options;
    const url = this.#urls[this.#index] as string;
    const node = brokerLabel(url);
    let model: ChannelModel | undefined;
    try {
      model = await amqp.connect(url, {
        clientProperties: { connection_name: connectionName },
        // amqplib leaves Nagle's algorithm on: a small frame written while an earlier one is
        // unacknowledged would wait for the broker's (possibly delayed) ACK. Frames are already
        // coalesced per tick.
        noDelay: true,
        timeout: this.#options.connectTimeoutMs,
      });
      this.#pending = model;
      // Known before the setup, so a close that finds the broker silent can drop this socket too.
      this.#stream = (model as ChannelModel & { connection: { stream: Writable } }).connection.stream;
      // Without an 'error' listener a connection error would crash the process; 'close' follows it.
      model.on('error', (err: Error) => logger.warn({ err, node }, 'RabbitMQ connection error'));
      // The topology exists before any channel of ours publishes or consumes.
      const opened = model;
      const topologyChannel = async () => {
        const ch = await opened.createChannel();
        // The refusal also rejects the declare that caused it; without a listener amqplib would take
        // the channel's error for the connection's and close the connection.
        ch.on('error', () => undefined);
        return ch;
      };
      const channel = await topologyChannel();
      try {
        await assertTopology(channel, this.#options.topology, topologyChannel);
      } finally {
        await channel.close().catch(() => undefined);
      }
    } catch (err) {
      this.#pending = undefined;
      await model?.close().catch(() => undefined);
      if (this.#closing) return;
      logger.warn({ err, node, connection: connectionName }, 'RabbitMQ connection attempt failed');
      this.#failures += 1;
      this.#scheduleReconnect();
      return;
    }
    this.#pending = undefined;
    if (this.#closing) {
      await model.close().catch(() => undefined);
      return;
    }
    this.#attach(model, node);
  }

  #attach(model: ChannelModel, node: string): void {
    const { logger, connectionName } = this.#options;
    this.#model = model;
    this.#failures = 0;
    coalesceWrites((model as ChannelModel & { connection: { stream: Writable } }).connection.stream);
    model.on('close', (err?: Error) => {
      if (this.#model !== model) return;
      this.#model = undefined;
      // A new connection starts unblocked; whoever paused for the block may resume (and meet it again).
      if (this.#blocked) {
        this.#blocked = false;
        this.emit('unblocked');
      }
      for (const slot of this.#slots) this.#lose(slot);
      if (this.#closing) return;
      const error = err ?? new Error('connection closed by the broker');
      logger.warn(
        { err: error, node, connection: connectionName },
        'lost the RabbitMQ connection; reconnecting',
      );
      this.emit('disconnected', error);
      this.#failures = 1;
      this.#scheduleReconnect();
    });
    model.on('blocked', (reason: string) => {
      this.#blocked = true;
      logger.warn({ reason, node }, 'RabbitMQ blocked publishing');
      this.emit('blocked', reason);
    });
    model.on('unblocked', () => {
      this.#blocked = false;
      logger.info({ node }, 'RabbitMQ unblocked publishing');
      this.emit('unblocked');
    });
    logger.info({ connection: connectionName, node }, 'connected to RabbitMQ');
    this.#firstConnect.resolve();
    this.emit('connected');
    for (const slot of this.#slots) {
      slot.failures = 0;
      void this.#open(slot);
    }
  }

  #scheduleReconnect(): void {
    if (this.#closing || this.#reconnectTimer) return;
    const { reconnectInitialDelayMs, reconnectMaxDelayMs, random } = this.#options;
    const step = nextBroker(
      this.#index,
      this.#failures,
      this.#urls.length,
      { initialMs: reconnectInitialDelayMs, maxMs: reconnectMaxDelayMs },
      random,
    );
    this.#index = step.index;
    this.#options.logger.debug(
      { node: brokerLabel(this.#urls[step.index] as string), delay: step.delayMs, failures: this.#failures },
      'RabbitMQ reconnect scheduled',
    );
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      void this.#connect();
    }, step.delayMs);
  }

  /** Resolves once connected for the first time (tests and scripts; services do not wait). */
  async waitForConnect(): Promise<void> {
    if (!this.#started) throw new Error('Broker.start() was not called');
    await this.#firstConnect.promise;
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
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    this.#firstConnect.reject(closed);
    const model = this.#model ?? this.#pending;
    const graceful = (async () => {
      for (const slot of this.#slots) {
        clearTimeout(slot.timer);
        for (const waiter of slot.waiters.splice(0)) waiter.reject(closed);
        const channel = slot.channel;
        slot.channel = undefined;
        await channel?.close().catch(() => undefined);
      }
      await model?.close().catch(() => undefined);
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
      // #closing keeps the dropped socket from being reconnected. It is destroyed with an error:
      // amqplib watches its 'error' and 'end', not 'close'. A close still waiting for its answer may
      // never settle, so it is left behind.
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

export function createBroker(options: BrokerOptions): Broker {
  return new Broker(options);
}
