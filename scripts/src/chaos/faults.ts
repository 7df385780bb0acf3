// The fault injectors. Each one returns evidence that the fault really happened (a pid that died and
// a new one that answers, a partition that actually held traffic, ...): a planned fault that left no
// trace fails the run, because a chaos run that injected nothing proves nothing.
import {
  confirmedPublisher,
  HEADERS,
  JSON_CONTENT_TYPE,
  type Priority,
  parseBrokerUrls,
  retryExchangeName,
  type WorkMessage,
} from '@task-pipeline/rabbitmq';
import amqp from 'amqplib';
import postgres from 'postgres';
import { request } from 'undici';
import type { Cluster, ManagedService } from './cluster.js';
import type { FlipDetector } from './flip-detector.js';
import type { FaultKind, PlannedFault } from './plan.js';

export interface FaultRecord {
  kind: FaultKind;
  plannedAtMs: number;
  startedAtMs: number;
  /** From injection until the system was whole again. */
  durationMs: number;
  happened: boolean;
  evidence: string;
  /** SIGTERM only: whether the process exited 0 within its grace period. */
  graceful?: boolean;
  /** redrive only: the tasks redriven and the attempt their stale copies carry. */
  redriven?: ReadonlyMap<string, number>;
  /** broker node kills: which node, and from when until it ran again (ms since the run started). */
  nodeDown?: { node: string; fromMs: number; toMs: number; queuesLed: number };
}

