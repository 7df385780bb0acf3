// Prometheus metrics: the catalogue from ../metrics.ts on a per-app registry, an HTTP latency hook and
// GET /metrics. Other plugins (the dispatcher) record into `app.metrics`.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { z } from 'zod';
import { createProducerMetrics, type ProducerMetrics } from '../metrics.js';
import { COMMON_PROBLEMS } from '../schemas/problem.js';

declare module 'fastify' {
  interface FastifyInstance {
    metrics: ProducerMetrics;
  }
}

async function metricsPlugin(app: FastifyInstance): Promise<void> {
  const metrics = createProducerMetrics();
  app.decorate('metrics', metrics);

  app.addHook('onResponse', async (request, reply) => {
    metrics.httpRequestDuration.observe(
      {
        method: request.method,
        // The route pattern, never the raw URL: unknown paths must not create a label value each.
        route: request.routeOptions.url ?? 'unmatched',
        status_code: reply.statusCode,
      },
      reply.elapsedTime / 1000,
    );
  });

  app.get(
    '/metrics',
    {
      schema: {
        tags: ['health'],
        summary: 'Prometheus metrics',
        operationId: 'metrics',
        // Unauthenticated on the API port: keep it off public networks (RELIABILITY.md).
        security: [],
        response: {
          ...COMMON_PROBLEMS,
          200: {
            description: 'The Prometheus text exposition format',
            content: { 'text/plain': { schema: z.string() } },
          },
        },
      },
    },
    async (_request, reply) => {
      reply.type(metrics.registry.contentType);
      return metrics.registry.metrics();
    },
  );
}

export default fp(metricsPlugin, { name: 'metrics', fastify: '5.x' });
