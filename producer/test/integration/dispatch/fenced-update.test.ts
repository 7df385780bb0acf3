// The record and release statements' outcome, row by row: changed, skipped because another
// transaction holds the row (the dispatcher retries those), or left alone because it no longer
// matches the claim (reported, re-claimed); the dispatcher's retry logic relies on telling them apart.
import { beforeEach, describe, expect, test } from 'vitest';
import type { ClaimedTask } from '../../../src/dispatch/dispatch-repository.js';
import { dispatchRepository, insertTasks, resetState, useServices } from '../../support/dispatch.js';

const services = useServices('dispatch_fenced');

beforeEach(async () => {
  await resetState(services);
});

/** An hour before the test: far enough that a record writing its own time would show. */
const CONFIRMED_AT = new Date(Date.now() - 3_600_000);

/** Five claimed tasks (attempt 1), as the claim leaves them. */
async function claimFive(): Promise<ClaimedTask[]> {
  const tasks = await insertTasks(services.sql, 5);
  const ids = tasks.map((t) => t.id);
  await services.sql`
    UPDATE tasks SET attempts = 1, claimed_until = now() + interval '5 minutes'
    WHERE id IN ${services.sql(ids)}`;
  return tasks.map((t) => ({ id: t.id, text: '', priority: t.priority, createdAt: new Date(), attempt: 1 }));
}

describe.each([
  ['recordSent', 'sent'],
  ['release', 'waiting'],
] as const)('%s', (method, statusAfter) => {
  test('changes the matching rows, reports the locked ones and leaves the others alone', async () => {
    const [free, held, reported, reclaimed, gone] = (await claimFive()) as [
      ClaimedTask,
      ClaimedTask,
      ClaimedTask,
      ClaimedTask,
      ClaimedTask,
    ];
    await services.sql`UPDATE tasks SET status = 'success' WHERE id = ${reported.id}`;
    await services.sql`UPDATE tasks SET attempts = 2 WHERE id = ${reclaimed.id}`;
    await services.sql`DELETE FROM tasks WHERE id = ${gone.id}`;
    const holder = await services.sql.reserve();
    try {
      await holder`BEGIN`;
      await holder`SELECT 1 FROM tasks WHERE id = ${held.id} FOR UPDATE`;
      const repository = dispatchRepository(services.sql);
      const all = [free, held, reported, reclaimed, gone];
      const outcome =
        method === 'recordSent'
          ? await repository.recordSent(all, CONFIRMED_AT)
          : await repository.release(all, 60_000);
      expect(outcome).toEqual({ done: [free.id], locked: [held.id] });
    } finally {
      await holder`ROLLBACK`;
      holder.release();
    }
    const rows = await services.sql<
      { id: string; status: string; attempts: number; sent: boolean; sent_at: Date | null }[]
    >`SELECT id, status, attempts, sent_at IS NOT NULL AS sent, sent_at FROM tasks`;
    const byId = new Map(rows.map((r) => [r.id, r]));
    expect(byId.get(free.id)).toMatchObject({ status: statusAfter, sent: statusAfter === 'sent' });
    // The broker's confirm time, not the statement's: the record delay must not shift sent_at. It is
    // written as now() less the confirm's age (db/clock.ts): equal up to the statement's own wait.
    if (method === 'recordSent') {
      const offset = (byId.get(free.id)?.sent_at?.getTime() ?? 0) - CONFIRMED_AT.getTime();
      expect(offset).toBeGreaterThanOrEqual(-1);
      expect(offset).toBeLessThan(1_000);
    }
    expect(byId.get(held.id)).toMatchObject({ status: 'waiting', attempts: 1, sent: false });
    expect(byId.get(reported.id)).toMatchObject({ status: 'success', sent: false });
    expect(byId.get(reclaimed.id)).toMatchObject({ status: 'waiting', attempts: 2, sent: false });
  });
});
