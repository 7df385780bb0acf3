// Two reporters sending overlapping batches at the same time, with single reports and redrives in
// between: rows are locked in taskId order, so nobody deadlocks and every item gets its answer.
import { setTimeout as sleep } from 'node:timers/promises';
import { expect, test } from 'vitest';
import { AUTH, useTestProducer } from '../support/producer.js';

const producer = useTestProducer('batch_concurrency', { broker: 'unreachable' });

interface BatchReply {
  results: { taskId: string; status: number; stale?: true }[];
}

const TASKS = 300;
const ROUNDS = 4;

function shuffled<T>(items: readonly T[]): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i -= 1) {
    const j = Math.floor(Math.random() * (i + 1));
    [copy[i], copy[j]] = [copy[j] as T, copy[i] as T];
  }
  return copy;
}

async function deadlocks(): Promise<number> {
  const [row] = await producer.sql<{ deadlocks: number }[]>`
    select deadlocks::int as deadlocks from pg_stat_database where datname = current_database()`;
  return row?.deadlocks ?? -1;
}

test('overlapping batches sent concurrently: no deadlock, every item answered, one winner per task', async () => {
  const before = await deadlocks();
  for (let round = 0; round < ROUNDS; round += 1) {
    const ids = (
      await producer.sql<{ id: string }[]>`
        insert into tasks (id, text, status, attempts, sent_at)
        select gen_random_uuid(), 'r', 'sent', 1, now() from generate_series(1, ${TASKS}) returning id`
    ).map((r) => r.id);
    // Opposite orders and a shuffled third: without ordered locking these lock the rows crosswise.
    const successes = [...ids].sort().map((taskId) => ({ taskId, taskStatus: 'success', attempt: 1 }));
    const errors = [...ids]
      .sort()
      .reverse()
      .map((taskId) => ({ taskId, taskStatus: 'error', attempt: 1, error: 'x' }));
    const mixed = shuffled(ids).map((taskId, i) => ({
      taskId,
      taskStatus: i % 2 ? 'success' : 'error',
      attempt: 1,
    }));
    const send = (reports: unknown[]) =>
      producer.http<BatchReply>('PUT', '/api/v1/update-task-statuses', { json: { reports }, headers: AUTH });
    const singles = shuffled(ids)
      .slice(0, 30)
      .map((taskId) =>
        producer.http('PUT', `/api/v1/update-task-status?taskId=${taskId}&taskStatus=success&attempt=1`, {
          headers: AUTH,
        }),
      );
    const redrives = shuffled(ids)
      .slice(0, 30)
      .map((taskId) => producer.http('POST', `/api/v1/redrive-task?taskId=${taskId}`, { headers: AUTH }));

    const [a, b, c, ...others] = await Promise.all([
      send(successes),
      send(errors),
      send(mixed),
      ...singles,
      ...redrives,
    ]);
    for (const [reply, sent] of [
      [a, successes],
      [b, errors],
      [c, mixed],
    ] as const) {
      expect(reply?.status, reply?.text).toBe(200);
      expect(reply?.body.results.map((r) => r.taskId)).toEqual(sent.map((r) => r.taskId));
      expect(reply?.body.results.every((r) => r.status === 200 || r.status === 409)).toBe(true);
    }
    for (const reply of others) expect([200, 409]).toContain(reply?.status);

    // Per task the pure rule allows exactly one terminal status: what is stored agrees with the answers.
    const stored = new Map(
      (
        await producer.sql<{ id: string; status: string; attempts: number }[]>`
        select id, status, attempts from tasks where id = any(${ids}::uuid[])`
      ).map((r) => [r.id, r]),
    );
    const succeeded = new Map(a?.body.results.map((r) => [r.taskId, r]));
    const failed = new Map(b?.body.results.map((r) => [r.taskId, r]));
    for (const id of ids) {
      const task = stored.get(id);
      const okSuccess = succeeded.get(id);
      const okError = failed.get(id);
      if (task?.status === 'waiting') {
        // Redriven before any report landed: attempt 1 reports are stale from then on.
        expect(task.attempts).toBe(2);
        continue;
      }
      expect(task?.status === 'success' || task?.status === 'error').toBe(true);
      if (okSuccess?.status === 200 && !okSuccess.stale)
        expect(okError?.status === 409 || okError?.stale).toBeTruthy();
      if (task?.status === 'error') expect(okSuccess?.status === 409 || okSuccess?.stale).toBeTruthy();
    }
  }

  // A backend adds its deadlocks to pg_stat_database when it flushes its stats, at the latest on exit:
  // stop the producer so every one of its backends has reported.
  await producer.app.close();
  for (let i = 0; i < 200; i += 1) {
    const [left] = await producer.sql<{ n: number }[]>`
      select count(*)::int as n from pg_stat_activity
       where datname = current_database() and application_name like 'task-pipeline-%'`;
    if (left?.n === 0) break;
    await sleep(50);
  }
  await producer.sql`select pg_stat_clear_snapshot()`;
  expect(before).toBe(0);
  expect(await deadlocks()).toBe(0);
});
