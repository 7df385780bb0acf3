// The real producer for consumer tests: producer/src/app.ts on its own migrated database and vhost,
// listening on a real port. stop()/start() take it away and bring it back on the same port (the
// producer-outage test); the database and the queues survive.

import {
  createTestVhost,
  type TestDatabase,
  type TestVhost,
  withIsolation,
} from '@task-pipeline/testkit/isolation';
import { freePort } from '@task-pipeline/testkit/private-process';
import pino from 'pino';
import postgres from 'postgres';
import { request } from 'undici';
import { buildApp, type ProducerApp } from '../../../producer/src/app.js';
import { loadConfig } from '../../../producer/src/config.js';
import { createProducerDatabase } from '../../../producer/test/support/database.js';
import { TEST_TOKEN } from './harness.js';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

export interface TaskRow {
  taskId: string;
  priority: 'high' | 'medium' | 'low';
  status: 'waiting' | 'sent' | 'success' | 'error';
  attempts: number;
  error: string | null;
  updatedAt: Date;
  finishedAt: Date | null;
}

export interface RealProducer {
  readonly url: string;
  readonly db: TestDatabase;
  readonly vhost: TestVhost;
  /** For checks only: the tests read rows, never write them. */
  readonly sql: postgres.Sql;
  createTask(text: string, priority?: 'high' | 'medium' | 'low'): Promise<string>;
  tasks(): Promise<TaskRow[]>;
  /** Status → count. */
  counts(): Promise<Record<string, number>>;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

export function startRealProducer(prefix: string, env: Record<string, string> = {}): Promise<RealProducer> {
  return withIsolation(createProducerDatabase(prefix), createTestVhost(prefix), async (db, vhost) => {
    const config = loadConfig({
      DATABASE_URL: db.url,
      AMQP_URL: vhost.url,
      STATUS_API_TOKEN: TEST_TOKEN,
      DISPATCHER_ENABLED: 'true',
      DISPATCH_POLL_INTERVAL_MS: '100',
      ...env,
    });
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const sql = postgres(db.url, { max: 3, onnotice: () => undefined });
    let app: ProducerApp | undefined;

    const start = async () => {
      app = await buildApp(config, { logger });
      await app.listen({ port, host: '127.0.0.1' });
    };
    const stop = async () => {
      await app?.close();
      app = undefined;
    };
    await start();

    return {
      url,
      db,
      vhost,
      sql,
      async createTask(text, priority) {
        const res = await request(`${url}/api/v1/create-task`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(priority ? { text, priority } : { text }),
        });
        const body = (await res.body.json()) as { taskId: string };
        if (res.statusCode !== 201) throw new Error(`create-task answered ${res.statusCode}`);
        return body.taskId;
      },
      async tasks() {
        return sql<TaskRow[]>`
          select id::text as "taskId", priority, status, attempts, error,
                 updated_at as "updatedAt", finished_at as "finishedAt"
            from tasks`;
      },
      async counts() {
        const rows = await sql<{ status: string; n: number }[]>`
          select status, count(*)::int as n from tasks group by status`;
        return Object.fromEntries(rows.map((r) => [r.status, r.n]));
      },
      stop,
      start,
      async close() {
        await stop();
        await sql.end({ timeout: 1 });
        await Promise.all([db.drop(), vhost.drop()]);
      },
    };
  });
}
