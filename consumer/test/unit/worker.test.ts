import { MAX_TASKS_PER_WORK_MESSAGE } from '@task-pipeline/rabbitmq';
import { describe, expect, test } from 'vitest';
import { simulateOutcome } from '../../src/simulate-processing.js';
import { decideWork, retryHeaders, type WorkOutcome } from '../../src/worker.js';

const taskId = '5b0c3c1e-9d5c-4c1a-8f0e-2c8a4b7d9e10';
const body = (value: unknown) => Buffer.from(JSON.stringify(value));
const workBody = body({
  taskId,
  text: 'hello',
  priority: 'low',
  createdAt: '2024-01-01T00:00:00Z',
  attempt: 1,
});
const json = 'application/json';

const policy = (failureRate: number, maxRetries = 2) => ({
  failureSeed: 'unit',
  failureRate,
  maxRetries,
  retryDelaysSeconds: [1, 5],
});

describe('decideWork', () => {
  test('success → ack with a success result for the same attempt', () => {
    expect(decideWork(policy(0), { content: workBody, contentType: json, headers: {} })).toEqual({
      kind: 'tasks',
      tasks: [{ kind: 'ack', result: { taskId, attempt: 1, status: 'success' } }],
      listed: false,
    });
  });

  test('failure with retries left → the next retry exchange, routed by priority', () => {
    expect(
      decideWork(policy(1), { content: workBody, contentType: json, headers: { 'x-retry-count': 1 } }),
    ).toEqual({
      kind: 'tasks',
      tasks: [
        {
          kind: 'retry',
          task: JSON.parse(workBody.toString()),
          exchange: 'tasks.retry.5',
          delaySeconds: 5,
          routingKey: 'low',
          retryCount: 2,
          error: 'simulated processing failure',
        },
      ],
      listed: false,
    });
  });

  test('failure with retries spent → dead-letter', () => {
    const outcome = decideWork(policy(1), {
      content: workBody,
      contentType: json,
      headers: { 'x-retry-count': 2 },
    });
    expect(kinds(outcome)).toEqual(['dead-letter']);
  });

  test('the outcome follows the hash of seed, task, attempt and retry count', () => {
    const p = policy(0.5, 10);
    for (let retryCount = 0; retryCount < 10; retryCount++) {
      const expected = simulateOutcome(p, { taskId, attempt: 1, retryCount }).ok ? 'ack' : 'retry';
      const headers = { 'x-retry-count': retryCount };
      expect(kinds(decideWork(p, { content: workBody, contentType: json, headers }))).toEqual([expected]);
    }
  });

  test.each([
    ['garbage bytes', Buffer.from([0xde, 0xad, 0xbe, 0xef]), json, /not valid JSON/, false],
    ['JSON without taskId', body({ text: 'x', priority: 'high', attempt: 1 }), json, /taskId/, false],
    ['a wrong content type', workBody, 'text/plain', /content type/, true],
    ['a 1 MB body', body({ taskId, attempt: 1, text: 'x'.repeat(1024 * 1024) }), json, /exceeds/, true],
    [
      'an unknown priority',
      body({ taskId, attempt: 1, text: 'x', priority: 'urgent', createdAt: 'x' }),
      json,
      /priority/,
      true,
    ],
  ])(
    '%s → park with a reason (reported invalid_message: %s)',
    (_name, content, contentType, reason, reported) => {
      const outcome = decideWork(policy(0), { content, contentType, headers: undefined });
      expect(outcome.kind).toBe('park');
      if (outcome.kind !== 'park') return;
      expect(outcome.reason).toMatch(reason as RegExp);
      expect(outcome.reports).toEqual(
        reported ? [{ taskId, attempt: 1, status: 'error', error: 'invalid_message' }] : [],
      );
    },
  );

  test('a message of several tasks: an outcome for each, from its own hash', () => {
    const p = policy(0.5, 10);
    const tasks = Array.from({ length: 8 }, (_, i) => ({
      taskId: `5b0c3c1e-9d5c-4c1a-8f0e-2c8a4b7d9e1${i}`,
      text: 'hello',
      priority: 'high',
      createdAt: '2024-01-01T00:00:00Z',
      attempt: 1,
    }));
    const outcome = decideWork(p, { content: body({ tasks }), contentType: json, headers: undefined });
    const expected = tasks.map((t) =>
      simulateOutcome(p, { taskId: t.taskId, attempt: 1, retryCount: 0 }).ok ? 'ack' : 'retry',
    );
    expect(kinds(outcome)).toEqual(expected);
    expect(new Set(expected)).toEqual(new Set(['ack', 'retry']));
    expect(outcome).toMatchObject({ listed: true });
  });

  test('a list of one task is still a list: its retry copy is written in the task’s own form', () => {
    const task = JSON.parse(workBody.toString());
    const outcome = decideWork(policy(1), {
      content: body({ tasks: [task] }),
      contentType: json,
      headers: {},
    });
    expect(outcome).toMatchObject({ kind: 'tasks', listed: true });
    expect(kinds(outcome)).toEqual(['retry']);
  });

  test('a message of several tasks that fails validation is parked whole; each task it names is reported', () => {
    const valid = JSON.parse(workBody.toString());
    const other = { ...valid, taskId: '5b0c3c1e-9d5c-4c1a-8f0e-2c8a4b7d9e11', priority: 'urgent' };
    const outcome = decideWork(policy(0), {
      content: body({ tasks: [valid, other] }),
      contentType: json,
      headers: undefined,
    });
    expect(outcome).toMatchObject({ kind: 'park', reason: expect.stringMatching(/tasks\.1\.priority/) });
    if (outcome.kind !== 'park') return;
    expect(outcome.reports.map((r) => [r.taskId, r.error])).toEqual([
      [taskId, 'invalid_message'],
      [other.taskId, 'invalid_message'],
    ]);
  });

  const nth = (i: number) => ({
    ...JSON.parse(workBody.toString()),
    taskId: `5b0c3c1e-9d5c-4c1a-8f0e-${String(i).padStart(12, '0')}`,
  });

  test.each([
    ['of several priorities', [nth(1), { ...nth(2), priority: 'high' }], /several priorities/],
    ['with a task twice', [nth(1), nth(1)], /a task twice/],
    [
      'of more tasks than a message may carry',
      Array.from({ length: MAX_TASKS_PER_WORK_MESSAGE + 1 }, (_, i) => nth(i)),
      /64/,
    ],
    ['of distinct tasks of one priority (the control)', [nth(1), nth(2)], undefined],
  ])('a message of several tasks %s', (_name, tasks, reason) => {
    const outcome = decideWork(policy(0), { content: body({ tasks }), contentType: json, headers: {} });
    if (reason === undefined) expect(kinds(outcome)).toEqual(['ack', 'ack']);
    else expect(outcome).toMatchObject({ kind: 'park', reason: expect.stringMatching(reason) });
  });
});

function kinds(outcome: WorkOutcome): string[] {
  return outcome.kind === 'tasks' ? outcome.tasks.map((t) => t.kind) : [outcome.kind];
}

describe('retryHeaders', () => {
  test('sets count and error, keeps tracing, drops what the broker wrote', () => {
    const headers = retryHeaders(
      {
        traceparent: '00-abc-def-01',
        'x-death': [{ reason: 'expired' }],
        'x-first-death-reason': 'expired',
        'x-last-death-queue': 'tasks.retry.1',
        'x-delivery-count': 2,
        'x-retry-count': 1,
      },
      2,
      'boom',
    );
    expect(headers).toEqual({ traceparent: '00-abc-def-01', 'x-retry-count': 2, 'x-error': 'boom' });
  });
});
