// `npm run migrate -w @task-pipeline/producer`: applies pending migrations and exits. The producer
// also migrates at start; this is for operators who run them as a separate step.
import { z } from 'zod';
import { ProducerEnvSchema } from '../config.js';
import { createLogger } from '../logger.js';
import { migrate } from './migrate.js';

const { DATABASE_URL, LOG_LEVEL } = ProducerEnvSchema.shape;
// Empty means unset, as in loadConfig.
const env = Object.fromEntries(Object.entries(process.env).filter(([, v]) => v !== ''));
const parsed = z.object({ DATABASE_URL, LOG_LEVEL }).safeParse(env);
if (!parsed.success) {
  const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  process.stderr.write(`migrate: invalid configuration: ${problems.join('; ')}\n`);
  process.exit(1);
}
const logger = createLogger(parsed.data.LOG_LEVEL);
try {
  await migrate(parsed.data.DATABASE_URL, logger);
} catch (err) {
  logger.fatal({ err }, 'migration failed');
  process.exit(1);
}
