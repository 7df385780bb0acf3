// The waiting/sent gauges, the oldest-sent age and the stale-sent count (a message lost in the broker
// shows up there), read on a timer rather than per scrape: the counts come from task_counts, but the
// stale-sent count is a range of tasks_sent, which grows with what is in flight.
import type { ProducerMetrics } from '../metrics.js';
import type { DispatchRepository } from './dispatch-repository.js';
import type { DispatchLogger } from './dispatcher.js';

export const TASK_GAUGES_INTERVAL_MS = 5_000;
/** Counting a backlog of millions takes a while: never spend more than ~5 % of the time on it. */
const MAX_DUTY = 0.05;

export interface TaskGaugesOptions {
  repository: Pick<DispatchRepository, 'counts'>;
  metrics: Pick<ProducerMetrics, 'tasksByStatus' | 'oldestSentAgeSeconds' | 'staleSent'>;
  /** STALE_SENT_AFTER_S. */
  staleSentAfterS: number;
  logger: Pick<DispatchLogger, 'debug'>;
  intervalMs?: number;
}

export function startTaskGauges(options: TaskGaugesOptions): { refresh(): Promise<void>; stop(): void } {
  const { repository, metrics, logger, staleSentAfterS, intervalMs = TASK_GAUGES_INTERVAL_MS } = options;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let lastDurationMs = 0;
  const refresh = async () => {
    const started = performance.now();
    try {
      const counts = await repository.counts(staleSentAfterS);
      metrics.tasksByStatus.set({ status: 'waiting' }, counts.waiting);
      metrics.tasksByStatus.set({ status: 'sent' }, counts.sent);
      metrics.oldestSentAgeSeconds.set(
        counts.oldestSentAt ? Math.max(0, (Date.now() - counts.oldestSentAt.getTime()) / 1000) : 0,
      );
      metrics.staleSent.set(counts.staleSent);
    } catch (err) {
      logger.debug({ err }, 'could not refresh the task gauges; keeping the last values');
    } finally {
      lastDurationMs = performance.now() - started;
    }
  };
  const tick = async () => {
    await refresh();
    if (stopped) return;
    timer = setTimeout(tick, Math.max(intervalMs, lastDurationMs / MAX_DUTY));
    timer.unref();
  };
  void tick();
  return {
    refresh,
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
