// A real producer for HTTP tests: its own migrated database (and vhost), buildApp listening on an
// ephemeral port, and a client that speaks to it over the socket like any other caller.
import { perSuite } from '@task-pipeline/testkit/hooks';
import {
  createTestVhost,
  type TestDatabase,
  type TestVhost,
  withIsolation,
} from '@task-pipeline/testkit/isolation';
import pino from 'pino';
import postgres from 'postgres';
import { request } from 'undici';
import type { z } from 'zod';
import { buildApp, type ProducerApp } from '../../src/app.js';
import { loadConfig, type ProducerEnv } from '../../src/config.js';
import type { StatusReplySchema } from '../../src/schemas/tasks.js';
import { createProducerDatabase } from './database.js';

export const TOKEN = 'test-status-token-0123456789';
export const AUTH = { authorization: `Bearer ${TOKEN}` } as const;
export const JSON_HEADERS = { 'content-type': 'application/json' } as const;

export const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

export interface Reply<T = unknown> {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: T;
  text: string;
}

export interface HttpOptions {
  headers?: Record<string, string>;
  /** Serialized as JSON with a JSON content type unless `raw` is given. */
  json?: unknown;
  raw?: string | Buffer;
}

export type Http = <T = unknown>(method: string, path: string, options?: HttpOptions) => Promise<Reply<T>>;

/** A request and the response it got, as the contract check (openapi-contract.ts) reads them. */
export interface Exchange {
  method: string;
  /** Without the query string. */
  path: string;
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** A client over the socket; every exchange is also pushed onto `record`, when given. */
export function httpClient(baseUrl: string, record?: Exchange[]): Http {
  return async <T>(method: string, path: string, options: HttpOptions = {}): Promise<Reply<T>> => {
    const headers: Record<string, string> = { ...options.headers };
    let body: string | Buffer | undefined = options.raw;
    if (options.json !== undefined) {
      body = JSON.stringify(options.json);
      headers['content-type'] ??= 'application/json';
    }
    const res = await request(`${baseUrl}${path}`, {
      method: method as 'GET',
      headers,
      ...(body === undefined ? {} : { body }),
    });
    const text = await res.body.text();
    record?.push({
      method,
      path: path.split('?', 1)[0] ?? path,
      status: res.statusCode,
      headers: res.headers,
      text,
    });
    const type = String(res.headers['content-type'] ?? '');
    return {
      status: res.statusCode,
      headers: res.headers,
      text,
      body: (type.includes('json') && text ? JSON.parse(text) : text) as T,
    };
  };
}

export interface TestProducer {
  app: ProducerApp;
  baseUrl: string;
  http: Http;
  /** Every exchange `http` made, in order. */
  exchanges: Exchange[];
  /** A separate pool for arranging rows and checking them. */
  sql: postgres.Sql;
  db: TestDatabase;
  vhost: TestVhost | undefined;
  close(): Promise<void>;
}

export interface StartOptions {
  env?: Partial<Record<keyof ProducerEnv, string>>;
  /** A vhost of its own (default), or a broker URL nothing listens on: tasks are accepted regardless. */
  broker?: 'vhost' | 'unreachable';
  /** The URL the producer reaches its (migrated) database through, a proxy say; the database's own by default. */
  connectVia?: (databaseUrl: string) => Promise<string>;
}

export function startTestProducer(prefix: string, options: StartOptions = {}): Promise<TestProducer> {
  const vhost = options.broker === 'unreachable' ? Promise.resolve(undefined) : createTestVhost(prefix);
  return withIsolation(createProducerDatabase(prefix), vhost, async (db, vhost) => {
    const config = loadConfig({
      DATABASE_URL: options.connectVia ? await options.connectVia(db.url) : db.url,
      AMQP_URL: vhost?.url ?? 'amqp://guest:guest@127.0.0.1:1',
      STATUS_API_TOKEN: TOKEN,
      DISPATCHER_ENABLED: 'false',
      ...options.env,
    });
    const app = await buildApp(config, { logger });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address();
    if (address === null || typeof address === 'string') throw new Error('no TCP address');
    const baseUrl = `http://127.0.0.1:${address.port}`;
    const sql = postgres(db.url, { max: 5, onnotice: () => undefined });
    const exchanges: Exchange[] = [];
    return {
      app,
      baseUrl,
      http: httpClient(baseUrl, exchanges),
      exchanges,
      sql,
      db,
      vhost,
      async close() {
        // app.close() may have run already (tests that need the producer's backends gone); it is idempotent.
        await app.close();
        await sql.end({ timeout: 1 });
        await Promise.all([db.drop(), vhost?.drop()]);
      },
    };
  });
}

/** startTestProducer for the current suite (its beforeAll), closed in its afterAll. */
export function useTestProducer(prefix: string, options: StartOptions = {}): TestProducer {
  return perSuite(
    () => startTestProducer(prefix, options),
    (producer) => producer.close(),
  );
}

/** A task as the API answers it: the producer's own response schema, so the tests cannot drift from it. */
export type TaskJson = z.infer<typeof StatusReplySchema>;

export interface ProblemJson {
  type: string;
  title: string;
  status: number;
  detail: string;
}

/** Puts tasks where a dispatcher would have left them: `sent` with the given attempt. */
export async function markSent(sql: postgres.Sql, taskIds: string[], attempt = 1): Promise<void> {
  await sql`
    update tasks set status = 'sent', attempts = ${attempt}, sent_at = now(), updated_at = now()
     where id = any(${taskIds}::uuid[])`;
}
