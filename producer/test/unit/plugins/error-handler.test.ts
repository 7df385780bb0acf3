import { CoalesceDeadlineError, CoalesceQueueFullError } from '@task-pipeline/common';
import type { FastifyError, FastifyRequest } from 'fastify';
import { describe, expect, test } from 'vitest';
import { StatementDeadlineError } from '../../../src/db/deadline.js';
import { requestIdFor, toProblem } from '../../../src/plugins/error-handler.js';

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

describe('toProblem: the database not answering in time, or too many waiting, is a 503 to retry', () => {
  const request = { id: 'req-1', headers: {}, routeOptions: {} } as unknown as FastifyRequest;
  const pgError = (code: string, message: string) => Object.assign(new Error(message), { code });

  test.each([
    ['a coalesced batch past its deadline', new CoalesceDeadlineError(1_500), /did not answer in time/],
    [
      'a statement past its deadline',
      new StatementDeadlineError('task lookup', 1_500),
      /did not answer in time/,
    ],
    ['statement_timeout', pgError('57014', 'canceling statement due to statement timeout'), /in time/],
    ['lock_timeout', pgError('55P03', 'canceling statement due to lock timeout'), /in time/],
    ['a full waiting room', new CoalesceQueueFullError(4_000), /too many requests are waiting/],
  ])('%s', (_name, err, detail) => {
    const body = toProblem(err as unknown as FastifyError, request);
    expect(body).toMatchObject({
      status: 503,
      title: 'Service unavailable',
      detail: expect.stringMatching(detail),
    });
    expect(body.detail).not.toMatch(/statement timeout|lock timeout|task lookup|4000/);
  });
});
