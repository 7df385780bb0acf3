// The broker topology as data (PROTOCOL §5). Both services assert it on every (re)connect;
// definitions.json for operators is generated from the same objects. Arguments are not configurable:
// a queue declared with other arguments fails with PRECONDITION_FAILED on the next assert. The one
// exception is the quorum group size (QUORUM_INITIAL_GROUP_SIZE), which only places a new queue's
// replicas: see assertTopology.

export const PRIORITIES = ['high', 'medium', 'low'] as const;
export type Priority = (typeof PRIORITIES)[number];

export const EXCHANGES = {
  tasks: 'tasks',
  deadLetter: 'tasks.dlx',
} as const;

export const WORK_QUEUES = {
  high: 'tasks.high',
  medium: 'tasks.medium',
  low: 'tasks.low',
} as const satisfies Record<Priority, string>;
export type WorkQueue = (typeof WORK_QUEUES)[Priority];
export const ALL_WORK_QUEUES: readonly WorkQueue[] = PRIORITIES.map((p) => WORK_QUEUES[p]);

export const QUEUES = {
  deadLetter: 'tasks.dlq',
  results: 'tasks.results',
  parking: 'tasks.parking',
} as const;

/** Redeliveries (crashes, channel closes) before a work message is dead-lettered as `delivery_limit`. */
export const WORK_DELIVERY_LIMIT = 20;
/** Queues that must never drop: RabbitMQ 4 defaults quorum queues to 20, and -1 drops on 3.10. */
export const NEVER_DROP_DELIVERY_LIMIT = 1_000_000;
/** A safety net only (soft on quorum queues); the dispatcher's in-flight cap is the real brake. */
export const QUEUE_MAX_LENGTH = 1_000_000;

/** The consumer's default `RETRY_DELAYS_SECONDS`; definitions.json is generated with it. */
export const DEFAULT_RETRY_DELAYS_SECONDS: readonly number[] = [1, 5, 30];

export const retryExchangeName = (delaySeconds: number): string => `tasks.retry.${delaySeconds}`;
export const retryQueueName = retryExchangeName;

export type ExchangeType = 'direct' | 'fanout';
export interface ExchangeSpec {
  name: string;
  type: ExchangeType;
}
export interface QueueSpec {
  name: string;
  arguments: Record<string, string | number>;
  /**
   * `x-quorum-initial-group-size` when the queue is created: how many nodes hold a replica. Undefined
   * leaves it to the broker (`quorum_cluster_size`, 3 in RabbitMQ 3.10 and 4.x: every node up to 3).
   */
  initialGroupSize?: number;
}
export interface BindingSpec {
  exchange: string;
  queue: string;
  routingKey: string;
}
export interface Topology {
  exchanges: ExchangeSpec[];
  queues: QueueSpec[];
  bindings: BindingSpec[];
}

const quorum = { 'x-queue-type': 'quorum' } as const;
const safeDeadLettering = {
  'x-dead-letter-strategy': 'at-least-once',
  'x-overflow': 'reject-publish',
  'x-max-length': QUEUE_MAX_LENGTH,
} as const;

const workQueueArguments = {
  ...quorum,
  ...safeDeadLettering,
  'x-dead-letter-exchange': EXCHANGES.deadLetter,
  'x-delivery-limit': WORK_DELIVERY_LIMIT,
};

const keptQueueArguments = { ...quorum, 'x-delivery-limit': NEVER_DROP_DELIVERY_LIMIT };

export interface TopologyOptions {
  /** The producer asserts the work path and the DLQ; the consumer everything it uses. */
  role: 'producer' | 'consumer';
  /** One retry exchange/queue per distinct delay (consumer only). */
  retryDelaysSeconds?: readonly number[];
  /** QUORUM_INITIAL_GROUP_SIZE: replicas of each queue created; undefined leaves it to the broker. */
  quorumInitialGroupSize?: number;
}

