// .env.example and the README's configuration table against the config schemas, the one source of
// truth for names and defaults (PROTOCOL §8).
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import type { z } from 'zod';
import { ConsumerEnvSchema } from '../../../../consumer/src/config.js';
import { ProducerEnvSchema } from '../../../../producer/src/config.js';

const read = (path: string) => readFileSync(new URL(`../../../../${path}`, import.meta.url), 'utf8');

type Shape = Record<string, z.ZodType>;
const shapes: Record<'producer' | 'consumer', Shape> = {
  producer: ProducerEnvSchema.shape,
  consumer: ConsumerEnvSchema.shape,
};
/** Variables read by compose itself, not by a service. */
const COMPOSE_ONLY = ['RABBITMQ_MANAGEMENT_PORT', 'RABBITMQ_ERLANG_COOKIE'];
const serviceVariables = [
  ...new Set([...Object.keys(shapes.producer), ...Object.keys(shapes.consumer)]),
].sort();

/** The services reading a variable, as the README names them. */
function readers(name: string): string {
  const by = (['producer', 'consumer'] as const).filter((service) => name in shapes[service]);
  return by.length === 2 ? 'both' : (by[0] ?? 'compose');
}

/** Optional without a default (OPERATOR_READ_TOKEN): unset means "off", documented empty. */
function isUnsetByDefault(name: string): boolean {
  const services = (['producer', 'consumer'] as const).filter((service) => name in shapes[service]);
  return (
    services.length > 0 &&
    services.every((service) => {
      const unset = (shapes[service][name] as z.ZodType).safeParse(undefined);
      return unset.success && unset.data === undefined;
    })
  );
}

/**
 * A documented value means the default when it parses to what an unset variable parses to. An empty
 * value is an unset variable, as the services read it (compose passes `VAR=` through).
 */
function isDefault(name: string, value: string): boolean {
  return (['producer', 'consumer'] as const)
    .filter((service) => name in shapes[service])
    .every((service) => {
      const field = shapes[service][name] as z.ZodType;
      const unset = field.safeParse(undefined);
      const documented = field.safeParse(value === '' ? undefined : value);
      return (
        unset.success && documented.success && JSON.stringify(unset.data) === JSON.stringify(documented.data)
      );
    });
}

describe('.env.example', () => {
  // Active `NAME=value` lines and commented `# NAME=value` ones (set by the launcher when unset).
  const entries = [...read('.env.example').matchAll(/^(?:# )?([A-Z_][A-Z0-9_]*)=(.*)$/gm)].map(
    (m) => [m[1] as string, m[2] as string] as const,
  );
  const documented = new Map(entries);

  test('lists every variable of both services once, plus the compose-only ones', () => {
    expect(entries.length).toBe(documented.size);
    expect([...documented.keys()].sort()).toEqual([...serviceVariables, ...COMPOSE_ONLY].sort());
  });

  test('every value is the schema default; the token is required and left empty', () => {
    for (const name of serviceVariables) {
      const value = documented.get(name) as string;
      if (name === 'STATUS_API_TOKEN' || isUnsetByDefault(name)) expect(value, name).toBe('');
      else expect(isDefault(name, value), `${name}=${value}`).toBe(true);
    }
  });
});

describe('README configuration table', () => {
  const section = /^## Configuration\n([\s\S]*?)(?=^## )/m.exec(read('README.md'))?.[1] ?? '';
  // Cells are padded by the formatter: split on the pipes and trim.
  const rows = section
    .split('\n')
    .filter((line) => /^\|\s*`[A-Z_][A-Z0-9_]*`\s*\|/.test(line))
    .map((line) => {
      const [name, readBy, defaultCell, meaning] = line
        .split('|')
        .slice(1, -1)
        .map((cell) => cell.trim());
      return { name: name?.slice(1, -1) as string, readBy, defaultCell, meaning: meaning as string };
    });

  test('has one row per variable, naming the services that read it', () => {
    expect(rows.map((r) => r.name).sort()).toEqual([...serviceVariables, ...COMPOSE_ONLY].sort());
    for (const row of rows) expect(row.readBy, row.name).toBe(readers(row.name));
  });

  test('states the schema defaults, the same values as .env.example', () => {
    const example = new Map(
      [...read('.env.example').matchAll(/^(?:# )?([A-Z_][A-Z0-9_]*)=(.*)$/gm)].map((m) => [m[1], m[2]]),
    );
    for (const { name, defaultCell, meaning } of rows) {
      expect(meaning, name).not.toBe('');
      if (name === 'STATUS_API_TOKEN') {
        expect(defaultCell).toBe('_(required)_');
        continue;
      }
      if (isUnsetByDefault(name)) {
        expect(defaultCell, name).toBe('_(unset)_');
        expect(example.get(name), name).toBe('');
        continue;
      }
      const value = /^`(.*)`$/.exec(defaultCell ?? '')?.[1];
      expect(value, name).toBe(example.get(name));
      if (!COMPOSE_ONLY.includes(name))
        expect(isDefault(name, value as string), `${name}: ${value}`).toBe(true);
    }
  });
});
