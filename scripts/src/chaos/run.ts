// One chaos run: start the private cluster, create tasks at a steady rate, inject the planned faults
// while they flow, wait until the system is quiet, then judge what the database and broker hold.

import { QUEUES } from '@task-pipeline/rabbitmq';
import postgres from 'postgres';
import { type Cluster, startCluster } from './cluster.js';
import { counterSum, startScraper } from './counters.js';
import { startCreator } from './creator.js';
import { type FaultRecord, injectFault } from './faults.js';
import { growth, longestStall } from './gaps.js';
import { type FaultKind, type PlannedFault, planFaults, SINGLE_NODE_FAULTS } from './plan.js';
import { startPoller } from './poller.js';
import { type FinalRow, judge, type Verdict } from './verdict.js';

export interface ChaosOptions {
  tasks: number;
  seed: number;
  ratePerSecond: number;
  faults: readonly FaultKind[];
  processingTimeMs: number;
  failureRate: number;
  maxRetries: number;
  retryDelaysSeconds: readonly number[];
  partitionMs: number;
  redriveBatch: number;
  /** How long to wait for every task to finish after the last create and fault. */
  quietTimeoutMs: number;
  /** Leave the private instances' folders (data, logs) for inspection. */
  keep: boolean;
  logLevel: string;
  /** A 3-node RabbitMQ cluster and two producers instead of one node and one producer. */
  cluster: boolean;
  /** How long a killed broker node stays down (cluster faults). */
  nodeDownMs: number;
}

export const DEFAULT_CHAOS_OPTIONS: ChaosOptions = {
  tasks: 50_000,
  seed: 1,
  ratePerSecond: 250,
  faults: SINGLE_NODE_FAULTS,
  processingTimeMs: 10,
  failureRate: 0.2,
  // Two short retries: a task ends in `error` with probability 0.2³ ≈ 0.8 %, enough for the redrive
  // fault to find a batch, and the retry tail stays seconds long.
  maxRetries: 2,
  retryDelaysSeconds: [1, 3],
  partitionMs: 10_000,
  redriveBatch: 50,
  quietTimeoutMs: 180_000,
  keep: false,
  logLevel: 'warn',
  cluster: false,
  nodeDownMs: 10_000,
};

export interface ChaosFigures {
  accepted: number;
  createsSent: number;
  unknownCreateOutcomes: number;
  acceptedAfterRetry: number;
  idempotentReplays: number;
  finalByStatus: Record<string, number>;
  /** Reports the producer received, by outcome (lower bounds: see counters.ts). */
  reports: Record<string, number>;
  /** Reports beyond one per task: stale + duplicate outcomes. */
  duplicateReports: number;
  /** Consumer counters, summed over replicas and restarts. */
  consumerCounters: Record<string, number>;
  samples: { ok: number; failed: number };
  /**
   * Per broker node kill: the longest time dispatch (claims published) and processing (tasks
   * finished) stood still while the node was down, at the poller's 1 s resolution.
   */
  nodeDownGaps: {
    fault: string;
    node: string;
    downMs: number;
    dispatchGapMs: number;
    processingGapMs: number;
    /** Dispatches and finished tasks while the node was down. */
    dispatchedWhileDown: number;
    finishedWhileDown: number;
  }[];
  creationMs: number;
  quietAfterMs: number;
  totalMs: number;
}

export interface Crash {
  service: string;
  pid: number;
  exitCode: number | null;
  at: number;
  logTail: string;
}

export interface ChaosReport {
  options: ChaosOptions;
  /** Services that died on their own (not by an injected fault), with the end of their log. */
  crashes: Crash[];
  plan: PlannedFault[];
  faults: FaultRecord[];
  verdict: Verdict;
  figures: ChaosFigures;
  logs: Record<string, readonly string[]>;
  dataDirs: { postgres: string; rabbitmq: readonly string[] };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Restarts a service that died on its own, as compose's restart policy would, so one crash does not
 * stall the rest of the run; every crash is recorded with the end of its log and fails the verdict.
 */
function superviseCrashes(cluster: Cluster, crashes: Crash[], log: (line: string) => void) {
  let stopped = false;
  let restarting: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    for (const slot of [...cluster.producers, ...cluster.consumers]) {
      const dead = slot.crashed();
      if (!dead || stopped) continue;
      const tail = dead.tail(12);
      crashes.push({
        service: slot.name,
        pid: dead.pid,
        exitCode: dead.exitCode() ?? null,
        at: Date.now(),
        logTail: tail,
      });
      log(
        `CRASH ${slot.name} pid ${dead.pid} exited with ${dead.exitCode()} on its own; restarting it\n${tail}`,
      );
      restarting = restarting
        .then(() => slot.start())
        .catch((error: Error) => log(`restart of ${slot.name} failed: ${error.message}`));
    }
  }, 250);
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await restarting;
    },
  };
}

async function queueDepths(cluster: Cluster): Promise<Map<string, number>> {
  const { stdout } = await cluster.rabbitCtl('-q', 'list_queues', '--no-table-headers', 'name', 'messages');
  const depths = new Map<string, number>();
  for (const line of stdout.split('\n')) {
    const [name, count] = line.trim().split(/\s+/);
    if (name && count !== undefined && /^\d+$/.test(count)) depths.set(name, Number(count));
  }
  return depths;
}

