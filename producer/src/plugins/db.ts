// The producer's only PostgreSQL pool (porsager `postgres`). Everything that talks to the database gets
// it as `app.sql`; repositories receive it as an argument.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import postgres from 'postgres';
import type { ProducerConfig } from '../config.js';

export type Sql = postgres.Sql;

declare module 'fastify' {
  interface FastifyInstance {
    sql: Sql;
  }
}

export interface DbPluginOptions {
  config: Pick<ProducerConfig, 'databaseUrl'>;
  /** Pool size; the dispatcher's LISTEN connection comes on top. */
  maxConnections?: number;
}

/** Connection errors of a database that is down or restarting: the request may succeed later (503). */
export const UNAVAILABLE_ERROR_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_DESTROYED',
  'CONNECTION_ENDED',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up, shutting down)
  '53300', // too_many_connections
]);

export function isDatabaseUnavailable(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && UNAVAILABLE_ERROR_CODES.has(code);
}

async function dbPlugin(app: FastifyInstance, options: DbPluginOptions): Promise<void> {
  const sql = postgres(options.config.databaseUrl, {
    max: options.maxConnections ?? 10,
    // Fail a request quickly while the database is away instead of holding the client for 30 s.
    connect_timeout: 5,
    // The driver's array-type lookup on every new connection turns a database restart at the wrong
    // moment into an unhandled rejection (porsager/postgres#1192), which would stop the producer.
    // Our statements pass lists as JSON or as array literals cast in SQL, so the lookup is not needed.
    fetch_types: false,
    onnotice: () => undefined,
    connection: { application_name: 'task-pipeline-producer' },
  });
  app.decorate('sql', sql);
  app.addHook('onClose', async () => {
    // Lets running queries finish (the HTTP server has stopped accepting by now), then cuts them.
    await sql.end({ timeout: 5 });
  });
}

export default fp(dbPlugin, { name: 'db', fastify: '5.x' });
