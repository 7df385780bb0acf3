// Process entry: configuration, logger, the consumer, graceful shutdown. Wiring only.
import { loadOrExit } from '@task-pipeline/common';
import closeWithGrace from 'close-with-grace';
import pino from 'pino';
import { loadConfig } from './config.js';
import { startConsumer } from './consumer.js';

const config = loadOrExit('consumer', () => loadConfig());

const logger = pino({ level: config.logLevel, base: { service: 'consumer', pid: process.pid } });

try {
  const consumer = await startConsumer(config, { logger });
  closeWithGrace(
    {
      delay: config.shutdownGraceMs,
      logger: { error: (msg: unknown) => logger.error({ detail: msg }, 'graceful shutdown problem') },
    },
    async ({ signal, err }) => {
      if (err) logger.error({ err }, 'shutting down after an unexpected error');
      else logger.info({ signal }, 'shutting down');
      await consumer.close();
    },
  );
} catch (err) {
  logger.fatal({ err }, 'consumer failed to start');
  process.exit(1);
}