async function unfinishedCount(sql: postgres.Sql): Promise<number> {
  const [row] = await sql<{ n: number }[]>`
    select count(*)::int as n from tasks where status in ('waiting', 'sent')`;
  return row?.n ?? 0;
}

export async function runChaos(
  options: ChaosOptions,
  log: (line: string) => void = (line) => console.error(line),
): Promise<ChaosReport> {
  const t0 = Date.now();
  const seconds = () => `${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s`;
  const windowMs = (options.tasks / options.ratePerSecond) * 1000;
  const plan = planFaults({
    kinds: options.faults,
    seed: options.seed,
    windowMs,
    partitionMs: options.partitionMs,
    nodeDownMs: options.nodeDownMs,
  });
  log(
    `chaos: ${options.tasks} tasks at ${options.ratePerSecond}/s (≈${Math.round(windowMs / 1000)} s), seed ${options.seed}, ` +
      `FAILURE_RATE=${options.failureRate}, MAX_RETRIES=${options.maxRetries}, RETRY_DELAYS_SECONDS=${options.retryDelaysSeconds.join(',')}`,
  );
  for (const f of plan) log(`  plan: ${f.kind} at ${(f.atMs / 1000).toFixed(1)} s (down ${f.downMs} ms)`);
  log(
    options.cluster
      ? `${seconds()} starting private PostgreSQL, a 3-node RabbitMQ cluster, 2 producers and 2 consumers`
      : `${seconds()} starting private PostgreSQL, RabbitMQ, producer and 2 consumers`,
  );
  const cluster = await startCluster({
    processingTimeMs: options.processingTimeMs,
    failureRate: options.failureRate,
    maxRetries: options.maxRetries,
    retryDelaysSeconds: options.retryDelaysSeconds,
    leaseSeconds: 11,
    confirmTimeoutMs: 3_000,
    logLevel: options.logLevel,
    brokerCluster: options.cluster,
  });
  const nodes = cluster.brokers?.nodes ?? [cluster.rabbit];
  log(
    `${seconds()} cluster up: PostgreSQL :${cluster.pg.port}, RabbitMQ ${nodes.map((n) => `${n.nodeName} :${n.port}`).join(', ')}`,
  );

  // Ctrl-C must not leave a PostgreSQL, an Erlang node and three services behind.
  const onSignal = () => {
    log(`${seconds()} interrupted: stopping every process of the run`);
    void cluster.close({ keep: options.keep }).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const poller = startPoller(cluster.databaseUrl);
  const producerScraper = startScraper(() => {
    const targets: Record<string, string> = {};
    cluster.producers.forEach((p, i) => {
      const s = p.current();
      if (s) targets[`${p.name}:${s.pid}`] = `${cluster.producerUrls[i]}/metrics`;
    });
    return targets;
  });
  const consumerScraper = startScraper(() => {
    const targets: Record<string, string> = {};
    cluster.consumers.forEach((c, i) => {
      const s = c.current();
      if (s) targets[`${c.name}:${s.pid}`] = `${cluster.consumerHealthUrls[i]}/metrics`;
    });
    return targets;
  });
  const sql = postgres(cluster.databaseUrl, { max: 1, connect_timeout: 3, onnotice: () => undefined });
  const faults: FaultRecord[] = [];
  const killedNodes: string[] = [];
  const crashes: Crash[] = [];
  const supervisor = superviseCrashes(cluster, crashes, (line) => log(`${seconds()} ${line}`));
  let creationMs = 0;
  let quietAfterMs = 0;
  let verdictInput: Parameters<typeof judge>[0] | undefined;
  let finalRows: FinalRow[] = [];
  try {
    const runStartedAt = Date.now();
    const creator = startCreator({
      producerUrls: cluster.producerUrls,
      total: options.tasks,
      ratePerSecond: options.ratePerSecond,
      giveUpAfterMs: Math.max(120_000, options.quietTimeoutMs),
    });
    const ticker = setInterval(() => {
      const c = creator.stats();
      const s = poller.counts();
      log(
        `${seconds()} created ${c.accepted}/${options.tasks} (unknown outcomes ${c.unknownOutcomes}) | ` +
          `waiting ${s.waiting} sent ${s.sent} success ${s.success} error ${s.error} | faults ${faults.length}/${plan.length}`,
      );
    }, 5_000);
    try {
      const faultsDone = (async () => {
        for (const fault of plan) {
          const wait = runStartedAt + fault.atMs - Date.now();
          if (wait > 0) await sleep(wait);
          log(`${seconds()} inject ${fault.kind}`);
          const record = await injectFault(
            fault,
            {
              cluster,
              detector: poller.detector,
              retryDelaysSeconds: options.retryDelaysSeconds,
              shutdownGraceMs: 8_000,
              redriveBatch: options.redriveBatch,
              killedNodes,
            },
            runStartedAt,
          );
          faults.push(record);
          log(`${seconds()} ${record.happened ? 'done' : 'FAILED'} ${fault.kind}: ${record.evidence}`);
        }
      })();
      // A producer that never comes back must end the run, not stall it: creates stop after the window
      // plus the quiet timeout, and whatever is still unknown counts against the verdict.
      const watchdog = setTimeout(() => {
        log(`${seconds()} creates still running long after the window: aborting them`);
        creator.abort();
      }, windowMs + options.quietTimeoutMs);
      const created = await creator.done;
      clearTimeout(watchdog);
      creationMs = created.elapsedMs;
      log(
        `${seconds()} creates finished: ${created.accepted} accepted in ${(creationMs / 1000).toFixed(1)} s`,
      );
      await faultsDone;

      log(`${seconds()} waiting for quiet (every task terminal, queues empty)`);
      const quietStarted = Date.now();
      let depths = new Map<string, number>();
      for (;;) {
        const unfinished = await unfinishedCount(sql).catch(() => -1);
        if (unfinished === 0) {
          depths = await queueDepths(cluster).catch(() => new Map());
          const left = [...depths].filter(([q]) => q !== QUEUES.parking).reduce((n, [, d]) => n + d, 0);
          if (depths.size > 0 && left === 0) break;
        }
        if (Date.now() - quietStarted > options.quietTimeoutMs) {
          log(`${seconds()} not quiet after ${options.quietTimeoutMs / 1000} s: judging as is`);
          depths = await queueDepths(cluster).catch(() => new Map());
          break;
        }
        await sleep(1_000);
      }
      quietAfterMs = Date.now() - quietStarted;

      finalRows = (
        await sql<
          {
            id: string;
            status: string;
            attempts: number;
            error: string | null;
            idempotency_key: string | null;
          }[]
        >`
          select id, status, attempts, error, idempotency_key from tasks`
      ).map((r) => ({ ...r, idempotencyKey: r.idempotency_key }));
      await Promise.all([poller.stop(), producerScraper.stop(), consumerScraper.stop()]);
      verdictInput = {
        accepted: created.taskIdsByKey,
        unresolvedKeys: created.unresolvedKeys,
        rejectedKeys: created.rejectedKeys,
        finalRows,
        flips: poller.detector.flips(),
        planned: plan,
        faults,
        crashes: crashes.map((c) => `${c.service} pid ${c.pid} (exit ${c.exitCode})`),
        parked: depths.get(QUEUES.parking) ?? 0,
        queuedLeft: [...depths].filter(([q]) => q !== QUEUES.parking).reduce((n, [, d]) => n + d, 0),
      };
      const verdict = judge(verdictInput);
      const totals = producerScraper.accumulator.totals();
      const reports: Record<string, number> = {};
      for (const outcome of ['applied', 'stale', 'duplicate', 'conflict', 'not_found', 'invalid']) {
        reports[outcome] = counterSum(totals, 'task_reports_total', `outcome="${outcome}"`);
      }
      const consumerCounters = Object.fromEntries(
        [...consumerScraper.accumulator.totals()].filter(([series]) => !/^(process|nodejs)_/.test(series)),
      );
      const progress = poller.progress();
      const nodeDownGaps = faults.flatMap((f) => {
        if (!f.nodeDown) return [];
        const from = runStartedAt + f.nodeDown.fromMs;
        const to = runStartedAt + f.nodeDown.toMs;
        return [
          {
            fault: f.kind,
            node: f.nodeDown.node,
            downMs: f.nodeDown.toMs - f.nodeDown.fromMs,
            dispatchGapMs: longestStall(progress, 'dispatched', from, to),
            processingGapMs: longestStall(progress, 'finished', from, to),
            dispatchedWhileDown: growth(progress, 'dispatched', from, to),
            finishedWhileDown: growth(progress, 'finished', from, to),
          },
        ];
      });
      const finalByStatus: Record<string, number> = {};
      for (const r of finalRows) finalByStatus[r.status] = (finalByStatus[r.status] ?? 0) + 1;
      return {
        options,
        crashes,
        plan,
        faults,
        verdict,
        figures: {
          accepted: created.accepted,
          createsSent: created.sent,
          unknownCreateOutcomes: created.unknownOutcomes,
          acceptedAfterRetry: created.acceptedAfterRetry,
          idempotentReplays: created.replays,
          finalByStatus,
          reports,
          duplicateReports: (reports.stale ?? 0) + (reports.duplicate ?? 0),
          consumerCounters,
          samples: poller.samples(),
          nodeDownGaps,
          creationMs,
          quietAfterMs,
          totalMs: Date.now() - t0,
        },
        logs: Object.fromEntries([...cluster.producers, ...cluster.consumers].map((s) => [s.name, s.logs()])),
        dataDirs: { postgres: cluster.pg.dir, rabbitmq: nodes.map((n) => n.dir) },
      };
    } finally {
      clearInterval(ticker);
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await supervisor.stop();
    await Promise.all([poller.stop(), producerScraper.stop(), consumerScraper.stop()]).catch(() => undefined);
    await sql.end({ timeout: 5 }).catch(() => undefined);
    await cluster.close({ keep: options.keep });
  }
}
