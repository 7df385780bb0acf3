// The producer's composition root: infrastructure, then the domain, then the routes. Every plugin is
// registered here, in the order it needs; nothing else happens here.
import Fastify, { type FastifyBaseLogger } from 'fastify';
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import type { ProducerConfig } from './config.js';
import amqp from './plugins/amqp.js';
import auth from './plugins/auth.js';
import operatorConsole from './plugins/console.js';
import db from './plugins/db.js';
import dispatcher from './plugins/dispatcher.js';
import errorHandler, {
  clientErrorHandler,
  frameworkErrorHandler,
  requestIdFor,
} from './plugins/error-handler.js';
import gracefulClose from './plugins/graceful-close.js';
import metrics from './plugins/metrics.js';
import operator from './plugins/operator.js';
import swagger from './plugins/swagger.js';
import tasks from './plugins/tasks.js';
import healthRoutes from './routes/health.js';
import operatorRoutes from './routes/operator.js';
import taskRoutes from './routes/tasks.js';

declare module 'fastify' {
  interface FastifyInstance {
    config: ProducerConfig;
  }
}

/** A JSON-escaped 10,000-character text can reach ~120 KB; the batch route raises its own limit. */
export const BODY_LIMIT_BYTES = 128 * 1024;

export interface BuildAppOptions {
  logger: FastifyBaseLogger;
}

/**
 * The Fastify instance with the producer's server settings, error handling and OpenAPI collection,
 * before any infrastructure or route: buildApp adds the rest; unit tests add fakes and the routes.
 */
export async function createServer(config: ProducerConfig, { logger }: BuildAppOptions) {
  const app = Fastify({
    loggerInstance: logger,
    bodyLimit: BODY_LIMIT_BYTES,
    genReqId: requestIdFor,
    requestIdHeader: false,
    clientErrorHandler,
    frameworkErrors: frameworkErrorHandler,
    // The error-handler plugin checks Host itself, so that a missing one is refused as problem+json.
    http: { requireHostHeader: false },
    // Fastify's own closing answer is fixed JSON, not problem+json: the error-handler plugin answers.
    return503OnClosing: false,
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  // JSON only: anything else (text/plain included, which Fastify parses by default) is a 415.
  app.removeContentTypeParser('text/plain');
  app.decorate('config', config);

  // Before anything that adds a route: Fastify binds each route to the error handler current then.
  await app.register(errorHandler);
  await app.register(gracefulClose, { config });
  // Before anything that adds a route it documents: @fastify/swagger collects routes as they are added.
  await app.register(swagger);
  return app;
}

export async function buildApp(config: ProducerConfig, options: BuildAppOptions) {
  const app = await createServer(config, options);
  await app.register(db, { config });
  await app.register(metrics);
  await app.register(amqp, { config });
  await app.register(dispatcher, { config });
  await app.register(auth, { config });
  await app.register(tasks, { config });
  await app.register(operator, { config });
  await app.register(taskRoutes);
  await app.register(operatorRoutes);
  await app.register(healthRoutes);
  await app.register(operatorConsole);
  return app;
}

export type ProducerApp = Awaited<ReturnType<typeof buildApp>>;
