import { describe, expect, test } from 'vitest';
import { deadLetterReason, reportFromDeadLetter, reportFromResult } from '../../src/report-messages.js';

const taskId = '5b0c3c1e-9d5c-4c1a-8f0e-2c8a4b7d9e10';
const json = (value: unknown) => Buffer.from(JSON.stringify(value));
const work = json({ taskId, text: 'x', priority: 'high', createdAt: '2024-01-01T00:00:00Z', attempt: 2 });

describe('reportFromResult', () => {
  test('maps a result message to a batch item', () => {
    expect(reportFromResult(json({ taskId, attempt: 1, status: 'success' }), 'application/json')).toEqual({
      ok: true,
      value: { taskId, attempt: 1, taskStatus: 'success' },
    });
    expect(
      reportFromResult(
        json({ taskId, attempt: 1, status: 'error', error: 'invalid_message' }),
        'application/json',
      ),
    ).toEqual({ ok: true, value: { taskId, attempt: 1, taskStatus: 'error', error: 'invalid_message' } });
  });

  test.each([
    [json({ taskId, attempt: 1, status: 'done' }), 'application/json', /status/],
    [json({ attempt: 1, status: 'success' }), 'application/json', /taskId/],
    [Buffer.from('{nope'), 'application/json', /not valid JSON/],
    [json({ taskId, attempt: 1, status: 'success' }), 'text/plain', /content type/],
  ])('refuses %s with a reason', (body, contentType, reason) => {
    const parsed = reportFromResult(body, contentType);
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

describe('reportFromDeadLetter', () => {
  test('reports error with the dead-letter reason for the message’s attempt', () => {
    expect(reportFromDeadLetter(work, { 'x-death': [{ reason: 'delivery_limit' }] })).toEqual({
      ok: true,
      value: { taskId, attempt: 2, taskStatus: 'error', error: 'delivery_limit' },
    });
  });

  test('needs only taskId and attempt', () => {
    expect(reportFromDeadLetter(json({ taskId, attempt: 3 }), undefined).ok).toBe(true);
    expect(reportFromDeadLetter(Buffer.from([0xff, 0x00]), undefined).ok).toBe(false);
    expect(reportFromDeadLetter(json({ taskId }), undefined).ok).toBe(false);
  });
});
