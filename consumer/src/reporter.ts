// The reporter (CONTRACT §7): drains tasks.results and tasks.dlq, sends reports in batches to the
// producer's batch route, two requests in flight, and settles each message by its item's reply. A
// message is acked only after the producer answered for it; whatever cannot be answered now stays
// unacked (held while the reporter backs off, or returned to the queue when it stops or shuts down).
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

/**
 * Batch requests in flight at once. The second one goes only with a full batch: while a request is
 * in flight the next batch fills, and is sent as soon as it is full instead of waiting for the
 * answer, so a backlog of results drains through two requests. A partial batch waits for that
 * answer: in paired drains, sending partial batches whenever a request was free made them three
 * times smaller (250 reports instead of 700) while each request took as long (~0.8 s on the loaded
 * machine), and the drain was slower.
 */
export const REPORT_REQUESTS_IN_FLIGHT = 2;

export function createReporter(options: ReporterOptions): Reporter {
  const { broker, publisher, client, batchSize, batchMs, metrics, logger } = options;
  const backoff = options.backoff ?? DEFAULT_BACKOFF;
  /** Aborted at the shutdown deadline: cancels the in-flight requests. */
  const shutdown = new AbortController();
  const parking = new Set<Promise<void>>();
  /** Batch requests being sent; each settles its own items and never rejects. */
  const requests = new Set<Promise<void>>();
  /**
   * Tasks with a report in a request that has not been answered yet, with how many. Their later
   * reports wait for that answer (see takeBatch).
   */
  const tasksInFlight = new Map<string, number>();
  let pending: Pending[] = [];
  let consumerTags: string[] = [];
  let stopReason: string | undefined;
  let closing = false;
  let wakeUp: (() => void) | undefined;
  /** Consecutive requests that left reports unanswered, and when the next one may go. */
  let failures = 0;
  let retryAt = 0;
  /** Set when a request fails during shutdown: the rest is not tried either. */
  let closingFailed = false;

  const channel = broker.channel({
    name: 'reporter',
    setup: async (ch) => {
      if (closing || stopReason) return;
      // Room for a full batch from each queue in each request in flight, plus one being built.
      await ch.prefetch(Math.min(65_535, batchSize * (REPORT_REQUESTS_IN_FLIGHT + 1)));
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

  /** Deliveries of a closed channel come again on the new one: forget them. */
  function dropDeadDeliveries(): void {
    if (pending.every((p) => p.delivery.alive())) return;
    pending = pending.filter((p) => {
      if (p.delivery.alive()) return true;
      metrics.droppedSettlements.inc({ queue: p.delivery.queue });
      return false;
    });
  }

  /**
   * The next batch, oldest first, skipping reports of tasks that have one in an unanswered request:
   * those wait for its answer, so one task's reports reach the producer in the order this reporter
   * received them, as with one request at a time, and a report sent back for a retry keeps its place
   * ahead of a later one of the same task. The producer's rule (CONTRACT §3, status-transitions.ts)
   * makes most orders harmless anyway: a report of an older attempt is stale in any order, and the
   * same status again is a no-op. But two different final reports of one attempt are decided by
   * arrival: success then error leaves success (409 for the error), error then success leaves error
   * unless the error was delivery_limit. Two requests in flight could deliver them in either order,
   * and the producer's connections give no order between requests, so they are not left to chance.
   */
  function takeBatch(): Pending[] {
    if (tasksInFlight.size === 0) return pending.splice(0, batchSize);
    const batch: Pending[] = [];
    const held: Pending[] = [];
    let next = 0;
    for (; next < pending.length && batch.length < batchSize; next += 1) {
      const item = pending[next] as Pending;
      (tasksInFlight.has(item.report.taskId) ? held : batch).push(item);
    }
    pending = held.length === 0 ? pending.slice(next) : [...held, ...pending.slice(next)];
    return batch;
  }

  function startRequest(batch: Pending[]): void {
    for (const { report } of batch)
      tasksInFlight.set(report.taskId, (tasksInFlight.get(report.taskId) ?? 0) + 1);
    const request = send(batch)
      .then((result) => {
        release(batch);
        return answered(result);
      })
      .catch((err: unknown) => {
        release(batch);
        loopFailed(err);
      })
      .finally(() => {
        requests.delete(request);
        wake();
      });
    requests.add(request);
  }

  function release(batch: Pending[]): void {
    for (const { report } of batch) {
      const left = (tasksInFlight.get(report.taskId) ?? 1) - 1;
      if (left === 0) tasksInFlight.delete(report.taskId);
      else tasksInFlight.set(report.taskId, left);
    }
  }

  async function answered(result: SendResult): Promise<void> {
    if (stopReason) {
      requeue(result.retry);
      return;
    }
    if (result.stop) {
      await stopReporting(result.stop, result.retry);
      return;
    }
    if (result.retry.length === 0) {
      failures = 0;
      retryAt = 0;
    } else if (closing) {
      // Shutting down: what is unanswered stays unacked and returns to the queue on close, and
      // nothing more is tried.
      closingFailed = true;
    } else {
      pending.unshift(...result.retry);
      failures += 1;
      retryAt = Date.now() + backoffDelay(backoff, failures);
    }
  }

  async function run(): Promise<void> {
    while (!stopReason) {
      dropDeadDeliveries();
      if (closing && (pending.length === 0 || closingFailed)) {
        if (requests.size === 0) return;
        await Promise.race(requests);
        continue;
      }
      const oldest = pending[0];
      if (!oldest) {
        await sleepUntilWoken();
        continue;
      }
      if (requests.size >= REPORT_REQUESTS_IN_FLIGHT) {
        await Promise.race(requests);
        continue;
      }
      if (!closing) {
        const now = Date.now();
        // Backing off after a failure; shutting down cuts it short for one last try.
        if (now < retryAt) {
          await sleepUntilWoken(retryAt - now);
          continue;
        }
        if (pending.length < batchSize) {
          // Woken by the answer in flight, or by the delivery that fills a batch.
          if (requests.size > 0) {
            await sleepUntilWoken();
            continue;
          }
          const dueInMs = oldest.receivedAt + batchMs - now;
          if (dueInMs > 0) {
            await sleepUntilWoken(dueInMs);
            continue;
          }
        }
      }
      const batch = takeBatch();
      // Every pending report waits for the answer of a request in flight.
      if (batch.length === 0) await Promise.race(requests);
      else startRequest(batch);
    }
    await Promise.all(requests);
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

  /** Back to the queue, where a correctly configured replica can report them: never parked. */
  function requeue(items: Pending[]): void {
    for (const item of items) settleOrDrop(metrics, item.delivery, 'requeue');
  }

  async function stopReporting(reason: string, unsent: Pending[]): Promise<void> {
    if (stopReason) {
      requeue(unsent);
      return;
    }
    stopReason = reason;
    wake();
    logger.error(
      { reason },
      'reporter stopped: the producer refused its requests; check STATUS_API_TOKEN and PRODUCER_URL',
    );
    options.onStopped?.(reason);
    await cancelAll(channel.current(), consumerTags);
    requeue([...unsent, ...pending.splice(0)]);
  }

  function loopFailed(err: unknown): void {
    // A bug, not a reply: stop (not ready) rather than hold messages with nobody reporting them.
    logger.error({ err }, 'reporter loop failed');
    void stopReporting('reporter loop failed', []);
  }

  const loop = run().catch(loopFailed);

  return {
    channel,
    get stopReason() {
      return stopReason;
    },
    async stop(signal) {
      closing = true;
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
