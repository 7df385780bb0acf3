// sent_at is written on the database's clock (db/clock.ts): a producer whose clock is an hour ahead
// of the database's hands over the confirm's age, and neither the record nor a report stamps a task
// sent an hour after it finished.
import { afterEach, describe, expect, test, vi } from 'vitest';
import { createTaskRepository } from '../../../src/tasks/repository.js';
import { dispatchRepository, insertTasks, resetState, useServices } from '../../support/dispatch.js';

const services = useServices('dispatch_clock');
const HOUR_MS = 3_600_000;
/** How long ago the broker confirmed the publish, on the producer's clock. */
const AGE_MS = 2_000;

afterEach(() => {
  vi.useRealTimers();
});

/** One claimed task (attempt 1), as the claim leaves it. */
async function claimedTask() {
  await resetState(services);
  const [task] = await insertTasks(services.sql, 1);
  if (!task) throw new Error('one task inserted');
  await services.sql`update tasks set attempts = 1, claimed_until = now() + interval '5 minutes' where id = ${task.id}`;
  return task;
}

/** The producer's clock runs an hour ahead of the database's from here on. */
function producerClockAhead(): Date {
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(Date.now() + HOUR_MS);
  return new Date(Date.now() - AGE_MS);
}

async function stamps(id: string) {
  const [row] = await services.sql<{ status: string; sent_ms: number; finished_ms: number | null }[]>`
    select status,
           (extract(epoch from now() - sent_at) * 1000)::float8 as sent_ms,
           (extract(epoch from now() - finished_at) * 1000)::float8 as finished_ms
      from tasks where id = ${id}`;
  return row;
}

describe('sent_at on the database clock', () => {
  test('the record writes now() less the age of the confirm', async () => {
    const task = await claimedTask();
    const confirmedAt = producerClockAhead();
    const outcome = await dispatchRepository(services.sql).recordSent([{ ...task, attempt: 1 }], confirmedAt);
    vi.useRealTimers();
    expect(outcome.done).toEqual([task.id]);
    const row = await stamps(task.id);
    expect(row?.status).toBe('sent');
    // About AGE_MS ago on the database's clock (not an hour in its future).
    expect(row?.sent_ms).toBeGreaterThanOrEqual(AGE_MS - 1);
    expect(row?.sent_ms).toBeLessThan(AGE_MS + 60_000);
  });

  test('a report of a task confirmed here but not recorded writes it the same way, before its finish', async () => {
    const task = await claimedTask();
    const confirmedAt = producerClockAhead();
    const repository = createTaskRepository(services.sql, {
      deadlineMs: 10_000,
      unrecorded: { confirmedAt: () => new Map([[task.id, confirmedAt]]), reported: () => undefined },
    });
    const [result] = await repository.reportBatch([{ taskId: task.id, taskStatus: 'success', attempt: 1 }]);
    vi.useRealTimers();
    expect(result).toMatchObject({ outcome: 'applied' });
    const row = await stamps(task.id);
    expect(row?.status).toBe('success');
    expect(row?.sent_ms).toBeGreaterThanOrEqual(AGE_MS - 1);
    expect(row?.sent_ms).toBeLessThan(AGE_MS + 60_000);
    expect(row?.sent_ms).toBeGreaterThan(row?.finished_ms ?? Number.POSITIVE_INFINITY);
  });
});
