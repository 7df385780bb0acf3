import { describe, expect, test } from 'vitest';
import { perSuite } from '../../src/hooks.js';

const events: string[] = [];

describe('a suite with a perSuite resource', () => {
  const resource = perSuite(
    async () => {
      events.push('setup');
      return { name: 'made in beforeAll', greet: () => 'hello' };
    },
    (made) => {
      events.push(`dispose ${made.name}`);
    },
  );
  // Read while the suite is being collected: before its beforeAll.
  let early: unknown;
  try {
    early = resource.name;
  } catch (error) {
    early = error;
  }

  test('reading it before the suite starts throws, naming the property', () => {
    expect(early).toBeInstanceOf(Error);
    expect((early as Error).message).toMatch(/^name read outside its suite/);
  });

  test('in its tests it reads through to what setup returned, methods included', () => {
    expect(resource.name).toBe('made in beforeAll');
    expect(resource.greet()).toBe('hello');
    expect('name' in resource).toBe(true);
  });

  test('setup ran once for the whole suite', () => {
    expect(events).toEqual(['setup']);
  });
});

describe('after that suite', () => {
  test('its afterAll disposed of the resource, once', () => {
    expect(events).toEqual(['setup', 'dispose made in beforeAll']);
  });
});
