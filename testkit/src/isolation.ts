// Per-test-file isolation on the shared servers (PROTOCOL §10): one PostgreSQL database and one
// RabbitMQ vhost per file, named for the run, removed afterwards. Never stops a shared server.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import postgres from 'postgres';

const run = promisify(execFile);

export const TEST_POSTGRES_URL =
  process.env.TEST_POSTGRES_URL ?? 'postgres://postgres:postgres@127.0.0.1:5432/postgres';
export const TEST_AMQP_URL = process.env.TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

export function uniqueName(prefix: string): string {
  const slug = prefix
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .slice(0, 30);
  return `tp_${slug}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
}

function withPath(base: string, path: string): string {
  const url = new URL(base);
  url.pathname = `/${encodeURIComponent(path)}`;
  return url.toString();
}

export interface TestDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

export async function createTestDatabase(prefix: string): Promise<TestDatabase> {
  const name = uniqueName(prefix);
  const admin = postgres(TEST_POSTGRES_URL, { max: 1, onnotice: () => undefined });
  try {
    await admin.unsafe(`create database "${name}"`);
  } finally {
    await admin.end();
  }
  return {
    name,
    url: withPath(TEST_POSTGRES_URL, name),
    async drop() {
      const sql = postgres(TEST_POSTGRES_URL, { max: 1, onnotice: () => undefined });
      try {
        await sql.unsafe(`drop database if exists "${name}" with (force)`);
      } finally {
        await sql.end();
      }
    },
  };
}

export interface TestVhost {
  name: string;
  url: string;
  drop(): Promise<void>;
}

async function rabbitmqctl(...args: string[]): Promise<string> {
  const { stdout } = await run('rabbitmqctl', ['-q', ...args], { timeout: 60_000 });
  return stdout;
}

export async function createTestVhost(prefix: string): Promise<TestVhost> {
  const name = uniqueName(prefix);
  const user = decodeURIComponent(new URL(TEST_AMQP_URL).username || 'guest');
  await rabbitmqctl('add_vhost', name);
  await rabbitmqctl('set_permissions', '-p', name, user, '.*', '.*', '.*');
  return {
    name,
    url: withPath(TEST_AMQP_URL, name),
    async drop() {
      await rabbitmqctl('delete_vhost', name).catch(() => undefined);
    },
  };
}

/** Runs `rabbitmqctl` against the shared node, for tests that inspect or poke a vhost. */
export { rabbitmqctl };
