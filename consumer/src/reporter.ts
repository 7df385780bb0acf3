// The reporter (CONTRACT §7): drains tasks.results and tasks.dlq, sends reports in batches to the
// producer's batch route, and settles each message by its item's reply. A message is acked only
// after the producer answered for it; whatever cannot be answered now stays unacked (held while
// the reporter backs off, or returned to the queue when it stops or shuts down).
import { type Broker, type ManagedChannel, QUEUES } from '@task-pipeline/rabbitmq';
import type { Channel } from 'amqplib';
import type { Logger } from 'pino';
import { cancelAll, consumeAll, type Delivery, settleOrDrop } from './deliveries.js';
import type { ConsumerMetrics } from './metrics.js';
import { publishParked } from './parking.js';
import type { Publisher } from './publishing.js';
import { reportFromDeadLetter, reportFromResult, type StatusReport } from './report-messages.js';
import { type BackoffPolicy, backoffDelay, classifyItem, classifyRequest } from './report-policy.js';
import type { ItemResult, StatusClient } from './status-client.js';

export interface ReporterOptions {
  broker: Broker;
  publisher: Publisher;
  client: StatusClient;
  batchSize: number;
  batchMs: number;
  backoff?: BackoffPolicy;
  metrics: ConsumerMetrics;
  logger: Logger;
  /** Called once when a request-level 4xx stops the reporter. */
  onStopped?: (reason: string) => void;
}

export interface Reporter {
  readonly channel: ManagedChannel<Channel>;
  /** Why a request-level 4xx stopped the reporter (misconfiguration), or undefined while it runs. */
  readonly stopReason: string | undefined;
  /** Graceful shutdown: stops consuming, sends what is pending once, gives up when `signal` aborts. */
  stop(signal: AbortSignal): Promise<void>;
}

interface Pending {
  report: StatusReport;
  delivery: Delivery;
  receivedAt: number;
}

interface SendResult {
  /** Items with no final answer yet: held for the next attempt. */
  retry: Pending[];
  /** Set when the producer refused the request itself (misconfiguration). */
  stop?: string;
}

const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 200, maxMs: 5_000 };

