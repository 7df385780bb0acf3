// The waiting/sent gauges and the oldest-sent age (a message lost in the broker shows up there),
// counted on a timer so a scrape never runs a count over a large table.
import type { ProducerMetrics } from '../metrics.js';
import type { DispatchRepository } from './dispatch-repository.js';
import type { DispatchLogger } from './dispatcher.js';

export const TASK_GAUGES_INTERVAL_MS = 5_000;

export interface TaskGaugesOptions {
  repository: Pick<DispatchRepository, 'counts'>;
  metrics: Pick<ProducerMetrics, 'tasksByStatus' | 'oldestSentAgeSeconds'>;
  logger: Pick<DispatchLogger, 'debug'>;
  intervalMs?: number;
}

export function startTaskGauges(options: TaskGaugesOptions): { refresh(): Promise<void>; stop(): void } {
  const { repository, metrics, logger, intervalMs = TASK_GAUGES_INTERVAL_MS } = options;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const refresh = async () => {
    try {
      const counts = await repository.counts();
      metrics.tasksByStatus.set({ status: 'waiting' }, counts.waiting);
      metrics.tasksByStatus.set({ status: 'sent' }, counts.sent);
      metrics.oldestSentAgeSeconds.set(
        counts.oldestSentAt ? Math.max(0, (Date.now() - counts.oldestSentAt.getTime()) / 1000) : 0,
      );
    } catch (err) {
      logger.debug({ err }, 'could not refresh the task gauges; keeping the last values');
    }
  };
  const tick = async () => {
    await refresh();
    if (stopped) return;
    timer = setTimeout(tick, intervalMs);
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
