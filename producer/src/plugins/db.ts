// The producer's PostgreSQL pools (porsager `postgres`), the only place they are created: `app.sql` for
// the API, with the server-side statement and lock timeouts a request can afford, and
// `app.dispatchSql` for the dispatcher, whose claims may take longer under load and which bounds every
// statement itself (dispatch-repository.ts), and for the gauges and retention, so that background
// work never takes a connection a request is waiting for. Repositories receive a pool as an argument.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import postgres from 'postgres';
import type { ProducerConfig } from '../config.js';

export type Sql = postgres.Sql;

declare module 'fastify' {
  interface FastifyInstance {
    sql: Sql;
    dispatchSql: Sql;
  }
}

export interface DbPluginOptions {
  config: Pick<ProducerConfig, 'databaseUrl' | 'api'>;
  /** The API pool's size; the LISTEN connection of the wake-up comes on top. */
  maxConnections?: number;
}

/**
 * The dispatcher's pool, which the producer's other background work shares: a claim and a count at
 * a time, plus the records and releases of up to four batches in flight (DEFAULT_PIPELINE_DEPTH), plus
 * the gauges' count, plus a retention batch.
 */
const DISPATCH_POOL_SIZE = 7;
/** Seconds to wait for a new connection: fail quickly while the database is away. */
const CONNECT_TIMEOUT_S = 5;
/**
 * By the time the pools close, every request has been answered (or cut) and the dispatcher has
 * stopped: only statements given up on are left, and nothing is gained by waiting for them.
 */
const END_TIMEOUT_S = 0.5;

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

/**
 * Every statement reaches tasks through an index, whatever size the table had when it was planned.
 * PostgreSQL settles on one generic plan per prepared statement after five runs and keeps it until
 * the table is analyzed again; a producer starts on an empty or small table, where a scan is the
 * cheapest plan, and kept it once the table had grown: a report batch took 10 ms for 8 rows at 40,000
 * rows (24 ms with a scan per row) against 0.5 ms by the primary key, until autovacuum's next analyze
 * (producer/test/integration/cached-plans.test.ts). Every statement here is written for an index
 * (query-plans.test.ts holds them to it on a large table), so a scan is priced out where an index
 * serves; planning every run afresh (`plan_cache_mode`) cost the API 15% of its requests per second
 * (BENCHMARKS.md, issue 16). A statement that has no index to use (the small dispatcher_claims) still
 * scans, at a price that would have it compiled by JIT for a tenth of a second: JIT is off, as it
 * pays only for long analytical queries, which the producer does not run.
 */
export const PLANNING = { enable_seqscan: 'off', jit: 'off' } as const;

function createPool(url: string, max: number, connection: Record<string, string>): Sql {
  return postgres(url, {
    max,
    // Fail a request quickly while the database is away instead of holding the client for 30 s.
    connect_timeout: CONNECT_TIMEOUT_S,
    // The driver's array-type lookup on every new connection turns a database restart at the wrong
    // moment into an unhandled rejection (porsager/postgres#1192), which would stop the producer.
    // Our statements pass lists as JSON or as array literals cast in SQL, so the lookup is not needed.
    fetch_types: false,
    onnotice: () => undefined,
    connection: { ...PLANNING, ...connection },
  });
}

async function dbPlugin(app: FastifyInstance, options: DbPluginOptions): Promise<void> {
  const { databaseUrl, api } = options.config;
  // Set at connection start-up, so they cost no statement. A request cannot usefully outwait them:
  // past them it answers 503 and the client retries, instead of holding a pool connection.
  const sql = createPool(databaseUrl, options.maxConnections ?? 10, {
    application_name: 'task-pipeline-producer',
    statement_timeout: String(api.statementTimeoutMs),
    lock_timeout: String(api.lockTimeoutMs),
  });
  const dispatchSql = createPool(databaseUrl, DISPATCH_POOL_SIZE, {
    application_name: 'task-pipeline-dispatcher',
  });
  app.decorate('sql', sql);
  app.decorate('dispatchSql', dispatchSql);
  app.addHook('onClose', async () => {
    await Promise.all([sql.end({ timeout: END_TIMEOUT_S }), dispatchSql.end({ timeout: END_TIMEOUT_S })]);
  });
}

export default fp(dbPlugin, { name: 'db', fastify: '5.x' });
