// Per-suite resources without the repeated `let x; beforeAll(...); afterAll(...)` blocks: one call
// registers both hooks where it stands (a file's top level or a describe) and returns the resource
// itself, usable in tests as if it had been there all along.
import { afterAll, beforeAll } from 'vitest';
import {
  createMigratedDatabase,
  createTestDatabase,
  createTestVhost,
  type Migrations,
  type TestDatabase,
  type TestVhost,
} from './isolation.js';

export interface SuiteOptions {
  /** The hooks' timeout, for setups that start servers or load big fixtures. */
  timeoutMs?: number;
}

/**
 * Creates the resource in a beforeAll and disposes of it in an afterAll of the current suite, and
 * returns a stand-in that reads through to it: `producer.http(...)` in a test reaches the object
 * that `setup` returned. Reading it outside the suite's lifetime throws, naming the property, rather
 * than handing out undefined. The resource must be an object (not a function: wrap one).
 */
export function perSuite<T extends object>(
  setup: () => Promise<T>,
  dispose: (resource: T) => Promise<unknown> | unknown,
  options: SuiteOptions = {},
): T {
  let resource: T | undefined;
  beforeAll(async () => {
    resource = await setup();
  }, options.timeoutMs);
  afterAll(async () => {
    const created = resource;
    resource = undefined;
    if (created !== undefined) await dispose(created);
  }, options.timeoutMs);
  return new Proxy({} as T, {
    get(_target, key) {
      if (resource === undefined) {
        // Not a thenable: `await` on the stand-in must not throw.
        if (key === 'then') return undefined;
        throw new Error(`${String(key)} read outside its suite (before beforeAll or after afterAll)`);
      }
      return Reflect.get(resource, key);
    },
    has: (_target, key) => resource !== undefined && Reflect.has(resource, key),
  });
}

/** A vhost of its own on the shared RabbitMQ for the suite. */
export function useTestVhost(prefix: string): TestVhost {
  return perSuite(
    () => createTestVhost(prefix),
    (vhost) => vhost.drop(),
  );
}

/** A database of its own on the shared PostgreSQL for the suite: empty, or migrated from a template. */
export function useTestDatabase(prefix: string, migrations?: Migrations): TestDatabase {
  return perSuite(
    () => (migrations ? createMigratedDatabase(prefix, migrations) : createTestDatabase(prefix)),
    (db) => db.drop(),
  );
}
