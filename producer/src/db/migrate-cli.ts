// `npm run migrate -w @task-pipeline/producer`: applies pending migrations and exits. The producer
// also migrates at start; this is for operators who run them as a separate step.
import { loadOrExit, parseEnv } from '@task-pipeline/common';
import { z } from 'zod';
import { ProducerEnvSchema } from '../config.js';
import { createLogger } from '../logger.js';
import { migrate } from './migrate.js';

const { DATABASE_URL, LOG_LEVEL } = ProducerEnvSchema.shape;
const env = loadOrExit('migrate', () => parseEnv(z.object({ DATABASE_URL, LOG_LEVEL })));
const logger = createLogger(env.LOG_LEVEL);
try {
  await migrate(env.DATABASE_URL, logger);
} catch (err) {
  logger.fatal({ err }, 'migration failed');
  process.exit(1);
}
