// Fresh tasks claimed by the insert that creates them (PROTOCOL §6.1): only while the dispatcher has
// nothing waiting for it, with the same lease and attempt fence as a claim, so a crash between the
// insert and the publish loses nothing.

import { eventually } from '@task-pipeline/testkit/eventually';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { ClaimedTask } from '../../../src/dispatch/dispatch-repository.js';
import { createTaskRepository } from '../../../src/tasks/repository.js';
import {
  gate,
  insertTasks,
  resetState,
  startDispatcher,
  statusCounts,
  type TestDispatcher,
  takeQueued,
  useServices,
} from '../../support/dispatch.js';

const running: TestDispatcher[] = [];

const services = useServices('dispatch_insert_claim');
beforeEach(async () => {
  await resetState(services);
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((d) => d.close()));
});

async function start(options: Parameters<typeof startDispatcher>[1] = {}) {
  const d = await startDispatcher(services, options);
  running.push(d);
  return d;
}

function repositoryFor(d: TestDispatcher) {
  return createTaskRepository(services.sql, {
    deadlineMs: 10_000,
    claimOnInsert: (n) => d.dispatcher.claimOnInsert(n),
  });
}

/**
 * The dispatcher has looked at the table once and found nothing waiting: an insert may claim now.
 * (Its first count comes before its first claim returns: waiting for the count alone let a loaded
 * machine create the tasks while the claim was still out, and they queued behind it instead.)
 * The probe's reservation is given straight back.
 */
async function idle(d: TestDispatcher) {
  await eventually(
    'an insert may claim',
    () => {
      const probe = d.dispatcher.claimOnInsert(1);
      probe?.abandoned();
      return probe !== undefined;
    },
    { timeoutMs: 10_000 },
  );
}

describe('a create while the dispatcher is idle', () => {
  test('is inserted claimed (attempt 1, leased) and goes out without a claim statement', async () => {
    const d = await start();
    await idle(d);
    const tasks = repositoryFor(d);
    const created = await Promise.all(
      ['high', 'low', 'medium'].map((priority) =>
        tasks.create({ text: `fresh ${priority}`, priority: priority as 'high' | 'low' | 'medium' }),
      ),
    );
    for (const result of created) {
      expect(result).toMatchObject({
        outcome: 'created',
        claimed: true,
        task: { status: 'waiting', attempts: 1 },
      });
    }
    const messages = await takeQueued(services.vhost.url, 3);
    expect(messages.map((m) => m.body.attempt)).toEqual([1, 1, 1]);
    await eventually('all recorded sent', async () => (await statusCounts(services.sql)).sent === 3, {
      timeoutMs: 10_000,
    });
    const [row] = await services.sql<
      { n: number }[]
    >`select count(*)::int as n from tasks where attempts <> 1`;
    expect(row?.n).toBe(0);
  });
});

describe('a create behind a backlog', () => {
  test('is inserted waiting and queues behind it, in claim order', async () => {
    const hold = gate();
    const d = await start({
      config: { batchSize: 50 },
      // Every claimed batch waits here, so the claim that found a full batch is the last one seen.
      hooks: { afterClaim: () => hold.promise },
    });
    await insertTasks(services.sql, 500);
    d.dispatcher.wake();
    await eventually('a full batch claimed', () => d.dispatcher.stats().batchesInFlight > 0, {
      timeoutMs: 10_000,
    });
    const result = await repositoryFor(d).create({ text: 'behind the backlog', priority: 'medium' });
    expect(result).toMatchObject({ outcome: 'created', claimed: false, task: { attempts: 0 } });
    hold.open();
    await eventually('everything sent', async () => (await statusCounts(services.sql)).sent === 501, {
      timeoutMs: 30_000,
    });
  });
});

describe('an insert that claimed and then died', () => {
  test('before the publish: the lease expires and the task goes out with the next attempt', async () => {
    const never = gate();
    const doomed = await start({ hooks: { afterClaim: () => never.promise } });
    await idle(doomed);
    const result = await repositoryFor(doomed).create({ text: 'orphaned', priority: 'high' });
    expect(result).toMatchObject({ claimed: true, task: { attempts: 1 } });
    // The doomed dispatcher holds the claim forever and claims nothing more (as if it had died); its
    // lease runs out instead.
    await doomed.dispatcher.stop(100);
    await services.sql`update tasks set claimed_until = now() - interval '1 ms'`;
    const rescuer = await start();
    rescuer.dispatcher.wake();
    const [message] = await takeQueued(services.vhost.url, 1);
    expect(message?.body).toMatchObject({
      taskId: result.outcome === 'created' ? result.task.taskId : '',
      attempt: 2,
    });
    never.open();
  });

  test('a failed insert gives its reservation back', async () => {
    const d = await start();
    await idle(d);
    const offered: ClaimedTask[][] = [];
    const tasks = createTaskRepository(services.sql, {
      deadlineMs: 10_000,
      claimOnInsert: (n) => {
        const claim = d.dispatcher.claimOnInsert(n);
        return claim && { ...claim, claimed: (t) => offered.push(t) };
      },
    });
    await expect(tasks.create({ text: 'x\u0000', priority: 'medium' })).rejects.toThrow();
    expect(offered).toEqual([]);
    // The reservation is gone: the next create can claim again.
    const again = await repositoryFor(d).create({ text: 'after the failure', priority: 'medium' });
    expect(again).toMatchObject({ claimed: true });
  });
});
