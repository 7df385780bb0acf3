import { describe, expect, test } from 'vitest';
import { requestIdFor } from '../../../src/plugins/error-handler.js';

describe('requestIdFor', () => {
  test('reuses a sane incoming x-request-id', () => {
    for (const id of ['abc', 'trace-1.2:3', '0af7651916cd43dd8448eb211c80319c', 'a/b+c=']) {
      expect(requestIdFor({ headers: { 'x-request-id': id } })).toBe(id);
    }
  });

  test('replaces a missing, repeated, oversized or unsafe one with a UUID', () => {
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    for (const value of [undefined, '', ['a', 'b'], 'x'.repeat(129), 'a b', 'a\nb', '{"json":1}', 'é']) {
      expect(requestIdFor({ headers: { 'x-request-id': value } })).toMatch(uuid);
    }
  });
});
