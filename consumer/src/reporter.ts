// The reporter (PROTOCOL §7): drains tasks.results and tasks.dlq, sends their reports in batches to the
// producer's batch route, and settles each message once the producer answered for every report it
// carries. Whatever cannot be answered now stays unacked: held while the reporter backs off, or
// returned to its queue when the reporter stops or shuts down.
//
// One request is in flight at a time. While it is, the reports that arrive gather for the next one;
// when none is, a report leaves at the end of its event-loop turn (with whatever arrived in that turn),
// or after REPORT_BATCH_MS when that is set (default 0: a lone report would otherwise wait that long,
// which was most of the create → success latency). So batches are large under load and nothing waits when idle.
import { type BackoffPolicy, backoffMs } from '@task-pipeline/common';
import type { ChannelOptions, ManagedChannel } from '@task-pipeline/rabbitmq';
import { MAX_RESULT_MESSAGE_BYTES, type ParseResult, QUEUES } from '@task-pipeline/rabbitmq/contract';
import type { Channel } from 'amqplib';
import type { Logger } from 'pino';
import { MAX_PREFETCHED_BYTES } from './config.js';
import {
  cancelAll,
  consumeAll,
  type Delivery,
  type DeliveryChannel,
  flushSettlements,
  settleOrDrop,
} from './deliveries.js';
import type { ConsumerMetrics } from './metrics.js';
import { publishParked } from './parking.js';
import type { Publisher } from './publishing.js';
import { reportsFromDeadLetter, reportsFromResults, type StatusReport } from './report-messages.js';
import {
  classifyItem,
  classifyRequest,
  nextBatchSize,
  type SplitPolicy,
  shouldPark,
} from './report-policy.js';
import type { ItemResult, StatusClient } from './status-client.js';

export interface ReporterTiming {
  /** Between attempts while the producer is unavailable or refuses a batch. */
  backoff: BackoffPolicy;
  /** After a request-level 4xx stopped the reporter: when to try again (growing up to the maximum). */
  probe: BackoffPolicy;
  /** Reports waiting this long with nothing answered meanwhile make the reporter not ready. */
  stallMs: number;
}

export const DEFAULT_REPORTER_TIMING: ReporterTiming = {
  backoff: { initialMs: 200, maxMs: 5_000 },
  // A proxy's 403 during a deploy, a token rotated on one side first: such causes go away by
  // themselves, so a stopped reporter tries again, rarely enough not to matter while they last.
  probe: { initialMs: 30_000, maxMs: 300_000 },
  stallMs: 60_000,
};

export const SPLIT_POLICY: SplitPolicy = { refusalsBeforeSplit: 3 };

/**
 * Parks waiting for their confirms at once before the loop sends no more requests: a broker alarm
 * holds confirms back, and a producer refusing everything (a version mismatch) would otherwise start
 * a park for every report of every held message (64 messages of up to 1,000 reports).
 */
export const MAX_WAITING_PARKS = 1_000;

/**
 * Deliveries of tasks.results the reporter holds at once: a result message carries up to 1,000
 * results and MAX_RESULT_MESSAGE_BYTES, so the limit is set by bytes, as the worker's is (64). Two
 * batches' worth of messages, as for tasks.dlq, would let a backlog of full messages fill 8 GiB.
 */
export const RESULTS_PREFETCH = Math.floor(MAX_PREFETCHED_BYTES / MAX_RESULT_MESSAGE_BYTES);

/**
 * Where the reporter's messages come from: the consuming connection (a Broker), which hands it a
 * managed channel and runs `setup` on every fresh one; a fake in unit tests.
 */
export interface DeliverySource<C extends DeliveryChannel> {
  channel(options: ChannelOptions<C>): ManagedChannel<C>;
}

export interface ReporterOptions<C extends DeliveryChannel = Channel> {
  broker: DeliverySource<C>;
  publisher: Publisher;
  client: StatusClient;
  batchSize: number;
  /** The longest a report waits for others to join it when no request is in flight (0: end of turn). */
  batchMs: number;
  timing?: Partial<ReporterTiming>;
  metrics: ConsumerMetrics;
  logger: Logger;
  /** Called when readiness may have changed (stopped, probing, stalled, progressing). */
  onStateChange?: () => void;
}

export interface ReporterState {
  ready: boolean;
  /** Why a request-level 4xx stopped it (misconfiguration); it probes again later. */
  stopped?: string;
  /** How long reports have waited with nothing answered, when that is past the stall threshold. */
  stalledForMs?: number;
}

