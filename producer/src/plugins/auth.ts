// Bearer-token checks (PROTOCOL §4, §9): STATUS_API_TOKEN for the routes that change a status or
// redrive, and it or OPERATOR_READ_TOKEN (read-only) for the operator's read routes. They run as
// onRequest hooks: before the body is read or validated, so a caller without the token learns nothing
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
    /** onRequest hook: 401 unless the bearer is STATUS_API_TOKEN or OPERATOR_READ_TOKEN. */
    requireReadToken: (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
  }
}

export interface AuthPluginOptions {
  config: Pick<ProducerConfig, 'statusApiToken' | 'operatorReadToken'>;
}

const BEARER = /^Bearer +(\S+) *$/i;

// Equal-length digests: timingSafeEqual never sees (or leaks) the token's length.
const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest();

async function authPlugin(app: FastifyInstance, options: AuthPluginOptions): Promise<void> {
  const full = digest(options.config.statusApiToken);
  const read =
    options.config.operatorReadToken === undefined ? undefined : digest(options.config.operatorReadToken);

  /** Which token the request presents: 'full', 'read', or undefined (none, or a wrong one). */
  const presented = (request: FastifyRequest): 'full' | 'read' | undefined => {
    const header = request.headers.authorization;
    const token = header === undefined ? undefined : BEARER.exec(header)?.[1];
    if (token === undefined) return undefined;
    const value = digest(token);
    if (timingSafeEqual(value, full)) return 'full';
    if (read && timingSafeEqual(value, read)) return 'read';
    return undefined;
  };

  const refuse = (request: FastifyRequest, reply: FastifyReply, names: string): never => {
    reply.header('www-authenticate', 'Bearer realm="task-pipeline"');
    throw new ProblemError(
      'unauthorized',
      request.headers.authorization === undefined
        ? `this route needs Authorization: Bearer <${names}>`
        : 'the bearer token is missing or wrong',
    );
  };

  app.decorate('requireStatusToken', async (request: FastifyRequest, reply: FastifyReply) => {
    const holder = presented(request);
    if (holder === 'full') return;
    // A known token without the right: 403, so the console can tell read-only from wrong.
    if (holder === 'read') {
      throw new ProblemError('forbidden', 'OPERATOR_READ_TOKEN may read but not change anything');
    }
    refuse(request, reply, 'STATUS_API_TOKEN');
  });

  app.decorate('requireReadToken', async (request: FastifyRequest, reply: FastifyReply) => {
    if (presented(request) === undefined) refuse(request, reply, 'STATUS_API_TOKEN or OPERATOR_READ_TOKEN');
  });
}

export default fp(authPlugin, { name: 'auth', fastify: '5.x' });
