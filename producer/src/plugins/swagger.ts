// OpenAPI generated from the routes' zod schemas (/docs/json) and Swagger UI (/docs). Registered
// before the routes: @fastify/swagger collects routes as they are added.
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';

export const DOCS_PREFIX = '/docs';
export const BEARER_SCHEME = 'statusToken';
export const READ_BEARER_SCHEME = 'operatorReadToken';

/** Every `#/components/schemas/…` reference inside `value`. */
function schemaRefs(value: unknown, into: Set<string> = new Set()): Set<string> {
  if (Array.isArray(value)) for (const item of value) schemaRefs(item, into);
  else if (value !== null && typeof value === 'object') {
    for (const [key, child] of Object.entries(value)) {
      if (key === '$ref' && typeof child === 'string' && child.startsWith('#/components/schemas/'))
        into.add(child.slice('#/components/schemas/'.length));
      else schemaRefs(child, into);
    }
  }
  return into;
}

/**
 * The zod transform puts an input and an output variant of every named schema in the document, used
 * or not; an unused component is a lint warning and noise for readers. Keeps the schemas the paths
 * reach, directly or through other schemas.
 */
export function withoutUnusedSchemas<D extends object>(document: D): D {
  const { components } = document as { components?: { schemas?: Record<string, unknown> } };
  const schemas = components?.schemas ?? {};
  const reached = schemaRefs({ ...document, components: { ...components, schemas: {} } });
  const pending = [...reached];
  for (let name = pending.pop(); name !== undefined; name = pending.pop()) {
    for (const ref of schemaRefs(schemas[name])) {
      if (!reached.has(ref)) {
        reached.add(ref);
        pending.push(ref);
      }
    }
  }
  const kept = Object.fromEntries(Object.entries(schemas).filter(([name]) => reached.has(name)));
  return { ...document, components: { ...components, schemas: kept } };
}

async function swaggerPlugin(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Task pipeline producer',
        description:
          'Create tasks, read them, report their results. Errors are application/problem+json ' +
          '(the Problem schema); every response carries x-request-id. Besides the responses listed ' +
          'per operation: a path not listed here answers 404, and a method a listed path does not ' +
          'take answers 405 with an Allow header naming the methods it does take (HEAD with GET), ' +
          'both as problem+json. 503 responses carry Retry-After.',
        version: '1.0.0',
        license: { name: 'MIT', identifier: 'MIT' },
      },
      servers: [{ url: '/', description: 'This producer' }],
      tags: [
        { name: 'tasks', description: 'Task creation and lookup' },
        { name: 'status', description: 'Result reports and redrive (bearer token)' },
        {
          name: 'operator',
          description:
            'List, search, detail, stats and bulk redrive (bearer token; OPERATOR_READ_TOKEN reads only)',
        },
        { name: 'health', description: 'Liveness, readiness and metrics' },
      ],
      components: {
        securitySchemes: {
          [BEARER_SCHEME]: { type: 'http', scheme: 'bearer', description: 'STATUS_API_TOKEN' },
          [READ_BEARER_SCHEME]: {
            type: 'http',
            scheme: 'bearer',
            description: 'OPERATOR_READ_TOKEN: the operator routes that only read',
          },
        },
      },
    },
    // Schemas with `.meta({ id })` (zod's global registry) become components.schemas.
    transform: jsonSchemaTransform,
    transformObject: (document) => withoutUnusedSchemas(jsonSchemaTransformObject(document)),
  });
  await app.register(swaggerUi, { routePrefix: DOCS_PREFIX });
}

export default fp(swaggerPlugin, { name: 'swagger', fastify: '5.x' });
