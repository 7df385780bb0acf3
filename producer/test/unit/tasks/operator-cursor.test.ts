// The list's opaque cursor and the "contains" pattern: pure helpers of the operator repository.
import { describe, expect, test } from 'vitest';
import {
  containsPattern,
  decodeCursor,
  encodeCursor,
  InvalidCursorError,
} from '../../../src/tasks/operator-repository.js';

describe('cursor', () => {
  test('round-trips the exact key (microseconds, id)', () => {
    const key = { micros: '1796570000123456', id: '0f8fad5b-d9cb-469f-a165-70867728950e' };
    expect(decodeCursor(encodeCursor(key))).toEqual(key);
    expect(encodeCursor(key)).toMatch(/^[A-Za-z0-9_-]+$/);
  });

  test.each([
    '',
    'not base64 at all!',
    Buffer.from('12.not-a-uuid').toString('base64url'),
    Buffer.from("1'; drop table tasks; --.0f8fad5b-d9cb-469f-a165-70867728950e").toString('base64url'),
    Buffer.from('123456789012345678.0f8fad5b-d9cb-469f-a165-70867728950e').toString('base64url'),
  ])('refuses %j', (cursor) => {
    expect(() => decodeCursor(cursor)).toThrow(InvalidCursorError);
  });
});

describe('containsPattern', () => {
  test('wraps in % and takes the LIKE wildcards and the escape literally', () => {
    expect(containsPattern('abc')).toBe('%abc%');
    expect(containsPattern('100%_done\\')).toBe('%100\\%\\_done\\\\%');
  });
});
