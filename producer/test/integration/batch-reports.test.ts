// The batch route as the reporter calls it: ids in any case, answered in canonical lower case, and results without
// task bodies when the caller prefers them minimal (RFC 7240).
import { describe, expect, test } from 'vitest';
import { AUTH, markSent, type ProblemJson, type TaskJson, useTestProducer } from '../support/producer.js';

const producer = useTestProducer('producer_batch_reports');

interface BatchReply {
  results: { taskId: string | null; status: number; stale?: true; task?: TaskJson; problem?: ProblemJson }[];
}

async function sentTasks(n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i += 1) {
    const created = await producer.http<TaskJson>('POST', '/api/v1/create-task', { json: { text: `t${i}` } });
    ids.push(created.body.taskId);
  }
  await markSent(producer.sql, ids);
  return ids;
}

describe('PUT /api/v1/update-task-statuses', () => {
  test('applies reports whatever the case of their ids, and answers the ids in canonical lower case', async () => {
    const [a, b] = await sentTasks(2);
    const upper = (a as string).toUpperCase();
    const reply = await producer.http<BatchReply>('PUT', '/api/v1/update-task-statuses', {
      headers: AUTH,
      json: {
        reports: [
          { taskId: upper, taskStatus: 'success', attempt: 1 },
          { taskId: b, taskStatus: 'error', attempt: 1, error: 'boom' },
        ],
      },
    });
    expect(reply.status).toBe(200);
    expect(reply.body.results.map((r) => [r.taskId, r.status])).toEqual([
      [a, 200],
      [b, 200],
    ]);
    expect(reply.body.results[0]?.task?.taskId).toBe(a);
    const rows =
      await producer.sql`select id, status from tasks where id in (${a as string}, ${b as string})`;
    expect(Object.fromEntries(rows.map((r) => [r.id, r.status]))).toEqual({
      [a as string]: 'success',
      [b as string]: 'error',
    });
  });

  test('Prefer: return=minimal leaves the task bodies out, and says so', async () => {
    const [a, b] = await sentTasks(2);
    const unknown = '00000000-0000-4000-8000-000000000000';
    const reply = await producer.http<BatchReply>('PUT', '/api/v1/update-task-statuses', {
      headers: { ...AUTH, prefer: 'return=minimal' },
      json: {
        reports: [
          { taskId: a, taskStatus: 'success', attempt: 1 },
          { taskId: a, taskStatus: 'error', attempt: 1 },
          { taskId: b, taskStatus: 'success', attempt: 0 },
          { taskId: unknown, taskStatus: 'success' },
          { taskId: 'not-a-uuid', taskStatus: 'success' },
        ],
      },
    });
    expect(reply.status).toBe(200);
    expect(reply.headers['preference-applied']).toBe('return=minimal');
    expect(reply.body.results).toEqual([
      { taskId: a, status: 200 },
      { taskId: a, status: 409, problem: expect.objectContaining({ status: 409 }) },
      { taskId: b, status: 200, stale: true },
      { taskId: unknown, status: 404, problem: expect.objectContaining({ status: 404 }) },
      { taskId: 'not-a-uuid', status: 400, problem: expect.objectContaining({ status: 400 }) },
    ]);
  });

  test('without the preference every result carries its task', async () => {
    const [a] = await sentTasks(1);
    const reply = await producer.http<BatchReply>('PUT', '/api/v1/update-task-statuses', {
      headers: AUTH,
      json: { reports: [{ taskId: a, taskStatus: 'success', attempt: 1 }] },
    });
    expect(reply.headers['preference-applied']).toBeUndefined();
    expect(reply.body.results[0]?.task).toMatchObject({ taskId: a, status: 'success', attempts: 1 });
  });
});
