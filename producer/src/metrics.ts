// Every producer metric in one place, created per app instance on its own registry (tests run several
// apps in one process). Gauges of waiting/sent counts are filled from a cached count, never per scrape.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export function createProducerMetrics() {
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
    httpRequestDuration: new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request latency by route and status code',
      labelNames: ['method', 'route', 'status_code'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    tasksCreated: new Counter({
      name: 'tasks_created_total',
      help: 'Tasks created through the API (idempotent replays excluded)',
      labelNames: ['priority'] as const,
      registers,
    }),
    tasksDispatched: new Counter({
      name: 'tasks_dispatched_total',
      help: 'Tasks published and confirmed by the broker',
      labelNames: ['priority'] as const,
      registers,
    }),
    publishFailures: new Counter({
      name: 'dispatch_publish_failures_total',
      help: 'Work messages whose publish failed (unroutable, nacked, channel closed, confirm timeout), each failing every task it carries',
      labelNames: ['reason'] as const,
      registers,
    }),
    dispatchBatchSize: new Histogram({
      name: 'dispatch_batch_size',
      help: 'Tasks claimed per dispatcher batch',
      buckets: [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000],
      registers,
    }),
    dispatchBatchDuration: new Histogram({
      name: 'dispatch_batch_duration_seconds',
      help: 'Claim → publish → record time of one dispatcher batch',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    reports: new Counter({
      name: 'task_reports_total',
      help: 'Status reports by outcome: applied, stale (older attempt), duplicate (same status), conflict, not_found, invalid',
      labelNames: ['outcome'] as const,
      registers,
    }),
    redrives: new Counter({
      name: 'task_redrives_total',
      help: 'Tasks moved back to waiting by an operator (single and bulk redrives)',
      registers,
    }),
    tasksByStatus: new Gauge({
      name: 'tasks_by_status',
      help: 'Tasks waiting or sent (cached count, refreshed by the dispatcher)',
      labelNames: ['status'] as const,
      registers,
    }),
    oldestSentAgeSeconds: new Gauge({
      name: 'tasks_oldest_sent_age_seconds',
      help: 'Age of the oldest sent task: a message lost in the broker shows up here (redrive it)',
      registers,
    }),
    staleSent: new Gauge({
      name: 'tasks_stale_sent',
      help: 'Sent tasks sent longer ago than STALE_SENT_AFTER_S: their message may be lost (bulk redrive them)',
      registers,
    }),
    retentionDeleted: new Counter({
      name: 'tasks_retention_deleted_total',
      help: 'Finished tasks deleted by retention (older than TASK_RETENTION)',
      registers,
    }),
    dispatcherPaused: new Gauge({
      name: 'dispatcher_paused',
      help:
        '1 while the dispatcher holds back: broker down or blocked, in-flight above DISPATCH_MAX_IN_FLIGHT, ' +
        'PostgreSQL failing, or whole batches failing to publish',
      labelNames: ['reason'] as const,
      registers,
    }),
  };
}

export type ProducerMetrics = ReturnType<typeof createProducerMetrics>;
