// OpenAPI generated from the routes' zod schemas (/docs/json) and Swagger UI (/docs). Registered
// before the routes: @fastify/swagger collects routes as they are added.
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';

export const DOCS_PREFIX = '/docs';
export const BEARER_SCHEME = 'statusToken';

async function swaggerPlugin(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Task pipeline producer',
        description:
          'Create tasks, read them, report their results. Errors are application/problem+json; ' +
          'every response carries x-request-id.',
        version: '1.0.0',
      },
      tags: [
        { name: 'tasks', description: 'Task creation and lookup' },
        { name: 'status', description: 'Result reports and redrive (bearer token)' },
        { name: 'health', description: 'Liveness and readiness' },
      ],
      components: {
        securitySchemes: {
          [BEARER_SCHEME]: { type: 'http', scheme: 'bearer', description: 'STATUS_API_TOKEN' },
        },
      },
    },
    // Schemas with `.meta({ id })` (zod's global registry) become components.schemas.
    transform: jsonSchemaTransform,
    transformObject: jsonSchemaTransformObject,
  });
  await app.register(swaggerUi, { routePrefix: DOCS_PREFIX });
}

export default fp(swaggerPlugin, { name: 'swagger', fastify: '5.x' });
