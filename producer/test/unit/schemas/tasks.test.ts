import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  CreateTaskSchema,
  StatusUpdateQuerySchema,
  TaskIdSchema,
  TaskTextSchema,
} from '../../../src/schemas/tasks.js';

const codePoints = (s: string) => [...s].length;

describe('TaskTextSchema', () => {
  test('accepts exactly the trimmed 1..10,000 well-formed code points without NUL', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (text) => {
        const trimmed = text.trim();
        const expected =
          codePoints(trimmed) >= 1 && !trimmed.includes('\u0000') && !/\p{Surrogate}/u.test(trimmed);
        const parsed = TaskTextSchema.safeParse(text);
        expect(parsed.success).toBe(expected);
        if (parsed.success) expect(parsed.data).toBe(trimmed);
      }),
    );
  });

  test('counts code points, not UTF-16 units', () => {
    expect(TaskTextSchema.safeParse('😀'.repeat(10_000)).success).toBe(true);
    expect(TaskTextSchema.safeParse('😀'.repeat(10_001)).success).toBe(false);
    expect(TaskTextSchema.safeParse(` ${'a'.repeat(10_000)} `).success).toBe(true);
  });

  test('lone surrogates anywhere are refused, pairs are fine', () => {
    for (const bad of ['\ud800', 'a\udc00', '\udc00\ud800', 'x\ud83d']) {
      expect(TaskTextSchema.safeParse(bad).success).toBe(false);
    }
    expect(TaskTextSchema.safeParse('\ud83d\ude00').success).toBe(true);
  });
});

describe('request schemas', () => {
  test('create: default priority, unknown fields refused', () => {
    expect(CreateTaskSchema.parse({ text: 'x' })).toEqual({ text: 'x', priority: 'medium' });
    expect(CreateTaskSchema.safeParse({ text: 'x', priorty: 'high' }).success).toBe(false);
  });

  test('task ids are lower-cased so they match what PostgreSQL returns', () => {
    expect(TaskIdSchema.parse('6F9619FF-8B86-4011-B42D-00C04FC964FF')).toBe(
      '6f9619ff-8b86-4011-b42d-00c04fc964ff',
    );
  });

  test('query attempt: digits only, within int4', () => {
    expect(StatusUpdateQuerySchema.parse({ attempt: '7' })).toEqual({ attempt: 7 });
    for (const attempt of ['', '-1', '1.5', '1e3', ' 1', '2147483648', '99999999999']) {
      expect(StatusUpdateQuerySchema.safeParse({ attempt }).success, attempt).toBe(false);
    }
  });
});
