// Every consumer metric in one place, created per consumer instance on its own registry (tests run
// several consumers in one process). Names are prefixed `consumer_` so one Prometheus can scrape
// producer and consumers without collisions.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export function createConsumerMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // promtool's lint refuses a gauge named *_total. prom-client's defaults have three, the sums of the
  // by-type nodejs_active_{handles,requests,resources} gauges, kept upstream for compatibility only
  // (prometheus/client_js#283): a sum over those gauges gives the same figure.
  for (const metric of registry.getMetricsAsArray()) {
    if (metric instanceof Gauge && metric.name.endsWith('_total')) registry.removeSingleMetric(metric.name);
  }
  const registers = [registry];
  return {
    registry,
    processed: new Counter({
      name: 'consumer_tasks_processed_total',
      help: 'Tasks processed successfully (result published, their work message acked)',
      labelNames: ['queue'] as const,
      registers,
    }),
    failed: new Counter({
      name: 'consumer_tasks_failed_total',
      help: 'Simulated processing failures (each is then retried or dead-lettered)',
      labelNames: ['queue'] as const,
      registers,
    }),
    retried: new Counter({
      name: 'consumer_tasks_retried_total',
      help: 'Failed tasks published to a retry exchange',
      labelNames: ['queue', 'delay_seconds'] as const,
      registers,
    }),
    deadLettered: new Counter({
      name: 'consumer_tasks_dead_lettered_total',
      help: 'Tasks dead-lettered to tasks.dlx after MAX_RETRIES retries',
      labelNames: ['queue'] as const,
      registers,
    }),
    parked: new Counter({
      name: 'consumer_messages_parked_total',
      help: 'Messages moved to tasks.parking, by the queue they came from',
      labelNames: ['queue'] as const,
      registers,
    }),
    returned: new Counter({
      name: 'consumer_messages_returned_total',
      help: 'Work messages returned to their queue because an outcome could not be published (held first, REQUEUE_BACKOFF)',
      labelNames: ['queue'] as const,
      registers,
    }),
    reported: new Counter({
      name: 'consumer_reports_total',
      help: 'Reports answered by the producer, by reported status and outcome (applied, stale, conflict, parked, retry)',
      labelNames: ['status', 'outcome'] as const,
      registers,
    }),
    reportRequests: new Counter({
      name: 'consumer_report_requests_total',
      help: 'Batch requests to the producer by result: ok, split (413), stop (misconfiguration), unavailable (network, 408, 429, 502-504), refused (other 5xx, an answer that does not fit)',
      labelNames: ['result'] as const,
      registers,
    }),
    droppedSettlements: new Counter({
      name: 'consumer_dropped_settlements_total',
      help: 'Acks/nacks not sent because the delivering channel had closed (the broker redelivers)',
      labelNames: ['queue'] as const,
      registers,
    }),
    processingDuration: new Histogram({
      name: 'consumer_processing_duration_seconds',
      help: 'Delivery to settlement of a work message, all its tasks (simulated work plus confirmed publishes); one whose publish failed counts until the failure, not its hold',
      labelNames: ['queue'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    reportDuration: new Histogram({
      name: 'consumer_report_duration_seconds',
      help: 'Latency of one batch request to the producer',
      labelNames: ['result'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    reportBatchSize: new Histogram({
      name: 'consumer_report_batch_size',
      help: 'Reports per batch request',
      buckets: [1, 5, 10, 25, 50, 100, 200, 500, 1000],
      registers,
    }),
    reportStalledSeconds: new Gauge({
      name: 'consumer_report_stalled_seconds',
      help: 'How long reports have waited with none answered, once past the stall threshold (0 while the reporter makes progress)',
      registers,
    }),
    ready: new Gauge({
      name: 'consumer_ready',
      help: '1 while every consumer is attached and the reporter is neither stopped nor stalled',
      registers,
    }),
  };
}

export type ConsumerMetrics = ReturnType<typeof createConsumerMetrics>;