export function buildTopology({
  role,
  retryDelaysSeconds = [],
  quorumInitialGroupSize,
}: TopologyOptions): Topology {
  const exchanges: ExchangeSpec[] = [
    { name: EXCHANGES.tasks, type: 'direct' },
    { name: EXCHANGES.deadLetter, type: 'fanout' },
  ];
  const queues: QueueSpec[] = [
    ...PRIORITIES.map((p) => ({ name: WORK_QUEUES[p], arguments: workQueueArguments })),
    { name: QUEUES.deadLetter, arguments: keptQueueArguments },
  ];
  const bindings: BindingSpec[] = [
    ...PRIORITIES.map((p) => ({ exchange: EXCHANGES.tasks, queue: WORK_QUEUES[p], routingKey: p })),
    { exchange: EXCHANGES.deadLetter, queue: QUEUES.deadLetter, routingKey: '' },
  ];
  if (role === 'consumer') {
    queues.push(
      { name: QUEUES.results, arguments: keptQueueArguments },
      { name: QUEUES.parking, arguments: keptQueueArguments },
    );
    for (const delay of [...new Set(retryDelaysSeconds)].sort((a, b) => a - b)) {
      const name = retryExchangeName(delay);
      exchanges.push({ name, type: 'fanout' });
      // No dead-letter routing key: an expired message keeps the routing key it was published with
      // (its priority) and so returns to its own work queue through the `tasks` exchange.
      queues.push({
        name: retryQueueName(delay),
        arguments: {
          ...quorum,
          ...safeDeadLettering,
          'x-message-ttl': delay * 1000,
          'x-dead-letter-exchange': EXCHANGES.tasks,
          'x-delivery-limit': NEVER_DROP_DELIVERY_LIMIT,
        },
      });
      bindings.push({ exchange: name, queue: retryQueueName(delay), routingKey: '' });
    }
  }
  if (quorumInitialGroupSize !== undefined) {
    for (const queue of queues) queue.initialGroupSize = quorumInitialGroupSize;
  }
  return { exchanges, queues, bindings };
}

export const INITIAL_GROUP_SIZE_ARGUMENT = 'x-quorum-initial-group-size';

/** The part of an amqplib channel that asserting a topology needs. */
export interface TopologyChannel {
  assertExchange(name: string, type: string, options: { durable: boolean }): Promise<unknown>;
  assertQueue(
    name: string,
    options: { durable: boolean; arguments: Record<string, unknown> },
  ): Promise<unknown>;
  checkQueue(name: string): Promise<unknown>;
  bindQueue(queue: string, exchange: string, routingKey: string): Promise<unknown>;
  close(): Promise<void>;
}

/** The broker's answer to a redeclare whose group size differs from the queue's. */
const GROUP_SIZE_MISMATCH = new RegExp(
  `PRECONDITION.FAILED.*inequivalent arg '${INITIAL_GROUP_SIZE_ARGUMENT}'`,
);

/**
 * Declares the topology; idempotent on every node of a cluster and whatever group size the queues
 * were created with. A queue with a group size is declared with it, which creates a missing queue
 * with that many replicas. The broker compares the group size on a redeclare like any other argument
 * (PRECONDITION_FAILED, which closes the channel), yet it only placed the replicas when the queue was
 * created: a queue that exists from before the setting is declared again without it (every other
 * argument is still compared), and one created with another value (or with one while this service
 * has none) is only checked to exist. Any other refusal is thrown, as before.
 * `reopen` gives a fresh channel after such a refusal; channels it opened are closed before returning.
 */
export async function assertTopology(
  channel: TopologyChannel,
  topology: Topology,
  reopen?: () => Promise<TopologyChannel>,
): Promise<void> {
  let current = channel;
  const opened: TopologyChannel[] = [];
  const fresh = async () => {
    if (!reopen) throw new Error('asserting a queue with a group size needs a way to reopen the channel');
    current = await reopen();
    opened.push(current);
    return current;
  };
  try {
    for (const exchange of topology.exchanges) {
      await current.assertExchange(exchange.name, exchange.type, { durable: true });
    }
    for (const queue of topology.queues) {
      const withGroupSize = (ch: TopologyChannel) =>
        ch.assertQueue(queue.name, {
          durable: true,
          arguments: { ...queue.arguments, [INITIAL_GROUP_SIZE_ARGUMENT]: queue.initialGroupSize },
        });
      const attempts: ((ch: TopologyChannel) => Promise<unknown>)[] = [
        ...(queue.initialGroupSize === undefined ? [] : [withGroupSize]),
        (ch) => ch.assertQueue(queue.name, { durable: true, arguments: queue.arguments }),
        (ch) => ch.checkQueue(queue.name),
      ];
      for (const [i, attempt] of attempts.entries()) {
        try {
          await attempt(current);
          break;
        } catch (error) {
          const last = i === attempts.length - 1;
          if (last || !GROUP_SIZE_MISMATCH.test(String((error as Error).message))) throw error;
          await fresh();
        }
      }
    }
    for (const binding of topology.bindings) {
      await current.bindQueue(binding.queue, binding.exchange, binding.routingKey);
    }
  } finally {
    for (const ch of opened) await ch.close().catch(() => undefined);
  }
}
