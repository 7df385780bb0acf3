// Process entry: configuration, logger, the consumer, graceful shutdown. Wiring only.
import closeWithGrace from 'close-with-grace';
import pino from 'pino';
import { ConfigError, type ConsumerConfig, loadConfig } from './config.js';
import { startConsumer } from './consumer.js';

let config: ConsumerConfig;
try {
  config = loadConfig();
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  // One line, before any logger exists: the operator sees which variable is wrong.
  process.stderr.write(`consumer: ${err.message}\n`);
  process.exit(1);
}

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
