// The producer's entry point: configuration, logger, migrations, listen, graceful close. Built as
// dist/server.js; from source: `tsx --conditions=source producer/src/server.ts`.
import { setTimeout as sleep } from 'node:timers/promises';
import { type BackoffPolicy, backoffMs, loadOrExit } from '@task-pipeline/common';
import closeWithGrace from 'close-with-grace';
import type { Logger } from 'pino';
import { buildApp, type ProducerApp } from './app.js';
import { loadConfig, type ProducerConfig } from './config.js';
import { migrate } from './db/migrate.js';
import { createLogger } from './logger.js';
import { isDatabaseUnavailable } from './plugins/db.js';

/** Between attempts to reach PostgreSQL for the migrations at start. */
const MIGRATE_RETRY_BACKOFF: BackoffPolicy = { initialMs: 500, maxMs: 5_000 };

/**
 * Compose starts the producer next to PostgreSQL: wait for it instead of crash-looping. Returns early,
 * without migrating, when a shutdown signal arrives meanwhile.
 */
async function migrateWhenReachable(databaseUrl: string, logger: Logger, signal: AbortSignal): Promise<void> {
  for (let attempt = 1; !signal.aborted; attempt += 1) {
    try {
      await migrate(databaseUrl, logger);
      return;
    } catch (err) {
      if (!isDatabaseUnavailable(err) || signal.aborted) throw err;
      const delayMs = backoffMs(attempt, MIGRATE_RETRY_BACKOFF);
      logger.warn({ err, attempt, delayMs }, 'PostgreSQL is not reachable yet; retrying the migrations');
      await sleep(delayMs, undefined, { signal }).catch(() => undefined);
    }
  }
}

async function start(config: ProducerConfig, logger: Logger): Promise<void> {
  const starting = new AbortController();
  let app: ProducerApp | undefined;
  closeWithGrace(
    { delay: config.shutdownGraceMs, logger: { error: (msg: string) => logger.error(msg) } },
    async ({ signal, err }) => {
      if (err) logger.error({ err }, 'shutting down after an unexpected error');
      else logger.info({ signal }, 'shutting down');
      starting.abort();
      await app?.close();
      logger.info({}, 'stopped');
    },
  );
  await migrateWhenReachable(config.databaseUrl, logger, starting.signal);
  if (starting.signal.aborted) return;
  app = await buildApp(config, { logger });
  await app.listen({ port: config.port, host: config.host });
}

const config = loadOrExit('producer', () => loadConfig());
const logger = createLogger(config.logLevel);
start(config, logger).catch((err: unknown) => {
  logger.fatal({ err }, 'producer failed to start');
  process.exit(1);
});
