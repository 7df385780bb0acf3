// Which faults happen when: pure, from the seed, so `--seed S` repeats a run's fault timing.

import { seededRandom } from './random.js';

export const FAULT_KINDS = [
  'kill-producer',
  'kill-consumer',
  'term-consumer',
  'restart-rabbitmq',
  'restart-postgres',
  'partition-producer',
  'redrive-errors',
  'kill-rabbitmq-leader',
  'kill-rabbitmq-node',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** The faults of a run on one broker node (the default). */
export const SINGLE_NODE_FAULTS: readonly FaultKind[] = FAULT_KINDS.filter(
  (k) => k !== 'kill-rabbitmq-leader' && k !== 'kill-rabbitmq-node',
);
/** The faults of a run on the 3-node cluster (`--cluster`): a node down at a time, then a producer. */
export const CLUSTER_FAULTS: readonly FaultKind[] = [
  'kill-rabbitmq-leader',
  'kill-rabbitmq-node',
  'kill-producer',
];
/** Faults that need a cluster, and the one that needs a single node (it restarts "the" node). */
export const CLUSTER_ONLY_FAULTS: readonly FaultKind[] = ['kill-rabbitmq-leader', 'kill-rabbitmq-node'];
export const SINGLE_NODE_ONLY_FAULTS: readonly FaultKind[] = ['restart-rabbitmq'];

export const FAULT_DESCRIPTIONS: Record<FaultKind, string> = {
  'kill-producer': 'SIGKILL the producer, restart it',
  'kill-consumer': 'SIGKILL consumer A, restart it',
  'term-consumer': 'SIGTERM consumer B (graceful), restart it',
  'restart-rabbitmq': 'stop and start the RabbitMQ node',
  'restart-postgres': 'stop (fast) and start PostgreSQL',
  'partition-producer': 'producer unreachable to the consumers (TCP blackhole)',
  'redrive-errors': 'redrive error tasks while stale copies of their messages are queued',
  'kill-rabbitmq-leader': 'SIGKILL the broker node that leads most queues, start it again',
  'kill-rabbitmq-node':
    'SIGKILL the broker node holding most service connections (not the one killed last), start it again',
};

export interface PlannedFault {
  kind: FaultKind;
  /** When to inject it, in ms after the first create. */
  atMs: number;
  /** How long the service stays down (kills, SIGTERM) or the partition lasts. */
  downMs: number;
}

export interface PlanInput {
  kinds: readonly FaultKind[];
  seed: number;
  /** How long tasks are being created: faults land inside this window. */
  windowMs: number;
  partitionMs: number;
  /** How long a killed broker node stays down before it is started again. */
  nodeDownMs?: number;
}

/**
 * Spreads the faults over 10–85 % of the creation window in a seeded order, one per slot with a
 * seeded offset inside it. Redrive needs `error` tasks to exist, so it never takes the first half.
 */
export function planFaults({
  kinds,
  seed,
  windowMs,
  partitionMs,
  nodeDownMs = 10_000,
}: PlanInput): PlannedFault[] {
  const random = seededRandom(seed);
  const unique = [...new Set(kinds)];
  const others = random.shuffle(unique.filter((k) => k !== 'redrive-errors'));
  // The node that leads most queues goes first; the connected node is then another one.
  const leader = others.indexOf('kill-rabbitmq-leader');
  const node = others.indexOf('kill-rabbitmq-node');
  if (leader > node && node >= 0)
    [others[leader], others[node]] = [others[node] as (typeof others)[number], 'kill-rabbitmq-leader'];
  const order: FaultKind[] = others;
  if (unique.includes('redrive-errors')) {
    const earliest = Math.ceil((others.length + 1) / 2);
    order.splice(random.int(earliest, others.length), 0, 'redrive-errors');
  }
  const start = windowMs * 0.1;
  const slot = order.length > 0 ? (windowMs * 0.75) / order.length : 0;
  return order.map((kind, i) => ({
    kind,
    atMs: Math.round(start + slot * i + random.next() * slot * 0.5),
    downMs:
      kind === 'partition-producer'
        ? partitionMs
        : kind === 'kill-rabbitmq-leader' || kind === 'kill-rabbitmq-node'
          ? nodeDownMs
          : random.int(500, 3_000),
  }));
}
