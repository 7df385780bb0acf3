import { randomUUID } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { ProblemError } from '../../../src/problems.js';
import { mergeStatusUpdate } from '../../../src/routes/tasks.js';

const taskId = randomUUID();

function problemOf(fn: () => unknown) {
  try {
    fn();
  } catch (err) {
    if (err instanceof ProblemError) return err.problem;
    throw err;
  }
  throw new Error('expected a ProblemError');
}

describe('mergeStatusUpdate', () => {
  test('query only, body only, or split between them', () => {
    expect(mergeStatusUpdate({ taskId, taskStatus: 'success', attempt: 2 }, null)).toEqual({
      taskId,
      taskStatus: 'success',
      attempt: 2,
    });
    expect(mergeStatusUpdate({}, { taskId, taskStatus: 'error', error: 'x' })).toEqual({
      taskId,
      taskStatus: 'error',
      error: 'x',
    });
    expect(mergeStatusUpdate({ taskId }, { taskStatus: 'success' })).toEqual({
      taskId,
      taskStatus: 'success',
    });
  });

  test('the same value in both places is fine; different values are a 400 naming the field', () => {
    expect(
      mergeStatusUpdate({ taskId, attempt: 3 }, { taskId, taskStatus: 'success', attempt: 3 }).attempt,
    ).toBe(3);
    const problem = problemOf(() =>
      mergeStatusUpdate({ taskId, attempt: 3 }, { taskStatus: 'success', attempt: 4 }),
    );
    expect(problem).toMatchObject({ status: 400, detail: 'attempt differs between the query and the body' });
  });

  test('missing required fields after merging are a 400', () => {
    expect(problemOf(() => mergeStatusUpdate({ taskId }, undefined))).toMatchObject({
      status: 400,
      detail: expect.stringMatching(/taskStatus/),
    });
  });
});
