// Databases copied from a migrated template: the template is migrated once however many files ask
// for it at the same time (here two separate copies of the module, as two test files are), copies
// carry the schema, and a migration that fails leaves no template behind under the real name.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { afterAll, describe, expect, test, vi } from 'vitest';
import type * as Isolation from '../../src/isolation.js';
import { TEST_POSTGRES_URL, type TestDatabase } from '../../src/isolation.js';

const admin = postgres(TEST_POSTGRES_URL, { max: 1, onnotice: () => undefined });
const dirs: string[] = [];
const databases: TestDatabase[] = [];
const templates: string[] = [];

afterAll(async () => {
  await Promise.all(databases.map((db) => db.drop()));
  // The templates of this file are its own (their folders are unique): remove them with it.
  for (const name of templates) await admin.unsafe(`drop database if exists "${name}" with (force)`);
  await admin.end();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A migrations folder of its own: a fresh hash, so a fresh template for this run. */
function migrationsFolder(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tp-migrations-'));
  writeFileSync(join(dir, '001.sql'), `-- ${dir}\ncreate table things (id int primary key);\n`);
  dirs.push(dir);
  return dir;
}

/** A separate copy of the isolation module, with its own memory of templates, as another test file has. */
async function freshIsolation(): Promise<typeof Isolation> {
  vi.resetModules();
  return import('../../src/isolation.js');
}

describe('createMigratedDatabase', () => {
  test('parallel callers migrate the template once; every copy has the schema', async () => {
    const dir = migrationsFolder();
    let migrations = 0;
    const migrate = async (url: string) => {
      migrations += 1;
      const sql = postgres(url, { max: 1, onnotice: () => undefined });
      try {
        await sql`create table things (id int primary key)`;
        await sql`select pg_sleep(0.3)`; // long enough for the other callers to arrive meanwhile
      } finally {
        await sql.end();
      }
    };
    const [a, b] = [await freshIsolation(), await freshIsolation()];
    expect(a).not.toBe(b);
    const made = await Promise.all([
      a.createMigratedDatabase('copy_a', { dir, migrate }),
      b.createMigratedDatabase('copy_b', { dir, migrate }),
      a.createMigratedDatabase('copy_c', { dir, migrate }),
    ]);
    databases.push(...made);
    templates.push(await a.migratedTemplate({ dir, migrate }));
    expect(migrations).toBe(1);
    for (const db of made) {
      const sql = postgres(db.url, { max: 1, onnotice: () => undefined });
      try {
        const [row] = await sql<{ n: number }[]>`select count(*)::int as n from things`;
        expect(row?.n).toBe(0);
      } finally {
        await sql.end();
      }
    }
    const [template] = await admin<{ datallowconn: boolean }[]>`
      select datallowconn from pg_database where datname = ${templates[0] ?? ''}`;
    expect(template?.datallowconn).toBe(false);
  });

  test('a migration that fails leaves neither the template nor its half-built copy', async () => {
    const dir = migrationsFolder();
    const isolation = await freshIsolation();
    const failing = async () => {
      throw new Error('migration 001 failed');
    };
    const error = await isolation
      .createMigratedDatabase('copy_fail', { dir, migrate: failing })
      .catch((e: unknown) => e);
    const name = /could not build the template database (tp_template_[0-9a-f]{16})/.exec(String(error))?.[1];
    expect(name, String(error)).toBeDefined();
    const leftovers = await admin<{ datname: string }[]>`
      select datname from pg_database where starts_with(datname, ${name ?? 'tp_template_'})`;
    expect(leftovers).toEqual([]);
  });
});
