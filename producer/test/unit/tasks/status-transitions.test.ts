import { describe, expect, test } from 'vitest';
import {
  decideRedrive,
  decideReport,
  RECOVERABLE_ERROR,
  TASK_STATUSES,
  type TaskState,
  type TaskStatus,
} from '../../../src/tasks/status-transitions.js';

const REPORTS = ['success', 'error'] as const;
const CURRENT = 3;

/** Task states worth telling apart: the error reason matters only for `error`. */
const STATES: TaskState[] = [
  { status: 'waiting', attempts: CURRENT, error: null },
  { status: 'sent', attempts: CURRENT, error: null },
  { status: 'success', attempts: CURRENT, error: null },
  { status: 'error', attempts: CURRENT, error: 'boom' },
  { status: 'error', attempts: CURRENT, error: RECOVERABLE_ERROR },
];

const label = (s: TaskState) => (s.status === 'error' ? `error(${s.error})` : s.status);

// The contract's table for a report of the task's current attempt, written out rather than derived.
const SAME_ATTEMPT: Record<string, Record<(typeof REPORTS)[number], string>> = {
  waiting: { success: 'apply', error: 'apply' },
  sent: { success: 'apply', error: 'apply' },
  success: { success: 'duplicate', error: 'conflict' },
  'error(boom)': { success: 'conflict', error: 'duplicate' },
  [`error(${RECOVERABLE_ERROR})`]: { success: 'apply', error: 'duplicate' },
};

const cases = STATES.flatMap((state) => REPORTS.map((report) => ({ state, report, name: label(state) })));

describe('decideReport', () => {
  test('the table covers every status', () => {
    expect(new Set(STATES.map((s) => s.status))).toEqual(new Set(TASK_STATUSES));
    expect(Object.keys(SAME_ATTEMPT)).toEqual(STATES.map(label));
  });

  test.each(cases)('$name + $report for the current attempt', ({ state, report, name }) => {
    expect(decideReport(state, { status: report, attempt: CURRENT }).outcome).toBe(
      SAME_ATTEMPT[name]?.[report],
    );
  });

  test.each(cases)(
    '$name + $report without attempt applies to the current one',
    ({ state, report, name }) => {
      expect(decideReport(state, { status: report }).outcome).toBe(SAME_ATTEMPT[name]?.[report]);
    },
  );

  test.each(cases)('$name + $report of an older attempt is stale', ({ state, report }) => {
    for (const attempt of [0, CURRENT - 1]) {
      expect(decideReport(state, { status: report, attempt })).toEqual({ outcome: 'stale' });
    }
  });

  test.each(cases)('$name + $report of a newer attempt is refused', ({ state, report }) => {
    for (const attempt of [CURRENT + 1, 2 ** 31 - 1]) {
      expect(decideReport(state, { status: report, attempt })).toEqual({
        outcome: 'conflict',
        reason: 'attempt_ahead',
      });
    }
  });

  test('success and error refuse each other with reason terminal', () => {
    expect(decideReport(STATES[2] as TaskState, { status: 'error', attempt: CURRENT })).toEqual({
      outcome: 'conflict',
      reason: 'terminal',
    });
  });

  test('a never-dispatched task (attempts 0) takes a report without attempt', () => {
    expect(decideReport({ status: 'waiting', attempts: 0, error: null }, { status: 'success' }).outcome).toBe(
      'apply',
    );
  });
});

describe('decideRedrive', () => {
  const expected: Record<TaskStatus, string> = {
    waiting: 'conflict',
    sent: 'apply',
    success: 'conflict',
    error: 'apply',
  };
  test.each(TASK_STATUSES)('from %s', (status) => {
    expect(decideRedrive({ status }).outcome).toBe(expected[status]);
  });
});
