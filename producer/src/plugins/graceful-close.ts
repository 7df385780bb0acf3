// app.close() ends within SHUTDOWN_GRACE_MS even when a request never finishes. The server stops
// accepting and waits for the requests in flight, and every statement they run has a deadline; but a
// request can still outlast the grace period (a deadline longer than it, a client that trickles its
// body), and close-with-grace then exits 1 with work half done. Half the grace period after the close
// began, the connections of requests still running are cut: their clients see the connection close,
// as after a crash (a create retried with its Idempotency-Key is safe), while the dispatcher, which
// stops alongside within the same half, and the pools get the rest.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { ProducerConfig } from '../config.js';

export interface GracefulClosePluginOptions {
  config: Pick<ProducerConfig, 'shutdownGraceMs'>;
}

async function gracefulClosePlugin(app: FastifyInstance, options: GracefulClosePluginOptions): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  app.addHook('preClose', async () => {
    timer = setTimeout(() => {
      app.log.warn({}, 'requests still running at half the shutdown grace period; closing their connections');
      app.server.closeAllConnections();
    }, options.config.shutdownGraceMs / 2);
    timer.unref();
  });
  app.addHook('onClose', async () => {
    clearTimeout(timer);
  });
}

export default fp(gracefulClosePlugin, { name: 'graceful-close', fastify: '5.x' });
