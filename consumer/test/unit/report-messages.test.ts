import { describe, expect, test } from 'vitest';
import { deadLetterReason, reportsFromDeadLetter, reportsFromResults } from '../../src/report-messages.js';

const taskId = '5b0c3c1e-9d5c-4c1a-8f0e-2c8a4b7d9e10';
const json = (value: unknown) => Buffer.from(JSON.stringify(value));
const work = json({ taskId, text: 'x', priority: 'high', createdAt: '2024-01-01T00:00:00Z', attempt: 2 });

describe('reportsFromResults', () => {
  const other = 'c1a0f7d2-3b4e-4f5a-9c8d-7e6f5a4b3c2d';

  test('maps each result of a message to a batch item, in order', () => {
    const message = json({
      results: [
        { taskId, attempt: 1, status: 'success' },
        { taskId: other, attempt: 3, status: 'error', error: 'invalid_message' },
      ],
    });
    expect(reportsFromResults(message, 'application/json')).toEqual({
      ok: true,
      value: [
        { taskId, attempt: 1, taskStatus: 'success' },
        { taskId: other, attempt: 3, taskStatus: 'error', error: 'invalid_message' },
      ],
    });
  });

  test('reads the earlier one-result form as a list of one', () => {
    expect(reportsFromResults(json({ taskId, attempt: 1, status: 'success' }), 'application/json')).toEqual({
      ok: true,
      value: [{ taskId, attempt: 1, taskStatus: 'success' }],
    });
  });

  test('lower-cases task ids', () => {
    const parsed = reportsFromResults(
      json({ results: [{ taskId: taskId.toUpperCase(), attempt: 1, status: 'success' }] }),
      'application/json',
    );
    expect(parsed).toEqual({ ok: true, value: [{ taskId, attempt: 1, taskStatus: 'success' }] });
  });

  test.each([
    [json({ taskId, attempt: 1, status: 'done' }), 'application/json', /status/],
    [json({ attempt: 1, status: 'success' }), 'application/json', /taskId/],
    [json({ results: [] }), 'application/json', /results/],
    [json({ results: [{ taskId, attempt: 0, status: 'success' }] }), 'application/json', /attempt/],
    [
      json({ results: Array.from({ length: 1001 }, () => ({ taskId, attempt: 1, status: 'success' })) }),
      'application/json',
      /results/,
    ],
    [Buffer.from('{nope'), 'application/json', /not valid JSON/],
    [json({ taskId, attempt: 1, status: 'success' }), 'text/plain', /content type/],
  ])('refuses %s with a reason', (body, contentType, reason) => {
    const parsed = reportsFromResults(body, contentType);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.reason).toMatch(reason);
  });
});

describe('deadLetterReason', () => {
  test('is the newest x-death reason', () => {
    const headers = {
      'x-death': [
        { reason: 'delivery_limit', queue: 'tasks.high' },
        { reason: 'expired', queue: 'tasks.retry.1' },
      ],
      'x-error': 'simulated processing failure',
    };
    expect(deadLetterReason(headers)).toBe('delivery_limit');
  });

  test('is the worker’s x-error when the broker only says `rejected`', () => {
    const headers = {
      'x-death': [
        { reason: 'rejected', queue: 'tasks.high' },
        { reason: 'expired', queue: 'tasks.retry.1' },
      ],
      'x-error': Buffer.from('simulated processing failure'),
    };
    expect(deadLetterReason(headers)).toBe('simulated processing failure');
  });

  test('falls back to `rejected` without an x-error, and caps the length', () => {
    expect(deadLetterReason({ 'x-death': [{ reason: 'rejected' }] })).toBe('rejected');
    expect(deadLetterReason(undefined)).toBe('rejected');
    expect(
      deadLetterReason({ 'x-death': [{ reason: 'rejected' }], 'x-error': 'e'.repeat(5000) }),
    ).toHaveLength(2000);
  });
});

describe('reportsFromDeadLetter', () => {
  test('reports error with the dead-letter reason for the message’s attempt', () => {
    expect(reportsFromDeadLetter(work, { 'x-death': [{ reason: 'delivery_limit' }] })).toEqual({
      ok: true,
      value: [{ taskId, attempt: 2, taskStatus: 'error', error: 'delivery_limit' }],
    });
  });

  test('a message of several tasks: one report each, with the same reason, a duplicate once', () => {
    const other = '0b7a7d2e-5f3c-4d8b-9a1e-6c2f4e8d0a13';
    const first = JSON.parse(work.toString());
    const batch = json({ tasks: [first, { taskId: other, attempt: 1 }, first] });
    expect(reportsFromDeadLetter(batch, { 'x-death': [{ reason: 'delivery_limit' }] })).toEqual({
      ok: true,
      value: [
        { taskId, attempt: 2, taskStatus: 'error', error: 'delivery_limit' },
        { taskId: other, attempt: 1, taskStatus: 'error', error: 'delivery_limit' },
      ],
    });
  });

  test('a message of several tasks with one unreadable is not reported but parked whole', () => {
    const batch = json({ tasks: [JSON.parse(work.toString()), { text: 'x' }] });
    expect(reportsFromDeadLetter(batch, undefined)).toEqual({
      ok: false,
      reason: 'dead-lettered message with 1 task(s) without a readable taskId and attempt',
    });
  });

  test('a task a worker dead-lettered on its own (no x-death) reports the worker’s x-error', () => {
    expect(reportsFromDeadLetter(work, { 'x-error': 'boom', 'x-retry-count': 0 })).toMatchObject({
      ok: true,
      value: [{ taskId, error: 'boom' }],
    });
  });

  test('needs only taskId and attempt', () => {
    expect(reportsFromDeadLetter(json({ taskId, attempt: 3 }), undefined).ok).toBe(true);
    expect(reportsFromDeadLetter(Buffer.from([0xff, 0x00]), undefined).ok).toBe(false);
    expect(reportsFromDeadLetter(json({ taskId }), undefined).ok).toBe(false);
    expect(reportsFromDeadLetter(json({ tasks: [{ taskId }] }), undefined).ok).toBe(false);
  });
});