export interface Reporter<C extends DeliveryChannel = Channel> {
  readonly channel: ManagedChannel<C>;
  state(): ReporterState;
  /** Graceful shutdown: stops consuming, sends what is pending once, gives up when `signal` aborts. */
  stop(signal: AbortSignal): Promise<void>;
}

/** A message from tasks.results or tasks.dlq, settled once each of its reports has its answer. */
interface Source {
  delivery: Delivery;
  /** Reports not answered yet. */
  open: number;
  /** A part of it could not be parked: requeue instead of ack, so the broker delivers it again. */
  failed: boolean;
  settled: boolean;
  /** Reports it carries (a part is parked on its own only when the message carries several). */
  size: number;
}

interface Item {
  report: StatusReport;
  source: Source;
  receivedAt: number;
  /** Requests containing it that the producer refused. */
  refusals: number;
  /** Of those, requests it travelled alone in. */
  refusalsAlone: number;
}

type Outcome =
  | { kind: 'done' }
  | { kind: 'stop'; reason: string; unsent: Item[] }
  | { kind: 'again'; items: Item[]; why: 'unavailable' | 'refused' };

export function createReporter<C extends DeliveryChannel = Channel>(
  options: ReporterOptions<C>,
): Reporter<C> {
  const { broker, publisher, client, batchSize, batchMs, metrics, logger } = options;
  const timing: ReporterTiming = { ...DEFAULT_REPORTER_TIMING, ...options.timing };
  /** Aborted at the shutdown deadline: cancels an in-flight request. */
  const shutdown = new AbortController();
  /** Aborted when shutdown starts: cuts a backoff or probe wait short. */
  const closingSignal = new AbortController();
  // Parks run beside the loop: a park waits for its publish's confirm, which a broker alarm holds
  // back, and the other reports must still be sent and acked meanwhile (acks flow during an alarm).
  // Each with when its report arrived (a park waiting counts for the stall); shutdown waits for them.
  const parking = new Map<Promise<void>, number>();
  let parkLanded: (() => void) | undefined;
  let pending: Item[] = [];
  /** The batch whose request is out: still waiting for an answer, so it counts for the stall. */
  let inFlight: Item[] = [];
  let consumerTags: string[] = [];
  let stopReason: string | undefined;
  let stops = 0;
  let closing = false;
  let wakeUp: (() => void) | undefined;
  /** When a report last got its final answer (or the reporter started). */
  let progressAt = Date.now();
  let stalled = false;

  const channel = broker.channel({
    name: 'reporter',
    setup: async (ch) => {
      if (closing || stopReason) return;
      await consume(ch);
    },
  });

  async function consume(ch: C): Promise<void> {
    const results = await consumeAll(ch, [QUEUES.results], RESULTS_PREFETCH, onDelivery);
    // A report a dead letter (mostly: one that carried several tasks has one each): room for a full
    // batch while the previous one is in flight.
    const deadLetterPrefetch = Math.min(65_535, batchSize * 2);
    const deadLetters = await consumeAll(ch, [QUEUES.deadLetter], deadLetterPrefetch, onDelivery);
    consumerTags = [...results, ...deadLetters];
  }

  function onDelivery(delivery: Delivery): void {
    if (stopReason) {
      settleOrDrop(metrics, delivery, 'requeue');
      return;
    }
    const parsed = reportsOf(delivery);
    if (!parsed.ok) {
      track(parkDelivery(delivery, parsed.reason));
      return;
    }
    const source: Source = {
      delivery,
      open: parsed.value.length,
      failed: false,
      settled: false,
      size: parsed.value.length,
    };
    const receivedAt = Date.now();
    const wasEmpty = pending.length === 0;
    for (const report of parsed.value) {
      pending.push({ report, source, receivedAt, refusals: 0, refusalsAlone: 0 });
    }
    if (wasEmpty || pending.length >= batchSize) wake();
  }

  function track(park: Promise<void>, receivedAt = Date.now()): void {
    // Parks catch their own failures; one that did not must not stop the loop or the shutdown.
    const work = park.catch((err: unknown) => logger.error({ err }, 'a park failed'));
    parking.set(work, receivedAt);
    void work.finally(() => {
      parking.delete(work);
      landed();
    });
  }

  /** Wakes the loop if it waits for a park to land. */
  function landed(): void {
    const resolve = parkLanded;
    parkLanded = undefined;
    resolve?.();
  }

  /** Parks a whole message that can never be reported, then acks it; a failed publish returns it. */
  async function parkDelivery(delivery: Delivery, reason: string): Promise<void> {
    // Its channel is gone: the redelivered copy is parked instead.
    if (!delivery.alive()) return;
    try {
      await publishParked(publisher, delivery, reason);
      if (settleOrDrop(metrics, delivery, 'ack')) {
        metrics.parked.inc({ queue: delivery.queue });
        logger.warn(
          { queue: delivery.queue, messageId: delivery.message.properties.messageId, reason },
          'parked',
        );
      }
    } catch (err) {
      logger.warn({ err, queue: delivery.queue }, 'could not park a message; returning it');
      settleOrDrop(metrics, delivery, 'requeue');
    }
  }

  /**
   * Parks one report: the message itself when it carries only this one, else a message of this
   * report alone (in the result form, from a dead letter of several tasks too), so its neighbours
   * are not parked with it.
   */
  async function parkItem(item: Item, reason: string): Promise<void> {
    const { delivery } = item.source;
    if (!delivery.alive()) return;
    const content =
      item.source.size === 1
        ? delivery.message.content
        : Buffer.from(JSON.stringify({ results: [resultOf(item.report)] }));
    try {
      await publishParked(publisher, delivery, reason, content);
      metrics.parked.inc({ queue: delivery.queue });
      logger.warn({ queue: delivery.queue, taskId: item.report.taskId, reason }, 'parked a report');
    } catch (err) {
      logger.warn({ err, queue: delivery.queue }, 'could not park a report; returning its message');
      item.source.failed = true;
    }
    answered(item);
  }

  /** One report has its final answer: settle its message once all of them have. */
  function answered(item: Item): void {
    progressAt = Date.now();
    const source = item.source;
    source.open -= 1;
    if (source.open > 0 || source.settled) return;
    source.settled = true;
    settleOrDrop(metrics, source.delivery, source.failed ? 'requeue' : 'ack');
  }

  function wake(): void {
    const resolve = wakeUp;
    wakeUp = undefined;
    resolve?.();
  }

  function sleepUntilWoken(ms?: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(() => wake(), ms);
      wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Waits `ms`, or less when shutdown starts. */
  function pause(ms: number): Promise<void> {
    const signal = closingSignal.signal;
    if (signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const onAbort = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Reports of a closed channel's messages come again on the new one: forget them. */
  function dropDeadDeliveries(): void {
    if (pending.every((p) => p.source.delivery.alive())) return;
    const dropped = new Set<Source>();
    pending = pending.filter((p) => {
      if (p.source.delivery.alive()) return true;
      if (!dropped.has(p.source)) {
        dropped.add(p.source);
        metrics.droppedSettlements.inc({ queue: p.source.delivery.queue });
      }
      return false;
    });
  }

  /** Stalled: reports have waited past stallMs and none got an answer meanwhile. */
  function stalledForMs(now = Date.now()): number {
    // In-flight items are older than any pending one (batches are taken from the front); without
    // them, readiness and the stall gauge read "progressing" during every retry's request.
    let oldest = (inFlight[0] ?? pending[0])?.receivedAt ?? Number.POSITIVE_INFINITY;
    for (const receivedAt of parking.values()) oldest = Math.min(oldest, receivedAt);
    if (oldest === Number.POSITIVE_INFINITY) return 0;
    return now - Math.max(progressAt, oldest);
  }

  function refreshStall(): void {
    const ms = stalledForMs();
    metrics.reportStalledSeconds.set(ms > timing.stallMs ? ms / 1000 : 0);
    const now = ms > timing.stallMs;
    if (now !== stalled) {
      stalled = now;
      if (now) logger.error({ stalledForMs: ms, pending: pending.length }, 'reporter makes no progress');
      else logger.info({}, 'reporter makes progress again');
      options.onStateChange?.();
    }
  }
  const stallTimer = setInterval(refreshStall, Math.min(5_000, Math.max(50, timing.stallMs / 4)));
  stallTimer.unref();

  async function run(): Promise<void> {
    let failures = 0;
    for (;;) {
      if (stopReason) {
        await pause(backoffMs(stops, timing.probe));
        if (closing) return;
        await resume();
        continue;
      }
      dropDeadDeliveries();
      const oldest = pending[0];
      if (!oldest) {
        if (closing) return;
        await sleepUntilWoken();
        continue;
      }
      // Parks waiting for their confirms (an alarm) hold no request back, up to a bound.
      if (parking.size >= MAX_WAITING_PARKS && !closing) {
        await new Promise<void>((resolve) => {
          parkLanded = resolve;
        });
        continue;
      }
      // Let the rest of this turn's deliveries join the request.
      await new Promise((resolve) => setImmediate(resolve));
      const dueInMs = oldest.receivedAt + batchMs - Date.now();
      if (pending.length < batchSize && dueInMs > 0 && !closing) {
        await sleepUntilWoken(dueInMs);
        continue;
      }
      const size = nextBatchSize(batchSize, oldest.refusals, SPLIT_POLICY);
      inFlight = pending.splice(0, size);
      const outcome = await send(inFlight);
      // Unanswered reports wait again before the stall is judged, not after.
      if (outcome.kind === 'again') pending.unshift(...outcome.items);
      inFlight = [];
      refreshStall();
      if (outcome.kind === 'stop') {
        await stopReporting(outcome.reason, outcome.unsent);
        continue;
      }
      if (outcome.kind === 'done') {
        failures = 0;
        continue;
      }
      // Shutting down: what is unanswered stays unacked and returns to the queue on close.
      if (closing) return;
      failures += 1;
      await pause(backoffMs(failures, timing.backoff));
    }
  }

  async function send(batch: Item[]): Promise<Outcome> {
    metrics.reportBatchSize.observe(batch.length);
    const stopTimer = metrics.reportDuration.startTimer();
    const done = (result: string) => {
      stopTimer({ result });
      metrics.reportRequests.inc({ result });
    };
    let reply: Awaited<ReturnType<StatusClient['updateStatuses']>>;
    try {
      reply = await client.updateStatuses(
        batch.map((p) => p.report),
        shutdown.signal,
      );
    } catch (err) {
      // No answer at all is the producer being away; an answer that does not fit the request is a
      // refusal, which may be the fault of one report in it.
      const why = (err as { code?: string }).code === 'BAD_RESPONSE' ? 'refused' : 'unavailable';
      done(why);
      logger.warn({ err, reports: batch.length }, 'status report failed; retrying with backoff');
      return again(batch, why);
    }
    const verdict = classifyRequest(reply.status);
    done(verdict);
    if (verdict === 'ok' && 'results' in reply) return settleItems(batch, reply.results);
    if (verdict === 'split') return split(batch);
    const problem = 'problem' in reply ? reply.problem : undefined;
    const detail = `producer answered ${reply.status}${problem?.title ? ` (${problem.title})` : ''}`;
    if (verdict === 'stop') return { kind: 'stop', reason: detail, unsent: batch };
    logger.warn({ status: reply.status, reports: batch.length }, `${detail}; retrying with backoff`);
    return again(batch, verdict === 'refused' ? 'refused' : 'unavailable');
  }

  /** Counts a refusal against each report of the batch; a report refused alone too often is parked. */
  function again(batch: Item[], why: 'unavailable' | 'refused'): Outcome {
    if (why === 'unavailable') return { kind: 'again', items: batch, why };
    for (const item of batch) {
      item.refusals += 1;
      if (batch.length === 1) item.refusalsAlone += 1;
    }
    const [only] = batch;
    if (only && batch.length === 1 && shouldPark(only.refusalsAlone, SPLIT_POLICY)) {
      track(
        parkItem(only, `the producer refused this report ${only.refusalsAlone} times on its own`),
        only.receivedAt,
      );
      return { kind: 'done' };
    }
    return { kind: 'again', items: batch, why };
  }

  /** 413: the body was too large. Halves until one report is left, which is parked. */
  async function split(batch: Item[]): Promise<Outcome> {
    const [only] = batch;
    if (batch.length === 1 && only) {
      track(parkItem(only, 'the producer refused this report as too large (413)'), only.receivedAt);
      return { kind: 'done' };
    }
    const half = Math.ceil(batch.length / 2);
    const parts = [batch.slice(0, half), batch.slice(half)];
    const unanswered: Item[] = [];
    let refused = false;
    for (const [i, part] of parts.entries()) {
      const outcome = await send(part);
      if (outcome.kind === 'stop') {
        return { ...outcome, unsent: [...unanswered, ...outcome.unsent, ...parts.slice(i + 1).flat()] };
      }
      if (outcome.kind === 'again') {
        unanswered.push(...outcome.items);
        refused ||= outcome.why === 'refused';
      }
    }
    if (unanswered.length === 0) return { kind: 'done' };
    return { kind: 'again', items: unanswered, why: refused ? 'refused' : 'unavailable' };
  }

  function settleItems(batch: Item[], results: ItemResult[]): Outcome {
    const retry: Item[] = [];
    batch.forEach((item, i) => {
      const result = results[i] as ItemResult;
      const verdict = classifyItem(result.status);
      const status = item.report.taskStatus;
      if (verdict === 'ack') {
        const outcome = result.status === 409 ? 'conflict' : result.stale ? 'stale' : 'applied';
        metrics.reported.inc({ status, outcome });
        answered(item);
      } else if (verdict === 'park') {
        metrics.reported.inc({ status, outcome: 'parked' });
        const why = result.problem?.detail ?? result.problem?.title ?? 'no detail';
        track(parkItem(item, `producer answered ${result.status}: ${why}`), item.receivedAt);
      } else {
        metrics.reported.inc({ status, outcome: 'retry' });
        item.refusals += 1;
        item.refusalsAlone += 1;
        if (shouldPark(item.refusalsAlone, SPLIT_POLICY)) {
          track(
            parkItem(item, `producer answered ${result.status} for this report repeatedly`),
            item.receivedAt,
          );
        } else {
          retry.push(item);
        }
      }
    });
    return retry.length > 0 ? { kind: 'again', items: retry, why: 'refused' } : { kind: 'done' };
  }

  async function stopReporting(reason: string, unsent: Item[]): Promise<void> {
    stopReason = reason;
    stops += 1;
    logger.error(
      { reason, probeAgainInMs: backoffMs(stops, timing.probe, () => 1) },
      'reporter stopped: the producer refused its requests; check STATUS_API_TOKEN and PRODUCER_URL',
    );
    options.onStateChange?.();
    await cancelAll(channel.current(), consumerTags);
    // Back to the queue, where a correctly configured replica can report them: never parked.
    const sources = new Set([...unsent, ...pending.splice(0)].map((item) => item.source));
    for (const source of sources) {
      if (source.settled) continue;
      source.settled = true;
      settleOrDrop(metrics, source.delivery, 'requeue');
    }
    refreshStall();
  }

  /** After a stop: consume again; the next request tells whether the producer takes reports now. */
  async function resume(): Promise<void> {
    const reason = stopReason;
    stopReason = undefined;
    progressAt = Date.now();
    logger.info({ after: reason }, 'reporter tries again');
    const ch = channel.current();
    if (ch) {
      try {
        await consume(ch);
      } catch (err) {
        // The channel is closing: its reopening consumes again.
        logger.warn({ err }, 'could not consume again on the current channel');
      }
    }
    options.onStateChange?.();
  }

  const loop = run().catch((err: unknown) => {
    // A bug, not a reply: stop (not ready) rather than hold messages with nobody reporting them.
    logger.error({ err }, 'reporter loop failed');
    void stopReporting('reporter loop failed', []);
  });

  return {
    channel,
    state() {
      const stalledMs = stalledForMs();
      const isStalled = stalledMs > timing.stallMs;
      return {
        ready: stopReason === undefined && !isStalled,
        ...(stopReason !== undefined && { stopped: stopReason }),
        ...(isStalled && { stalledForMs: stalledMs }),
      };
    },
    async stop(signal) {
      closing = true;
      closingSignal.abort();
      clearInterval(stallTimer);
      signal.addEventListener('abort', () => shutdown.abort(signal.reason), { once: true });
      if (signal.aborted) shutdown.abort(signal.reason);
      await cancelAll(channel.current(), consumerTags, shutdown.signal);
      wake();
      landed();
      const aborted = new Promise<void>((resolve) => {
        if (shutdown.signal.aborted) resolve();
        else shutdown.signal.addEventListener('abort', () => resolve(), { once: true });
      });
      // The loop's last batch may start parks: wait for those too.
      const finished = (async () => {
        await loop;
        while (parking.size > 0) await Promise.all(parking.keys());
      })();
      await Promise.race([finished, aborted]);
      flushSettlements(channel.current());
    },
  };
}

/** The reports a message carries: each result of a result message, each task of a dead letter. */
function reportsOf(delivery: Delivery): ParseResult<StatusReport[]> {
  const { content, properties } = delivery.message;
  if (delivery.queue === QUEUES.results) return reportsFromResults(content, properties.contentType);
  return reportsFromDeadLetter(content, properties.headers);
}

/** A report as the result it came from, for parking one report of a message that carries many. */
function resultOf(report: StatusReport) {
  return {
    taskId: report.taskId,
    attempt: report.attempt,
    status: report.taskStatus,
    ...(report.error === undefined ? {} : { error: report.error }),
  };
}