export interface FaultContext {
  cluster: Cluster;
  detector: FlipDetector;
  retryDelaysSeconds: readonly number[];
  /** Consumers' grace period: a SIGTERM gets this plus slack before it counts as not graceful. */
  shutdownGraceMs: number;
  redriveBatch: number;
  /** Node names killed so far, latest last: "another node" is one that was not killed last. */
  killedNodes: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function killAndRestart(
  service: ManagedService,
  signal: 'SIGKILL' | 'SIGTERM',
  downMs: number,
  graceMs: number,
): Promise<Pick<FaultRecord, 'happened' | 'evidence' | 'graceful'>> {
  const { pid, exitCode } = await service.signal(signal, graceMs);
  await sleep(downMs);
  const next = await service.start();
  const died = signal === 'SIGKILL' ? exitCode === null : exitCode !== undefined;
  const how = exitCode === null ? 'killed by a signal' : `exit code ${exitCode}`;
  return {
    happened: died && next.pid !== pid,
    evidence: `${service.name} pid ${pid} ${signal} → ${how}; down ${downMs} ms; pid ${next.pid} ready`,
    ...(signal === 'SIGTERM' ? { graceful: exitCode === 0 } : {}),
  };
}

async function restartServer(
  name: string,
  server: { pid(): number | undefined; restart(): Promise<void> },
): Promise<Pick<FaultRecord, 'happened' | 'evidence'>> {
  const before = server.pid();
  const started = Date.now();
  await server.restart();
  const after = server.pid();
  return {
    happened: before !== undefined && after !== undefined && before !== after,
    evidence: `${name} pid ${before} → ${after}, back in ${Date.now() - started} ms`,
  };
}

async function partition(
  ctx: FaultContext,
  downMs: number,
): Promise<Pick<FaultRecord, 'happened' | 'evidence'>> {
  ctx.cluster.proxy.pause();
  await sleep(downMs);
  const held = ctx.cluster.proxy.resume();
  return {
    happened: held.connectionsHeld + held.bytesHeld > 0,
    evidence: `blackholed ${downMs} ms: held ${held.connectionsHeld} new connections, ${held.bytesHeld} bytes`,
  };
}

/**
 * SIGKILLs a broker node of the cluster: the one leading most quorum queues (their leadership must
 * move), or the one holding most of the services' connections (they must fail over), other than the
 * node killed last. The node stays down `downMs`, then starts and rejoins the cluster by itself.
 */
async function killNode(
  ctx: FaultContext,
  which: 'leader' | 'connected',
  downMs: number,
  runStartedAt: number,
): Promise<Pick<FaultRecord, 'happened' | 'evidence' | 'nodeDown'>> {
  const brokers = ctx.cluster.brokers;
  if (!brokers) return { happened: false, evidence: 'no broker cluster (run with --cluster)' };
  const leaders = await brokers.leaders('/');
  const led = new Map<string, number>();
  for (const node of leaders.values()) led.set(node, (led.get(node) ?? 0) + 1);
  const connections = new Map<string, number>();
  // A connection's pid names its node: <tpc-…-1@localhost.1796580274.25939.1>.
  const { stdout } = await brokers.ctl('list_connections', '--quiet', '--no-table-headers', 'pid');
  for (const line of stdout.split('\n')) {
    const node = /^<(.+@[^.]+)\.[\d.]+>$/.exec(line.trim())?.[1];
    if (node) connections.set(node, (connections.get(node) ?? 0) + 1);
  }
  const score = which === 'leader' ? led : connections;
  const last = ctx.killedNodes.at(-1);
  const target = brokers.nodes
    .filter((n) => n.pid() !== undefined && n.nodeName !== last)
    .sort((a, b) => (score.get(b.nodeName) ?? 0) - (score.get(a.nodeName) ?? 0))[0];
  if (!target) return { happened: false, evidence: 'no running node to kill' };
  const pid = target.pid();
  const fromMs = Date.now() - runStartedAt;
  await target.kill();
  ctx.killedNodes.push(target.nodeName);
  await sleep(downMs);
  const started = Date.now();
  await target.start();
  const toMs = Date.now() - runStartedAt;
  const queuesLed = led.get(target.nodeName) ?? 0;
  const held = connections.get(target.nodeName) ?? 0;
  const total = [...connections.values()].reduce((a, b) => a + b, 0);
  return {
    happened: pid !== undefined && target.pid() !== undefined && target.pid() !== pid,
    evidence:
      `${target.nodeName} (:${target.port}, led ${queuesLed}/${leaders.size} queues, held ${held}/${total} connections) pid ${pid} SIGKILL; ` +
      `down ${downMs} ms, started again in ${Date.now() - started} ms (pid ${target.pid()})`,
    nodeDown: { node: target.nodeName, fromMs, toMs, queuesLed },
  };
}

/** Connects to the first broker of the list that answers (a node of the cluster may be down). */
async function connectAny(amqpUrl: string) {
  let failure: unknown;
  for (const url of parseBrokerUrls(amqpUrl)) {
    try {
      return await amqp.connect(url);
    } catch (error) {
      failure = error;
    }
  }
  throw failure;
}

interface ErrorTask {
  id: string;
  text: string;
  priority: Priority;
  created_at: Date;
  attempts: number;
}

/**
 * Takes a batch of `error` tasks, puts a stale copy of each one's last work message (its old attempt)
 * into the longest retry queue — so the copies are certainly still queued when the redrive lands and
 * come back to the work queues afterwards — then redrives them through the API.
 */
async function redriveErrors(
  ctx: FaultContext,
): Promise<Pick<FaultRecord, 'happened' | 'evidence' | 'redriven'>> {
  const sql = postgres(ctx.cluster.databaseUrl, { max: 1, onnotice: () => undefined });
  let tasks: ErrorTask[] = [];
  try {
    const deadline = Date.now() + 120_000;
    while (tasks.length === 0 && Date.now() < deadline) {
      tasks = await sql<ErrorTask[]>`
        select id, text, priority, created_at, attempts from tasks
        where status = 'error' order by random() limit ${ctx.redriveBatch}`;
      if (tasks.length === 0) await sleep(1_000);
    }
  } finally {
    await sql.end({ timeout: 5 });
  }
  if (tasks.length === 0) return { happened: false, evidence: 'no error task appeared within 120 s' };

  const delay = Math.max(...ctx.retryDelaysSeconds);
  const connection = await connectAny(ctx.cluster.amqpUrl);
  const published = Date.now();
  try {
    const channel = await connection.createConfirmChannel();
    const publisher = confirmedPublisher(channel, 10_000);
    await Promise.all(
      tasks.map((t) => {
        const message: WorkMessage = {
          taskId: t.id,
          text: t.text,
          priority: t.priority,
          createdAt: t.created_at.toISOString(),
          attempt: t.attempts,
        };
        return publisher.publish(retryExchangeName(delay), t.priority, Buffer.from(JSON.stringify(message)), {
          messageId: t.id,
          persistent: true,
          mandatory: true,
          contentType: JSON_CONTENT_TYPE,
          headers: { [HEADERS.retryCount]: 1, [HEADERS.error]: 'chaos: stale copy queued before a redrive' },
        });
      }),
    );
  } finally {
    await connection.close().catch(() => undefined);
  }

  // All at once: one by one, a loaded producer can take longer than the copies stay in the retry queue.
  const redriven = new Map<string, number>();
  const refused: string[] = [];
  const heldUntil = published + delay * 1000;
  let landedWhileHeld = 0;
  for (const t of tasks) ctx.detector.allowRedrive(t.id);
  const redriveUrl = (id: string) =>
    `${ctx.cluster.producerUrl}/api/v1/redrive-task?taskId=${encodeURIComponent(id)}`;
  const auth = { authorization: `Bearer ${ctx.cluster.token}` };
  const attemptsOf = async (id: string): Promise<number> => {
    const res = await request(
      `${ctx.cluster.producerUrl}/api/v1/get-task-data?taskId=${encodeURIComponent(id)}`,
    );
    const body = (await res.body.json().catch(() => ({}))) as { attempts?: number };
    return body.attempts ?? -1;
  };
  // Another fault (a producer kill) may overlap: a 503 or no answer is retried until the producer is
  // back, and a 409 after an unanswered try is checked against the task, whose attempts tell whether
  // that try landed before the answer was lost.
  const deadline = Date.now() + 90_000;
  await Promise.all(
    tasks.map(async (t) => {
      let unanswered = false;
      while (true) {
        const res = await request(redriveUrl(t.id), { method: 'POST', headers: auth }).catch(() => undefined);
        await res?.body.dump();
        const landed =
          res?.statusCode === 200 ||
          (res?.statusCode === 409 && unanswered && (await attemptsOf(t.id)) > t.attempts);
        if (landed) {
          redriven.set(t.id, t.attempts);
          if (Date.now() < heldUntil) landedWhileHeld += 1;
          return;
        }
        if ((res === undefined || res.statusCode >= 500) && Date.now() < deadline) {
          unanswered = true;
          await sleep(500);
          continue;
        }
        refused.push(`${t.id}: ${res?.statusCode ?? 'no answer'}`);
        return;
      }
    }),
  );
  return {
    // Every redrive must land, and at least one while its stale copy was certainly still queued
    // (the others race the copy's return to the work queue: a race the fencing must win too).
    happened: redriven.size === tasks.length && landedWhileHeld > 0,
    evidence:
      `${tasks.length} stale copies into ${retryExchangeName(delay)} (${delay} s), ${redriven.size} redriven, ` +
      `${landedWhileHeld} while their copy was still held` +
      (refused.length > 0 ? `; refused: ${refused.slice(0, 5).join(', ')}` : ''),
    redriven,
  };
}

export async function injectFault(
  fault: PlannedFault,
  ctx: FaultContext,
  runStartedAt: number,
): Promise<FaultRecord> {
  const startedAtMs = Date.now() - runStartedAt;
  const t0 = Date.now();
  const [consumerA, consumerB] = ctx.cluster.consumers;
  const base = { kind: fault.kind, plannedAtMs: fault.atMs, startedAtMs };
  try {
    let outcome: Omit<FaultRecord, keyof typeof base | 'durationMs'>;
    switch (fault.kind) {
      case 'kill-producer':
        outcome = await killAndRestart(ctx.cluster.producer, 'SIGKILL', fault.downMs, 10_000);
        break;
      case 'kill-consumer':
        outcome = await killAndRestart(consumerA, 'SIGKILL', fault.downMs, 10_000);
        break;
      case 'term-consumer':
        outcome = await killAndRestart(consumerB, 'SIGTERM', fault.downMs, ctx.shutdownGraceMs + 5_000);
        break;
      case 'restart-rabbitmq':
        outcome = await restartServer('RabbitMQ', ctx.cluster.rabbit);
        break;
      case 'restart-postgres':
        outcome = await restartServer('PostgreSQL', ctx.cluster.pg);
        break;
      case 'partition-producer':
        outcome = await partition(ctx, fault.downMs);
        break;
      case 'redrive-errors':
        outcome = await redriveErrors(ctx);
        break;
      case 'kill-rabbitmq-leader':
        outcome = await killNode(ctx, 'leader', fault.downMs, runStartedAt);
        break;
      case 'kill-rabbitmq-node':
        outcome = await killNode(ctx, 'connected', fault.downMs, runStartedAt);
        break;
    }
    return { ...base, ...outcome, durationMs: Date.now() - t0 };
  } catch (error) {
    return {
      ...base,
      durationMs: Date.now() - t0,
      happened: false,
      evidence: `injection failed: ${(error as Error).message.split('\n')[0]}`,
    };
  }
}
