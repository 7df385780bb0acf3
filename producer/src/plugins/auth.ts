// Bearer-token check for the routes that change a status or redrive (PROTOCOL §4, §9). It runs as an
// onRequest hook: before the body is read or validated, so a caller without the token learns nothing
// (401 before any 400, 404, 413 or 415).
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { ProducerConfig } from '../config.js';
import { ProblemError } from '../problems.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** onRequest hook: 401 unless `Authorization: Bearer <STATUS_API_TOKEN>`. */
    requireStatusToken: (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
  }
}

export interface AuthPluginOptions {
  config: Pick<ProducerConfig, 'statusApiToken'>;
}

const BEARER = /^Bearer +(\S+) *$/i;

// Equal-length digests: timingSafeEqual never sees (or leaks) the token's length.
const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest();

async function authPlugin(app: FastifyInstance, options: AuthPluginOptions): Promise<void> {
  const expected = digest(options.config.statusApiToken);

  app.decorate('requireStatusToken', async (request: FastifyRequest, reply: FastifyReply) => {
    const header = request.headers.authorization;
    const presented = header === undefined ? undefined : BEARER.exec(header)?.[1];
    if (presented !== undefined && timingSafeEqual(digest(presented), expected)) return;
    reply.header('www-authenticate', 'Bearer realm="task-pipeline"');
    throw new ProblemError(
      'unauthorized',
      header === undefined
        ? 'this route needs Authorization: Bearer <STATUS_API_TOKEN>'
        : 'the bearer token is missing or wrong',
    );
  });
}

export default fp(authPlugin, { name: 'auth', fastify: '5.x' });
