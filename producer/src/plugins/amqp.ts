// The producer's RabbitMQ connection. It connects in the background: tasks are accepted while the
// broker is away (they wait in PostgreSQL, the outbox), and readiness does not depend on it.
import { hostname } from 'node:os';
import { Broker, buildTopology } from '@task-pipeline/rabbitmq';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { ProducerConfig } from '../config.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Reconnecting RabbitMQ connection with the producer's topology; `connected`/`blocked` for health. */
    broker: Broker;
  }
}

export interface AmqpPluginOptions {
  config: Pick<ProducerConfig, 'amqpUrl' | 'quorumInitialGroupSize'>;
  /** Shown in `rabbitmqctl list_connections`; defaults to producer@<hostname>:<pid>. */
  connectionName?: string;
}

async function amqpPlugin(app: FastifyInstance, options: AmqpPluginOptions): Promise<void> {
  const broker = new Broker({
    url: options.config.amqpUrl,
    connectionName: options.connectionName ?? `producer@${hostname()}:${process.pid}`,
    topology: buildTopology({
      role: 'producer',
      quorumInitialGroupSize: options.config.quorumInitialGroupSize,
    }),
    logger: app.log.child({ component: 'amqp' }),
  });
  app.decorate('broker', broker);
  // start() returns before any broker answers: connecting goes on in the background.
  await broker.start();
  app.addHook('onClose', async () => {
    await broker.close();
  });
}

export default fp(amqpPlugin, { name: 'amqp', fastify: '5.x' });
