// Status transitions under concurrency and fencing (PROTOCOL §3), through the listening server: the
// check-and-set lets exactly one of two racing reports win, and attempts fence late reports.
import { describe, expect, test } from 'vitest';
import { AUTH, markSent, type TaskJson, useTestProducer } from '../support/producer.js';

const producer = useTestProducer('transitions');

async function createTasks(n: number): Promise<TaskJson[]> {
  return Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const reply = await producer.http<TaskJson>('POST', '/api/v1/create-task', { json: { text: `t${i}` } });
      expect(reply.status).toBe(201);
      return reply.body;
    }),
  );
}

const report = (taskId: string, taskStatus: 'success' | 'error', attempt?: number) =>
  producer.http<TaskJson>(
    'PUT',
    `/api/v1/update-task-status?taskId=${taskId}&taskStatus=${taskStatus}${attempt === undefined ? '' : `&attempt=${attempt}`}`,
    { headers: AUTH },
  );

async function row(taskId: string) {
  const [found] = await producer.sql`select * from tasks where id = ${taskId}`;
  return found;
}

describe('racing reports', () => {
  test('parallel success and error PUTs for one task: exactly one wins, the other gets 409', async () => {
    const tasks = await createTasks(30);
    await markSent(
      producer.sql,
      tasks.map((t) => t.taskId),
    );
    const races = await Promise.all(
      tasks.map(async (task, i) => {
        // Alternate who is sent first, so neither side wins by construction.
        const [first, second] =
          i % 2 === 0 ? (['success', 'error'] as const) : (['error', 'success'] as const);
        const replies = await Promise.all([report(task.taskId, first, 1), report(task.taskId, second, 1)]);
        return { task, statuses: [first, second], replies };
      }),
    );
    for (const { task, statuses, replies } of races) {
      const codes = replies.map((r) => r.status).sort();
      expect(codes).toEqual([200, 409]);
      const winner = statuses[replies.findIndex((r) => r.status === 200)];
      const stored = await row(task.taskId);
      expect(stored?.status).toBe(winner);
      expect(replies.find((r) => r.status === 409)?.text).toMatch(/already/);
    }
  });

  test('many identical reports at once: all 200, the row is written once', async () => {
    const [task] = await createTasks(1);
    if (!task) throw new Error('no task');
    await markSent(producer.sql, [task.taskId]);
    const replies = await Promise.all(Array.from({ length: 10 }, () => report(task.taskId, 'success', 1)));
    expect(replies.every((r) => r.status === 200)).toBe(true);
    expect(new Set(replies.map((r) => r.body.updatedAt)).size).toBe(1);
  });
});

describe('fencing by attempt', () => {
  test('a stale-attempt report answers 200 stale:true and changes nothing', async () => {
    const [task] = await createTasks(1);
    if (!task) throw new Error('no task');
    await markSent(producer.sql, [task.taskId], 2);
    const before = await row(task.taskId);
    const stale = await report(task.taskId, 'error', 1);
    expect(stale.status).toBe(200);
    expect(stale.body).toMatchObject({ status: 'sent', attempts: 2, stale: true });
    expect(await row(task.taskId)).toEqual(before);
  });

  test('a report landing while the task is still waiting (before the dispatcher records sent) applies', async () => {
    const [task] = await createTasks(1);
    if (!task) throw new Error('no task');
    // The dispatcher claimed it (attempt 1) but has not recorded `sent` yet.
    await producer.sql`update tasks set attempts = 1, claimed_until = now() + interval '30 s' where id = ${task.taskId}`;
    const reply = await report(task.taskId, 'success', 1);
    expect(reply.body).toMatchObject({ status: 'success', attempts: 1 });
    const stored = await row(task.taskId);
    expect(stored?.claimed_until).toBeNull();
  });

  test('redrive: attempts + 1, and a replayed report of the old attempt changes nothing', async () => {
    const [task] = await createTasks(1);
    if (!task) throw new Error('no task');
    await markSent(producer.sql, [task.taskId], 1);
    expect((await report(task.taskId, 'error', 1)).body.status).toBe('error');

    const redriven = await producer.http<TaskJson>('POST', `/api/v1/redrive-task?taskId=${task.taskId}`, {
      headers: AUTH,
    });
    expect(redriven.body).toMatchObject({ status: 'waiting', attempts: 2, error: null });

    const before = await row(task.taskId);
    for (const status of ['error', 'success'] as const) {
      const replay = await report(task.taskId, status, 1);
      expect(replay.status).toBe(200);
      expect(replay.body).toMatchObject({ status: 'waiting', attempts: 2, stale: true });
    }
    expect(await row(task.taskId)).toEqual(before);

    // The next dispatch (attempt 2) reports normally.
    await markSent(producer.sql, [task.taskId], 2);
    expect((await report(task.taskId, 'success', 2)).body).toMatchObject({ status: 'success', attempts: 2 });
  });

  test('a redrive racing a report: the report either lands first or is stale, never lost in between', async () => {
    const tasks = await createTasks(20);
    await markSent(
      producer.sql,
      tasks.map((t) => t.taskId),
    );
    await Promise.all(
      tasks.map(async (task) => {
        const [redrive, rep] = await Promise.all([
          producer.http<TaskJson>('POST', `/api/v1/redrive-task?taskId=${task.taskId}`, { headers: AUTH }),
          report(task.taskId, 'success', 1),
        ]);
        const stored = await row(task.taskId);
        if (redrive.status === 200) {
          // Redrive first: the report of attempt 1 is stale.
          expect(rep.body).toMatchObject({ stale: true });
          expect(stored).toMatchObject({ status: 'waiting', attempts: 2 });
        } else {
          // Report first: success cannot be redriven.
          expect(redrive.status).toBe(409);
          expect(rep.body).toMatchObject({ status: 'success', attempts: 1 });
          expect(stored).toMatchObject({ status: 'success', attempts: 1 });
        }
      }),
    );
  });
});
