// Per-test-file isolation on the shared servers (PROTOCOL §10): one PostgreSQL database and one
// RabbitMQ vhost per file, named for the run, removed afterwards. Never stops a shared server.
// A migrated database is a copy of a template migrated once (see createMigratedDatabase).
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
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

/** An empty database, or with `template` a copy of that database. */
export async function createTestDatabase(prefix: string, template?: string): Promise<TestDatabase> {
  const name = uniqueName(prefix);
  const admin = postgres(TEST_POSTGRES_URL, { max: 1, onnotice: () => undefined });
  try {
    await admin.unsafe(`create database "${name}"${template ? ` template "${template}"` : ''}`);
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

export interface Migrations {
  /** The folder of migration files: its content names the template. */
  dir: string;
  /** Migrates the (empty) database at `url`. */
  migrate(url: string): Promise<unknown>;
}

/** A short hash of every file name and content in `dir`: a changed migration means a new template. */
function hashFolder(dir: string): string {
  const hash = createHash('sha256');
  for (const file of readdirSync(dir).sort()) {
    hash
      .update(file)
      .update('\0')
      .update(readFileSync(join(dir, file)))
      .update('\0');
  }
  return hash.digest('hex').slice(0, 16);
}

const templates = new Map<string, Promise<string>>();

/**
 * The name of a database migrated with `migrations`, made once for all test files (and kept for later
 * runs: its name is the hash of the migrations folder). Parallel files serialize on an advisory lock;
 * the first builds it under a temporary name and renames it when complete, so a run killed mid-way
 * leaves no half-migrated template behind under the real name. Connections to it are then refused:
 * CREATE DATABASE … TEMPLATE fails while anyone is connected to the template.
 */
export function migratedTemplate(migrations: Migrations): Promise<string> {
  const name = `tp_template_${hashFolder(migrations.dir)}`;
  let made = templates.get(name);
  if (!made) {
    made = buildTemplate(name, migrations);
    templates.set(name, made);
    made.catch(() => templates.delete(name));
  }
  return made;
}

async function buildTemplate(name: string, migrations: Migrations): Promise<string> {
  const admin = postgres(TEST_POSTGRES_URL, { max: 1, onnotice: () => undefined });
  try {
    // max: 1, so the session lock and its unlock are on the same connection.
    await admin`select pg_advisory_lock(hashtext(${name}))`;
    const [exists] = await admin`select 1 from pg_database where datname = ${name}`;
    if (exists) return name;
    const building = `${name}_${randomBytes(4).toString('hex')}`;
    await admin.unsafe(`create database "${building}"`);
    try {
      await migrations.migrate(withPath(TEST_POSTGRES_URL, building));
      await admin.unsafe(`alter database "${building}" with allow_connections false`);
      await admin.unsafe(`alter database "${building}" rename to "${name}"`);
    } catch (error) {
      await admin.unsafe(`drop database if exists "${building}" with (force)`);
      throw new Error(`could not build the template database ${name} from ${migrations.dir}`, {
        cause: error,
      });
    }
    return name;
  } finally {
    await admin.end();
  }
}

/** A database of its own with every migration applied: a copy of the template, not a migration run. */
export async function createMigratedDatabase(prefix: string, migrations: Migrations): Promise<TestDatabase> {
  return createTestDatabase(prefix, await migratedTemplate(migrations));
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

/**
 * A test file's database and vhost (or none: a promise of undefined), made at once, then `setup` on
 * them. If making either fails, or `setup` does, whatever was made is dropped before the error goes
 * on: a setup that fails half-way (a migration that does not apply, an app that does not start) leaves
 * nothing on the shared servers.
 */
export async function withIsolation<V extends TestVhost | undefined, T>(
  database: Promise<TestDatabase>,
  vhost: Promise<V>,
  setup: (db: TestDatabase, vhost: V) => Promise<T>,
): Promise<T> {
  const [db, madeVhost] = await Promise.allSettled([database, vhost]);
  try {
    if (db.status === 'rejected') throw db.reason;
    if (madeVhost.status === 'rejected') throw madeVhost.reason;
    return await setup(db.value, madeVhost.value);
  } catch (error) {
    const made = [db, madeVhost].flatMap((r) => (r.status === 'fulfilled' && r.value ? [r.value] : []));
    await Promise.all(made.map((resource) => resource.drop().catch(() => undefined)));
    throw error;
  }
}

/** Runs `rabbitmqctl` against the shared node, for tests that inspect or poke a vhost. */
export { rabbitmqctl };