export function createReporter(options: ReporterOptions): Reporter {
  const { broker, publisher, client, batchSize, batchMs, metrics, logger } = options;
  const backoff = options.backoff ?? DEFAULT_BACKOFF;
  /** Aborted at the shutdown deadline: cancels an in-flight request. */
  const shutdown = new AbortController();
  /** Aborted when shutdown starts: cuts a backoff short so pending reports get one last try. */
  const closingSignal = new AbortController();
  const parking = new Set<Promise<void>>();
  let pending: Pending[] = [];
  let consumerTags: string[] = [];
  let stopReason: string | undefined;
  let closing = false;
  let wakeUp: (() => void) | undefined;

  const channel = broker.channel({
    name: 'reporter',
    setup: async (ch) => {
      if (closing || stopReason) return;
      // Room for a full batch from each queue while the previous one is in flight.
      await ch.prefetch(Math.min(65_535, batchSize * 2));
      consumerTags = await consumeAll(ch, [QUEUES.results, QUEUES.deadLetter], onDelivery);
    },
  });

  function onDelivery(delivery: Delivery): void {
    if (stopReason) {
      settleOrDrop(metrics, delivery, 'requeue');
      return;
    }
    const { content, properties } = delivery.message;
    const parsed =
      delivery.queue === QUEUES.results
        ? reportFromResult(content, properties.contentType)
        : reportFromDeadLetter(content, properties.headers);
    if (!parsed.ok) {
      track(park(delivery, parsed.reason));
      return;
    }
    pending.push({ report: parsed.value, delivery, receivedAt: Date.now() });
    if (pending.length === 1 || pending.length >= batchSize) wake();
  }

  function track(work: Promise<void>): void {
    parking.add(work);
    void work.finally(() => parking.delete(work));
  }

  /** Parks a message that can never be reported, then acks it; a failed publish returns it instead. */
  async function park(delivery: Delivery, reason: string): Promise<void> {
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

  function backoffSleep(ms: number): Promise<void> {
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

  /** Deliveries of a closed channel come again on the new one: forget them. */
  function dropDeadDeliveries(): void {
    if (pending.every((p) => p.delivery.alive())) return;
    pending = pending.filter((p) => {
      if (p.delivery.alive()) return true;
      metrics.droppedSettlements.inc({ queue: p.delivery.queue });
      return false;
    });
  }

  async function run(): Promise<void> {
    let failures = 0;
    while (!stopReason) {
      dropDeadDeliveries();
      const oldest = pending[0];
      if (!oldest) {
        if (closing) return;
        await sleepUntilWoken();
        continue;
      }
      const dueInMs = oldest.receivedAt + batchMs - Date.now();
      if (pending.length < batchSize && dueInMs > 0 && !closing) {
        await sleepUntilWoken(dueInMs);
        continue;
      }
      const batch = pending.splice(0, batchSize);
      const result = await send(batch);
      if (result.stop) {
        await stopReporting(result.stop, result.retry);
        return;
      }
      if (result.retry.length === 0) {
        failures = 0;
        continue;
      }
      pending.unshift(...result.retry);
      // Shutting down: what is unanswered stays unacked and returns to the queue on close.
      if (closing) return;
      failures += 1;
      await backoffSleep(backoffDelay(backoff, failures));
    }
  }

  async function send(batch: Pending[]): Promise<SendResult> {
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
      done('retry');
      logger.warn({ err, reports: batch.length }, 'status report failed; retrying with backoff');
      return { retry: batch };
    }
    const verdict = classifyRequest(reply.status);
    done(verdict);
    if (verdict === 'ok' && 'results' in reply) return settleItems(batch, reply.results);
    if (verdict === 'split') return split(batch);
    const problem = 'problem' in reply ? reply.problem : undefined;
    const detail = `producer answered ${reply.status}${problem?.title ? ` (${problem.title})` : ''}`;
    if (verdict === 'stop') return { retry: batch, stop: detail };
    logger.warn({ status: reply.status, reports: batch.length }, `${detail}; retrying with backoff`);
    return { retry: batch };
  }

  /** 413: the body was too large. Halves until one report is left, which is parked. */
  async function split(batch: Pending[]): Promise<SendResult> {
    const [only] = batch;
    if (batch.length === 1 && only) {
      await park(only.delivery, 'the producer refused this report as too large (413)');
      return { retry: [] };
    }
    const half = Math.ceil(batch.length / 2);
    const first = await send(batch.slice(0, half));
    if (first.stop) return { retry: [...first.retry, ...batch.slice(half)], stop: first.stop };
    const second = await send(batch.slice(half));
    return { retry: [...first.retry, ...second.retry], ...(second.stop && { stop: second.stop }) };
  }

  async function settleItems(batch: Pending[], results: ItemResult[]): Promise<SendResult> {
    const retry: Pending[] = [];
    const parks: Promise<void>[] = [];
    batch.forEach((item, i) => {
      const result = results[i] as ItemResult;
      const verdict = classifyItem(result.status);
      const status = item.report.taskStatus;
      if (verdict === 'ack') {
        const outcome = result.status === 409 ? 'conflict' : result.stale ? 'stale' : 'applied';
        metrics.reported.inc({ status, outcome });
        settleOrDrop(metrics, item.delivery, 'ack');
      } else if (verdict === 'park') {
        metrics.reported.inc({ status, outcome: 'parked' });
        const why = result.problem?.detail ?? result.problem?.title ?? 'no detail';
        parks.push(park(item.delivery, `producer answered ${result.status}: ${why}`));
      } else {
        metrics.reported.inc({ status, outcome: 'retry' });
        retry.push(item);
      }
    });
    await Promise.all(parks);
    return { retry };
  }

  async function stopReporting(reason: string, unsent: Pending[]): Promise<void> {
    stopReason = reason;
    logger.error(
      { reason },
      'reporter stopped: the producer refused its requests; check STATUS_API_TOKEN and PRODUCER_URL',
    );
    options.onStopped?.(reason);
    await cancelAll(channel.current(), consumerTags);
    // Back to the queue, where a correctly configured replica can report them: never parked.
    for (const item of [...unsent, ...pending.splice(0)]) settleOrDrop(metrics, item.delivery, 'requeue');
  }

  const loop = run().catch((err: unknown) => {
    // A bug, not a reply: stop (not ready) rather than hold messages with nobody reporting them.
    logger.error({ err }, 'reporter loop failed');
    void stopReporting('reporter loop failed', []);
  });

  return {
    channel,
    get stopReason() {
      return stopReason;
    },
    async stop(signal) {
      closing = true;
      closingSignal.abort();
      signal.addEventListener('abort', () => shutdown.abort(signal.reason), { once: true });
      if (signal.aborted) shutdown.abort(signal.reason);
      await cancelAll(channel.current(), consumerTags);
      wake();
      const aborted = new Promise<void>((resolve) => {
        if (shutdown.signal.aborted) resolve();
        else shutdown.signal.addEventListener('abort', () => resolve(), { once: true });
      });
      await Promise.race([Promise.all([loop, ...parking]), aborted]);
    },
  };
}
