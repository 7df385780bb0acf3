// The operator's repository (list, detail, stats, bulk redrive) and retention, as a plugin.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { ProducerConfig } from '../config.js';
import type { TaskStats } from '../schemas/operator.js';
import { createOperatorRepository, type OperatorRepository } from '../tasks/operator-repository.js';
import { startRetention } from '../tasks/retention.js';
import { CLIENT_DEADLINE_MARGIN_MS } from './tasks.js';

declare module 'fastify' {
  interface FastifyInstance {
    operator: OperatorRepository;
  }
}

/**
 * Stats are polled by every open console every few seconds: within this time one reading answers
 * all of them, so the database sees one stats statement per replica per interval at most.
 */
const STATS_REUSE_MS = 1_000;

export interface OperatorPluginOptions {
  config: Pick<ProducerConfig, 'api' | 'operator'>;
}

async function operatorPlugin(app: FastifyInstance, options: OperatorPluginOptions): Promise<void> {
  const { config } = options;
  const repository = createOperatorRepository(app.sql, {
    deadlineMs: config.api.statementTimeoutMs + CLIENT_DEADLINE_MARGIN_MS,
    staleSentAfterS: config.operator.staleSentAfterS,
  });
  let last: { at: number; stats: Promise<TaskStats> } | undefined;
  const stats = () => {
    const now = performance.now();
    if (!last || now - last.at > STATS_REUSE_MS) {
      const reading = repository.stats();
      // A failed reading is not reused: the next request tries again.
      reading.catch(() => {
        if (last?.stats === reading) last = undefined;
      });
      last = { at: now, stats: reading };
    }
    return last.stats;
  };
  app.decorate('operator', { ...repository, stats });

  const logger = app.log.child({ component: 'retention' });
  let retention: ReturnType<typeof startRetention> | undefined;
  app.addHook('onReady', async () => {
    retention = startRetention({
      // The background pool: retention never takes a connection a request is waiting for.
      sql: app.dispatchSql,
      retentionSeconds: config.operator.retentionSeconds,
      onDeleted: (count) => app.metrics.retentionDeleted.inc(count),
      logger,
      deadlineMs: config.api.statementTimeoutMs + CLIENT_DEADLINE_MARGIN_MS,
    });
  });
  app.addHook('preClose', async () => {
    retention?.stop();
  });
}

export default fp(operatorPlugin, { name: 'operator', fastify: '5.x', dependencies: ['db', 'metrics'] });
