// Command-line options of `npm run chaos`: pure, so a typo fails before anything starts.
import { parseArgs } from 'node:util';
import {
  CLUSTER_FAULTS,
  CLUSTER_ONLY_FAULTS,
  FAULT_KINDS,
  type FaultKind,
  SINGLE_NODE_ONLY_FAULTS,
} from './plan.js';
import { type ChaosOptions, DEFAULT_CHAOS_OPTIONS } from './run.js';

export const CHAOS_USAGE = `npm run chaos -- [options]
  --tasks N            tasks to create (default ${DEFAULT_CHAOS_OPTIONS.tasks})
  --rate R             creates per second (default ${DEFAULT_CHAOS_OPTIONS.ratePerSecond})
  --seed S             integer; repeats the fault order and timing (default: random, printed)
  --cluster            a 3-node RabbitMQ cluster (every service given all three nodes) and two
                       producers; faults default to ${CLUSTER_FAULTS.join(', ')}
  --faults a,b         subset of: ${FAULT_KINDS.join(', ')}
                       (default: every one that fits the broker setup)
  --node-down-ms MS    how long a killed broker node stays down (default ${DEFAULT_CHAOS_OPTIONS.nodeDownMs})
  --processing-ms MS   PROCESSING_TIME_MS of the consumers (default ${DEFAULT_CHAOS_OPTIONS.processingTimeMs})
  --partition-ms MS    how long the producer is unreachable (default ${DEFAULT_CHAOS_OPTIONS.partitionMs})
  --quiet-timeout-s S  wait at most this long for every task to finish (default ${DEFAULT_CHAOS_OPTIONS.quietTimeoutMs / 1000})
  --keep               keep the private instances' folders (data, logs)
  --json FILE          also write the full report as JSON`;

export class UsageError extends Error {
  readonly code = 'USAGE';
}

const positiveInt = (name: string, value: string | undefined, fallback: number): number => {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0)
    throw new UsageError(`--${name} must be a positive integer, got ${value}`);
  return n;
};

export function parseChaosArgs(
  argv: readonly string[],
  randomSeed: () => number = () => Math.floor(Math.random() * 2 ** 31),
): { options: ChaosOptions; json?: string; help: boolean } {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: {
        tasks: { type: 'string' },
        rate: { type: 'string' },
        seed: { type: 'string' },
        faults: { type: 'string' },
        'processing-ms': { type: 'string' },
        'partition-ms': { type: 'string' },
        'quiet-timeout-s': { type: 'string' },
        cluster: { type: 'boolean' },
        'node-down-ms': { type: 'string' },
        keep: { type: 'boolean' },
        json: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (error) {
    throw new UsageError((error as Error).message, { cause: error });
  }
  const v = parsed.values as Record<string, string | boolean | undefined>;
  const str = (k: string) => (typeof v[k] === 'string' ? (v[k] as string) : undefined);
  const d = DEFAULT_CHAOS_OPTIONS;

  const cluster = v.cluster === true;
  let faults: readonly FaultKind[] = cluster ? CLUSTER_FAULTS : d.faults;
  const faultList = str('faults');
  if (faultList !== undefined) {
    const names = faultList
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const unknown = names.filter((n) => !(FAULT_KINDS as readonly string[]).includes(n));
    if (unknown.length > 0)
      throw new UsageError(`unknown fault ${unknown.join(', ')}; known: ${FAULT_KINDS.join(', ')}`);
    faults = names as FaultKind[];
  }
  const misfit = faults.filter((f) => (cluster ? SINGLE_NODE_ONLY_FAULTS : CLUSTER_ONLY_FAULTS).includes(f));
  if (misfit.length > 0)
    throw new UsageError(
      `${misfit.join(', ')} ${cluster ? 'needs a single broker node' : 'needs --cluster'}`,
    );
  const seedText = str('seed');
  let seed: number;
  if (seedText === undefined) seed = randomSeed();
  else {
    seed = Number(seedText);
    if (!Number.isInteger(seed)) throw new UsageError(`--seed must be an integer, got ${seedText}`);
  }
  const json = str('json');
  return {
    help: v.help === true,
    ...(json !== undefined ? { json } : {}),
    options: {
      ...d,
      tasks: positiveInt('tasks', str('tasks'), d.tasks),
      ratePerSecond: positiveInt('rate', str('rate'), d.ratePerSecond),
      seed,
      faults,
      processingTimeMs:
        str('processing-ms') === undefined ? d.processingTimeMs : Number(str('processing-ms')),
      partitionMs: positiveInt('partition-ms', str('partition-ms'), d.partitionMs),
      quietTimeoutMs: positiveInt('quiet-timeout-s', str('quiet-timeout-s'), d.quietTimeoutMs / 1000) * 1000,
      keep: v.keep === true,
      cluster,
      nodeDownMs: positiveInt('node-down-ms', str('node-down-ms'), d.nodeDownMs),
    },
  };
}
