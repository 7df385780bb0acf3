import { describe, expect, it } from 'vitest';
import { generateCases, ROUTES } from '../../../src/fuzz/arbitraries.js';
import { findLeak, percentEncode, resolveCase } from '../../../src/fuzz/http-fuzz.js';
import { serverErrorCount } from '../../../src/fuzz/run.js';

describe('generated requests', () => {
  it('are the same for the same seed', () => {
    expect(JSON.stringify(generateCases(50, 3))).toBe(JSON.stringify(generateCases(50, 3)));
    expect(JSON.stringify(generateCases(50, 3))).not.toBe(JSON.stringify(generateCases(50, 4)));
  });

  it('cover every route, mostly with its own method', () => {
    const cases = generateCases(2_000, 1);
    for (const route of ROUTES) {
      expect(cases.some((c) => c.path === route.path && c.method === route.method)).toBe(true);
    }
    const right = cases.filter((c) => ROUTES.some((r) => r.path === c.path && r.method === c.method));
    expect(right.length / cases.length).toBeGreaterThan(0.6);
  });
});

describe('resolveCase', () => {
  const target = {
    baseUrl: 'http://h',
    token: 'secret-token-0123456789',
    taskIds: ['11111111-1111-4111-8111-111111111111'],
  };

  it('fills in real ids and the token', () => {
    const r = resolveCase(
      {
        method: 'PUT',
        path: '/api/v1/update-task-status',
        query: [['taskId', { $id: 'real', index: 7 }]],
        token: 'valid',
        contentType: 'application/json',
        body: { kind: 'json', value: { taskId: { $id: 'real', index: 0 }, taskStatus: 'success' } },
        idempotencyKey: undefined,
      },
      target,
    );
    expect(r.url).toBe('http://h/api/v1/update-task-status?taskId=11111111-1111-4111-8111-111111111111');
    expect(r.headers.authorization).toBe('Bearer secret-token-0123456789');
    expect(JSON.parse(String(r.body))).toEqual({ taskId: target.taskIds[0], taskStatus: 'success' });
  });

  it('sends a wrong token that differs only in its last character', () => {
    const r = resolveCase(
      {
        method: 'POST',
        path: '/p',
        query: [],
        token: 'wrong',
        contentType: undefined,
        body: { kind: 'none' },
        idempotencyKey: undefined,
      },
      target,
    );
    expect(r.headers.authorization).toBe('Bearer secret-token-012345678x');
    expect(r.body).toBeUndefined();
  });
});

describe('percentEncode', () => {
  it('encodes lone surrogates and NUL where encodeURIComponent throws', () => {
    expect(() => encodeURIComponent('\ud800')).toThrow();
    expect(percentEncode('\ud800')).toBe('%EF%BF%BD');
    expect(percentEncode('a\u0000b c')).toBe('a%00b%20c');
  });
});

describe('findLeak', () => {
  it('spots stack frames, source paths and PostgreSQL messages', () => {
    expect(findLeak('Error: x\n    at foo (/app/src/a.ts:1:2)')).toBeDefined();
    expect(findLeak('syntax error at or near "DROP"')).toBeDefined();
    expect(findLeak('duplicate key value violates unique constraint "tasks_pkey"')).toBeDefined();
  });

  it('accepts ordinary problem details, even ones quoting SQL-ish input', () => {
    expect(findLeak('{"title":"Bad Request","detail":"text must not contain NUL (U+0000)"}')).toBeUndefined();
    expect(findLeak(`{"detail":"taskId \\"'; DROP TABLE tasks; --\\" is not a UUID"}`)).toBeUndefined();
  });
});

describe('serverErrorCount', () => {
  it('sums the 5xx request counts of a Prometheus page', () => {
    const page = [
      'http_request_duration_seconds_count{method="GET",route="/x",status_code="200"} 10',
      'http_request_duration_seconds_count{method="PUT",route="/y",status_code="503"} 2',
      'http_request_duration_seconds_count{method="PUT",route="/y",status_code="500"} 1',
      'http_request_duration_seconds_sum{method="PUT",route="/y",status_code="500"} 9',
    ].join('\n');
    expect(serverErrorCount(page)).toBe(3);
  });
});
